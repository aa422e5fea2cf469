"""What repair.sql and rollback.sql share: the preamble that binds a file to its database, how a
row is found by its key (`RowKey`), the guards, and the blocks that check, when a file runs,
that its tables are as the audit saw them (`drift_check`) and that the repair schema is the
applying role's own (`own_schema`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..checks.base import (
    HASHED_GUARD,
)
from ..checks.enforce import condition_sql
from ..checks.reference import Reference
from ..constraints import (
    AuditedConstraint,
    CatalogPlan,
)
from ..drift import COLUMN_FACT, facts_sql
from ..sqlrender import Sql, render, sql
from ..sqltext import (
    PSQL_ALLOW_OTHER,
    ident,
    join_name,
    key_equals,
    literal,
    regclass_text,
)
from ..suite import ColumnRef
from .context import DatabaseIdentity, RepairContext
from .plan import CONFLICTS, QUARANTINE, RepairPlan

ALLOW_OTHER_SETTING = "refaudit.allow_other_database"


BATCH_ROWS = 1000


LISTED_KEYS = 100


def plan_preamble(
    identity: DatabaseIdentity,
    file: str,
    *,
    local: bool,
    lock_timeout_s: float,
    statement_timeout_s: float,
) -> Sql:
    """The lines every plan file starts with (templates/sql/preamble.sql.j2): psql stops at
    the first error, the psql variable that allows a rehearsal on another database (`refaudit
    apply` reads the same lines; see `refaudit.sqltext.psql_lines`), timeouts, literal rules,
    the audit's search_path, and the check that binds the file to its database.

    `local`: the one-transaction files (repair.sql, rollback.sql) open their transaction and
    put pg_catalog ahead of the audit's path, so that a function, operator or type someone
    created in a schema of that path never stands in for PostgreSQL's own. (constraints.sql
    creates its trigger functions in the audit's current schema, so it keeps the audit's path
    as it was; its database check names pg_catalog's own.)"""
    return render(
        "preamble.sql.j2",
        identity=identity,
        file=file,
        local=local,
        search_path=_session_path(identity, local=local),
        lock_timeout_ms=int(lock_timeout_s * 1000),
        statement_timeout_ms=int(statement_timeout_s * 1000),
        **_names(),
    )


def _names() -> dict[str, Sql]:
    """The setting and the psql variable of a rehearsal, as the templates write them."""
    return {"allow_setting": sql(ALLOW_OTHER_SETTING), "allow_variable": sql(PSQL_ALLOW_OTHER)}


def names_target(
    ctx: RepairContext, check: Reference, ref: str, disc: str, through: str | None = None
) -> str:
    """SQL: the reference `ref` (with discriminator `disc`) names an existing target row;
    with `through`, one whose mis-key `through` column still holds that value (the mapping
    a mis-keyed diagnosis read: `tutor_profiles.user_id` = the audited `users.id`)."""
    here = (check.table, check.column)

    def exists(target: ColumnRef) -> str:
        there = (target.table, target.column)
        key = key_equals(
            f"x.{ident(target.column)}",
            ref,
            same=ctx.same(there, here),
            fold=ctx.folds(there, here),
        )
        if target.where is not None:  # only the target rows it keeps count
            key += f" AND {condition_sql(target.where, 'x.')}"
        if through is not None and check.mis_key is not None:
            column = check.mis_key.through
            same = ctx.same((target.table, column), here)
            key += " AND " + key_equals(f"x.{ident(column)}", through, same=same)
        return f"EXISTS (SELECT 1 FROM {ctx.sql(target.table)} x WHERE {key})"

    choices = check.choices()
    if check.discriminator_column() is None:
        return exists(choices[0][1])
    return (
        "coalesce("
        + " OR ".join(f"({disc} = {literal(v)} AND {exists(target)})" for v, target in choices)
        + ", false)"
    )


@dataclass(frozen=True)
class RowKey:
    """How a plan names the rows of one table: by its key, one column or several.

    A step's scratch table holds the key as `row_key` (a single key, of the key's type) or as
    `key_1`, `key_2`, ... of the key columns' types beside `row_key`, the key as
    violations.csv writes it (a JSON array); a row matches on every typed column (the key's
    index serves) and on that exact text."""

    columns: tuple[str, ...]

    @property
    def composite(self) -> bool:
        return len(self.columns) > 1

    def select(self) -> Sql:
        """The scratch table's key columns, as `CREATE TABLE AS SELECT ...` lists them."""
        if not self.composite:
            return sql(f"{ident(self.columns[0])} AS row_key")
        typed = ", ".join(f"{ident(c)} AS key_{i}" for i, c in enumerate(self.columns, 1))
        return sql(f"{typed}, ''::pg_catalog.text AS row_key")

    def scratch_columns(self) -> list[str]:
        if not self.composite:
            return ["row_key"]
        return [*(f"key_{i}" for i in range(1, len(self.columns) + 1)), "row_key"]

    def values(self, key: str) -> list[str | None]:
        """The scratch row's key values of a key as violations.csv writes it."""
        if not self.composite:
            return [key]
        parts = json.loads(key, parse_float=str, parse_int=str, parse_constant=_no_constant)
        if not isinstance(parts, list) or len(parts) != len(self.columns):
            raise ValueError(f"not a key of {len(self.columns)} columns: {key}")
        return [*(_key_part(p) for p in parts), key]

    def text(self, alias: str) -> Sql:
        """SQL: the key of row `alias` as violations.csv writes it."""
        if not self.composite:
            return sql(f"{alias}.{ident(self.columns[0])}::pg_catalog.text")
        parts = ", ".join(f"{alias}.{ident(c)}" for c in self.columns)
        return sql(f"pg_catalog.json_build_array({parts})::pg_catalog.text")

    def match(self, row: str, scratch: str) -> Sql:
        """SQL: table row `row` is the scratch row `scratch`."""
        if not self.composite:
            return sql(f"{row}.{ident(self.columns[0])} = {scratch}.row_key")
        typed = " AND ".join(
            f"{row}.{ident(c)} = {scratch}.key_{i}" for i, c in enumerate(self.columns, 1)
        )
        return sql(f"{typed} AND {self.text(row)} = {scratch}.row_key")

    def same_row(self, a: str, b: str) -> Sql:
        """SQL: rows `a` and `b` (of the table and of its backup) have the same key."""
        return sql(" AND ".join(f"{a}.{ident(c)} = {b}.{ident(c)}" for c in self.columns))


def _no_constant(name: str) -> None:
    raise ValueError(f"not a key as PostgreSQL writes one: {name}")


def _key_part(part: Any) -> str | None:
    if part is None or isinstance(part, str):
        return part
    if isinstance(part, bool):
        return "true" if part else "false"
    return json.dumps(part)


def blocking_fks(plan: RepairPlan, catalog: CatalogPlan) -> list[AuditedConstraint]:
    """Wrong-target foreign keys on a column the plan changes: they would reject the
    repaired values, so repair.sql drops them (constraints.sql adds the right ones)."""
    return [w for w in catalog.wrong_fks if set(w.columns) & plan.changed_columns(w.table)]


@dataclass(frozen=True)
class _DriftView:
    """One table of drift_check.sql.j2: the facts the audit read, and the statement that
    reads them now."""

    name: str
    facts: Sql  # a text[] literal
    facts_sql: Sql


def drift_check(
    ctx: RepairContext, tables: list[str], file: str, *, columns_only: bool = False
) -> Sql:
    """The block that stops `file` if a table it changes is not as the audit saw it
    (`columns_only`: if its columns are not: rollback.sql's backups hold rows of them)."""
    views = []
    for t in tables:
        facts = ctx.tables[t].facts
        statement = facts_sql(ctx.regclass(t))
        if columns_only:
            facts = tuple(f for f in facts if f.startswith(COLUMN_FACT))
            like = literal(COLUMN_FACT + "%")
            statement = f"SELECT fact FROM ({statement}) f WHERE fact LIKE {like}"
        array = "ARRAY[" + ", ".join(literal(f) for f in facts) + "]::pg_catalog.text[]"
        views.append(_DriftView(t, sql(array), sql(statement)))
    return render("drift_check.sql.j2", tables=views, file=file)


@dataclass(frozen=True)
class _OwnedView:
    """One table of own_schema.sql.j2."""

    name: str
    regclass_text: str
    columns: Sql  # SQL: the columns it must have, as `name type, ...`
    default: str | None = None  # the one column that may have a default (now())


QUARANTINE_COLUMNS = (
    "run_id text, table_name text, row_key text, reason text, row_data jsonb, "
    "quarantined_at timestamp with time zone"
)


CONFLICTS_COLUMNS = (
    "run_id text, table_name text, row_key text, row_data jsonb, row_text text, "
    "moved_at timestamp with time zone"
)


def _columns_of(regclass: str, extra: str) -> Sql:
    """SQL: the columns of the table `regclass` (SQL) as `name type, ...`, then `extra`'s
    column of type text."""
    return sql(
        "(SELECT pg_catalog.string_agg(pg_catalog.format('%I %s', attname, "
        "pg_catalog.format_type(atttypid, atttypmod)), ', ' ORDER BY attnum) "
        f"FROM pg_catalog.pg_attribute WHERE attrelid = {regclass} AND attnum > 0 "
        f"AND NOT attisdropped) || ', ' || pg_catalog.format('%I text', {literal(extra)})"
    )


def own_schema(
    plan: RepairPlan,
    ctx: RepairContext,
    tables: list[str],
    file: str,
    *,
    conflicts: bool,
    schema_only: bool = False,
) -> Sql:
    """The block that stops `file` unless the repair schema (`schema_only`: the schema; else
    its tables) is the applying role's own, as a plan made it."""
    if schema_only:
        return render(
            "own_schema.sql.j2", schema=plan.schema, tables=[], file=file, check_schema=True
        )
    owned = [
        _OwnedView(
            f"{plan.schema}.{QUARANTINE}",
            regclass_text(join_name(plan.schema, QUARANTINE)),
            sql(literal(QUARANTINE_COLUMNS)),
            "quarantined_at",
        )
    ]
    if conflicts:
        owned.append(
            _OwnedView(
                f"{plan.schema}.{CONFLICTS}",
                regclass_text(join_name(plan.schema, CONFLICTS)),
                sql(literal(CONFLICTS_COLUMNS)),
                "moved_at",
            )
        )
    owned += [
        _OwnedView(
            f"{plan.schema}.{plan.backup_table(t)}",
            regclass_text(join_name(plan.schema, plan.backup_table(t))),
            _columns_of(ctx.regclass(t), plan.after_column(t)),
        )
        for t in tables
    ]
    return render(
        "own_schema.sql.j2", schema=plan.schema, tables=owned, file=file, check_schema=False
    )


def _session_path(identity: DatabaseIdentity, *, local: bool) -> str:
    path = identity.search_path
    if local:
        # pg_temp last: a temporary table of the applying session never stands in for a
        # table of the audit's path
        path = f"pg_catalog, {path}, pg_temp" if path.strip() else "pg_catalog, pg_temp"
    return path


def identity_dict(identity: DatabaseIdentity) -> dict[str, Any]:
    return {
        "name": identity.name,
        "oid": identity.oid,
        "system_identifier": identity.system_identifier,
        "snapshot": identity.snapshot,
    }


def same_text(a: str, b: str) -> str:
    """SQL: `a` and `b` read as the same text, byte for byte (NULL equal to NULL). The "C"
    collation is deterministic: under a column's case-insensitive collation 'ann@x' and
    'ANN@X' would be equal, and a change of case since the audit would go unseen."""
    return (
        f'{a}::pg_catalog.text COLLATE pg_catalog."C" IS NOT DISTINCT FROM '
        f'{b}::pg_catalog.text COLLATE pg_catalog."C"'
    )


def guard_holds(a: str, b: str, nonce: str | None) -> str:
    """SQL: column `a` still holds the audited value `b` (`same_text`). With `nonce` (the
    column has long values, see `Step.hashed`), a `b` the audit hashed
    (`refaudit-sha256:<nonce>:<length>:<hex>`) holds when `a` has that length and SHA-256."""
    same = same_text(a, b)
    if nonce is None:
        return same
    prefix = literal(f"{HASHED_GUARD}{nonce}:")
    whole = f"{a}::pg_catalog.text"
    digest = (
        f"pg_catalog.encode(pg_catalog.sha256(pg_catalog.convert_to({whole}, 'UTF8')), 'hex')"
    )
    hashed = (
        f"{b} COLLATE pg_catalog.\"C\" = ({prefix} || pg_catalog.length({whole})::pg_catalog.text"
        f" || ':' || {digest}) COLLATE pg_catalog.\"C\""
    )
    return (
        f"(CASE WHEN pg_catalog.starts_with({b}, {prefix}) THEN "
        f"COALESCE({hashed}, false) ELSE {same} END)"
    )


def deduplicated(statements: list[str]) -> list[str]:
    return list(dict.fromkeys(statements))
