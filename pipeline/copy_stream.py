"""Stream a statement's rows with `COPY (query) TO STDOUT` instead of a server-side cursor.

Why: PostgreSQL never runs a cursor's query (`DECLARE ... CURSOR`) in parallel, while
`COPY (query) TO` may use parallel workers; an audit statement reads a whole table and returns
only its violating rows, which is what parallel scans are for.

How: the COPY output goes to a spooled temporary file as it arrives (in memory up to
`SPOOL_IN_MEMORY` bytes, then on disk), so memory stays flat whatever the number of violations;
then rows are read back one at a time. Each value gets the Python type a cursor would give
for its PostgreSQL type (booleans, integers, floats, numerics; everything else as text; NULL
as None), and rows are named tuples with `_mapping`, like SQLAlchemy's.

`spool_rows` and `spool_lines` stop after the COPY and hand over the spool itself, so a
statement can run on another connection (in another thread) and be read back later, in order.
"""

from __future__ import annotations

import contextlib
import io
import re
import threading
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg2
import sqlalchemy as sa
from psycopg2.extensions import encodings
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from . import early
from .db import log_statement, sending
from .spool import Counting, Spool

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


class Shared:
    """One statement that several jobs run, each with its own values of some of its
    parameters (`Bound`): built and compiled once, by the first to run it."""

    def __init__(self, build: Callable[[], sa.Select[Any]]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._compiled: Any = None

    def compiled(self, dialect: Any) -> Any:
        with self._lock:
            if self._compiled is None:
                self._compiled = _compile(self._build(), dialect)
            return self._compiled


@dataclass(frozen=True)
class Bound:
    """A `Shared` statement with these parameter values."""

    shared: Shared
    params: Mapping[str, Any]


Query = sa.Select[Any] | Bound | Callable[[], sa.Select[Any]]
"""What a COPY runs: a statement, a shared one with its parameters, or what builds a
statement (called by the thread that runs it, when it runs it)."""


def _compile(stmt: sa.Select[Any], dialect: Any) -> Any:
    return stmt.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})


def _copy(
    conn: Connection,
    stmt: Query,
    sink_for: Callable[[Any], Any],
    *,
    csv: bool,
    describe: bool,
) -> Any:
    """Run `COPY (stmt) TO STDOUT` into `sink_for(columns)` (a file object that gets one
    write per row), on `conn` and inside its transaction; return that sink. With `describe`,
    `columns` is the result's description (names and type OIDs, from a `LIMIT 0` of the same
    query), else None.

    Database errors are raised as SQLAlchemy's `DBAPIError`s, as from `conn.execute`."""
    if isinstance(stmt, Bound):
        compiled = stmt.shared.compiled(conn.dialect)
        params = {**compiled.params, **stmt.params}
    else:
        built = stmt if isinstance(stmt, sa.ClauseElement) else stmt()
        compiled = _compile(built, conn.dialect)
        params = compiled.params
    raw: Any = conn.connection.dbapi_connection
    with raw.cursor() as cur:
        query = cur.mogrify(compiled.string, params)
        try:
            described = None
            if describe:
                cur.execute(b"SELECT * FROM (" + query + b") AS q LIMIT 0")
                described = cur.description
            sink = sink_for(described)
            text = b"COPY (" + query + b") TO STDOUT" + (b" (FORMAT csv)" if csv else b"")
            codec = encodings[raw.encoding]
            sent_early = early.claim(text, raw, codec)  # the audit's first: sent already?
            try:
                if sent_early is not None:
                    log_statement(early.TAKEN)
                log_statement(text)
                sending()
            except BaseException:
                if sent_early is not None:
                    sent_early.drop()
                raise
            if sent_early is None or not sent_early.into(sink, codec):
                cur.copy_expert(text, sink)
        except psycopg2.Error as exc:
            lost = bool(raw.closed)
            if lost:  # as SQLAlchemy does for its own statements: no rollback on a dead line
                conn.invalidate(exc)
            raise sa_exc.DBAPIError.instance(
                query.decode(encodings[raw.encoding], errors="replace"),
                None,
                exc,
                psycopg2.Error,
                connection_invalidated=lost,
            ) from exc
        except BaseException:
            # the sink failed (or Ctrl-C) mid-COPY: stop the statement rather than let the
            # rollback wait for the rest of its output
            with contextlib.suppress(Exception):
                raw.cancel()
            raise
    return sink


def _parser_for(described: Any) -> Callable[[str], Any]:
    return _parser([d.name for d in described], [d.type_code for d in described])


class Spooled:
    """A statement's whole COPY output, kept in a spooled temporary file (memory up to
    SPOOL_IN_MEMORY bytes, then disk) until it is read back, once, with `rows()` or
    `lines()`. It can be taken on one connection (a thread of its own) and read on another
    thread later."""

    def __init__(
        self, spool: Spool, codec: str, parse: Callable[[str], Any] | None = None
    ) -> None:
        self._spool = spool
        self._codec = codec
        self._parse = parse
        self.count = spool.rows

    @property
    def on_disk(self) -> bool:
        """Whether the spool outgrew SPOOL_IN_MEMORY and went to a file."""
        return self._spool.on_disk

    def rows(self) -> Iterator[Any]:
        """The rows as named tuples (text-format spools, see `spool_rows`)."""
        assert self._parse is not None, "a CSV spool holds lines, not rows"
        parse = self._parse
        with self._spool.file as file:
            file.seek(0)
            for line in io.TextIOWrapper(file, encoding=self._codec, newline="\n"):
                yield parse(line)

    def lines(self) -> Iterator[str]:
        """The CSV lines, each whole (with its newline) even where a field holds newlines."""
        assert self._parse is None, "a text-format spool holds rows, not CSV lines"
        codec = self._codec
        for row in self._spool.framed_rows():
            yield row.decode(codec)

    def close(self) -> None:
        self._spool.file.close()


def spool_rows(
    conn: Connection, stmt: Query, note: Callable[[int], None] | None = None
) -> Spooled:
    """Run `stmt` with COPY on `conn` (inside its transaction) into a spool; read it back with
    `.rows()`. `note(n)` is called every NOTE_EVERY rows while the COPY runs."""
    made: list[tuple[Spool, Any]] = []

    def spool_for(described: Any) -> Spool:
        made.append((Spool(note), described))
        return made[0][0]

    try:
        _copy(conn, stmt, spool_for, csv=False, describe=True)
    except BaseException:
        for spool, _ in made:
            spool.file.close()
        raise
    spool, described = made[0]
    raw: Any = conn.connection.dbapi_connection
    return Spooled(spool, encodings[raw.encoding], _parser_for(described))


def spool_lines(conn: Connection, stmt: Query) -> Spooled:
    """Run `stmt` as `COPY ... (FORMAT csv)` on `conn` into a spool; read it back with
    `.lines()`: what `copy_lines` hands over, later and from any thread."""
    spool = Spool(None, framed=True)
    try:
        _copy(conn, stmt, lambda _: spool, csv=True, describe=False)
    except BaseException:
        spool.file.close()
        raise
    raw: Any = conn.connection.dbapi_connection
    return Spooled(spool, encodings[raw.encoding])


def copy_rows(
    conn: Connection, stmt: Query, note: Callable[[int], None] | None = None
) -> Iterator[Any]:
    """The rows of `stmt`, as named tuples (`row[0]`, `row.key`, `row._mapping["key"]`).

    `conn` must be inside its transaction already: the COPY runs in the same snapshot.
    `note(n)` is called every NOTE_EVERY rows while the COPY runs. Database errors are raised
    as SQLAlchemy's `DBAPIError`s, as from `conn.execute`."""
    yield from spool_rows(conn, stmt, note).rows()


class _Each(Counting, io.TextIOBase):
    """Where COPY writes (one call per row, decoded): each row, parsed (`parse`) or as its
    line (None), goes to `take`."""

    def __init__(
        self,
        parse: Callable[[str], Any] | None,
        take: Callable[[Any], Any],
        note: Callable[[int], None] | None,
    ) -> None:
        self._parse = parse
        self._take = take
        self._note = note

    def write(self, line: str) -> int:
        self._take(line if self._parse is None else self._parse(line))
        self._counted()
        return len(line)


def copy_each(
    conn: Connection,
    stmt: Query,
    take: Callable[[Any], Any],
    note: Callable[[int], None] | None = None,
) -> int:
    """Hand each row of `stmt` (a named tuple, as from `copy_rows`) to `take` as it arrives,
    while PostgreSQL is still producing the next ones; returns the number of rows. Memory
    holds one row; `take` runs in this thread."""
    each = _copy(
        conn, stmt, lambda described: _Each(_parser_for(described), take, note),
        csv=False, describe=True,
    )
    return int(each.rows)


def copy_lines(
    conn: Connection,
    stmt: Query,
    take: Callable[[str], Any],
    note: Callable[[int], None] | None = None,
) -> int:
    """Run `stmt` as `COPY (stmt) TO STDOUT (FORMAT csv)` and hand each CSV line (with its
    newline) to `take` as it arrives; returns the number of lines. No Python object per
    column: for statements whose rows already are the output's lines."""
    lines = _copy(conn, stmt, lambda _: _Each(None, take, note), csv=True, describe=False)
    return int(lines.rows)
