"""The terminal side of `Progress`: rich progress bars on stderr, used by the CLI only.

One line per stage (snapshot, row checks, uniqueness, catalog, history, files) with a bar over
its steps, the current step, live notes and the elapsed time. Quiet (no progress object at all)
when stderr is not a terminal, so logs and CI output get only the final summary.
"""

from __future__ import annotations

import sys
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


def stderr_progress(quiet: bool, stream: TextIO | None = None) -> RichProgress | None:
    """A progress display on stderr, or None when quiet or stderr is not a terminal."""
    stream = stream or sys.stderr
    if quiet or not stream.isatty():
        return None
    from rich.console import Console

    return RichProgress(Console(file=stream, stderr=True))
