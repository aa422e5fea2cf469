"""One home for refaudit's errors. The CLI turns each into one line and an exit code."""

from __future__ import annotations

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


class Terminated(KeyboardInterrupt):
    """The process was asked to stop (SIGTERM): handled as Ctrl-C is, with its own message."""

    def __str__(self) -> str:
        return "terminated (SIGTERM); nothing was concluded"
