"""Where COPY writes a statement's rows as they arrive: a spooled temporary file (in memory up
to `SPOOL_IN_MEMORY` bytes, then on disk), one `write` per row. Only the standard library:
the early start (`early`) spools its statement before anything else is imported."""

from __future__ import annotations

import io
import struct
import tempfile
from collections.abc import Callable, Iterator
from typing import Any

SPOOL_IN_MEMORY = 4 << 20  # bytes of COPY output kept in memory before spilling to disk
NOTE_EVERY = 10_000  # rows between two `note` calls while the COPY runs

FRAME = struct.Struct("<I")


class Counting:
    """Counts the rows COPY writes and calls `note(n)` every NOTE_EVERY rows."""

    _note: Callable[[int], None] | None = None
    rows = 0

    def _counted(self) -> None:
        self.rows += 1
        if self._note is not None and self.rows % NOTE_EVERY == 0:
            self._note(self.rows)


class Spool(Counting, io.RawIOBase):
    """Where COPY writes (one call per row): a spooled file, and a note every NOTE_EVERY rows.

    With `framed`, each row is stored behind its length, so rows that contain newlines
    (quoted CSV fields) come back whole (`framed_rows`)."""

    def __init__(self, note: Callable[[int], None] | None, *, framed: bool = False) -> None:
        self.file = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, "w+b")  # noqa: SIM115
        self._write = self.file.write
        self._framed = framed
        self._note = note

    def writable(self) -> bool:
        return True

    def write(self, row: Any) -> int:
        if self._framed:
            self._write(FRAME.pack(len(row)))
        self._write(row)
        self._counted()
        return len(row)

    def framed_rows(self) -> Iterator[bytes]:
        """The rows of a framed spool, each as COPY wrote it, from the first; the file is
        closed at the end."""
        size, read = FRAME.size, self.file.read
        with self.file:
            self.file.seek(0)
            while head := read(size):
                yield read(FRAME.unpack(head)[0])
