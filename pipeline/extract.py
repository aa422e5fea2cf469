"""`refaudit extract`: copy what a suite reads out of the database into a Parquet snapshot.

Every table is read inside ONE `REPEATABLE READ READ ONLY` transaction, so all files show
the database at one instant (rows committed after it began never appear). Each table is
streamed: `COPY (SELECT ...) TO STDOUT` in CSV runs in a thread that writes into a pipe,
Arrow's streaming CSV reader turns the other end into record batches of `block_bytes`, and
each batch becomes one Parquet row group. Memory holds a few batches whatever the table size.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
import time
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import psycopg2
import sqlalchemy as sa
from psycopg2 import sql
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection

from . import __version__, sqltext
from .checks.catalog import read_catalogs
from .db import create_engine, database_error, describe, read_only_snapshot
from .errors import RefauditError, UsageError
from .jobs import tune_session
from .limits import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from .plan import required_columns
from .snapshot import (
    Manifest,
    SnapshotColumn,
    SnapshotEnum,
    SnapshotTable,
    arrow_type,
    file_name,
    require_arrow,
    sha256_of,
)
from .suite import Suite
from .verify import verify_schema

if TYPE_CHECKING:
    import pyarrow as pa

ExtractProgress = Callable[[str, int, int], None]
"""Called as `progress(table, rows_done, rows_total)`: at the start of each table (0), after
every batch, and at its end."""

# Session settings that fix how values are written as text during the extract: ISO dates
# (Arrow parses them), UTC offsets, every float digit.
_EXTRACT_SETTINGS = {
    "TimeZone": "UTC",
    "DateStyle": "ISO, YMD",
    "IntervalStyle": "postgres",
    "extra_float_digits": "3",
    "bytea_output": "hex",
}
# The source's own settings that shape values as text in an audit; a snapshot run uses them.
_SOURCE_SETTINGS = ("TimeZone", "DateStyle", "IntervalStyle")

_COLUMNS_SQL = sa.text("""
SELECT a.attname::text AS name,
       format_type(bt.oid, CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END)
           AS type,
       bt.typname::text AS base,
       CASE WHEN t.typtype = 'd' THEN t.typtypmod ELSE a.atttypmod END AS typmod,
       a.attnotnull AS not_null,
       CASE WHEN a.attcollation <> bt.typcollation
            THEN (SELECT collname::text FROM pg_collation WHERE oid = a.attcollation) END
           AS collation,
       CASE WHEN bt.typtype = 'e' THEN bt.typnamespace::regnamespace::text END AS enum_schema,
       CASE WHEN bt.typtype = 'e'
            THEN (SELECT array_agg(enumlabel::text ORDER BY enumsortorder)
                  FROM pg_enum WHERE enumtypid = bt.oid) END AS enum_labels
FROM pg_attribute a
JOIN pg_type t ON t.oid = a.atttypid
JOIN pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = to_regclass(:t) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attnum
""")

_LOCALE_SQL = sa.text("""
SELECT pg_encoding_to_char(d.encoding) AS encoding, d.datcollate::text AS collate,
       d.datctype::text AS ctype, to_jsonb(d) ->> 'datlocprovider' AS provider,
       coalesce(to_jsonb(d) ->> 'datlocale', to_jsonb(d) ->> 'daticulocale') AS locale
FROM pg_database d WHERE d.datname = current_database()
""")


@dataclass(frozen=True)
class ExtractOptions:
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    block_bytes: int = 2 << 20
    """CSV bytes per Arrow batch, i.e. per Parquet row group: what bounds memory (a few
    times this, whatever the table size)."""


def prepare_snapshot_dir(out: Path) -> Path:
    if out.exists() and not out.is_dir():
        raise UsageError(f"--out {out} is a file; pass a new or empty directory")
    if out.is_dir() and any(out.iterdir()):
        raise UsageError(f"--out {out} is not empty; extract into a new or empty directory")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create snapshot directory {out}: {exc.strerror}") from None
    return out


def snapshot_plan(suite: Suite) -> tuple[dict[str, set[str]], list[str]]:
    """The columns to copy per table, and the tables whose catalog facts to record."""
    columns = required_columns(suite)
    for table, cols in columns.items():
        cols |= set(suite.key_columns(table))
    catalog = sorted({*columns, *(c.table for c in suite.checks if not c.stage.reads_rows)})
    return dict(sorted(columns.items())), catalog


def extract_snapshot(
    url: URL,
    suite: Suite,
    out: Path,
    *,
    options: ExtractOptions | None = None,
    progress: ExtractProgress | None = None,
) -> Manifest:
    """Write a snapshot of what `suite` reads from the database at `url` into `out`.

    Needs pyarrow (the `snapshot` extra); without it, a `MissingExtra` error before anything
    is read or written."""
    require_arrow("refaudit extract")
    opts = options or ExtractOptions()
    out = prepare_snapshot_dir(out)
    say = progress or (lambda _table, _done, _total: None)
    started = time.perf_counter()
    extracted_at = datetime.now(UTC).isoformat(timespec="seconds")
    engine = create_engine(
        url, statement_timeout_s=opts.statement_timeout_s, lock_timeout_s=opts.lock_timeout_s
    )
    written: list[Path] = []
    doing = "connecting"
    try:
        with read_only_snapshot(engine) as (conn, snap):
            settings = {
                name: conn.execute(sa.text("SELECT current_setting(:n)"), {"n": name}).scalar_one()
                for name in _SOURCE_SETTINGS
            }
            locale = dict(conn.execute(_LOCALE_SQL).one()._mapping)
            for name, value in _EXTRACT_SETTINGS.items():
                conn.execute(sa.text("SELECT set_config(:n, :v, true)"), {"n": name, "v": value})
            tune_session(conn)  # the audit's planner settings (JIT off), whatever the server's
            doing = "checking the schema"
            verify_schema(conn, suite)
            doing = "reading the catalog"
            columns, catalog_tables = snapshot_plan(suite)
            catalog = {t: f.to_dict() for t, f in read_catalogs(conn, catalog_tables).items()}
            tables = []
            taken: set[str] = set()
            for table, wanted in columns.items():
                doing = f"extracting {table}"
                pk = _primary_key(catalog[table])
                keep = wanted | set(pk)
                cols = [c for c in _describe_columns(conn, table) if c[0].name in keep]
                path = out / file_name(table, taken)
                written.append(path)
                rows = _extract_table(conn, table, cols, path, opts.block_bytes, say)
                tables.append(
                    SnapshotTable(
                        name=table,
                        file=path.name,
                        rows=rows,
                        primary_key=pk,
                        columns=[c for c, _ in cols],
                        sha256=sha256_of(path),
                        bytes=path.stat().st_size,
                    )
                )
        manifest = Manifest(
            snapshot_taken_at=snap.taken_at,
            server_version=snap.server_version,
            database=describe(url),
            database_identity=snap.identity,
            suite=suite.suite,
            refaudit_version=__version__,
            extracted_at=extracted_at,
            duration_s=round(time.perf_counter() - started, 3),
            settings=settings,
            locale=locale,
            tables=tables,
            catalog=catalog,
        )
        manifest.write(out)
    except (sa_exc.SQLAlchemyError, psycopg2.Error) as exc:
        _remove(written)
        raise database_error(exc, url, doing=doing) from None
    except BaseException:
        _remove(written)
        raise
    finally:
        engine.dispose()
    return manifest


def _remove(paths: list[Path]) -> None:
    for path in paths:
        path.unlink(missing_ok=True)


def _primary_key(facts: dict[str, Any]) -> list[str]:
    pk = next((c for c in facts["constraints"] if c["type"] == "primary_key"), None)
    return list(pk["columns"]) if pk else []


def _describe_columns(conn: Connection, table: str) -> list[tuple[SnapshotColumn, pa.DataType]]:
    """Every column of `table` with its PostgreSQL type and the Arrow type it is stored as."""
    cols = []
    for row in conn.execute(_COLUMNS_SQL, {"t": sqltext.regclass_text(table)}):
        enum = None
        if row.enum_labels is not None:
            enum = SnapshotEnum(schema=row.enum_schema, name=row.base, labels=row.enum_labels)
        arrow = arrow_type(row.base, row.typmod)
        column = SnapshotColumn(
            name=row.name,
            type=row.type,
            arrow=str(arrow),
            not_null=row.not_null,
            collation=row.collation,
            enum=enum,
        )
        cols.append((column, arrow))
    return cols


def _arrow_schema(table: str, cols: list[tuple[SnapshotColumn, pa.DataType]]) -> pa.Schema:
    import pyarrow as pa

    fields = [
        pa.field(c.name, arrow, nullable=not c.not_null, metadata={"pg_type": c.type})
        for c, arrow in cols
    ]
    return pa.schema(fields, metadata={"refaudit.table": table})


def _extract_table(
    conn: Connection,
    table: str,
    cols: list[tuple[SnapshotColumn, pa.DataType]],
    path: Path,
    block_bytes: int,
    say: ExtractProgress,
) -> int:
    """Stream one table into a Parquet file; return the number of rows written."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = _arrow_schema(table, cols)
    ident = sql.Identifier(*table.split(".", 1)) if "." in table else sql.Identifier(table)
    total = conn.execute(sa.text(f"SELECT count(*) FROM {_render(conn, ident)}")).scalar_one()
    say(table, 0, total)
    done = 0
    with pq.ParquetWriter(path, schema, compression="zstd") as writer:
        if total:
            query = sql.SQL("COPY (SELECT {} FROM {}) TO STDOUT WITH (FORMAT csv)").format(
                sql.SQL(", ").join(sql.Identifier(c.name) for c, _ in cols), ident
            )
            raw = conn.connection.dbapi_connection
            batches = _copy_batches(raw, _render(conn, query), schema, block_bytes)
            try:
                # closing: if writing a batch fails, the COPY is stopped and its thread joined
                # here and now, not whenever the generator happens to be collected
                with contextlib.closing(batches):
                    for batch in batches:
                        # the declared schema (NOT NULL, PostgreSQL types as field metadata)
                        writer.write_batch(pa.RecordBatch.from_arrays(batch.columns, schema=schema))
                        done += batch.num_rows
                        say(table, done, total)
            except pa.ArrowInvalid as exc:
                problem = re.sub(
                    r"In CSV column #(\d+)",
                    lambda m: f"column {schema.names[int(m[1])]}",
                    str(exc).splitlines()[0],
                )
                raise RefauditError(
                    f"table {table} holds a value a snapshot cannot store ({problem}); "
                    "audit this database directly with refaudit run --db"
                ) from None
    if done != total:
        raise RefauditError(
            f"extracting {table} wrote {done} rows where the snapshot holds {total}; "
            "nothing was written, run again"
        )
    if not total:
        say(table, 0, 0)
    return done


def _render(conn: Connection, composed: sql.Composable) -> str:
    return composed.as_string(conn.connection.dbapi_connection)


def _copy_batches(
    raw: Any, query: str, schema: pa.Schema, block_bytes: int
) -> Generator[pa.RecordBatch, None, None]:
    """Record batches of `COPY (query) TO STDOUT` (CSV), parsed with the column types of
    `schema`, about `block_bytes` of CSV each.

    The COPY writes into a pipe from a thread; this generator reads the other end, cuts it
    into blocks of whole rows and has Arrow parse each block here, from a copy in Arrow's own
    memory. Arrow is never handed a Python object: its threads (which can outlive a failed
    parse) would call back into Python, and at interpreter exit that aborts the process.
    However it ends, the generator returns only once the COPY's thread has ended: a COPY
    still running is cancelled and the rest of its output drained until it closes the pipe.
    """
    import pyarrow as pa
    import pyarrow.csv as pa_csv

    read_fd, write_fd = os.pipe()
    writer_end: BinaryIO = os.fdopen(write_fd, "wb")
    failure: list[BaseException] = []

    def produce() -> None:
        try:
            with raw.cursor() as cur:
                cur.copy_expert(query, writer_end, size=1 << 16)
        except BaseException as exc:  # reported by the consumer
            failure.append(exc)  # before the close below, so before the reader sees the end
        finally:
            with contextlib.suppress(OSError):
                writer_end.close()

    read_options = pa_csv.ReadOptions(column_names=schema.names)
    parse_options = pa_csv.ParseOptions(newlines_in_values=True)
    convert_options = pa_csv.ConvertOptions(
        column_types={f.name: f.type for f in schema},
        null_values=[""],  # COPY writes NULL unquoted and empty, '' as ""
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        true_values=["t"],
        false_values=["f"],
    )
    producer = threading.Thread(target=produce, name="refaudit-copy", daemon=True)
    producer.start()
    finished = False
    try:
        for block in _row_blocks(read_fd, block_bytes):
            read_options.block_size = len(block)  # one block, one batch
            sink = pa.BufferOutputStream()
            sink.write(block)
            table = pa_csv.read_csv(
                pa.BufferReader(sink.getvalue()),
                read_options=read_options,
                parse_options=parse_options,
                convert_options=convert_options,
            )
            yield from table.to_batches()
        finished = True
    except pa.ArrowException:
        # The COPY's failure is recorded before its end of the pipe closes, so one recorded
        # by now came first and may have cut the rows short: it is the cause. One that comes
        # later is our own cancel below, and the parse error is the one to report.
        if failure:
            raise failure[0] from None
        raise
    finally:
        try:
            if not finished and producer.is_alive():
                # stopped early: cancel the server's COPY rather than wait for the whole table
                with contextlib.suppress(psycopg2.Error):
                    raw.cancel()
            # what the COPY still writes (it may be blocked on a full pipe) is dropped, up to
            # its end of the pipe closing: then its thread has nothing left to do
            while os.read(read_fd, 1 << 16):
                pass
            producer.join()
        finally:
            os.close(read_fd)
    if failure:
        raise failure[0]


def _row_blocks(fd: int, block_bytes: int) -> Iterator[bytes]:
    """The CSV read from `fd` in blocks of whole rows, each the rows that end within
    `block_bytes` (or one longer row). A newline ends a row unless it is inside a quoted
    value, i.e. after an odd number of quotes: COPY quotes every value holding a quote, and
    doubles the quote."""
    pending = bytearray()
    want = block_bytes
    while data := os.read(fd, 1 << 16):
        pending += data
        while len(pending) >= want:
            cut = _rows_end(pending, block_bytes)
            if not cut:  # a row longer than a block: look again once twice as much is here
                want = 2 * len(pending)
                break
            yield bytes(pending[:cut])
            del pending[:cut]
            want = block_bytes
    if pending:
        yield bytes(pending)


def _rows_end(data: bytearray, limit: int) -> int:
    """Where the last whole row within `data[:limit]` ends (`data` begins with a row), or if
    none does, where the first row ends; 0 if no row ends in `data`."""
    end = min(limit, len(data))
    quotes_before = data.count(b'"', 0, end)
    scan, quotes = end, quotes_before
    while (newline := data.rfind(b"\n", 0, scan)) >= 0:
        quotes -= data.count(b'"', newline, scan)
        if quotes % 2 == 0:
            return newline + 1
        scan = newline
    scan, quotes = end, quotes_before
    while (newline := data.find(b"\n", scan)) >= 0:
        quotes += data.count(b'"', scan, newline)
        if quotes % 2 == 0:
            return newline + 1
        scan = newline + 1
    return 0
