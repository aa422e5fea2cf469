"""Where COPY writes a statement's rows as they arrive: memory up to `SPOOL_IN_MEMORY` bytes
of rows (a framed spool's lengths not counted), then an unnamed temporary file, one `write`
per row. Only the standard library: the early start (`early`) spools its statement before
anything else is imported."""

from __future__ import annotations

import io
import struct
import sys
import tempfile
from collections.abc import Callable, Iterator
from typing import IO, Any

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
    """Where COPY writes (one call per row): memory up to SPOOL_IN_MEMORY bytes, then an
    unnamed temporary file (`file`), and a note every NOTE_EVERY rows.

    With `framed`, each row is stored behind its length, so rows that contain newlines
    (quoted CSV fields) come back whole (`framed_rows`). A row costs one Python call: the
    writes go straight to the C-level buffer or file."""

    def __init__(self, note: Callable[[int], None] | None, *, framed: bool = False) -> None:
        self.file: io.BytesIO | IO[bytes] = io.BytesIO()
        self._write = self.file.write
        self._framed = framed
        self._note = note
        self._size = 0
        self._limit = SPOOL_IN_MEMORY
        self.on_disk = False
        """Whether the rows outgrew SPOOL_IN_MEMORY and went to a file."""

    def writable(self) -> bool:
        return True

    def write(self, row: Any) -> int:
        size = len(row)
        if self._framed:
            self._write(FRAME.pack(size))
        self._write(row)
        self._size += size
        if self._size > self._limit:
            self._to_disk()
        # `Counting._counted`, inlined: a second Python call per row would double the cost
        self.rows += 1
        if self._note is not None and self.rows % NOTE_EVERY == 0:
            self._note(self.rows)
        return size

    def _to_disk(self) -> None:
        memory = self.file
        assert isinstance(memory, io.BytesIO)
        disk = tempfile.TemporaryFile("w+b")  # noqa: SIM115
        try:
            with memory.getbuffer() as written:
                disk.write(written)
        except BaseException:
            disk.close()
            raise
        self.file, self._write = disk, disk.write
        self._limit = sys.maxsize
        self.on_disk = True
        memory.close()

    def framed_rows(self) -> Iterator[bytes]:
        """The rows of a framed spool, each as COPY wrote it, from the first; the file is
        closed at the end."""
        size, read = FRAME.size, self.file.read
        with self.file:
            self.file.seek(0)
            while head := read(size):
                yield read(FRAME.unpack(head)[0])
