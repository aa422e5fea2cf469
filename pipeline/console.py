"""The terminal side of `Progress`: rich progress bars on stderr, used by the CLI only.

One line per stage (snapshot, row checks, uniqueness, catalog, history, files) with a bar over
its steps, the current step, live notes and the elapsed time. Quiet (no progress object at all)
when stderr is not a terminal, so logs and CI output get only the final summary.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:  # rich is imported only when a display is shown (it costs ~40 ms to load)
    from rich.console import Console
    from rich.progress import TaskID


class RichProgress:
    """Implements `refaudit.progress.Progress` with a rich live display."""

    def __init__(self, console: Console) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            SpinnerColumn,
            TextColumn,
            TimeElapsedColumn,
        )

        self._bars = Progress(
            SpinnerColumn(finished_text="[green]✓[/]"),
            TextColumn("[bold]{task.fields[stage]:<13}[/]"),
            BarColumn(bar_width=24),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.description}", markup=False),
            console=console,
            transient=False,
        )
        self._task: TaskID | None = None
        self._label = ""
        self._started = False

    def stage(self, name: str, total: int) -> None:
        if not self._started:
            self._bars.start()
            self._started = True
        self._finish_task()
        self._task = self._bars.add_task("", total=max(total, 0), stage=name)
        self._label = ""

    def step(self, label: str) -> None:
        if self._task is None:
            return
        if self._label:
            self._bars.advance(self._task)
        self._label = label
        self._bars.update(self._task, description=label)

    def note(self, text: str) -> None:
        if self._task is not None:
            self._bars.update(self._task, description=f"{self._label}: {text}")

    def done(self) -> None:
        self._finish_task()
        if self._started:
            self._bars.stop()
            self._started = False

    def _finish_task(self) -> None:
        if self._task is None:
            return
        task = self._bars.tasks[-1]
        total = task.total or 0
        self._bars.update(self._task, completed=total, total=total, description="")
        self._task = None


class StepLines:
    """Implements `refaudit.progress.Progress` as plain lines (`-v`): each stage when it
    begins, each step when it ends with its duration and last note; with `announce` (`-vv`)
    also each step when it begins, so the SQL logged meanwhile reads under it."""

    def __init__(self, stream: TextIO, *, announce: bool = False) -> None:
        self._stream = stream
        self._announce = announce
        self._stage = ""
        self._label: str | None = None
        self._note = ""
        self._started = 0.0
        self._stage_started = 0.0

    def _say(self, line: str) -> None:
        self._stream.write(line + "\n")
        self._stream.flush()

    def stage(self, name: str, total: int) -> None:
        self._finish_step()
        self._stage = name
        self._stage_started = time.monotonic()
        self._say(f"{name} ({total})")

    def step(self, label: str) -> None:
        self._finish_step()
        self._label = label
        self._note = ""
        self._started = time.monotonic()
        if self._announce:
            self._say(f"  {self._stage}: {label} ...")

    def note(self, text: str) -> None:
        self._note = text

    def done(self) -> None:
        self._finish_step()

    def _finish_step(self) -> None:
        if self._label is None:
            return
        took = time.monotonic() - self._started
        note = f" ({self._note})" if self._note else ""
        self._say(f"  {self._stage}: {self._label}: {took:.2f} s{note}")
        self._label = None


def show_sql(enabled: bool, stream: TextIO | None = None) -> None:
    """Write every statement refaudit sends (`refaudit.db.SQL_LOG`) to `stream` (stderr), or
    stop writing them (`enabled` False: the library's default, silent)."""
    from .db import SQL_LOG

    for old in [h for h in SQL_LOG.handlers if isinstance(h.formatter, _IndentedSql)]:
        SQL_LOG.removeHandler(old)
    if not enabled:
        SQL_LOG.setLevel(logging.NOTSET)
        SQL_LOG.propagate = True
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(_IndentedSql())
    SQL_LOG.addHandler(handler)
    SQL_LOG.setLevel(logging.DEBUG)
    SQL_LOG.propagate = False


class _IndentedSql(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        lines = record.getMessage().splitlines() or [""]
        return "\n".join(["    SQL: " + lines[0], *("         " + ln for ln in lines[1:])])


def stderr_progress(
    quiet: bool, stream: TextIO | None = None, verbose: int = 0
) -> RichProgress | StepLines | None:
    """A progress display on stderr: plain lines with `verbose` (1: the steps and their
    times, 2: also each step as it begins), else rich bars when stderr is a terminal; None
    when quiet or stderr is not a terminal."""
    stream = stream or sys.stderr
    if verbose > 0:
        return StepLines(stream, announce=verbose > 1)
    if quiet or not stream.isatty():
        return None
    from rich.console import Console

    return RichProgress(Console(file=stream, stderr=True))


def print_markdown(text: str, stream: TextIO | None = None) -> None:
    """Show Markdown on `stream` (stdout): rendered by rich, in colour on a terminal; as
    plain text elsewhere (no `#`, backtick or other mark; lines wrapped, none padded)."""
    from rich.console import Console
    from rich.markdown import Markdown

    stream = stream or sys.stdout
    if stream.isatty():
        Console(file=stream).print(Markdown(text))
        return
    console = Console(file=stream, color_system=None, force_terminal=False)
    with console.capture() as captured:
        console.print(Markdown(text, justify="default"))
    stream.write("\n".join(line.rstrip() for line in captured.get().splitlines()) + "\n")
