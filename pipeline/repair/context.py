"""What planning needs of the audited database, read in the audit's snapshot: its identity, the
catalog of every suite table (columns, foreign keys into it, triggers, NOT VALID constraints),
the facts repair.sql checks again when it runs (`refaudit.drift`) and what proves each
repaired table's key unique.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from ..checks.base import (
    ColumnType,
    ColumnTypes,
    comparable,
    folds,
)
from ..checks.catalog import CatalogFacts, read_catalogs
from ..checks.relations import Definitions, Relation, read_relations, unique_proof
from ..checks.stage import SET
from ..constraints import (
    AuditedConstraint,
)
from ..drift import read_facts
from ..sqltext import (
    ident,
    join_name,
    literal,
    qualified,
    regclass_text,
    table,
)
from ..suite import Suite


@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a plan was made for, read in the audit's snapshot."""

    system_identifier: str
    name: str
    oid: int
    snapshot: str  # txid_current_snapshot() of the audit
    search_path: str
    # the settings that shape a value's text, as the audit read them: a step's guards compare
    # the columns as text (a timestamptz's text follows TimeZone), so repair.sql and
    # rollback.sql set them again, whatever the client's PGTZ or PGDATESTYLE
    text_settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    not_null: bool
    generated: bool
    identity_always: bool


@dataclass(frozen=True)
class InboundKey:
    """A foreign key of another table (or this one) that references rows of the table."""

    name: str
    child: str  # the referencing table, qualified SQL
    child_columns: tuple[str, ...]
    columns: tuple[str, ...]  # the referenced columns of this table
    on_delete: str
    self_reference: bool


@dataclass(frozen=True)
class TableInfo:
    """What the catalog says of one table a plan may touch."""

    name: str  # as the suite writes it
    schema: str
    relname: str
    kind: str  # pg_class.relkind
    columns: tuple[ColumnInfo, ...]
    inbound: tuple[InboundKey, ...]
    unvalidated: tuple[AuditedConstraint, ...]  # NOT VALID foreign keys and CHECKs on it
    triggers: tuple[str, ...]  # enabled user triggers
    oid: int = 0
    facts: tuple[str, ...] = ()  # what repair.sql checks again before it changes a row
    key_proof: str = ""  # what proves the suite's key unique ('' nothing: see `duplicate_keys`)
    duplicate_keys: int = 0  # key values several rows share, in the audit's snapshot

    @property
    def sql(self) -> str:
        return qualified(self.schema, self.relname)

    @property
    def is_table(self) -> bool:
        return self.kind in ("r", "p")

    @property
    def has_children(self) -> bool:
        """A parent of inheritance (not partitions): its scans read its children's rows."""
        return any(f.startswith("inheritance child ") for f in self.facts)

    def column(self, name: str) -> ColumnInfo | None:
        return next((c for c in self.columns if c.name == name), None)


@dataclass
class RepairContext:
    """What planning and rendering need from the audited database."""

    identity: DatabaseIdentity
    tables: dict[str, TableInfo] = field(default_factory=dict)
    facts: dict[str, CatalogFacts] = field(default_factory=dict)
    types: ColumnTypes = field(default_factory=dict)

    def same(self, a: tuple[str, str], b: tuple[str, str]) -> bool:
        """Whether the columns `(table, column)` a and b compare with `=` as they are."""
        return comparable(self.types.get(a), self.types.get(b))

    def folds(self, a: tuple[str, str], b: tuple[str, str]) -> bool:
        return folds(self.types.get(a), self.types.get(b))

    def sql(self, tbl: str) -> str:
        """A suite table as a plan names it: schema-qualified, as the audit resolved it."""
        info = self.tables.get(tbl)
        return info.sql if info is not None else table(tbl)

    def name(self, tbl: str) -> str:
        """A suite table spelled with the schema the audit found it in (`schema.table`, as
        `sqltext.split_name` reads it); as the suite writes it when the audit did not."""
        info = self.tables.get(tbl)
        return join_name(info.schema, info.relname) if info is not None else tbl

    def resolved(self, w: AuditedConstraint) -> AuditedConstraint:
        """`w` on its table named with the schema the audit found it in."""
        return replace(w, table=self.name(w.table))

    def regclass(self, tbl: str) -> str:
        """`'"schema"."table"'::regclass` of a suite table, as the audit resolved it."""
        info = self.tables.get(tbl)
        name = join_name(info.schema, info.relname) if info is not None else tbl
        return f"{literal(regclass_text(name))}::pg_catalog.regclass"


_IDENTITY_SQL = sa.text("""
SELECT (SELECT system_identifier::text FROM pg_control_system()) AS system_identifier,
       current_database()::text AS name,
       (SELECT oid::bigint FROM pg_database WHERE datname = current_database()) AS oid,
       txid_current_snapshot()::text AS snapshot,
       current_setting('search_path') AS search_path,
       current_setting('TimeZone') AS timezone,
       current_setting('DateStyle') AS datestyle,
       current_setting('IntervalStyle') AS intervalstyle,
       current_setting('extra_float_digits') AS extra_float_digits
""")


def read_identity(conn: Connection) -> DatabaseIdentity:
    row = conn.execute(_IDENTITY_SQL).one()
    return DatabaseIdentity(
        system_identifier=str(row.system_identifier),
        name=row.name,
        oid=int(row.oid),
        snapshot=row.snapshot,
        search_path=row.search_path,
        text_settings=(
            ("TimeZone", row.timezone),
            ("DateStyle", row.datestyle),
            ("IntervalStyle", row.intervalstyle),
            ("extra_float_digits", row.extra_float_digits),
        ),
    )


def table_info(tbl: str, rel: Relation) -> TableInfo:
    """What planning needs of the suite's table `tbl`, from what the catalog reader read."""
    return TableInfo(
        name=tbl,
        schema=rel.schema,
        relname=rel.relname,
        kind=rel.kind,
        columns=tuple(
            ColumnInfo(c.name, c.not_null, c.generated, c.identity == "a") for c in rel.columns
        ),
        inbound=tuple(
            InboundKey(
                k.name,
                k.table_sql,
                k.columns,
                k.target_columns,
                k.on_delete_sql,
                k.table_oid == k.target_oid,
            )
            for k in rel.inbound
        ),
        unvalidated=tuple(
            AuditedConstraint(tbl, c.name, c.definition, c.columns)
            for c in rel.constraints
            if c.type in ("f", "c") and not c.validated
        ),
        triggers=tuple(t.name for t in rel.triggers if t.enabled),
        oid=rel.oid,
    )


def read_repair_context(
    conn: Connection, suite: Suite, types: ColumnTypes | None = None
) -> RepairContext:
    """The database's identity and the catalog of every suite table, read before the
    checks run (in the audit's snapshot), so that planning knows what will work; `types`
    the tables' column types when already read."""
    names = list(dict.fromkeys([*suite.tables, *(c.table for c in suite.checks)]))
    found = read_relations(
        conn,
        names,
        {"columns", "constraints", "indexes", "triggers"},
        Definitions(frozenset({"f", "c"}), unvalidated_only=True, indexes=False),
    )
    if types is None:
        types = {
            (t, c.name): ColumnType(c.type, c.category)
            for t, rel in found.items()
            for c in rel.columns
        }
    ctx = RepairContext(identity=read_identity(conn), types=dict(types))
    changed = {c.table for c in suite.checks if c.repairs}
    facts = read_facts(conn, (rel.oid for t, rel in found.items() if t in changed))
    for tbl, rel in found.items():
        info = table_info(tbl, rel)
        if tbl in changed and info.is_table:
            key = suite.key_columns(tbl)
            proof = key_proof(rel, key)
            info = replace(
                info,
                facts=facts.get(rel.oid, ()),
                key_proof=proof,
                duplicate_keys=0 if proof else duplicate_keys(conn, info.sql, key),
            )
        ctx.tables[tbl] = info
    return ctx


def key_proof(rel: Relation, key: list[str]) -> str:
    """What in the catalog proves the suite's `key` of `rel` unique (`relations.unique_proof`);
    '' when nothing does. (A row whose key holds a NULL is never matched by a plan: `=` finds
    no NULL.)"""
    return unique_proof(rel, key) or ""


def duplicate_keys(conn: Connection, table_sql: str, key: list[str]) -> int:
    """How many values of `key` several rows of the table share (rows with a NULL in the key
    left out), in the audit's snapshot: 0 proves the key unique there."""
    columns = ", ".join(ident(c) for c in key)
    present = " AND ".join(f"{ident(c)} IS NOT NULL" for c in key)
    statement = (
        f"SELECT pg_catalog.count(*) FROM (SELECT 1 FROM {table_sql} WHERE {present} "
        f"GROUP BY {columns} HAVING pg_catalog.count(*) > 1) d"
    )
    return int(conn.execute(sa.text(statement)).scalar_one())


def read_reference_facts(
    conn: Connection, suite: Suite, ctx: RepairContext, facts: dict[str, CatalogFacts]
) -> None:
    """The catalog of every table holding a reference (to find foreign keys that point at
    the wrong table) or a set check (whose index constraints.sql may build), added to what
    the audit's catalog checks already read."""
    ctx.facts = facts
    missing = [
        c.table for c in suite.checks if (c.repairs or c.stage is SET) and c.table not in facts
    ]
    facts.update(read_catalogs(conn, missing))
