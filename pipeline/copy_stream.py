"""Stream a statement's rows with `COPY (query) TO STDOUT` instead of a server-side cursor.

Why: PostgreSQL never runs a cursor's query (`DECLARE ... CURSOR`) in parallel, while
`COPY (query) TO` may use parallel workers; an audit statement reads a whole table and returns
only its violating rows, which is what parallel scans are for.

How: the COPY output goes to a spooled temporary file as it arrives (in memory up to
`SPOOL_IN_MEMORY` bytes, then on disk), so memory stays flat whatever the number of violations;
then rows are read back one at a time. Each value gets the Python type a cursor would give
for its PostgreSQL type (booleans, integers, floats, numerics; everything else as text; NULL
as None), and rows are named tuples with `_mapping`, like SQLAlchemy's.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections import namedtuple
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg2
import sqlalchemy as sa
from psycopg2.extensions import encodings
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

SPOOL_IN_MEMORY = 4 << 20  # bytes of COPY output kept in memory before spilling to disk
NOTE_EVERY = 10_000  # rows between two `note` calls while the COPY runs

_NULL = "\\N"
_ESCAPES = {
    "\\\\": "\\", "\\b": "\b", "\\f": "\f", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\v": "\v",
}
_ESCAPED = re.compile(r"\\[\\bfnrtv]")
_BOOL_OID = 16
# other PostgreSQL types whose values are not text: int8, int2, int4, oid, float4, float8, numeric
_CONVERTERS: dict[int, Callable[[str], Any]] = {
    20: int, 21: int, 23: int, 26: int, 700: float, 701: float, 1700: Decimal,
}


def _unescape(field: str) -> str:
    return _ESCAPED.sub(lambda m: _ESCAPES[m.group()], field)


def _row_type(names: list[str]) -> Any:
    """A named tuple class for the statement's columns, with `_mapping` like SQLAlchemy's."""
    base: Any = namedtuple("Row", names, rename=True)  # type: ignore[misc]

    class Row(base):
        __slots__ = ()

        @property
        def _mapping(self) -> dict[str, Any]:
            return dict(zip(names, self, strict=True))

    return Row


def _parser(names: list[str], oids: list[int]) -> Callable[[str], Any]:
    """A function from one line of COPY text output to a named tuple of typed values."""
    make = _row_type(names)._make
    bools = [i for i, oid in enumerate(oids) if oid == _BOOL_OID]
    typed = [(i, _CONVERTERS[oid]) for i, oid in enumerate(oids) if oid in _CONVERTERS]
    text = [i for i, oid in enumerate(oids) if oid != _BOOL_OID and oid not in _CONVERTERS]

    def parse(line: str) -> Any:
        fields: list[Any] = line[:-1].split("\t")
        if "\\" in line:  # NULLs (\N) or escaped characters: look at each field
            for i in text:
                f = fields[i]
                if "\\" in f:
                    fields[i] = None if f == _NULL else _unescape(f)
            for i in bools:
                fields[i] = None if fields[i] == _NULL else fields[i] == "t"
            for i, conv in typed:
                fields[i] = None if fields[i] == _NULL else conv(fields[i])
        else:
            for i in bools:
                fields[i] = fields[i] == "t"
            for i, conv in typed:
                fields[i] = conv(fields[i])
        return make(fields)

    return parse


class _Spool(io.RawIOBase):
    """Where COPY writes (one call per row): a spooled file, and a note every NOTE_EVERY rows."""

    def __init__(self, note: Callable[[int], None] | None) -> None:
        self.file = tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, "w+b")  # noqa: SIM115
        self._write = self.file.write
        self._note = note
        self.rows = 0

    def writable(self) -> bool:
        return True

    def write(self, row: Any) -> int:
        self._write(row)
        self.rows += 1
        if self._note is not None and self.rows % NOTE_EVERY == 0:
            self._note(self.rows)
        return len(row)


def copy_rows(
    conn: Connection, stmt: sa.Select[Any], note: Callable[[int], None] | None = None
) -> Iterator[Any]:
    """The rows of `stmt`, as named tuples (`row[0]`, `row.key`, `row._mapping["key"]`).

    `conn` must be inside its transaction already: the COPY runs in the same snapshot.
    `note(n)` is called every NOTE_EVERY rows while the COPY runs. Database errors are raised
    as SQLAlchemy's `DBAPIError`s, as from `conn.execute`."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw: Any = conn.connection.dbapi_connection
    codec = encodings[raw.encoding]
    with raw.cursor() as cur:
        query = cur.mogrify(compiled.string, compiled.params)
        try:
            # the result's column names and PostgreSQL types, without running the query
            cur.execute(b"SELECT * FROM (" + query + b") AS q LIMIT 0")
            described = cur.description
            parse = _parser([d.name for d in described], [d.type_code for d in described])
            spool = _Spool(note)
            cur.copy_expert(b"COPY (" + query + b") TO STDOUT", spool)
        except psycopg2.Error as exc:
            raise sa_exc.DBAPIError.instance(
                query.decode(codec, errors="replace"), None, exc, psycopg2.Error
            ) from exc
    with spool.file:
        spool.file.seek(0)
        for line in io.TextIOWrapper(spool.file, encoding=codec, newline="\n"):
            yield parse(line)


class _Lines(io.TextIOBase):
    """Where COPY ... (FORMAT csv) writes (one call per line): each line goes to `take`."""

    def __init__(self, take: Callable[[str], Any], note: Callable[[int], None] | None) -> None:
        self._take = take
        self._note = note
        self.lines = 0

    def write(self, line: str) -> int:
        self._take(line)
        self.lines += 1
        if self._note is not None and self.lines % NOTE_EVERY == 0:
            self._note(self.lines)
        return len(line)


def copy_lines(
    conn: Connection,
    stmt: sa.Select[Any],
    take: Callable[[str], Any],
    note: Callable[[int], None] | None = None,
) -> int:
    """Run `stmt` as `COPY (...) TO STDOUT (FORMAT csv)` and hand each CSV line (with its
    newline) to `take` as it arrives; returns the number of lines. No Python object per
    column: for statements whose rows already are the output's lines."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    raw: Any = conn.connection.dbapi_connection
    lines = _Lines(take, note)
    with raw.cursor() as cur:
        query = cur.mogrify(compiled.string, compiled.params)
        try:
            cur.copy_expert(b"COPY (" + query + b") TO STDOUT (FORMAT csv)", lines)
        except psycopg2.Error as exc:
            raise sa_exc.DBAPIError.instance(
                query.decode(encodings[raw.encoding], errors="replace"), None, exc, psycopg2.Error
            ) from exc
    return lines.lines
