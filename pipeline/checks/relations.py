"""The one reader of `pg_catalog`: what the catalog says of a set of tables, read at once.

`read_relations` takes tables as the suite names them (`table`, `schema.table`, quoted parts;
see `refaudit.sqltext.split_name`) and `read_schema_tables` every table of some schemas; both
read each part (columns, constraints, indexes, triggers) with one statement for all the
tables together, so the number of statements does not grow with the number of tables. The
audit's catalog checks (`refaudit.checks.catalog`), the schema and value checks before the
audit, discovery and the repair plan's context all read the catalog through here.

A name resolves as `to_regclass` resolves it (on the connection's search_path): a table, a
partitioned table, a view or any other relation; a name that resolves to nothing is left
out of the result.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import sqltext

ON_DELETE = {  # pg_constraint.confdeltype (and confupdtype) -> the suite's `on_delete`
    "a": "no_action",
    "r": "restrict",
    "c": "cascade",
    "n": "set_null",
    "d": "set_default",
}

PARTS = frozenset({"columns", "constraints", "indexes", "triggers"})
"""What `read_relations` can read besides the relation itself; all of it by default."""


@dataclass(frozen=True)
class Definitions:
    """Which definitions to deparse. `pg_get_constraintdef` (of a CHECK, say) and
    `pg_get_indexdef` wait for the lock another transaction holds on a table exclusively,
    so each reader asks only for those it uses; the others read as ''."""

    constraint_types: frozenset[str] | None = None
    """pg_constraint.contype of the table's own constraints to deparse; None every type."""
    unvalidated_only: bool = False
    """Only the constraints that are NOT VALID."""
    indexes: bool = True


EVERY_DEFINITION = Definitions()
NO_DEFINITION = Definitions(constraint_types=frozenset(), indexes=False)


@dataclass(frozen=True)
class Column:
    name: str
    type: str  # format_type(): `integer`, `character varying(20)`, a domain's name
    category: str  # pg_type.typcategory of its type
    base_category: str  # ... of the domain's base type, for a domain
    base_typtype: str  # pg_type.typtype of the (base) type: `e` an enum
    not_null: bool
    generated: bool  # GENERATED ALWAYS AS (...) STORED
    identity: str  # pg_attribute.attidentity: `a` ALWAYS, `d` BY DEFAULT, `` none


@dataclass(frozen=True)
class Constraint:
    name: str
    type: str  # pg_constraint.contype: p, u, f, c, ...
    validated: bool
    table_oid: int  # the table it is declared on
    table_sql: str  # that table, schema-qualified and quoted by `sqltext.qualified` (one line)
    columns: tuple[str, ...]
    target_oid: int  # a foreign key's referenced table, else 0
    target: str  # ... as `regclass::text` writes it (schema only when not on search_path)
    target_columns: tuple[str, ...]
    definition: str  # pg_get_constraintdef(), '' when not asked for (see `Definitions`)
    on_delete: str  # confdeltype (a foreign key's; a blank for any other constraint)
    on_update: str  # confupdtype

    @property
    def on_delete_action(self) -> str | None:
        """The suite's word for its ON DELETE (`cascade`, `set_null`, ...); None when not a
        foreign key."""
        return ON_DELETE.get(self.on_delete)

    @property
    def on_delete_sql(self) -> str:
        """Its ON DELETE as SQL writes it (`NO ACTION`, `SET NULL`, ...)."""
        action = ON_DELETE.get(self.on_delete)
        return action.replace("_", " ").upper() if action else self.on_delete


@dataclass(frozen=True)
class Index:
    name: str
    valid: bool
    unique: bool
    columns: tuple[str, ...]  # the attributes of indkey, in order (INCLUDE columns too)
    plain: bool  # no expression
    partial: bool  # has a WHERE
    backs_constraint: bool  # the index of a primary key, unique or exclusion constraint
    definition: str  # pg_get_indexdef(), '' when not asked for (see `Definitions`)
    unique_count: int = 0  # pg_index.indnkeyatts: the key columns, before INCLUDE ones
    nulls_not_distinct: bool = False  # UNIQUE NULLS NOT DISTINCT (PostgreSQL 15)
    column_equality: bool = False
    """Every key column compares as the column does: its type's default operator class and
    the column's own collation (so the index's duplicates are the `=` of the column)."""

    @property
    def key_columns(self) -> tuple[str, ...]:
        """The columns a unique index holds unique (its INCLUDE columns left out)."""
        return self.columns[: self.unique_count]


@dataclass(frozen=True)
class Trigger:
    name: str
    enabled: bool  # not DISABLEd (ALWAYS, REPLICA or ORIGIN)


@dataclass
class Relation:
    """What the catalog says of one relation."""

    oid: int
    schema: str
    relname: str
    kind: str  # pg_class.relkind
    current_schema: bool  # in current_schema(), the first schema of the search_path
    has_children: bool = False  # pg_class.relhassubclass: inheritance children or partitions
    pages: int = 0  # pg_class.relpages: its size in pages when last vacuumed or analyzed
    columns: list[Column] = field(default_factory=list)  # by attnum
    constraints: list[Constraint] = field(default_factory=list)  # its own, by name
    inbound: list[Constraint] = field(default_factory=list)  # foreign keys to it, by name
    indexes: list[Index] = field(default_factory=list)  # by name
    triggers: list[Trigger] = field(default_factory=list)  # user triggers, by name

    def column(self, name: str) -> Column | None:
        return next((c for c in self.columns if c.name == name), None)


def unique_proof(
    rel: Relation | None, columns: Iterable[str], *, nulls_equal: bool = False
) -> str | None:
    """The valid unique index that proves no two rows of `rel` share `columns` (`unique
    index users_pkey`), None when none does: a plain, whole-table unique index whose key
    columns (not its INCLUDE ones) are some of `columns` and compare as the columns do
    (their type's default operator class, the column's own collation), on a table whose rows
    are all its own (a partitioned table's index holds for every partition; a parent's does
    not hold for its inheritance children). With `nulls_equal` (NULLs match NULLs), only an
    index `NULLS NOT DISTINCT` or on columns that are NOT NULL."""
    if rel is None or rel.kind not in ("r", "p") or (rel.kind == "r" and rel.has_children):
        return None
    wanted = set(columns)
    for index in rel.indexes:
        keys = index.key_columns
        if not (index.unique and index.valid and index.plain and not index.partial):
            continue
        if not index.column_equality or not keys or not set(keys) <= wanted:
            continue
        nullable = [k for k in keys if not (c := rel.column(k)) or not c.not_null]
        if nulls_equal and nullable and not index.nulls_not_distinct:
            continue
        return f"unique index {index.name}"
    return None


_BY_NAME_SQL = sa.text("""
SELECT s.name, c.oid::bigint AS oid, n.nspname::text AS schema, c.relname::text AS relname,
       c.relkind::text AS kind, n.nspname = pg_catalog.current_schema() AS current_schema,
       c.relhassubclass AS has_children, c.relpages::bigint AS pages
FROM unnest(CAST(:names AS text[]), CAST(:regs AS text[])) AS s(name, reg)
JOIN pg_catalog.pg_class c ON c.oid = pg_catalog.to_regclass(s.reg)
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
""")

_IN_SCHEMAS_SQL = sa.text("""
SELECT c.oid::bigint AS oid, n.nspname::text AS schema, c.relname::text AS relname,
       c.relkind::text AS kind, n.nspname = pg_catalog.current_schema() AS current_schema,
       c.relhassubclass AS has_children, c.relpages::bigint AS pages
FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(:schemas)
ORDER BY array_position(:schemas, n.nspname::text), c.relname
""")

_COLUMNS_SQL = sa.text("""
SELECT a.attrelid::bigint AS oid, a.attname::text AS name,
       pg_catalog.format_type(a.atttypid, a.atttypmod) AS type,
       t.typcategory::text AS category, b.typcategory::text AS base_category,
       b.typtype::text AS base_typtype, a.attnotnull AS not_null,
       a.attgenerated <> '' AS generated, a.attidentity::text AS identity
FROM pg_catalog.pg_attribute a
JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
JOIN pg_catalog.pg_type b ON b.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
WHERE a.attrelid = ANY(CAST(:oids AS oid[])) AND a.attnum > 0 AND NOT a.attisdropped
ORDER BY a.attrelid, a.attnum
""")

# The constraints declared on the tables and the foreign keys of any table referencing them.
_CONSTRAINTS_SQL = sa.text("""
SELECT c.conrelid::bigint AS oid, c.conname::text AS name, c.contype::text AS type,
       c.convalidated AS validated,
       n.nspname::text AS table_schema, r.relname::text AS table_name,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid
                  AND a.attnum = k.attnum),
                '{}') AS columns,
       c.confrelid::bigint AS target_oid,
       coalesce(c.confrelid::pg_catalog.regclass::text, '') AS target,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = c.confrelid
                  AND a.attnum = k.attnum),
                '{}') AS target_columns,
       CASE WHEN c.conrelid = ANY(CAST(:oids AS oid[]))
             AND (:every_type OR c.contype::text = ANY(CAST(:types AS text[])))
             AND NOT (:unvalidated_only AND c.convalidated)
            THEN pg_catalog.pg_get_constraintdef(c.oid) ELSE '' END AS definition,
       c.confdeltype::text AS on_delete, c.confupdtype::text AS on_update
FROM pg_catalog.pg_constraint c
JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
WHERE c.conrelid = ANY(CAST(:oids AS oid[]))
   OR (c.contype = 'f' AND c.confrelid = ANY(CAST(:oids AS oid[])))
ORDER BY c.conname, c.conrelid
""")

_INDEXES_SQL = sa.text("""
SELECT i.indrelid::bigint AS oid, ic.relname::text AS name, i.indisvalid AS valid,
       i.indisunique AS unique,
       i.indexprs IS NULL AS plain, i.indpred IS NOT NULL AS partial,
       EXISTS (SELECT FROM pg_catalog.pg_constraint c
               WHERE c.conindid = i.indexrelid AND c.conrelid = i.indrelid) AS backs_constraint,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid
                  AND a.attnum = k.attnum),
                '{}') AS columns,
       CASE WHEN :definitions THEN pg_catalog.pg_get_indexdef(i.indexrelid) ELSE '' END
           AS definition,
       i.indnkeyatts::int AS unique_count,
       coalesce((pg_catalog.to_jsonb(i) ->> 'indnullsnotdistinct')::bool, false)
           AS nulls_not_distinct,
       NOT EXISTS (SELECT FROM unnest(i.indkey::int2[], i.indclass::oid[],
                                      i.indcollation::oid[]) WITH ORDINALITY k(attnum, opc,
                                                                               coll, ord)
                   LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid
                    AND a.attnum = k.attnum
                   LEFT JOIN pg_catalog.pg_opclass o ON o.oid = k.opc
                   WHERE k.ord <= i.indnkeyatts
                     AND (a.attnum IS NULL OR o.opcdefault IS NOT TRUE
                          OR k.coll IS DISTINCT FROM a.attcollation)) AS column_equality
FROM pg_catalog.pg_index i JOIN pg_catalog.pg_class ic ON ic.oid = i.indexrelid
WHERE i.indrelid = ANY(CAST(:oids AS oid[]))
ORDER BY ic.relname, i.indrelid
""")

_TRIGGERS_SQL = sa.text("""
SELECT t.tgrelid::bigint AS oid, t.tgname::text AS name, t.tgenabled <> 'D' AS enabled
FROM pg_catalog.pg_trigger t
WHERE t.tgrelid = ANY(CAST(:oids AS oid[])) AND NOT t.tgisinternal
ORDER BY t.tgname, t.tgrelid
""")


def _relation(row: sa.Row[Any]) -> Relation:
    return Relation(
        int(row.oid),
        row.schema,
        row.relname,
        row.kind,
        bool(row.current_schema),
        bool(row.has_children),
        int(row.pages),
    )


def read_relations(
    conn: Connection,
    names: Iterable[str],
    parts: Collection[str] = PARTS,
    definitions: Definitions = EVERY_DEFINITION,
) -> dict[str, Relation]:
    """name -> what the catalog says of it, for each of `names` (the suite's spelling) that
    resolves to a relation; names that resolve to the same relation share its facts.
    `parts`: which of `PARTS` to read (the relation itself is always read); `definitions`:
    which constraints and indexes to deparse."""
    wanted = list(dict.fromkeys(names))
    if not wanted:
        return {}
    rows = conn.execute(
        _BY_NAME_SQL, {"names": wanted, "regs": [sqltext.regclass_text(n) for n in wanted]}
    ).all()
    by_oid: dict[int, Relation] = {}
    found: dict[str, Relation] = {}
    for row in rows:
        oid = int(row.oid)
        found[row.name] = by_oid.setdefault(oid, _relation(row))
    _fill(conn, by_oid, parts, definitions)
    return {n: found[n] for n in wanted if n in found}


def read_schema_tables(
    conn: Connection,
    schemas: list[str],
    parts: Collection[str] = PARTS,
    definitions: Definitions = EVERY_DEFINITION,
) -> list[Relation]:
    """The tables (plain and partitioned, not partitions) of `schemas`, in the order of
    `schemas` and then by name, with what the catalog says of each."""
    by_oid = {
        int(row.oid): _relation(row)
        for row in conn.execute(_IN_SCHEMAS_SQL, {"schemas": list(schemas)})
    }
    _fill(conn, by_oid, parts, definitions)
    return list(by_oid.values())


def _fill(
    conn: Connection, by_oid: dict[int, Relation], parts: Collection[str], defs: Definitions
) -> None:
    unknown = set(parts) - PARTS
    if unknown:
        raise ValueError(f"not a part of the catalog reader: {sorted(unknown)}")
    if not by_oid:
        return
    oids = {"oids": list(by_oid)}
    if "columns" in parts:
        for r in conn.execute(_COLUMNS_SQL, oids):
            by_oid[int(r.oid)].columns.append(
                Column(
                    r.name,
                    r.type,
                    r.category,
                    r.base_category,
                    r.base_typtype,
                    r.not_null,
                    r.generated,
                    r.identity,
                )
            )
    if "constraints" in parts:
        types = defs.constraint_types
        chosen = {
            "every_type": types is None,
            "types": sorted(types or ()),
            "unvalidated_only": defs.unvalidated_only,
        }
        for r in conn.execute(_CONSTRAINTS_SQL, {**oids, **chosen}):
            con = Constraint(
                name=r.name,
                type=r.type,
                validated=r.validated,
                table_oid=int(r.oid),
                # quoted here, not by quote_ident: that leaves a newline in a name raw
                table_sql=sqltext.qualified(r.table_schema, r.table_name),
                columns=tuple(r.columns),
                target_oid=int(r.target_oid),
                target=r.target,
                target_columns=tuple(r.target_columns),
                definition=r.definition,
                on_delete=r.on_delete,
                on_update=r.on_update,
            )
            if con.table_oid in by_oid:
                by_oid[con.table_oid].constraints.append(con)
            if con.type == "f" and con.target_oid in by_oid:
                by_oid[con.target_oid].inbound.append(con)
    if "indexes" in parts:
        for r in conn.execute(_INDEXES_SQL, {**oids, "definitions": defs.indexes}):
            by_oid[int(r.oid)].indexes.append(
                Index(
                    r.name,
                    r.valid,
                    r.unique,
                    tuple(r.columns),
                    r.plain,
                    r.partial,
                    r.backs_constraint,
                    r.definition,
                    r.unique_count,
                    r.nulls_not_distinct,
                    r.column_equality,
                )
            )
    if "triggers" in parts:
        for r in conn.execute(_TRIGGERS_SQL, oids):
            by_oid[int(r.oid)].triggers.append(Trigger(r.name, r.enabled))
