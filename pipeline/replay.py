"""`refaudit run --snapshot`: audit a snapshot with the very same engine as a live database.

The snapshot is verified first (every file against its size and SHA-256 in the manifest).
Then it is loaded into a scratch PostgreSQL (the embedded server, unless one is given) with
the source's column types, primary keys, text settings and, where the server has it, locale;
and `run_audit` runs on it with the manifest's catalog facts and run metadata.
"""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psycopg2
import psycopg2.errors
from psycopg2 import sql
from sqlalchemy.engine import make_url

from .audit import AuditOptions, AuditSource, run_audit
from .db import DRIVER, mask_shown
from .embedded import database_uri, embedded_server
from .errors import RefauditError, UsageError
from .progress import ProgressLike, as_progress
from .results import AuditResult
from .snapshot import Manifest, SnapshotColumn, check_coverage, require_arrow, verify_snapshot
from .sqltext import split_name
from .suite import Suite


def audit_snapshot(
    directory: Path,
    suite: Suite,
    out: Path | None = None,
    *,
    options: AuditOptions | None = None,
    progress: ProgressLike = None,
    server: str | None = None,
) -> AuditResult:
    """Verify the snapshot in `directory`, load it into a scratch database on `server` (an
    embedded PostgreSQL when None) and audit it against `suite`.

    Needs pyarrow (the `snapshot` extra); without it, a `MissingExtra` error first."""
    require_arrow("refaudit run --snapshot")
    if options is not None and options.repair:
        raise UsageError(
            "--repair needs the live database: a snapshot holds only the columns the checks "
            "read; run refaudit run --db URL --repair"
        )
    manifest = verify_snapshot(directory)
    check_coverage(manifest, suite, directory)
    prog = as_progress(progress)
    prog.stage("loading", 1 + len(manifest.tables))
    with ExitStack() as stack:
        prog.step("starting a scratch PostgreSQL")
        if server is None:
            server = stack.enter_context(embedded_server())
        uri, notes = stack.enter_context(scratch_database(server, manifest))
        load_snapshot(uri, directory, manifest, progress=prog)
        source = AuditSource(
            kind="snapshot",
            database=mask_shown(manifest.database),  # as an older refaudit may have shown it
            snapshot_taken_at=manifest.snapshot_taken_at,
            server_version=manifest.server_version,
            identity=manifest.database_identity,
            catalog=manifest.catalog_facts(),
            details={
                "path": str(directory),
                "suite": manifest.suite,
                "extracted_at": manifest.extracted_at,
                "rows": {t.name: t.rows for t in manifest.tables},
                "notes": notes,
            },
        )
        return run_audit(
            make_url(uri).set(drivername=DRIVER),
            suite,
            out,
            options=options,
            progress=prog,
            source=source,
        )
    raise AssertionError("unreachable")  # pragma: no cover - ExitStack does not swallow


@contextmanager
def scratch_database(server: str, manifest: Manifest) -> Iterator[tuple[str, list[str]]]:
    """A new database on `server` with the source's locale (when the server has it) and text
    settings; dropped afterwards. Yields its URI and notes on what could not be reproduced."""
    name = f"refaudit_snapshot_{uuid.uuid4().hex[:12]}"
    notes: list[str] = []
    conn = psycopg2.connect(server)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            try:
                cur.execute(_create_database(name, manifest.locale))
            except psycopg2.Error as exc:
                cur.execute(_create_database(name, {}))
                notes.append(
                    f"the source's locale {_locale_text(manifest.locale)} is not available "
                    f"here ({str(exc).strip().splitlines()[0]}); text sorts in this server's "
                    "default order"
                )
            for setting, value in sorted(manifest.settings.items()):
                cur.execute(
                    sql.SQL("ALTER DATABASE {} SET {} TO {}").format(
                        sql.Identifier(name), sql.Identifier(setting), sql.Literal(value)
                    )
                )
        yield database_uri(server, name), notes
    finally:
        try:
            with conn.cursor() as cur:
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )
        finally:
            conn.close()


def _locale_text(locale: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in locale.items() if v and k != "encoding")


def _create_database(name: str, locale: dict[str, Any]) -> sql.Composed:
    parts = [
        sql.SQL("CREATE DATABASE {} TEMPLATE template0 ENCODING 'UTF8'").format(
            sql.Identifier(name)
        )
    ]
    provider = {"c": "libc", "i": "icu", "b": "builtin"}.get(locale.get("provider") or "")
    if provider:
        parts.append(sql.SQL("LOCALE_PROVIDER {}").format(sql.SQL(provider)))
    if provider in {"icu", "builtin"} and locale.get("locale"):
        keyword = "ICU_LOCALE" if provider == "icu" else "BUILTIN_LOCALE"
        parts.append(sql.SQL(f"{keyword} {{}}").format(sql.Literal(locale["locale"])))
    for keyword, key in (("LC_COLLATE", "collate"), ("LC_CTYPE", "ctype")):
        if locale.get(key):
            parts.append(sql.SQL(f"{keyword} {{}}").format(sql.Literal(locale[key])))
    return sql.SQL(" ").join(parts)


def _table_ident(name: str) -> sql.Identifier:
    schema, bare = split_name(name)
    return sql.Identifier(schema, bare) if schema else sql.Identifier(bare)


def _column_type(col: SnapshotColumn) -> sql.Composable:
    if col.enum is not None:
        return sql.Identifier(col.enum.schema_, col.enum.name)
    return sql.SQL(col.type)  # checked against a type-name pattern when the manifest was read


def load_snapshot(
    uri: str, directory: Path, manifest: Manifest, *, progress: ProgressLike = None
) -> None:
    """Create the snapshot's tables in the (empty) database at `uri` and COPY the rows in."""
    prog = as_progress(progress)
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            _create_types(cur, manifest)
            for table in manifest.tables:
                prog.step(f"loading {table.name} ({table.rows} rows)")
                _create_table(cur, table.name, table.columns)
                _copy_in(cur, table.name, directory / table.file)
                if table.primary_key:
                    cur.execute(
                        sql.SQL("ALTER TABLE {} ADD PRIMARY KEY ({})").format(
                            _table_ident(table.name),
                            sql.SQL(", ").join(map(sql.Identifier, table.primary_key)),
                        )
                    )
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("ANALYZE")
    except psycopg2.Error as exc:
        first = str(exc).strip().splitlines()[0]
        raise RefauditError(
            f"loading snapshot {directory} into the scratch PostgreSQL failed: {first}"
        ) from None
    finally:
        conn.close()


def _create_types(cur: Any, manifest: Manifest) -> None:
    schemas = {split_name(t.name)[0] for t in manifest.tables} - {""}
    enums = {
        (c.enum.schema_, c.enum.name): c.enum.labels
        for t in manifest.tables
        for c in t.columns
        if c.enum is not None
    }
    for schema in sorted(schemas | {s for s, _ in enums}):
        cur.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(schema)))
    for (schema, name), labels in sorted(enums.items()):
        cur.execute(
            sql.SQL("CREATE TYPE {} AS ENUM ({})").format(
                sql.Identifier(schema, name), sql.SQL(", ").join(map(sql.Literal, labels))
            )
        )


def _create_table(cur: Any, table: str, columns: list[SnapshotColumn]) -> None:
    defs = []
    for col in columns:
        parts: list[sql.Composable] = [sql.Identifier(col.name), _column_type(col)]
        if col.collation:
            parts += [sql.SQL("COLLATE"), sql.Identifier(col.collation)]
        if col.not_null:
            parts.append(sql.SQL("NOT NULL"))
        defs.append(sql.SQL(" ").join(parts))
    statement = sql.SQL("CREATE TABLE {} ({})").format(
        _table_ident(table), sql.SQL(", ").join(defs)
    )
    try:
        cur.execute(statement)
    except (psycopg2.errors.UndefinedObject, psycopg2.errors.SyntaxError) as exc:
        first = str(exc).strip().splitlines()[0]
        raise UsageError(
            f"snapshot table {table} cannot be re-created here ({first}); the scratch "
            "PostgreSQL lacks a type or collation the source has"
        ) from None


def _copy_in(cur: Any, table: str, path: Path) -> None:
    """COPY the Parquet file into `table`, one row group at a time."""
    import pyarrow.csv as pa_csv
    import pyarrow.parquet as pq

    parquet = pq.ParquetFile(path)
    names = parquet.schema_arrow.names
    # FREEZE: the table is new in this transaction, so rows go in frozen (no hint-bit writes
    # on the first scan)
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FORMAT csv, FREEZE)").format(
        _table_ident(table), sql.SQL(", ").join(map(sql.Identifier, names))
    )
    # every non-NULL value quoted: PostgreSQL reads an unquoted empty field as NULL and ""
    # as the empty string
    write_options = pa_csv.WriteOptions(include_header=False, quoting_style="all_valid")
    for group in range(parquet.num_row_groups):  # one extract block each: bounded memory
        buf = io.BytesIO()
        pa_csv.write_csv(parquet.read_row_group(group), buf, write_options)
        buf.seek(0)
        cur.copy_expert(statement, buf)
