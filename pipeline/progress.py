"""How a long run tells its caller where it is, without knowing how that is shown.

The library reports stages (connect, row checks, uniqueness, catalog, history, files), each
with a number of steps (tables, checks), to a `Progress`. The CLI shows them with rich
(`pipeline/console.py`); a plain `Callable[[str], None]` still works and receives one line
per stage and step.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable


@runtime_checkable
class Progress(Protocol):
    """Receives the run's stages as they happen."""

    def stage(self, name: str, total: int) -> None:
        """A stage of `total` steps begins (the previous one, if any, is finished)."""

    def step(self, label: str) -> None:
        """The next step of the current stage begins (the previous step is finished)."""

    def note(self, text: str) -> None:
        """Live detail of the current step, e.g. violations found so far."""

    def done(self) -> None:
        """The run is over: finish the current stage."""


ProgressLike = Progress | Callable[[str], None] | None


class NullProgress:
    def stage(self, name: str, total: int) -> None:
        pass

    def step(self, label: str) -> None:
        pass

    def note(self, text: str) -> None:
        pass

    def done(self) -> None:
        pass


class LineProgress(NullProgress):
    """Adapts a `Callable[[str], None]`: one message per stage and per step."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say

    def stage(self, name: str, total: int) -> None:
        self._say(name)

    def step(self, label: str) -> None:
        self._say(label)


def as_progress(progress: ProgressLike) -> Progress:
    if progress is None:
        return NullProgress()
    if isinstance(progress, Progress):
        return progress
    return LineProgress(progress)
