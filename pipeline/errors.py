"""One home for refaudit's errors. The CLI turns each into one line and an exit code."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from enum import IntEnum


class ExitCode(IntEnum):
    """Process exit codes of every refaudit command."""

    PASSED = 0
    """No violation at failing severity over its threshold."""
    VIOLATIONS = 1
    """At least one check at failing severity is over its threshold."""
    USAGE = 2
    """Bad options, or a suite or snapshot that cannot be used."""
    RUNTIME = 3
    """The database or the run failed: nothing trustworthy was produced."""


class RefauditError(Exception):
    """Base of every error refaudit reports to a user.

    The message is one line: what went wrong, where, and what to do.
    """

    exit_code: ExitCode = ExitCode.RUNTIME


class UsageError(RefauditError):
    """An option or argument the user gave cannot be used."""

    exit_code = ExitCode.USAGE


class SuiteError(RefauditError):
    """The suite file is missing, unreadable or invalid."""

    exit_code = ExitCode.USAGE


class DatabaseError(RefauditError):
    """Connecting to, or querying, the audited database failed."""

    exit_code = ExitCode.RUNTIME


class MissingExtra(RefauditError):
    """A feature needs an optional dependency (an extra of the package) that is not installed."""

    exit_code = ExitCode.USAGE

    def __init__(self, what: str, module: str, extra: str, *, hint: str = "") -> None:
        super().__init__(
            f"{what} needs {module}; install it with: pip install 'refaudit[{extra}]'{hint}"
        )
        self.module = module
        self.extra = extra


@contextmanager
def needs_extra(what: str, extra: str, *modules: str) -> Iterator[None]:
    """Turn the failed import of one of `modules` (top-level names) inside the block into a
    `MissingExtra` naming `what` needs it and the extra that installs it.

    Any other failed import is left alone: it is a broken installation, not a missing extra.
    """
    try:
        yield
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        if top not in modules:
            raise
        raise MissingExtra(what, top, extra) from None


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM): handled as Ctrl-C is, with its own message."""

    def __str__(self) -> str:
        return "terminated (SIGTERM); nothing was concluded"
