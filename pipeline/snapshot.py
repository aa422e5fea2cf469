"""The snapshot format shared by `refaudit extract` and `refaudit run --snapshot`.

A snapshot is a directory: one Parquet file per audited table (only the columns the suite
reads, plus the primary key) and `manifest.json`, which says when and from where the rows
were taken, each column's PostgreSQL type, the catalog facts the catalog checks need, and a
SHA-256 per file. A snapshot is only used after every file matches its checksum.

Each PostgreSQL type maps to one Arrow type (see `arrow_type`). Types without an exact Arrow
counterpart (unconstrained numeric, uuid, json, intervals, arrays, enums, ...) are stored as
their PostgreSQL text form, which reloads exactly into the same type.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .checks.catalog import CatalogFacts
from .errors import UsageError, needs_extra
from .plan import required_columns
from .suite import Suite

if TYPE_CHECKING:
    import pyarrow as pa

FORMAT = "refaudit-snapshot"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"

_MAX_DECIMAL_PRECISION = 38
# what a type written into CREATE TABLE may look like: `integer`, `character varying(255)`,
# `numeric(12,4)`, `timestamp(3) with time zone`, `text[]`, `"Mood"`, `sales.mood`
_TYPE_RE = re.compile(r'^[A-Za-z0-9_ ."]+(\(\d+(,\s*-?\d+)?\))?[A-Za-z0-9_ ]*(\[\])*$')


def require_arrow(what: str) -> None:
    """Fail with one line naming the `snapshot` extra when pyarrow is not installed.

    pyarrow is imported by the functions that use it, so every other command works without
    it; `what` (e.g. "refaudit extract") is the feature named in the error.
    """
    with needs_extra(what, "snapshot", "pyarrow"):
        import pyarrow
        import pyarrow.csv
        import pyarrow.parquet  # noqa: F401


def arrow_type(base: str, typmod: int) -> pa.DataType:
    """The Arrow type a column of PostgreSQL base type `base` (with `typmod`) is stored as."""
    import pyarrow as pa

    # PostgreSQL base type (pg_type.typname) -> Arrow type. Everything else is kept as text.
    exact = {
        "bool": pa.bool_,
        "int2": pa.int16,
        "int4": pa.int32,
        "int8": pa.int64,
        "float4": pa.float32,
        "float8": pa.float64,
        "date": pa.date32,
    }
    if base in exact:
        return exact[base]()
    if base == "timestamp":
        return pa.timestamp("us")
    if base == "timestamptz":
        return pa.timestamp("us", tz="UTC")
    if base == "numeric" and typmod >= 4:
        precision, scale = (typmod - 4) >> 16, (typmod - 4) & 0xFFFF
        if scale <= precision <= _MAX_DECIMAL_PRECISION:
            return pa.decimal128(precision, scale)
    return pa.string()


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class SnapshotEnum(_Model):
    schema_: str = Field(alias="schema")
    name: str
    labels: list[str]
    """In sort order."""


class SnapshotColumn(_Model):
    name: str
    type: str
    """The column's PostgreSQL type as CREATE TABLE takes it (`format_type`)."""
    arrow: str
    """The Arrow type of the column in the Parquet file."""
    not_null: bool = False
    collation: str | None = None
    """A collation other than the type's default, as the source declared it."""
    enum: SnapshotEnum | None = None
    """The column's enum type, which the snapshot re-creates."""


class SnapshotTable(_Model):
    name: str
    file: str
    rows: int
    primary_key: list[str]
    columns: list[SnapshotColumn]
    sha256: str
    bytes: int

    def column(self, name: str) -> SnapshotColumn | None:
        return next((c for c in self.columns if c.name == name), None)


class Manifest(_Model):
    format: str = FORMAT
    format_version: int = FORMAT_VERSION
    snapshot_taken_at: str
    server_version: str
    database: str
    database_identity: str = ""
    """The source database however its URL was spelled (`refaudit.db.database_identity`):
    an audit of the snapshot joins the run history of the database itself."""
    suite: str
    refaudit_version: str
    extracted_at: str
    duration_s: float
    settings: dict[str, str]
    """Session settings of the source that shape values as text (TimeZone, DateStyle, ...)."""
    locale: dict[str, Any]
    """The source database's encoding and locale (collation order of text)."""
    tables: list[SnapshotTable]
    catalog: dict[str, dict[str, Any]]
    """`CatalogFacts` per table, as the source's catalog stated them."""

    def table(self, name: str) -> SnapshotTable | None:
        return next((t for t in self.tables if t.name == name), None)

    def catalog_facts(self) -> dict[str, CatalogFacts]:
        return {table: CatalogFacts(**facts) for table, facts in self.catalog.items()}

    @property
    def total_rows(self) -> int:
        return sum(t.rows for t in self.tables)

    def write(self, directory: Path) -> Path:
        """Write manifest.json last and atomically: a snapshot without one is incomplete."""
        path = directory / MANIFEST
        tmp = directory / f".{MANIFEST}.tmp"
        text = json.dumps(self.model_dump(by_alias=True), indent=2) + "\n"
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
        return path


def file_name(table: str, taken: set[str]) -> str:
    """A file name for `table` that is safe on any file system and unique in the snapshot."""
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", table).strip(".") or "table"
    name, n = f"{stem}.parquet", 1
    while name.lower() in taken:
        n += 1
        name = f"{stem}_{n}.parquet"
    taken.add(name.lower())
    return name


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _again(directory: Path) -> str:
    return f"extract the snapshot again (refaudit extract --out {directory})"


def read_manifest(directory: Path) -> Manifest:
    """Read and validate `directory/manifest.json`; any problem is one `UsageError` line."""
    if not directory.is_dir():
        raise UsageError(
            f"snapshot directory {directory} does not exist; create one with refaudit extract"
        )
    path = directory / MANIFEST
    if not path.is_file():
        raise UsageError(
            f"{path} is missing: {directory} is not a complete snapshot; {_again(directory)}"
        )
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UsageError(f"{path} cannot be read ({exc}); {_again(directory)}") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise UsageError(f"{path} is not a refaudit snapshot manifest; {_again(directory)}")
    if doc.get("format_version") != FORMAT_VERSION:
        raise UsageError(
            f"{path} has snapshot format version {doc.get('format_version')}, this refaudit "
            f"reads version {FORMAT_VERSION}; {_again(directory)}"
        )
    try:
        manifest = Manifest.model_validate(doc)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise UsageError(f"{path}: {where}: {err['msg']}; {_again(directory)}") from None
    for table in manifest.tables:
        if Path(table.file).name != table.file or table.file.startswith("."):
            raise UsageError(f"{path}: table {table.name} names file {table.file!r} outside it")
        for col in table.columns:
            if not _TYPE_RE.match(col.type):
                raise UsageError(
                    f"{path}: column {table.name}.{col.name} has type {col.type!r}, which is "
                    f"not a PostgreSQL type name; {_again(directory)}"
                )
    return manifest


def verify_snapshot(directory: Path) -> Manifest:
    """The manifest, once every file is present, matches its size and SHA-256, and holds the
    rows and columns the manifest lists. Otherwise a `UsageError` naming the file."""
    manifest = read_manifest(directory)
    for table in manifest.tables:
        path = directory / table.file
        if not path.is_file():
            raise UsageError(f"snapshot file {path} is missing; {_again(directory)}")
        size = path.stat().st_size
        if size != table.bytes:
            raise UsageError(
                f"snapshot file {path} has {size} bytes, manifest.json says {table.bytes} "
                f"(truncated or corrupted); {_again(directory)}"
            )
        if sha256_of(path) != table.sha256:
            raise UsageError(
                f"snapshot file {path} does not match its SHA-256 in manifest.json "
                f"(corrupted or modified); {_again(directory)}"
            )
        _verify_parquet(path, table, directory)
    return manifest


def _verify_parquet(path: Path, table: SnapshotTable, directory: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        meta = pq.ParquetFile(path)
        schema = meta.schema_arrow
        rows = meta.metadata.num_rows
    except (OSError, pa.ArrowException) as exc:
        raise UsageError(
            f"snapshot file {path} is not readable Parquet ({exc}); {_again(directory)}"
        ) from None
    got = [(f.name, str(f.type)) for f in schema]
    want = [(c.name, c.arrow) for c in table.columns]
    if got != want or rows != table.rows:
        raise UsageError(
            f"snapshot file {path} holds {rows} rows of {got}, manifest.json says {table.rows} "
            f"rows of {want}; {_again(directory)}"
        )


def check_coverage(manifest: Manifest, suite: Suite, directory: Path) -> None:
    """Refuse a snapshot that lacks a table, column or catalog facts the suite needs."""
    for table, cols in sorted(required_columns(suite).items()):
        found = manifest.table(table)
        missing = sorted(c for c in cols if found is None or found.column(c) is None)
        if found is None or missing:
            what = f"table {table}" if found is None else f"column {table}.{missing[0]}"
            raise UsageError(
                f"snapshot {directory} has no {what}, which suite {suite.suite} reads; extract "
                f"it with this suite (refaudit extract --suite ...)"
            )
    for check in suite.checks:
        if not check.stage.reads_rows and check.table not in manifest.catalog:
            raise UsageError(
                f"snapshot {directory} has no catalog facts for table {check.table}, which "
                f"check {check.id} needs; extract it with this suite (refaudit extract --suite ...)"
            )
