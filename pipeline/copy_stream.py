"""Stream a statement's rows with `COPY (query) TO STDOUT` instead of a server-side cursor.

Why: PostgreSQL never runs a cursor's query (`DECLARE ... CURSOR`) in parallel, while
`COPY (query) TO` may use parallel workers; an audit statement reads a whole table and returns
only its violating rows, which is what parallel scans are for.

How: a helper thread runs the COPY (psycopg2 releases the GIL while it waits on the server)
and hands rows over in chunks through a small bounded queue, so memory stays flat whatever the
number of violations and the caller sees rows while the scan is still running. Rows keep the
types the statement declares (booleans, integers, numbers; everything else as text, NULL as
None), so callers see the same values as from a cursor.
"""

from __future__ import annotations

import io
import queue
import re
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import psycopg2
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

CHUNK_ROWS = 2_000  # rows handed over at once
QUEUE_CHUNKS = 8  # chunks in flight: at most CHUNK_ROWS * QUEUE_CHUNKS rows in memory

_NULL = "\\N"
_ESCAPES = {"\\\\": "\\", "\\b": "\b", "\\f": "\f", "\\n": "\n", "\\r": "\r", "\\t": "\t",
            "\\v": "\v"}
_ESCAPED = re.compile(r"\\[\\bfnrtv]")
_DONE = object()


def _unescape(field: str) -> str:
    return _ESCAPED.sub(lambda m: _ESCAPES[m.group()], field)


def _bool(field: str) -> bool:
    return field == "t"


def _converter(type_: Any) -> Callable[[str], Any] | None:
    """How a column's text becomes its Python value (None: it stays text)."""
    if isinstance(type_, sa.Boolean):
        return _bool
    if isinstance(type_, sa.Integer):
        return int
    if isinstance(type_, sa.Float):
        return float
    if isinstance(type_, sa.Numeric):
        return Decimal
    return None


def _parser(columns: list[Any]) -> Callable[[str], Any]:
    """A function from one line of COPY text output to a named tuple of typed values."""
    make = namedtuple(  # type: ignore[misc]  # noqa: PYI024
        "Row", [c.key or f"c{i}" for i, c in enumerate(columns)], rename=True
    )._make
    converters = [_converter(c.type) for c in columns]
    text = [i for i, conv in enumerate(converters) if conv is None]
    bools = [i for i, conv in enumerate(converters) if conv is _bool]
    typed = [(i, conv) for i, conv in enumerate(converters) if conv not in (None, _bool)]

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


class _Chunks(io.TextIOBase):
    """The file COPY writes into (one call per row): rows go to the queue in chunks."""

    def __init__(self, chunks: queue.Queue[Any]) -> None:
        self._chunks = chunks
        self._rows: list[str] = []

    def write(self, row: str) -> int:
        self._rows.append(row)
        if len(self._rows) >= CHUNK_ROWS:
            self._chunks.put(self._rows)
            self._rows = []
        return len(row)

    def flush_rows(self) -> None:
        if self._rows:
            self._chunks.put(self._rows)
            self._rows = []


def copy_rows(conn: Connection, stmt: sa.Select[Any]) -> Iterator[Any]:
    """The rows of `stmt`, as named tuples (`row[0]`, `row.key`), via COPY TO STDOUT.

    `conn` must be inside its transaction already: the COPY runs in the same snapshot.
    Database errors are raised as SQLAlchemy's `DBAPIError`s, as from `conn.execute`."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    parse = _parser(list(stmt.selected_columns))
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        sql = b"COPY (" + cur.mogrify(compiled.string, compiled.params) + b") TO STDOUT"
    chunks: queue.Queue[Any] = queue.Queue(QUEUE_CHUNKS)

    def produce() -> None:
        try:
            sink = _Chunks(chunks)
            with raw.cursor() as cur:
                cur.copy_expert(sql, sink)
            sink.flush_rows()
            chunks.put(_DONE)
        except BaseException as exc:  # handed to the reading side, raised there
            chunks.put(exc)

    producer = threading.Thread(target=produce, name="refaudit-copy", daemon=True)
    producer.start()
    finished = False
    try:
        while (chunk := chunks.get()) is not _DONE:
            if isinstance(chunk, BaseException):
                finished = True
                if isinstance(chunk, psycopg2.Error):
                    raise sa_exc.DBAPIError.instance(
                        sql.decode(errors="replace"), None, chunk, psycopg2.Error
                    ) from chunk
                raise chunk
            for line in chunk:
                yield parse(line)
        finished = True
    finally:
        if not finished:  # the reader stopped early: stop the query and let the thread end
            raw.cancel()
            while True:
                item = chunks.get()
                if item is _DONE or isinstance(item, BaseException):
                    break
        producer.join()
