"""Stream a statement's rows with `COPY (query) TO STDOUT` instead of a server-side cursor.

Why: PostgreSQL never runs a cursor's query (`DECLARE ... CURSOR`) in parallel, while
`COPY (query) TO` may use parallel workers; an audit statement reads a whole table and returns
only its violating rows, which is exactly what parallel scans are for. The rows land in an
unnamed temporary file as they arrive (flat memory whatever the number of violations) and are
read back one at a time, with the types the statement declares (booleans, integers, numbers;
everything else as text, NULL as None), so callers see the same values as from a cursor.
"""

from __future__ import annotations

import io
import re
import tempfile
from collections import namedtuple
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import sqlalchemy as sa
from psycopg2.extensions import encodings
from sqlalchemy.engine import Connection

_NULL = "\\N"
_ESCAPES = {"\\\\": "\\", "\\b": "\b", "\\f": "\f", "\\n": "\n", "\\r": "\r", "\\t": "\t",
            "\\v": "\v"}
_ESCAPED = re.compile(r"\\[\\bfnrtv]")
SPOOL_IN_MEMORY = 1 << 20  # bytes of COPY output kept in memory before spilling to disk


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


def copy_rows(conn: Connection, stmt: sa.Select[Any]) -> Iterator[Any]:
    """The rows of `stmt`, as named tuples (`row[0]`, `row.key`), via COPY TO STDOUT.

    `conn` must be inside its transaction already: the COPY runs in the same snapshot."""
    compiled = stmt.compile(dialect=conn.dialect, compile_kwargs={"render_postcompile": True})
    columns = list(stmt.selected_columns)
    make = namedtuple(  # type: ignore[misc]  # noqa: PYI024
        "Row", [c.key or f"c{i}" for i, c in enumerate(columns)], rename=True
    )._make
    converters = [_converter(c.type) for c in columns]
    bools = [i for i, conv in enumerate(converters) if conv is _bool]
    typed = [(i, conv) for i, conv in enumerate(converters) if conv not in (None, _bool)]
    text = [i for i, conv in enumerate(converters) if conv is None]
    raw = conn.connection.dbapi_connection
    assert raw is not None
    codec = encodings[raw.encoding]  # type: ignore[attr-defined]
    with raw.cursor() as cur, tempfile.SpooledTemporaryFile(SPOOL_IN_MEMORY, "w+b") as spool:
        query = cur.mogrify(compiled.string, compiled.params)
        cur.copy_expert(b"COPY (" + query + b") TO STDOUT", spool)
        spool.seek(0)
        for line in io.TextIOWrapper(spool, encoding=codec, newline="\n"):
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
            yield make(fields)
