"""Repair planning: from diagnosed violations to repair.sql and rollback.sql.

While the audit streams its violations, `RepairPlan.add` (the `ViolationSink` tap) turns each
diagnosis into a planned change and spills it to disk, grouped into *steps* by table,
column, action, check, diagnosis and confidence; memory stays flat however many rows need
repair. After the audit `write_repair_sql` and `write_rollback_sql` render the plan.

What a diagnosis leads to:

| diagnosis (confidence) | action |
|---|---|
| mis_keyed, mis_keyed_hidden, wrong_type (high, medium) | UPDATE to the proposed value |
| orphan, `on_orphan: set_null` | UPDATE the column to NULL |
| orphan, `on_orphan: quarantine` | copy the row to `<schema>.quarantine`, then DELETE it |
| ambiguous (low), orphan with `on_orphan: report` | a comment listing the row, no statement |
| the type proposed for a NULL or unknown discriminator | a comment, for review |

Planning reads the catalog first (`read_repair_context`, in the audit's snapshot) and plans
only what will work and lose nothing: a change the catalog would refuse (NULL into a NOT
NULL column, a generated or identity column, a view) is listed for review with the reason.

repair.sql is one transaction, bound to the database it was made for (cluster system
identifier, database name and oid; an older copy that has not reached the audited snapshot
is refused too). Each step loads its rows (key, new value, the audited value of every column
the diagnosis read, evidence) into a temporary table, locks the rows and classifies each:
*repair* (every column the diagnosis read still holds its audited value; an orphan's value
is still missing; a new value names an existing target row), *held* (rows of other tables
reference it through a foreign key that the change would cascade to or be refused by),
*done* (it already holds the new value: a second run) or *skip* (it changed since the
audit). Only *repair* rows are backed up and changed, by set-based statements. The step then
asserts that it changed exactly those rows (and, for quarantine, that it kept as many rows
as it deleted) or raises, which aborts the whole transaction; it reports its counts and the
skipped and held keys with RAISE NOTICE.

Every name and value reaches the files through `pipeline.sqltext` (quoted, one line);
backup, quarantine and scratch tables live in refaudit's own schema or in `pg_temp`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.checks.base import ColumnTypes, Violation, comparable, folds
from pipeline.checks.catalog import CatalogFacts, column_types, read_catalog
from pipeline.checks.enforce import condition_sql
from pipeline.checks.reference import DISCRIMINATOR_SUFFIX, Reference
from pipeline.constraints import (
    AuditedConstraint,
    CatalogPlan,
    guarded_drop,
    readd,
)
from pipeline.sqltext import (
    PSQL_ALLOW_OTHER,
    comment,
    do_block,
    ident,
    join_name,
    key_equals,
    literal,
    object_name,
    qualified,
    regclass_text,
    split_name,
    table,
)
from pipeline.suite import ColumnRef, Suite

REPAIRABLE = frozenset({"mis_keyed", "mis_keyed_hidden", "wrong_type"})
APPLIED_CONFIDENCE = frozenset({"high", "medium"})
ACTIONS = ("update", "set_null", "quarantine")
DEFAULT_SCHEMA = "refaudit"
QUARANTINE = "quarantine"
ALLOW_OTHER_SETTING = "refaudit.allow_other_database"
BATCH_ROWS = 1000
LISTED_KEYS = 100



# ---------------------------------------------------------------------- database context
@dataclass(frozen=True)
class DatabaseIdentity:
    """Which database a plan was made for, read in the audit's snapshot."""

    system_identifier: str
    name: str
    oid: int
    snapshot: str  # txid_current_snapshot() of the audit
    search_path: str


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

    @property
    def sql(self) -> str:
        return qualified(self.schema, self.relname)

    @property
    def is_table(self) -> bool:
        return self.kind in ("r", "p")

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
       current_setting('search_path') AS search_path
""")

_TABLE_SQL = sa.text("""
SELECT n.nspname::text AS schema, c.relname::text AS relname, c.relkind::text AS kind
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.oid = to_regclass(:t)
""")

_COLUMNS_SQL = sa.text("""
SELECT attname::text AS name, attnotnull AS not_null, attgenerated <> '' AS generated,
       attidentity = 'a' AS identity
FROM pg_attribute
WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped
ORDER BY attnum
""")

_INBOUND_SQL = sa.text("""
SELECT c.conname::text AS name, quote_ident(n.nspname) || '.' || quote_ident(r.relname) AS child,
       c.conrelid = c.confrelid AS self_reference, c.confdeltype::text AS on_delete,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
        FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) AS child_columns,
       (SELECT array_agg(a.attname::text ORDER BY k.ord)
        FROM unnest(c.confkey) WITH ORDINALITY k(attnum, ord)
        JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.attnum) AS columns
FROM pg_constraint c
JOIN pg_class r ON r.oid = c.conrelid JOIN pg_namespace n ON n.oid = r.relnamespace
WHERE c.contype = 'f' AND c.confrelid = to_regclass(:t)
ORDER BY c.conname
""")

_UNVALIDATED_SQL = sa.text("""
SELECT c.conname::text AS name, pg_get_constraintdef(c.oid) AS definition,
       coalesce((SELECT array_agg(a.attname::text ORDER BY k.ord)
                 FROM unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
                 JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
                '{}') AS columns
FROM pg_constraint c
WHERE c.conrelid = to_regclass(:t) AND c.contype IN ('f', 'c') AND NOT c.convalidated
ORDER BY c.conname
""")

_TRIGGERS_SQL = sa.text("""
SELECT tgname::text FROM pg_trigger
WHERE tgrelid = to_regclass(:t) AND NOT tgisinternal AND tgenabled <> 'D'
ORDER BY tgname
""")

_ON_DELETE = {
    "a": "NO ACTION",
    "r": "RESTRICT",
    "c": "CASCADE",
    "n": "SET NULL",
    "d": "SET DEFAULT",
}


def read_identity(conn: Connection) -> DatabaseIdentity:
    row = conn.execute(_IDENTITY_SQL).one()
    return DatabaseIdentity(
        system_identifier=str(row.system_identifier),
        name=row.name,
        oid=int(row.oid),
        snapshot=row.snapshot,
        search_path=row.search_path,
    )


def read_table(conn: Connection, tbl: str) -> TableInfo | None:
    arg = {"t": regclass_text(tbl)}
    found = conn.execute(_TABLE_SQL, arg).one_or_none()
    if found is None:
        return None
    return TableInfo(
        name=tbl,
        schema=found.schema,
        relname=found.relname,
        kind=found.kind,
        columns=tuple(
            ColumnInfo(r.name, r.not_null, r.generated, r.identity)
            for r in conn.execute(_COLUMNS_SQL, arg)
        ),
        inbound=tuple(
            InboundKey(
                r.name,
                r.child,
                tuple(r.child_columns),
                tuple(r.columns),
                _ON_DELETE.get(r.on_delete, r.on_delete),
                r.self_reference,
            )
            for r in conn.execute(_INBOUND_SQL, arg)
        ),
        unvalidated=tuple(
            AuditedConstraint(tbl, r.name, r.definition, tuple(r.columns))
            for r in conn.execute(_UNVALIDATED_SQL, arg)
        ),
        triggers=tuple(conn.execute(_TRIGGERS_SQL, arg).scalars()),
    )


def read_repair_context(
    conn: Connection, suite: Suite, types: ColumnTypes | None = None
) -> RepairContext:
    """The database's identity and the catalog of every suite table, read before the
    checks run (in the audit's snapshot), so that planning knows what will work; `types`
    the tables' column types when already read."""
    names = dict.fromkeys([*suite.tables, *(c.table for c in suite.checks)])
    if types is None:
        types = column_types(conn, names)
    ctx = RepairContext(identity=read_identity(conn), types=dict(types))
    for tbl in names:
        info = read_table(conn, tbl)
        if info is not None:
            ctx.tables[tbl] = info
    return ctx


def read_reference_facts(
    conn: Connection, suite: Suite, ctx: RepairContext, facts: dict[str, CatalogFacts]
) -> None:
    """The catalog of every table holding a reference (to find foreign keys that point at
    the wrong table), added to what the audit's catalog checks already read."""
    ctx.facts = facts
    for check in suite.checks:
        if check.repairs and check.table not in facts:
            facts[check.table] = read_catalog(conn, check.table)


# ---------------------------------------------------------------------- collecting
@dataclass(frozen=True, order=True)
class StepKind:
    """What one step does; steps run in this order (updates, then NULLs, then quarantine)."""

    order: int
    table: str
    column: str
    action: str
    check: str
    diagnosis: str
    confidence: str
    guard: tuple[str, ...]  # the columns whose audited values the step's rows must still hold


Item = tuple[str, list[str | None], str | None, str]
"""A planned row: key, audited values of the step's guard columns, new value, evidence."""


@dataclass
class Step:
    kind: StepKind
    path: Path
    rows: int = 0
    handle: TextIO | None = None

    def items(self) -> Iterator[Item]:
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                key, guard, new, note = json.loads(line)
                yield key, guard, new, note


@dataclass
class ReviewItem:
    check: str
    table: str
    key: str
    column: str
    value: str
    diagnosis: str
    confidence: str
    evidence: str
    reason: str = ""


class RepairPlan:
    """Every repair the diagnoses support, grouped into steps and spilled to disk."""

    def __init__(
        self,
        suite: Suite,
        run_id: str,
        workdir: Path | None = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        context: RepairContext | None = None,
    ) -> None:
        self.suite = suite
        self.run_id = run_id
        self.schema = schema
        self.context = context
        self._tmp = tempfile.TemporaryDirectory(prefix="refaudit-plan-", dir=workdir)
        self.dir = Path(self._tmp.name)
        self._steps: dict[StepKind, Step] = {}
        self._checks: dict[str, Reference] = {
            c.id: c  # type: ignore[misc]  # a kind that repairs is a reference
            for c in suite.checks
            if c.repairs
        }
        self._review = (self.dir / "review.jsonl").open("w", encoding="utf-8")
        self.review_rows = 0
        self._backups: dict[str, str] | None = None

    def add(self, v: Violation) -> None:
        """Plan the repair of one diagnosed violation (the audit's violation tap)."""
        if not v.diagnosis or v.diagnosis == "catalog":
            return
        check = self._checks.get(v.check.removesuffix(DISCRIMINATOR_SUFFIX))
        if check is None:
            return
        column = v.repair_column or v.column
        # a NULL or unknown discriminator is its own finding: its proposed type is for review
        own_finding = v.check.endswith(DISCRIMINATOR_SUFFIX)
        action: str | None = None
        new: str | None = None
        if (
            v.diagnosis in REPAIRABLE
            and v.confidence in APPLIED_CONFIDENCE
            and v.proposed_value
            and not own_finding
        ):
            action, new = "update", v.proposed_value
        elif v.diagnosis == "orphan" and check.on_orphan in ("set_null", "quarantine"):
            action = check.on_orphan
        reason = self.refusal(v.table, column, action) if action else ""
        if action is None or reason:
            self._add_review(v, reason)
            return
        guard = v.guard()
        if column not in guard:  # pragma: no cover - the engine always guards the column
            raise ValueError(f"{v.check}: the audit did not record {column} of {v.key}")
        kind = StepKind(
            ACTIONS.index(action),
            v.table,
            column,
            action,
            check.id,
            v.diagnosis,
            v.confidence,
            tuple(guard),
        )
        step = self._steps.get(kind)
        if step is None:
            path = self.dir / f"step{len(self._steps) + 1}.jsonl"
            step = self._steps[kind] = Step(kind, path, handle=path.open("w", encoding="utf-8"))
            self._backups = None  # the plan's tables changed
        assert step.handle is not None
        step.handle.write(json.dumps([v.key, list(guard.values()), new, v.evidence]) + "\n")
        step.rows += 1

    def refusal(self, tbl: str, column: str, action: str) -> str:
        """Why the catalog would refuse `action` on `tbl.column` ('' when it would not)."""
        if self.context is None:
            return ""
        info = self.context.tables.get(tbl)
        if info is None:
            return f"{tbl} was not found in the catalog"
        if not info.is_table:
            return (
                f"{tbl} is a view, not a table: its rows belong to the tables it reads "
                "from; repair those"
            )
        if len(self.suite.key_columns(tbl)) > 1:
            return (
                f"{tbl} has a composite key: repair.sql changes rows of single-column keys "
                "only; decide by hand"
            )
        if action == "quarantine":
            return ""
        col = info.column(column)
        if col is None:
            return f"{tbl}.{column} was not found in the catalog"
        if col.generated:
            return f"{tbl}.{column} is a generated column: it cannot be set"
        if col.identity_always:
            return f"{tbl}.{column} is an identity column (GENERATED ALWAYS): it cannot be set"
        if action == "set_null" and col.not_null:
            return f"{tbl}.{column} is NOT NULL: it cannot be set to NULL; decide by hand"
        return ""

    def _add_review(self, v: Violation, reason: str) -> None:
        self.review_rows += 1
        self._review.write(
            json.dumps(
                [v.check, v.table, v.key, v.column, v.value, v.diagnosis, v.confidence,
                 v.evidence, reason]
            )
            + "\n"
        )  # fmt: skip

    def close(self) -> None:
        """Finish collecting (flush the spill files)."""
        for step in self._steps.values():
            if step.handle is not None:
                step.handle.close()
                step.handle = None
        self._review.close()

    def cleanup(self) -> None:
        self.close()
        self._tmp.cleanup()

    # ------------------------------------------------------------------ reading
    @property
    def steps(self) -> list[Step]:
        return [self._steps[k] for k in sorted(self._steps)]

    def tables(self) -> list[str]:
        return sorted({s.kind.table for s in self._steps.values()})

    def changed_columns(self, tbl: str) -> set[str]:
        """Columns of `tbl` a step sets (quarantine changes no column: it removes rows)."""
        return {
            s.kind.column
            for s in self._steps.values()
            if s.kind.table == tbl and s.kind.action != "quarantine"
        }

    def review(self) -> Iterator[ReviewItem]:
        with (self.dir / "review.jsonl").open(encoding="utf-8") as f:
            for line in f:
                yield ReviewItem(*json.loads(line))

    def check_of(self, step: Step) -> Reference:
        return self._checks[step.kind.check]

    def backup_table(self, tbl: str) -> str:
        """The backup table's name (in the plan's schema) for the rows of `tbl`: readable,
        and distinct for every table of the plan (`"Orders"` and `orders`, `a_b.c` and
        `a.b_c` would read alike: such a name gets a hash of the exact one)."""
        names = self._backup_names()
        return names.get(tbl) or self._backup_name(tbl, set())

    def _backup_names(self) -> dict[str, str]:
        if self._backups is None:
            used: set[str] = set()
            self._backups = {}
            for tbl in self.tables():
                self._backups[tbl] = name = self._backup_name(tbl, used)
                used.add(name)
        return self._backups

    def _backup_name(self, tbl: str, used: set[str]) -> str:
        info = self.context.tables.get(tbl) if self.context else None
        if info is None:
            schema, relname = split_name(tbl)
            schema = schema or "public"
        else:
            schema, relname = info.schema, info.relname
        parts = [relname] if schema == "public" else [schema, relname]
        readable = object_name(*parts)
        if len(parts) > 1 or readable != relname:
            exact = hashlib.sha1(f"{schema}\0{relname}".encode()).hexdigest()[:8]
            parts.append(exact)
        name = object_name("backup", self.run_id, *parts)
        n = 1
        while name in used:
            n += 1
            name = object_name("backup", self.run_id, *parts, str(n))
        return name

    def backup_sql(self, tbl: str) -> str:
        return qualified(self.schema, self.backup_table(tbl))

    @property
    def quarantine_sql(self) -> str:
        return qualified(self.schema, QUARANTINE)


# ---------------------------------------------------------------------- rendering
@dataclass
class RepairSummary:
    updates: int = 0
    set_null: int = 0
    quarantined: int = 0
    ambiguous: int = 0
    schema: str = DEFAULT_SCHEMA
    dropped_constraints: list[str] = field(default_factory=list)
    backup_tables: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)
    database: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "files": {
                "repair": "repair.sql",
                "rollback": "rollback.sql",
                "constraints": "constraints.sql",
            },
            "updates": self.updates,
            "set_null": self.set_null,
            "quarantined": self.quarantined,
            "ambiguous": self.ambiguous,
            "schema": self.schema,
            "dropped_constraints": self.dropped_constraints,
            "backup_tables": self.backup_tables,
            "quarantine_table": f"{self.schema}.{QUARANTINE}",
            "steps": self.steps,
            "database": self.database,
        }


def psql_preamble() -> list[str]:
    """psql commands every plan file starts with: stop at the first error, and the psql
    variable that allows a rehearsal on another database (`refaudit apply` reads the same
    lines; see `pipeline.sqltext.psql_lines`)."""
    return [
        "\\set ON_ERROR_STOP on",
        # only this run's psql variable allows it: not a setting of the database, the role
        # or the client's environment (PGOPTIONS)
        f"SET {ALLOW_OTHER_SETTING} = off;",
        f"\\if :{{?{PSQL_ALLOW_OTHER}}}",
        f"SET {ALLOW_OTHER_SETTING} = on;",
        "\\endif",
    ]


def session_settings(
    identity: DatabaseIdentity,
    *,
    lock_timeout_s: float,
    statement_timeout_s: float,
    local: bool,
) -> list[str]:
    """Timeouts, literal rules, and the audit's search_path (so that every name the plan
    holds resolves as it did in the audit). In the one-transaction files (`local`:
    repair.sql, rollback.sql) pg_catalog goes ahead of it: a function, operator or type
    that someone created in a schema of that path never stands in for PostgreSQL's own.
    (constraints.sql creates its trigger functions in the audit's current schema, so it
    keeps the audit's path as it was; its identity check names pg_catalog's own.)"""
    scope = "LOCAL " if local else ""
    path = identity.search_path
    if local:
        path = f"pg_catalog, {path}" if path.strip() else "pg_catalog"
    return [
        f"SET {scope}lock_timeout = '{int(lock_timeout_s * 1000)}ms';",
        f"SET {scope}statement_timeout = '{int(statement_timeout_s * 1000)}ms';",
        f"SET {scope}standard_conforming_strings = on;",
        f"SET {scope}client_min_messages = notice;",
        # the plans' statements are short and set-based; JIT compilation would cost more
        # than they do (stock servers have it on)
        f"SET {scope}jit = off;",
        f"SELECT pg_catalog.set_config('search_path', {literal(path)}, "
        f"{'true' if local else 'false'});",
    ]


def identity_check(identity: DatabaseIdentity, file: str) -> str:
    """A block that refuses, changing nothing, to go on in any database but the one the
    plan was made for (or in an older copy of it), unless the rehearsal setting is on.
    Every function, type and comparison in it is pg_catalog's, whatever the search_path
    (a schema ahead of pg_catalog could otherwise hold a `current_database()` or an `=`)."""
    return do_block(
        "\n"
        "DECLARE\n"
        "  sysid pg_catalog.text := (SELECT system_identifier::pg_catalog.text "
        "FROM pg_catalog.pg_control_system());\n"
        "  dbname pg_catalog.text := pg_catalog.current_database()::pg_catalog.text;\n"
        "  dboid pg_catalog.int8 := (SELECT oid::pg_catalog.int8 FROM pg_catalog.pg_database "
        "WHERE pg_catalog.nameeq(datname, pg_catalog.current_database()));\n"
        f"  made_for pg_catalog.text := {literal(comment(identity.name))};\n"
        "  rehearsal pg_catalog.bool := pg_catalog.texteq(coalesce(pg_catalog.current_setting("
        f"{literal(ALLOW_OTHER_SETTING)}, true), ''), 'on');\n"
        "BEGIN\n"
        f"  IF NOT (pg_catalog.texteq(sysid, {literal(identity.system_identifier)})\n"
        f"          AND pg_catalog.texteq(dbname, {literal(identity.name)})\n"
        f"          AND pg_catalog.int8eq(dboid, {identity.oid})) THEN\n"
        "    IF rehearsal THEN\n"
        "      RAISE WARNING 'refaudit: % was made for database % (oid %, system %); running "
        "it on % (oid %, system %) because refaudit.allow_other_database is on',\n"
        f"        {literal(file)}, made_for, {identity.oid}, {literal(identity.system_identifier)},"
        f" {printable('dbname')}, dboid, sysid;\n"
        "    ELSE\n"
        "      RAISE EXCEPTION 'refaudit: % was made for database % (oid %, system %), not for "
        "% (oid %, system %); nothing was changed. To rehearse it on a copy, run psql with "
        f"-v {PSQL_ALLOW_OTHER}=1 or refaudit apply --allow-other-database',\n"
        f"        {literal(file)}, made_for, {identity.oid}, {literal(identity.system_identifier)},"
        f" {printable('dbname')}, dboid, sysid;\n"
        "    END IF;\n"
        "  ELSIF pg_catalog.int8lt(\n"
        "        pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()),\n"
        "        pg_catalog.txid_snapshot_xmax("
        f"{literal(identity.snapshot)}::pg_catalog.txid_snapshot))\n"
        "        AND NOT rehearsal THEN\n"
        "    RAISE EXCEPTION 'refaudit: % was made at a later point of this database than it "
        "is now at (a restored older copy?); nothing was changed', "
        f"{literal(file)};\n"
        "  END IF;\n"
        "END\n"
    )


def _names_target(
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


def _single_key(plan: RepairPlan, tbl: str) -> str:
    """A repaired table's key (tables with composite keys get no step: see `refusal`)."""
    (key,) = plan.suite.key_columns(tbl)
    return key


def printable(expr: str) -> str:
    """SQL: the text `expr` with control characters and line separators shown as `?`, for
    messages a terminal shows (keys and names are the database's, whatever they hold)."""
    unsafe = "".join(chr(c) for c in range(1, 32)) + "\x7f\x85\u2028\u2029\u202e"
    return f"pg_catalog.translate({expr}, {literal(unsafe)}, {literal('?' * len(unsafe))})"


def blocking_fks(plan: RepairPlan, catalog: CatalogPlan) -> list[AuditedConstraint]:
    """Wrong-target foreign keys on a column the plan changes: they would reject the
    repaired values, so repair.sql drops them (constraints.sql adds the right ones)."""
    return [w for w in catalog.wrong_fks if set(w.columns) & plan.changed_columns(w.table)]


def _dependents(info: TableInfo, step: Step) -> list[str]:
    """SQL over `t`, one per inbound foreign key the step's change would reach: rows of
    the referencing table point at the row (a DELETE would cascade to them, set them to
    NULL or be refused; an UPDATE of a referenced column likewise)."""
    k = step.kind
    out = []
    for fk in info.inbound:
        if k.action != "quarantine" and k.column not in fk.columns:
            continue
        match = " AND ".join(
            f"c.{ident(cc)} = t.{ident(pc)}"
            for cc, pc in zip(fk.child_columns, fk.columns, strict=True)
        )
        if fk.self_reference:
            match += " AND c.ctid <> t.ctid"
        out.append(f"EXISTS (SELECT 1 FROM {fk.child} c WHERE {match})")
    return out


def write_repair_sql(
    plan: RepairPlan,
    ctx: RepairContext,
    catalog: CatalogPlan,
    path: Path,
    *,
    lock_timeout_s: float,
    statement_timeout_s: float,
) -> RepairSummary:
    plan.close()
    summary = RepairSummary(schema=plan.schema, database=_identity_dict(ctx.identity))
    # A row that goes to quarantine needs no other repair, and one quarantine per row.
    quarantined: dict[str, set[str]] = {}
    for step in plan.steps:
        if step.kind.action == "quarantine":
            keys = quarantined.setdefault(step.kind.table, set())
            keys.update(key for key, *_ in step.items())
    steps = []
    for step in plan.steps:
        step.rows = sum(1 for _ in _kept_items(step, quarantined, {}))
        if step.rows:
            steps.append(step)
    drops = blocking_fks(plan, catalog)
    summary.dropped_constraints = [w.name for w in drops]
    tables = sorted({s.kind.table for s in steps})
    summary.backup_tables = [f"{plan.schema}.{plan.backup_table(t)}" for t in tables]
    with path.open("w", encoding="utf-8") as out:
        _write_header(out, plan, ctx, steps)
        out.write("\n".join(psql_preamble()) + "\n")
        out.write("BEGIN;\n")
        settings = session_settings(
            ctx.identity,
            lock_timeout_s=lock_timeout_s,
            statement_timeout_s=statement_timeout_s,
            local=True,
        )
        out.write("\n".join(settings) + "\n")
        out.write(identity_check(ctx.identity, "repair.sql") + "\n\n")
        if steps:
            quarantine = plan.quarantine_sql
            out.write(
                f"-- Backup and quarantine tables live in the schema {comment(plan.schema)}.\n"
                f"CREATE SCHEMA IF NOT EXISTS {ident(plan.schema)};\n"
                "-- Rows removed by this plan are kept, whole, in the quarantine table.\n"
                f"CREATE TABLE IF NOT EXISTS {quarantine} (\n"
                "    run_id text NOT NULL,\n"
                "    table_name text NOT NULL,\n"
                "    row_key text NOT NULL,\n"
                "    reason text NOT NULL,\n"
                "    row_data jsonb NOT NULL,\n"
                "    quarantined_at timestamptz NOT NULL DEFAULT pg_catalog.now()\n"
                ");\n\n"
                "-- Every row this plan changes or removes is first copied here (rollback.sql\n"
                "-- restores from these tables).\n"
            )
            for tbl in tables:
                backup = plan.backup_sql(tbl)
                note = f"refaudit run {plan.run_id}: rows of {tbl} before repair.sql changed them"
                out.write(
                    f"CREATE TABLE IF NOT EXISTS {backup} AS TABLE {ctx.sql(tbl)} WITH NO DATA;\n"
                    f"COMMENT ON TABLE {backup} IS {literal(note)};\n"
                )
            out.write("\n")
        for w in drops:
            out.write(
                f"-- {comment(w.table)}.{comment(','.join(w.columns))} has the foreign key "
                f"{comment(w.name)}: {comment(w.definition)}.\n"
                "-- It points at the wrong table and would reject the repaired values; it is\n"
                "-- dropped here (only if still as audited). constraints.sql adds the right\n"
                "-- enforcement; rollback.sql re-creates this one.\n" + guarded_drop(w) + "\n\n"
            )
        seen: dict[str, set[str]] = {}
        for number, step in enumerate(steps, start=1):
            items = _kept_items(step, quarantined, seen)
            _write_step(out, plan, ctx, step, number, len(steps), items)
            n = step.rows
            summary.steps.append(
                {
                    "step": number,
                    "table": step.kind.table,
                    "column": step.kind.column,
                    "action": step.kind.action,
                    "check": step.kind.check,
                    "diagnosis": step.kind.diagnosis,
                    "confidence": step.kind.confidence,
                    "guarded_on": list(step.kind.guard),
                    "rows": n,
                }
            )
            if step.kind.action == "update":
                summary.updates += n
            elif step.kind.action == "set_null":
                summary.set_null += n
            else:
                summary.quarantined += n
        summary.ambiguous = _write_review(out, plan)
        if steps:
            out.write(_totals(len(steps)))
        out.write("COMMIT;\n")
    return summary


def _identity_dict(identity: DatabaseIdentity) -> dict[str, Any]:
    return {
        "name": identity.name,
        "oid": identity.oid,
        "system_identifier": identity.system_identifier,
        "snapshot": identity.snapshot,
    }


def _kept_items(
    step: Step, quarantined: dict[str, set[str]], seen: dict[str, set[str]]
) -> Iterator[Item]:
    """The step's rows minus those a quarantine step covers (`seen` tracks the quarantined
    keys already rendered, so that a row is quarantined once)."""
    k = step.kind
    for item in step.items():
        if k.action == "quarantine":
            done = seen.setdefault(k.table, set())
            if item[0] in done:
                continue
            done.add(item[0])
        elif item[0] in quarantined.get(k.table, ()):
            continue
        yield item


def _write_header(out: TextIO, plan: RepairPlan, ctx: RepairContext, steps: list[Step]) -> None:
    ident_ = ctx.identity
    lines = [
        "-- refaudit repair.sql",
        f"-- run {comment(plan.run_id)}, suite {comment(plan.suite.suite)}.",
        f"-- Made for database {comment(ident_.name)} (oid {ident_.oid}, system identifier "
        f"{comment(ident_.system_identifier)}),",
        f"-- audited snapshot {comment(ident_.snapshot)}. It refuses to run anywhere else",
        f"-- (to rehearse on a copy: psql -v {PSQL_ALLOW_OTHER}=1, or",
        "-- refaudit apply --allow-other-database).",
        "--",
        "-- Review, then run:   psql -v ON_ERROR_STOP=1 -f repair.sql",
        "--           or:       refaudit apply repair.sql --db URL [--dry-run]",
        "-- Undo with rollback.sql. One transaction: it applies entirely or not at all.",
        "-- Each step changes only rows whose every column the diagnosis read still holds the",
        "-- value the audit saw (a row changed since is skipped and reported in a NOTICE), and",
        "-- never a row that rows of other tables reference (held, reported too); a second run",
        "-- changes nothing. Each step asserts that it changed exactly the rows it should, or",
        "-- aborts.",
    ]
    for tbl in sorted({s.kind.table for s in steps}):
        info = ctx.tables[tbl]
        if info.triggers:
            lines.append(
                f"-- User triggers on {comment(tbl)} fire for the changes: "
                f"{comment(', '.join(info.triggers))}."
            )
        for fk in info.inbound:
            lines.append(
                f"-- {comment(fk.child)}({comment(','.join(fk.child_columns))}) references "
                f"{comment(tbl)} ({comment(fk.name)}, ON DELETE {fk.on_delete}): rows it "
                "references are held, not changed."
            )
    lines += ["--", f"-- {len(steps)} steps:"]
    for number, step in enumerate(steps, start=1):
        lines.append(f"--   {number}. {_describe(step)}")
    out.write("\n".join(lines) + "\n\n")


def _describe(step: Step) -> str:
    """One line about the step (comment-safe)."""
    k = step.kind
    where = f"{k.table}.{k.column}"
    what = {
        "update": f"set {where} to the proposed value",
        "set_null": f"set {where} to NULL",
        "quarantine": f"move rows of {k.table} to the quarantine",
    }[k.action]
    return comment(
        f"{what}: {k.check}, {k.diagnosis} ({k.confidence}), {step.rows} rows, "
        f"guarded on {', '.join(k.guard)}"
    )


def _same_text(a: str, b: str) -> str:
    """SQL: `a` and `b` read as the same text, byte for byte (NULL equal to NULL). The "C"
    collation is deterministic: under a column's case-insensitive collation 'ann@x' and
    'ANN@X' would be equal, and a change of case since the audit would go unseen."""
    return (
        f'{a}::pg_catalog.text COLLATE pg_catalog."C" IS NOT DISTINCT FROM '
        f'{b}::pg_catalog.text COLLATE pg_catalog."C"'
    )


def _write_step(
    out: TextIO,
    plan: RepairPlan,
    ctx: RepairContext,
    step: Step,
    number: int,
    total: int,
    items: Iterator[Item],
) -> None:
    k = step.kind
    check = plan.check_of(step)
    info = ctx.tables[k.table]
    tbl = info.sql
    key = ident(_single_key(plan, k.table))
    col = ident(k.column)
    work = f"pg_temp.refaudit_step_{number}"
    guards = [f"guard_{i}" for i in range(1, len(k.guard) + 1)]
    guard_cols = ", ".join(f"{ident(g)} AS {name}" for g, name in zip(k.guard, guards, strict=True))
    out.write(f"-- Step {number} of {total}: {_describe(step)}\n")
    out.write(
        f"CREATE TEMP TABLE {work} ON COMMIT DROP AS\n"
        f"    SELECT {key} AS row_key, {col} AS new_value, {guard_cols},\n"
        f"           ''::text AS note, NULL::text AS outcome\n"
        f"    FROM {tbl} WITH NO DATA;\n"
    )
    rows = 0
    batch: list[str] = []
    columns = ", ".join(["row_key", "new_value", *guards, "note"])

    def flush() -> None:
        if batch:
            rows_sql = ",\n    ".join(batch)
            out.write(f"INSERT INTO {work} ({columns}) VALUES\n    {rows_sql};\n")
            batch.clear()

    for row_key, audited, new, note in items:
        values = [row_key, new, *audited, note]
        batch.append("(" + ", ".join(literal(v) for v in values) + ")")
        rows += 1
        if len(batch) >= BATCH_ROWS:
            flush()
    flush()

    holds = " AND ".join(
        _same_text(f"t.{ident(g)}", f"s.{name}") for g, name in zip(k.guard, guards, strict=True)
    )
    ref = f"t.{ident(check.column)}"
    disc_column = check.discriminator_column()
    disc = f"t.{ident(disc_column)}" if disc_column else ""
    if k.action == "update":
        # the new value must name an existing target row (it may have gone since the audit),
        # and a mis-key's mapping must still hold (the target row's `through` is the value)
        remapped = k.column == check.column and k.diagnosis in ("mis_keyed", "mis_keyed_hidden")
        valid = _names_target(
            ctx,
            check,
            "s.new_value" if k.column == check.column else ref,
            "s.new_value" if disc_column and k.column == disc_column else disc,
            through=ref if remapped else None,
        )
    else:  # an orphan: still nothing to name
        valid = f"NOT {_names_target(ctx, check, ref, disc)}"
    guard = f"{holds} AND {valid}"
    # one statement per referencing foreign key: a semi-join, not a probe per row
    held = "".join(
        f"  UPDATE {work} s SET outcome = 'held' FROM {tbl} t\n"
        f"  WHERE t.{key} = s.row_key AND s.outcome = 'repair' AND {dependent};\n"
        for dependent in _dependents(info, step)
    )
    quarantine = plan.quarantine_sql
    if k.action == "quarantine":
        gone = (
            f"CASE WHEN EXISTS (SELECT 1 FROM {quarantine} q "
            f"WHERE q.run_id = {literal(plan.run_id)} AND q.table_name = {literal(k.table)} "
            "AND q.row_key = s.row_key::text) THEN 'done' ELSE 'skip' END"
        )
        done_when = ""
        change = (
            f"  INSERT INTO {quarantine}\n"
            "         (run_id, table_name, row_key, reason, row_data)\n"
            f"  SELECT {literal(plan.run_id)}, {literal(k.table)}, t.{key}::text,\n"
            f"         {literal(k.check + ': orphan: ')} || s.note, pg_catalog.to_jsonb(t)\n"
            f"  FROM {tbl} t JOIN {work} s ON t.{key} = s.row_key WHERE s.outcome = 'repair';\n"
            "  GET DIAGNOSTICS kept = ROW_COUNT;\n"
            f"  DELETE FROM {tbl} t USING {work} s\n"
            f"  WHERE s.outcome = 'repair' AND t.{key} = s.row_key AND {guard};\n"
            "  GET DIAGNOSTICS changed = ROW_COUNT;\n"
            "  IF kept <> changed THEN\n"
            "    RAISE EXCEPTION 'refaudit: step % quarantined % rows but deleted %; "
            f"nothing was applied', {number}, kept, changed;\n"
            "  END IF;\n"
        )
    else:
        others = [
            _same_text(f"t.{ident(g)}", f"s.{name}")
            for g, name in zip(k.guard, guards, strict=True)
            if g != k.column
        ]
        already = " AND ".join([_same_text(f"t.{col}", "s.new_value"), *others])
        gone = "'skip'"
        done_when = f"      WHEN {already} THEN 'done'\n"
        change = (
            f"  UPDATE {tbl} t SET {col} = s.new_value FROM {work} s\n"
            f"  WHERE s.outcome = 'repair' AND t.{key} = s.row_key AND {guard};\n"
            "  GET DIAGNOSTICS changed = ROW_COUNT;\n"
        )
    backup = plan.backup_sql(k.table)
    body = (
        "\n"
        "DECLARE\n"
        "  planned bigint; matched bigint; already bigint; skipped bigint; held bigint;\n"
        "  changed bigint := 0; kept bigint := 0; keys text;\n"
        "BEGIN\n"
        "  -- lock the planned rows, then classify them: still as audited (repair), referenced\n"
        "  -- by other rows (held), already repaired (done), or changed since the audit (skip)\n"
        f"  PERFORM 1 FROM {tbl} t JOIN {work} s ON t.{key} = s.row_key FOR UPDATE OF t;\n"
        f"  UPDATE {work} s SET outcome = CASE\n"
        f"      WHEN {guard} THEN 'repair'\n"
        f"{done_when}"
        "      ELSE 'skip' END\n"
        f"  FROM {tbl} t WHERE t.{key} = s.row_key;\n"
        f"  UPDATE {work} s SET outcome = {gone} WHERE outcome IS NULL;  -- no such row now\n"
        f"{held}"
        f"  INSERT INTO {backup}\n"
        f"  SELECT t.* FROM {tbl} t JOIN {work} s ON t.{key} = s.row_key\n"
        "  WHERE s.outcome = 'repair'\n"
        f"    AND NOT EXISTS (SELECT 1 FROM {backup} b WHERE b.{key} = t.{key});\n"
        f"{change}"
        "  SELECT pg_catalog.count(*), pg_catalog.count(*) FILTER (WHERE outcome = 'repair'),\n"
        "         pg_catalog.count(*) FILTER (WHERE outcome = 'done'),\n"
        "         pg_catalog.count(*) FILTER (WHERE outcome = 'skip'),\n"
        "         pg_catalog.count(*) FILTER (WHERE outcome = 'held')\n"
        f"    INTO planned, matched, already, skipped, held FROM {work};\n"
        f"  IF planned <> {rows} THEN\n"
        "    RAISE EXCEPTION 'refaudit: step % holds % rows, the plan has %; "
        f"nothing was applied', {number}, planned, {rows};\n"
        "  END IF;\n"
        "  IF changed <> matched THEN\n"
        "    RAISE EXCEPTION 'refaudit: step % changed % rows, but % matched their guard; "
        f"nothing was applied', {number}, changed, matched;\n"
        "  END IF;\n"
        "  RAISE NOTICE 'refaudit: step=% action=% planned=% changed=% already=% skipped=% "
        f"held=% (%)',\n    {number}, {literal(k.action)}, planned, changed, already, skipped, "
        f"held,\n    {literal(_describe(step))}\n"
        # the same counts for programs (refaudit apply): JSON in the notice's DETAIL
        "    USING DETAIL = pg_catalog.json_build_object('step', "
        f"{number}, 'action', {literal(k.action)}, 'planned', planned, 'changed', changed, "
        "'already', already, 'skipped', skipped, 'held', held)::text;\n"
        f"{_list_keys(work, number, 'skip', 'skipped (changed since the audit)')}"
        f"{_list_keys(work, number, 'held', 'held (rows of other tables reference them)')}"
        "END\n"
    )
    out.write(do_block(body) + "\n\n")


def _list_keys(work: str, number: int, outcome: str, what: str) -> str:
    """A NOTICE with the keys of the step's rows of one outcome (the first hundred)."""
    rows = f"FROM {work} WHERE outcome = {literal(outcome)}"
    return (
        f"  IF EXISTS (SELECT 1 {rows}) THEN\n"
        "    SELECT pg_catalog.string_agg(row_key::text, ', ') INTO keys\n"
        f"      FROM (SELECT row_key {rows} ORDER BY row_key LIMIT {LISTED_KEYS}) k;\n"
        f"    SELECT keys || CASE WHEN pg_catalog.count(*) > {LISTED_KEYS}\n"
        "      THEN pg_catalog.format(' and %s more', "
        f"pg_catalog.count(*) - {LISTED_KEYS}) ELSE '' END\n"
        f"      INTO keys {rows};\n"
        f"    RAISE NOTICE 'refaudit: step=% {what}: %', {number}, {printable('keys')};\n"
        "  END IF;\n"
    )


def _write_review(out: TextIO, plan: RepairPlan) -> int:
    n = 0
    lines: list[str] = []
    for item in plan.review():
        n += 1
        why = f" Not repaired: {item.reason}." if item.reason else ""
        lines.append(
            "--   "
            + comment(
                f"{item.table} {item.key}: {item.column} = {item.value} [{item.check}] "
                f"{item.diagnosis} ({item.confidence}): {item.evidence}.{why}"
            )
        )
    if n:
        out.write(
            f"-- Not repaired: {n} rows need a person (ambiguous, listed for review, or a change\n"
            "-- the catalog would refuse). No statement is generated for them.\n"
            + "\n".join(lines)
            + "\n\n"
        )
    return n


def _totals(steps: int) -> str:
    parts = " + ".join(
        "(SELECT pg_catalog.count(*) FILTER (WHERE outcome = '{o}') "
        f"FROM pg_temp.refaudit_step_{i})"
        for i in range(1, steps + 1)
    )
    return (
        do_block(
            " BEGIN\n"
            "  RAISE NOTICE 'refaudit: total changed=% already=% skipped=% held=%',\n"
            f"    {parts.format(o='repair')},\n"
            f"    {parts.format(o='done')},\n"
            f"    {parts.format(o='skip')},\n"
            f"    {parts.format(o='held')};\n"
            "END "
        )
        + "\n\n"
    )


def write_rollback_sql(
    plan: RepairPlan,
    ctx: RepairContext,
    catalog: CatalogPlan,
    path: Path,
    *,
    lock_timeout_s: float,
    statement_timeout_s: float,
) -> None:
    drops = blocking_fks(plan, catalog)
    ident_ = ctx.identity
    lines = [
        "-- refaudit rollback.sql",
        f"-- run {comment(plan.run_id)}, suite {comment(plan.suite.suite)}, database "
        f"{comment(ident_.name)} (oid {ident_.oid}, system identifier "
        f"{comment(ident_.system_identifier)}).",
        "-- Undoes repair.sql of this run: every row it changed or removed is restored, whole,",
        "-- from the backup tables, its quarantine entries are removed, and the constraints it",
        "-- dropped are re-created as the audit saw them. If constraints.sql was applied, the",
        "-- constraints and triggers it added are dropped first (they would reject the restored",
        "-- rows); NOT VALID constraints on the restored tables are re-created NOT VALID (they",
        "-- would reject the restored rows too), and user triggers are off while rows are",
        "-- restored, so that every row comes back exactly. Rows changed by others after",
        "-- repair.sql ran are overwritten by the backup.",
        "-- Run:  psql -v ON_ERROR_STOP=1 -f rollback.sql   (or refaudit apply rollback.sql)",
        "",
        *psql_preamble(),
        "BEGIN;",
        *session_settings(
            ident_,
            lock_timeout_s=lock_timeout_s,
            statement_timeout_s=statement_timeout_s,
            local=True,
        ),
        identity_check(ident_, "rollback.sql"),
        "",
    ]
    tables = plan.tables()
    if tables:
        checks = "\n".join(
            "  IF pg_catalog.to_regclass("
            f"{literal(regclass_text(plan.schema + '.' + plan.backup_table(t)))})"
            " IS NULL THEN\n"
            "    RAISE EXCEPTION 'refaudit: backup table % does not exist: repair.sql of run % "
            f"was not applied to this database', {literal(plan.backup_sql(t))}, "
            f"{literal(plan.run_id)};\n"
            "  END IF;"
            for t in tables
        )
        lines += [do_block(" BEGIN\n" + checks + "\nEND "), ""]
    unvalidated = [c for t in tables for c in ctx.tables[t].unvalidated]
    before = _unique(
        catalog.undo_before
        + [
            f"ALTER TABLE {ctx.sql(w.table)} DROP CONSTRAINT IF EXISTS {ident(w.name)};"
            for w in [*drops, *unvalidated]
        ]
    )
    if before:
        lines += ["-- 1. what would reject the restored rows", *before, ""]
    triggers = [(t, name) for t in tables for name in ctx.tables[t].triggers]
    lines += [_set_triggers(ctx, triggers, enable=False)] if triggers else []
    for tbl in tables:
        lines.append(_restore(plan, ctx, tbl))
    lines += [_set_triggers(ctx, triggers, enable=True)] if triggers else []
    after = _unique([s for w in [*drops, *unvalidated] for s in readd(w)] + catalog.undo_after)
    if after:
        lines += ["-- 3. constraints as the audit saw them", *after, ""]
    lines.append("COMMIT;")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _set_triggers(ctx: RepairContext, triggers: list[tuple[str, str]], *, enable: bool) -> str:
    """Turn the user triggers that were enabled at the audit off (or on again), those that
    still exist."""
    verb = "ENABLE" if enable else "DISABLE"
    body = "\n".join(
        f"  IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger WHERE tgrelid = {ctx.regclass(t)} "
        f"AND tgname = {literal(name)}) THEN\n"
        f"    ALTER TABLE {ctx.sql(t)} {verb} TRIGGER {ident(name)};\n"
        "  END IF;"
        for t, name in triggers
    )
    what = "user triggers on again" if enable else "user triggers off while rows are restored"
    return f"-- {what}\n" + do_block(" BEGIN\n" + body + "\nEND ")


def _unique(statements: list[str]) -> list[str]:
    return list(dict.fromkeys(statements))


def _restore(plan: RepairPlan, ctx: RepairContext, tbl: str) -> str:
    key_name = _single_key(plan, tbl)
    key = ident(key_name)
    info = ctx.tables[tbl]
    cols = [c for c in info.columns if not c.generated]
    # an identity GENERATED ALWAYS column cannot be set; the repair never changes one
    settable = [c for c in cols if c.name != key_name and not c.identity_always]
    backup = plan.backup_sql(tbl)
    names = ", ".join(ident(c.name) for c in cols)
    overriding = " OVERRIDING SYSTEM VALUE" if any(c.identity_always for c in cols) else ""
    sets = ",\n      ".join(f"{ident(c.name)} = b.{ident(c.name)}" for c in settable)
    body = (
        "\n"
        "DECLARE restored bigint; reinserted bigint; released bigint;\n"
        "BEGIN\n"
        f"  UPDATE {info.sql} t SET\n      {sets}\n"
        f"  FROM {backup} b WHERE t.{key} = b.{key};\n"
        "  GET DIAGNOSTICS restored = ROW_COUNT;\n"
        f"  INSERT INTO {info.sql} ({names}){overriding}\n"
        f"  SELECT {', '.join('b.' + ident(c.name) for c in cols)} FROM {backup} b\n"
        f"  WHERE NOT EXISTS (SELECT 1 FROM {info.sql} t WHERE t.{key} = b.{key});\n"
        "  GET DIAGNOSTICS reinserted = ROW_COUNT;\n"
        f"  DELETE FROM {plan.quarantine_sql} WHERE run_id = {literal(plan.run_id)} "
        f"AND table_name = {literal(tbl)};\n"
        "  GET DIAGNOSTICS released = ROW_COUNT;\n"
        "  RAISE NOTICE 'refaudit: rollback restored=% reinserted=% unquarantined=% (%)',\n"
        f"    restored, reinserted, released, {literal(comment(tbl))}\n"
        "    USING DETAIL = pg_catalog.json_build_object('restored', restored, 'reinserted', "
        "reinserted, 'unquarantined', released)::text;\n"
        "END\n"
    )
    return f"-- 2. rows of {comment(tbl)}, from {comment(plan.backup_sql(tbl))}\n" + do_block(body)
