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

The files are rendered from templates (`pipeline/templates/sql/`: repair.sql.j2, step.sql.j2,
rollback.sql.j2, preamble.sql.j2) by `pipeline.sqlrender`, through whose filters every name
and value reaches them quoted and on one line (a value that is not raises while rendering).
A row is named by its table's key, one column or several (`RowKey`). Backup, quarantine and
scratch tables live in refaudit's own schema or in `pg_temp`.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.checks.base import (
    HASHED_GUARD,
    ColumnType,
    ColumnTypes,
    Violation,
    comparable,
    folds,
    guard_text,
)
from pipeline.checks.catalog import CatalogFacts, read_catalogs
from pipeline.checks.ddl import drop_constraint
from pipeline.checks.enforce import condition_sql
from pipeline.checks.reference import DISCRIMINATOR_SUFFIX, Reference
from pipeline.checks.relations import Definitions, Relation, read_relations
from pipeline.constraints import (
    AuditedConstraint,
    CatalogPlan,
    readd,
)
from pipeline.drift import COLUMN_FACT, facts_sql, read_facts
from pipeline.sqlrender import Sql, render, sql, stream
from pipeline.sqltext import (
    PSQL_ALLOW_OTHER,
    comment,
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
CONFLICTS = "rollback_conflicts"
AFTER_COLUMN = "refaudit_repaired_row"
ALLOW_OTHER_SETTING = "refaudit.allow_other_database"
BATCH_ROWS = 1000
# pg_type.typcategory of the key columns a composite key's JSON text spells exactly: numbers,
# strings, dates and times, intervals, booleans, enums (uuid and bytea by name)
_KEY_CATEGORIES = frozenset("NSDTBE")
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
    """What in the catalog proves the suite's `key` of `rel` unique: a valid unique index
    (of a primary key, a UNIQUE constraint or its own), without expressions or a WHERE, on
    some of the key's columns; '' when none does. (A row whose key holds a NULL is never
    matched by a plan: `=` finds no NULL.)"""
    for index in rel.indexes:
        columns = set(index.columns[: index.key_count])
        proves = index.unique and index.valid and index.plain and not index.partial
        if proves and columns and columns <= set(key):
            return f"unique index {index.name}"
    return ""


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
    the wrong table), added to what the audit's catalog checks already read."""
    ctx.facts = facts
    missing = [c.table for c in suite.checks if c.repairs and c.table not in facts]
    facts.update(read_catalogs(conn, missing))


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
    hashed: set[str] = field(default_factory=set)
    """Guard columns of which some row's audited value is long: compared by its length and
    SHA-256 (see `pipeline.checks.base.guard_value`)."""

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


def _why_review(check: Reference) -> str:
    """Why repair.sql changes nothing for a check that does not propose (`proposes`)."""
    if check.columns:  # a composite reference proposes nothing, whatever it says
        return ""
    if check.repair == "review":
        return f"{check.id} says `repair: review`"
    said = "`severity: warn`" if check.severity == "warn" else "`on_orphan: report`"
    return f"{check.id} is {said}: repair.sql changes its rows only with `repair: propose`"


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

    def use_suite(self, suite: Suite) -> None:
        """Plan for `suite` as the audit resolved it (its lookups' type ids read)."""
        self.suite = suite
        self._checks = {c.id: c for c in suite.checks if c.repairs}  # type: ignore[misc]

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
        if not check.proposes():
            self._add_review(v, _why_review(check))
            return
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
        step.hashed.update(name for name, value in guard.items() if isinstance(value, dict))
        audited = [guard_text(value, self.run_id) for value in guard.values()]
        step.handle.write(json.dumps([v.key, audited, new, v.evidence]) + "\n")
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
        odd = self._unspellable_key(tbl)
        if odd:
            return odd
        if info.duplicate_keys:
            key = ", ".join(self.suite.key_columns(tbl))
            return (
                f"{tbl}'s key ({key}) is not unique: {info.duplicate_keys} of its values are "
                "shared by several rows, and no primary key or unique index makes it unique; "
                "repair.sql and rollback.sql find rows by key; declare a unique key for the "
                "table in the suite, or decide by hand"
            )
        if action == "quarantine":
            return ""
        if column in self.suite.key_columns(tbl):
            return (
                f"{tbl}.{column} is part of the table's key: repair.sql does not re-key rows "
                "(rollback.sql finds them by key); decide by hand"
            )
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

    def _unspellable_key(self, tbl: str) -> str:
        """Why rows of `tbl` cannot be found by their composite key ('' when they can): a
        key column of a type (an array, json, a composite or range type) whose value
        violations.csv's JSON key does not spell back exactly."""
        key = self.suite.key_columns(tbl)
        if len(key) < 2 or self.context is None:
            return ""
        for column in key:
            t = self.context.types.get((tbl, column))
            if t is not None and not (
                t.category in _KEY_CATEGORIES or t.name in ("uuid", "bytea")
            ):
                return (
                    f"{tbl}'s key column {column} is of type {t.name}: repair.sql finds rows "
                    "of composite keys made of numbers, text, dates, times, booleans, enums "
                    "and uuids only; decide by hand"
                )
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

    def after_column(self, tbl: str) -> str:
        """The backup table's own column (after the table's columns): the row's text as the
        repair left it (NULL for a quarantined row), which rollback.sql compares with the row
        it finds, to move aside a row changed since. Named apart from every column of
        `tbl`."""
        taken = set()
        info = self.context.tables.get(tbl) if self.context else None
        if info is not None:
            taken = {c.name for c in info.columns}
        name, n = AFTER_COLUMN, 1
        while name in taken:
            n += 1
            name = f"{AFTER_COLUMN}_{n}"
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
    apply` reads the same lines; see `pipeline.sqltext.psql_lines`), timeouts, literal rules,
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


def _dependents(info: TableInfo, step: Step) -> list[Sql]:
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
        out.append(sql(f"EXISTS (SELECT 1 FROM {fk.child} c WHERE {match})"))
    return out


def _suite_dependents(plan: RepairPlan, ctx: RepairContext, step: Step) -> list[Sql]:
    """SQL over `t`, one per reference of the suite (conditional and composite ones too)
    whose targets include the step's table: rows that name the row through it, which no
    foreign key protects (a generic relation's tag, comment or version). The step holds
    such a row rather than leave them naming nothing."""
    k = step.kind
    here = ctx.tables[k.table]
    out = []
    for check in plan.suite.checks:
        if not isinstance(check, Reference):
            continue
        source = ctx.tables.get(check.table)
        if source is None:
            continue
        disc = check.discriminator_column()
        for value, target in check.choices():
            there = ctx.tables.get(target.table)
            if there is None or there.oid != here.oid:
                continue
            pairs = list(zip(check.key_of_row(), target.key_columns(), strict=True))
            if k.action != "quarantine" and k.column not in target.key_columns():
                continue
            tests = [
                key_equals(
                    f"x.{ident(column)}",
                    f"t.{ident(key)}",
                    same=ctx.same((check.table, column), (k.table, key)),
                    fold=ctx.folds((check.table, column), (k.table, key)),
                )
                for column, key in pairs
            ]
            if disc is not None:
                tests.append(f"x.{ident(disc)} = {literal(value)}")
            if source.oid == here.oid:
                tests.append("x.ctid <> t.ctid")
            out.append(sql(f"EXISTS (SELECT 1 FROM {source.sql} x WHERE {' AND '.join(tests)})"))
    return list(dict.fromkeys(out))


@dataclass
class StepView:
    """One step as templates/sql/step.sql.j2 renders it."""

    kind: StepKind
    number: int
    total: int
    count: int
    description: Sql
    table: Sql
    column: Sql
    work: Sql
    backup: Sql
    key: RowKey
    guard_select: Sql
    guard: Sql
    done_when: Sql | None
    dependents: list[Sql]
    child_rows: Sql | None
    after: Sql  # the backup's column for the row's text as the step left it
    rows: Iterator[list[str | None]]

    @property
    def action(self) -> str:
        return self.kind.action

    @property
    def key_select(self) -> Sql:
        return self.key.select()

    @property
    def columns(self) -> Sql:
        guards = [f"guard_{i}" for i in range(1, len(self.kind.guard) + 1)]
        return sql(", ".join([*self.key.scratch_columns(), "new_value", *guards, "note"]))

    @property
    def match(self) -> Sql:
        return self.key.match("t", "s")

    @property
    def backed_up(self) -> Sql:
        return self.key.same_row("b", "t")

    @property
    def row_key_text(self) -> Sql:
        return self.key.text("t")


def _step_view(
    plan: RepairPlan,
    ctx: RepairContext,
    step: Step,
    number: int,
    total: int,
    items: Iterator[Item],
) -> StepView:
    k = step.kind
    check = plan.check_of(step)
    info = ctx.tables[k.table]
    key = RowKey(tuple(plan.suite.key_columns(k.table)))
    guards = [f"guard_{i}" for i in range(1, len(k.guard) + 1)]
    hashed = {g: plan.run_id for g in step.hashed}
    holds = " AND ".join(
        _guard_holds(f"t.{ident(g)}", f"s.{name}", hashed.get(g))
        for g, name in zip(k.guard, guards, strict=True)
    )
    ref = f"t.{ident(check.column)}"
    disc_column = check.discriminator_column()
    disc = f"t.{ident(disc_column)}" if disc_column else ""
    done_when = None
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
    if k.action != "quarantine":
        others = [
            _guard_holds(f"t.{ident(g)}", f"s.{name}", hashed.get(g))
            for g, name in zip(k.guard, guards, strict=True)
            if g != k.column
        ]
        done_when = sql(" AND ".join([_same_text(f"t.{ident(k.column)}", "s.new_value"), *others]))
    return StepView(
        kind=k,
        number=number,
        total=total,
        count=step.rows,
        description=_describe(step),
        table=sql(info.sql),
        column=sql(ident(k.column)),
        work=sql(f"pg_temp.refaudit_step_{number}"),
        backup=sql(plan.backup_sql(k.table)),
        key=key,
        guard_select=sql(
            ", ".join(
                # a hashed value's column holds text, whatever the column's type
                f"{ident(g)}{'::pg_catalog.text' if g in hashed else ''} AS {name}"
                for g, name in zip(k.guard, guards, strict=True)
            )
        ),
        guard=sql(f"{holds} AND {valid}"),
        done_when=done_when,
        # one statement per referencing foreign key or suite reference: a semi-join, not a
        # probe per row
        dependents=[*_dependents(info, step), *_suite_dependents(plan, ctx, step)],
        # a row of an inheritance child: a DELETE through the parent would take the child's
        # own columns with it, and rollback.sql could not put it back where it was
        child_rows=(
            sql(f"t.tableoid <> {ctx.regclass(k.table)}")
            if k.action == "quarantine" and info.kind == "r" and info.has_children
            else None
        ),
        after=sql(ident(plan.after_column(k.table))),
        rows=([*key.values(row_key), new, *audited, note] for row_key, audited, new, note in items),
    )


@dataclass(frozen=True)
class _TableView:
    name: str
    info: TableInfo
    backup: Sql
    after: Sql

    @property
    def sql(self) -> Sql:
        return sql(self.info.sql)


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


def write_repair_sql(
    plan: RepairPlan,
    ctx: RepairContext,
    catalog: CatalogPlan,
    path: Path,
    *,
    lock_timeout_s: float,
    statement_timeout_s: float,
) -> RepairSummary:
    """repair.sql (templates/sql/repair.sql.j2 and step.sql.j2), written as it renders: a
    step's rows are read from its spill file, so memory stays flat however many there are."""
    timeouts = {"lock_timeout_s": lock_timeout_s, "statement_timeout_s": statement_timeout_s}
    plan.close()
    summary = RepairSummary(schema=plan.schema, database=_identity_dict(ctx.identity))
    # A row that goes to quarantine needs no other repair, and one quarantine per row.
    quarantined: dict[str, set[str]] = {}
    for step in plan.steps:
        if step.kind.action == "quarantine":
            keys = quarantined.setdefault(step.kind.table, set())
            keys.update(key for key, *_ in step.items())
    steps = []
    seen: dict[str, set[str]] = {}
    for step in plan.steps:
        step.rows = sum(1 for _ in _kept_items(step, quarantined, seen))
        if step.rows:
            steps.append(step)
    drops = blocking_fks(plan, catalog)
    summary.dropped_constraints = [w.name for w in drops]
    tables = sorted({s.kind.table for s in steps})
    summary.backup_tables = [f"{plan.schema}.{plan.backup_table(t)}" for t in tables]
    rendered: dict[str, set[str]] = {}  # the same rows as counted above, in the same order
    views = [
        _step_view(plan, ctx, step, number, len(steps), _kept_items(step, quarantined, rendered))
        for number, step in enumerate(steps, start=1)
    ]
    for view in views:
        k = view.kind
        summary.steps.append(
            {
                "step": view.number,
                "table": k.table,
                "column": k.column,
                "action": k.action,
                "check": k.check,
                "diagnosis": k.diagnosis,
                "confidence": k.confidence,
                "guarded_on": list(k.guard),
                "rows": view.count,
            }
        )
        if k.action == "update":
            summary.updates += view.count
        elif k.action == "set_null":
            summary.set_null += view.count
        else:
            summary.quarantined += view.count
    summary.ambiguous = plan.review_rows
    pieces = stream(
        "repair.sql.j2",
        plan=plan,
        identity=ctx.identity,
        preamble=plan_preamble(ctx.identity, "repair.sql", local=True, **timeouts),
        tables=[
            _TableView(
                t, ctx.tables[t], sql(plan.backup_sql(t)), sql(ident(plan.after_column(t)))
            )
            for t in tables
        ],
        drift=drift_check(ctx, tables, "repair.sql"),
        own_schema=own_schema(plan, ctx, tables, "repair.sql", conflicts=False),
        own_schema_itself=own_schema(
            plan, ctx, tables, "repair.sql", conflicts=False, schema_only=True
        ),
        quarantine=sql(plan.quarantine_sql),
        drops=[ctx.resolved(w) for w in drops],
        steps=views,
        review_count=plan.review_rows,
        review=_review_lines(plan),
        batch_rows=BATCH_ROWS,
        listed_keys=LISTED_KEYS,
        allow_variable=sql(PSQL_ALLOW_OTHER),
    )
    partial = path.with_name(path.name + ".partial")  # no half-written plan is ever left
    try:
        with partial.open("w", encoding="utf-8") as out:
            out.writelines(pieces)
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return summary


def _session_path(identity: DatabaseIdentity, *, local: bool) -> str:
    path = identity.search_path
    if local:
        # pg_temp last: a temporary table of the applying session never stands in for a
        # table of the audit's path
        path = f"pg_catalog, {path}, pg_temp" if path.strip() else "pg_catalog, pg_temp"
    return path


def _review_lines(plan: RepairPlan) -> Iterator[str]:
    for item in plan.review():
        why = f" Not repaired: {item.reason}." if item.reason else ""
        yield (
            f"{item.table} {item.key}: {item.column} = {item.value} [{item.check}] "
            f"{item.diagnosis} ({item.confidence}): {item.evidence}.{why}"
        )


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
    keys already taken, so that a row is quarantined once)."""
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


def _describe(step: Step) -> Sql:
    """One line about the step (comment-safe)."""
    k = step.kind
    where = f"{k.table}.{k.column}"
    what = {
        "update": f"set {where} to the proposed value",
        "set_null": f"set {where} to NULL",
        "quarantine": f"move rows of {k.table} to the quarantine",
    }[k.action]
    return sql(
        comment(
            f"{what}: {k.check}, {k.diagnosis} ({k.confidence}), {step.rows} rows, "
            f"guarded on {', '.join(k.guard)}"
        )
    )


def _same_text(a: str, b: str) -> str:
    """SQL: `a` and `b` read as the same text, byte for byte (NULL equal to NULL). The "C"
    collation is deterministic: under a column's case-insensitive collation 'ann@x' and
    'ANN@X' would be equal, and a change of case since the audit would go unseen."""
    return (
        f'{a}::pg_catalog.text COLLATE pg_catalog."C" IS NOT DISTINCT FROM '
        f'{b}::pg_catalog.text COLLATE pg_catalog."C"'
    )


def _guard_holds(a: str, b: str, nonce: str | None) -> str:
    """SQL: column `a` still holds the audited value `b` (`_same_text`). With `nonce` (the
    column has long values, see `Step.hashed`), a `b` the audit hashed
    (`refaudit-sha256:<nonce>:<length>:<hex>`) holds when `a` has that length and SHA-256."""
    same = _same_text(a, b)
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


@dataclass(frozen=True)
class _RestoreView:
    """One table of rollback.sql: its rows come back from its backup table."""

    name: str
    info: TableInfo
    backup: Sql
    backup_regclass: str
    columns: list[str]
    settable: list[str]
    overriding: Sql
    match: Sql  # a row `t` of the table is the backup's row `b`
    key_text_b: Sql  # the key of the backup's row `b` as violations.csv writes it
    key_text_t: Sql  # ... of the table's row `t`
    after: Sql  # the backup's column for the row as the repair left it
    regclass: Sql
    backup_row: Sql  # SQL: the backup's row `b` as the table's row text reads
    plain_parent: bool  # a plain table with inheritance children

    @property
    def sql(self) -> Sql:
        return sql(self.info.sql)


def write_rollback_sql(
    plan: RepairPlan,
    ctx: RepairContext,
    catalog: CatalogPlan,
    path: Path,
    *,
    lock_timeout_s: float,
    statement_timeout_s: float,
) -> None:
    """rollback.sql (templates/sql/rollback.sql.j2, restore.sql.j2)."""
    timeouts = {"lock_timeout_s": lock_timeout_s, "statement_timeout_s": statement_timeout_s}
    drops = blocking_fks(plan, catalog)
    tables = plan.tables()
    unvalidated = [c for t in tables for c in ctx.tables[t].unvalidated]
    before = _unique(
        [
            *catalog.undo_before,
            *(drop_constraint(ctx.name(w.table), w.name) for w in [*drops, *unvalidated]),
        ]
    )
    after = _unique(
        [s for w in [*drops, *unvalidated] for s in readd(ctx.resolved(w))] + catalog.undo_after
    )
    text = render(
        "rollback.sql.j2",
        plan=plan,
        identity=ctx.identity,
        preamble=plan_preamble(ctx.identity, "rollback.sql", local=True, **timeouts),
        tables=[_restore_view(plan, ctx, t) for t in tables],
        drift=drift_check(ctx, tables, "rollback.sql", columns_only=True) if tables else sql(""),
        own_schema=own_schema(plan, ctx, tables, "rollback.sql", conflicts=True),
        own_schema_itself=own_schema(
            plan, ctx, tables, "rollback.sql", conflicts=True, schema_only=True
        ),
        quarantine=sql(plan.quarantine_sql),
        conflicts=sql(qualified(plan.schema, CONFLICTS)),
        conflicts_name=f"{plan.schema}.{CONFLICTS}",
        regclasses=[sql(ctx.regclass(t)) for t in tables],
        before=[sql(s) for s in before],
        after=[sql(s) for s in after],
        listed_keys=LISTED_KEYS,
    )
    path.write_text(text, encoding="utf-8")


def _unique(statements: list[str]) -> list[str]:
    return list(dict.fromkeys(statements))


def _restore_view(plan: RepairPlan, ctx: RepairContext, tbl: str) -> _RestoreView:
    key = plan.suite.key_columns(tbl)
    info = ctx.tables[tbl]
    cols = [c for c in info.columns if not c.generated]
    row_key = RowKey(tuple(key))
    return _RestoreView(
        name=tbl,
        info=info,
        backup=sql(plan.backup_sql(tbl)),
        backup_regclass=regclass_text(join_name(plan.schema, plan.backup_table(tbl))),
        columns=[c.name for c in cols],
        # an identity GENERATED ALWAYS column cannot be set; the repair never changes one
        settable=[c.name for c in cols if c.name not in key and not c.identity_always],
        overriding=sql(" OVERRIDING SYSTEM VALUE" if any(c.identity_always for c in cols) else ""),
        match=row_key.same_row("t", "b"),
        key_text_b=row_key.text("b"),
        key_text_t=row_key.text("t"),
        after=sql(ident(plan.after_column(tbl))),
        regclass=sql(ctx.regclass(tbl)),
        backup_row=sql(
            "ROW(" + ", ".join(f"b.{ident(c.name)}" for c in info.columns) + ")::pg_catalog.text"
        ),
        plain_parent=info.kind == "r" and info.has_children,
    )
