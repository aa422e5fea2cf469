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
| orphan, `on_orphan: quarantine` | copy the row to `refaudit_quarantine`, then DELETE it |
| ambiguous (low), orphan with `on_orphan: report` | a comment listing the row, no statement |
| the type proposed for a NULL or unknown discriminator | a comment, for review |

repair.sql is one transaction. Each step loads its rows (key, audited value, new value,
evidence) into a temporary table, locks the rows, and classifies each: *repair* (the row
still holds the audited value; for orphans, the value is still missing), *done* (it already
holds the new value: a second run), or *skip* (it changed since the audit). Only *repair*
rows are backed up and changed, by set-based statements guarded by the audited value. The
step then asserts that it changed exactly the rows that matched their guard (and, for
quarantine, that it kept as many rows as it deleted) or raises, which aborts the whole
transaction; it reports its counts and the skipped keys with RAISE NOTICE.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.checks.base import Violation
from pipeline.checks.catalog import CatalogFacts, read_catalog
from pipeline.checks.reference import DISCRIMINATOR_SUFFIX
from pipeline.constraints import AuditedConstraint, CatalogPlan, guarded_drop, readd
from pipeline.sqltext import comment, ident, literal, object_name, table
from pipeline.suite import ConditionalReferenceCheck, ReferenceCheck, Suite

REPAIRABLE = frozenset({"mis_keyed", "mis_keyed_hidden", "wrong_type"})
APPLIED_CONFIDENCE = frozenset({"high", "medium"})
ACTIONS = ("update", "set_null", "quarantine")
QUARANTINE_TABLE = "refaudit_quarantine"
BATCH_ROWS = 1000
SKIPPED_LISTED = 100

Reference = ReferenceCheck | ConditionalReferenceCheck


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


@dataclass
class Step:
    kind: StepKind
    path: Path
    rows: int = 0
    handle: TextIO | None = None

    def items(self) -> Iterator[tuple[str, str | None, str | None, str]]:
        """(key, audited value, new value, evidence) of every planned row."""
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                key, old, new, note = json.loads(line)
                yield key, old, new, note


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


class RepairPlan:
    """Every repair the diagnoses support, grouped into steps and spilled to disk."""

    def __init__(self, suite: Suite, run_id: str, workdir: Path | None = None) -> None:
        self.suite = suite
        self.run_id = run_id
        self._tmp = tempfile.TemporaryDirectory(prefix="refaudit-plan-", dir=workdir)
        self.dir = Path(self._tmp.name)
        self._steps: dict[StepKind, Step] = {}
        self._checks: dict[str, Reference] = {
            c.id: c
            for c in suite.checks
            if isinstance(c, ReferenceCheck | ConditionalReferenceCheck)
        }
        self._review = (self.dir / "review.jsonl").open("w", encoding="utf-8")
        self.review_rows = 0

    # ------------------------------------------------------------------ collecting
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
        if (
            v.diagnosis in REPAIRABLE
            and v.confidence in APPLIED_CONFIDENCE
            and v.proposed_value
            and not own_finding
        ):
            self._plan(v, check, column, "update", v.proposed_value)
        elif v.diagnosis == "orphan" and check.on_orphan == "set_null":
            self._plan(v, check, column, "set_null", None)
        elif v.diagnosis == "orphan" and check.on_orphan == "quarantine":
            self._plan(v, check, column, "quarantine", None)
        else:
            self.review_rows += 1
            self._review.write(
                json.dumps(
                    [v.check, v.table, v.key, v.column, v.value, v.diagnosis, v.confidence,
                     v.evidence]
                )
                + "\n"
            )  # fmt: skip

    def _plan(
        self, v: Violation, check: Reference, column: str, action: str, new: str | None
    ) -> None:
        kind = StepKind(
            ACTIONS.index(action), v.table, column, action, check.id, v.diagnosis, v.confidence
        )
        step = self._steps.get(kind)
        if step is None:
            path = self.dir / f"step{len(self._steps) + 1}.jsonl"
            step = self._steps[kind] = Step(kind, path, handle=path.open("w", encoding="utf-8"))
        assert step.handle is not None
        step.handle.write(json.dumps([v.key, v.repair_old, new, v.evidence]) + "\n")
        step.rows += 1

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
        return object_name("refaudit_backup", self.run_id, tbl.rpartition(".")[2])


# ---------------------------------------------------------------------- database context
@dataclass(frozen=True)
class ColumnInfo:
    name: str
    generated: bool
    identity_always: bool


@dataclass
class RepairContext:
    """What rendering needs from the audited database, read inside the audit's snapshot."""

    columns: dict[str, list[ColumnInfo]] = field(default_factory=dict)
    facts: dict[str, CatalogFacts] = field(default_factory=dict)


_COLUMNS_SQL = sa.text("""
SELECT attname::text AS name, attgenerated <> '' AS generated, attidentity = 'a' AS identity
FROM pg_attribute
WHERE attrelid = to_regclass(:t) AND attnum > 0 AND NOT attisdropped
ORDER BY attnum
""")


def read_repair_context(
    conn: Connection, suite: Suite, plan: RepairPlan, facts: dict[str, CatalogFacts]
) -> RepairContext:
    """Columns of every repaired table, and the catalog of every table holding a reference
    (to find foreign keys that point at the wrong table)."""
    ctx = RepairContext(facts=facts)
    for tbl in plan.tables():
        ctx.columns[tbl] = [
            ColumnInfo(r.name, r.generated, r.identity)
            for r in conn.execute(_COLUMNS_SQL, {"t": table(tbl)})
        ]
    for check in suite.checks:
        if (
            isinstance(check, ReferenceCheck | ConditionalReferenceCheck)
            and check.table not in facts
        ):
            facts[check.table] = read_catalog(conn, check.table)
    return ctx


# ---------------------------------------------------------------------- rendering
@dataclass
class RepairSummary:
    updates: int = 0
    set_null: int = 0
    quarantined: int = 0
    ambiguous: int = 0
    dropped_constraints: list[str] = field(default_factory=list)
    backup_tables: list[str] = field(default_factory=list)
    steps: list[dict[str, Any]] = field(default_factory=list)

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
            "dropped_constraints": self.dropped_constraints,
            "backup_tables": self.backup_tables,
            "quarantine_table": QUARANTINE_TABLE,
            "steps": self.steps,
        }


def _settings(lock_timeout_s: float, statement_timeout_s: float) -> list[str]:
    return [
        f"SET LOCAL lock_timeout = '{int(lock_timeout_s * 1000)}ms';",
        f"SET LOCAL statement_timeout = '{int(statement_timeout_s * 1000)}ms';",
        "SET LOCAL standard_conforming_strings = on;",
        "SET LOCAL client_min_messages = notice;",
    ]


def _still_missing(check: Reference, col: str) -> str:
    """SQL over `t`: the row's reference still names no target row (orphan guards)."""
    ref = f"t.{ident(check.column)}"
    if isinstance(check, ReferenceCheck):
        target = check.target
        return (
            f"NOT EXISTS (SELECT 1 FROM {table(target.table)} x "
            f"WHERE x.{ident(target.column)} = {ref})"
        )
    disc = f"t.{ident(check.discriminator)}"
    return " AND ".join(
        f"NOT EXISTS (SELECT 1 FROM {table(target.table)} x WHERE {disc} = {literal(value)} "
        f"AND x.{ident(target.column)} = {ref})"
        for value, target in check.targets.items()
    )


def blocking_fks(plan: RepairPlan, catalog: CatalogPlan) -> list[AuditedConstraint]:
    """Wrong-target foreign keys on a column the plan changes: they would reject the
    repaired values, so repair.sql drops them (constraints.sql adds the right ones)."""
    return [w for w in catalog.wrong_fks if set(w.columns) & plan.changed_columns(w.table)]


def write_repair_sql(
    plan: RepairPlan,
    ctx: RepairContext,
    catalog: CatalogPlan,
    path: Path,
    *,
    database: str,
    snapshot: str,
    lock_timeout_s: float,
    statement_timeout_s: float,
) -> RepairSummary:
    plan.close()
    summary = RepairSummary()
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
    summary.backup_tables = [plan.backup_table(t) for t in plan.tables()]
    with path.open("w", encoding="utf-8") as out:
        _write_header(out, plan, steps, database, snapshot)
        out.write("BEGIN;\n" + "\n".join(_settings(lock_timeout_s, statement_timeout_s)) + "\n\n")
        if steps:
            out.write(
                f"-- Rows removed by this plan are kept, whole, in {QUARANTINE_TABLE}.\n"
                f"CREATE TABLE IF NOT EXISTS {ident(QUARANTINE_TABLE)} (\n"
                "    run_id text NOT NULL,\n"
                "    table_name text NOT NULL,\n"
                "    row_key text NOT NULL,\n"
                "    reason text NOT NULL,\n"
                "    row_data jsonb NOT NULL,\n"
                "    quarantined_at timestamptz NOT NULL DEFAULT now()\n"
                ");\n\n"
                "-- Every row this plan changes or removes is first copied here (rollback.sql\n"
                "-- restores from these tables).\n"
            )
            for tbl in plan.tables():
                backup = ident(plan.backup_table(tbl))
                note = f"refaudit run {plan.run_id}: rows of {tbl} before repair.sql changed them"
                out.write(
                    f"CREATE TABLE IF NOT EXISTS {backup} AS TABLE {table(tbl)} WITH NO DATA;\n"
                    f"COMMENT ON TABLE {backup} IS {literal(note)};\n"
                )
            out.write("\n")
        for w in drops:
            out.write(
                f"-- {w.table}.{','.join(w.columns)} has the foreign key {w.name}: "
                f"{comment(w.definition)}.\n"
                "-- It points at the wrong table and would reject the repaired values; it is\n"
                "-- dropped here (only if still as audited). constraints.sql adds the right\n"
                "-- enforcement; rollback.sql re-creates this one.\n" + guarded_drop(w) + "\n\n"
            )
        seen: dict[str, set[str]] = {}
        for number, step in enumerate(steps, start=1):
            _write_step(out, plan, step, number, len(steps), _kept_items(step, quarantined, seen))
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


def _kept_items(
    step: Step, quarantined: dict[str, set[str]], seen: dict[str, set[str]]
) -> Iterator[tuple[str, str | None, str | None, str]]:
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


def _write_header(
    out: TextIO, plan: RepairPlan, steps: list[Step], database: str, snapshot: str
) -> None:
    lines = [
        "-- refaudit repair.sql",
        f"-- run {plan.run_id}, suite {plan.suite.suite}, database {comment(database)},",
        f"-- audited snapshot {snapshot}.",
        "--",
        "-- Review, then run:   psql -v ON_ERROR_STOP=1 -f repair.sql",
        "--           or:       refaudit apply repair.sql --db URL [--dry-run]",
        "-- Undo with rollback.sql. One transaction: it applies entirely or not at all.",
        "-- Each step changes only rows that still hold the value the audit saw (a row",
        "-- changed since is skipped and reported in a NOTICE); a second run changes nothing.",
        "-- Each step asserts that it changed exactly the rows matching their guard, or aborts.",
        "--",
        f"-- {len(steps)} steps:",
    ]
    for number, step in enumerate(steps, start=1):
        lines.append(f"--   {number}. {_describe(step)}")
    out.write("\n".join(lines) + "\n\n")


def _describe(step: Step) -> str:
    k = step.kind
    what = {
        "update": f"set {k.table}.{k.column} to the proposed value",
        "set_null": f"set {k.table}.{k.column} to NULL",
        "quarantine": f"move rows of {k.table} to {QUARANTINE_TABLE}",
    }[k.action]
    return f"{what}: {k.check}, {k.diagnosis} ({k.confidence}), {step.rows} rows"


def _write_step(
    out: TextIO,
    plan: RepairPlan,
    step: Step,
    number: int,
    total: int,
    items: Iterator[tuple[str, str | None, str | None, str]],
) -> None:
    k = step.kind
    check = plan.check_of(step)
    tbl = table(k.table)
    key = ident(plan.suite.key_of(k.table))
    col = ident(k.column)
    work = f"refaudit_step_{number}"
    out.write(f"-- Step {number} of {total}: {_describe(step)}\n")
    out.write(
        f"CREATE TEMP TABLE {work} ON COMMIT DROP AS\n"
        f"    SELECT {key} AS row_key, {col} AS old_value, {col} AS new_value,\n"
        f"           ''::text AS note, NULL::text AS outcome\n"
        f"    FROM {tbl} WITH NO DATA;\n"
    )
    rows = 0
    batch: list[str] = []

    def flush() -> None:
        if batch:
            out.write(
                f"INSERT INTO {work} (row_key, old_value, new_value, note) VALUES\n    "
                + ",\n    ".join(batch)
                + ";\n"
            )
            batch.clear()

    for row_key, old, new, note in items:
        batch.append(f"({literal(row_key)}, {literal(old)}, {literal(new)}, {literal(note)})")
        rows += 1
        if len(batch) >= BATCH_ROWS:
            flush()
    flush()

    guard = f"t.{col} IS NOT DISTINCT FROM s.old_value"
    if k.action in ("set_null", "quarantine"):
        guard += f" AND {_still_missing(check, k.column)}"
    label = (
        f"step={number} table={k.table} column={k.column} action={k.action} "
        f"diagnosis={k.diagnosis} confidence={k.confidence}"
    )
    if k.action == "quarantine":
        gone = (
            f"CASE WHEN EXISTS (SELECT 1 FROM {ident(QUARANTINE_TABLE)} q "
            f"WHERE q.run_id = {literal(plan.run_id)} AND q.table_name = {literal(k.table)} "
            "AND q.row_key = s.row_key::text) THEN 'done' ELSE 'skip' END"
        )
        done_when = ""
        change = (
            f"  INSERT INTO {ident(QUARANTINE_TABLE)}\n"
            "         (run_id, table_name, row_key, reason, row_data)\n"
            f"  SELECT {literal(plan.run_id)}, {literal(k.table)}, t.{key}::text,\n"
            f"         {literal(k.check + ': orphan: ')} || s.note, to_jsonb(t)\n"
            f"  FROM {tbl} t JOIN {work} s ON t.{key} = s.row_key WHERE s.outcome = 'repair';\n"
            "  GET DIAGNOSTICS kept = ROW_COUNT;\n"
            f"  DELETE FROM {tbl} t USING {work} s\n"
            f"  WHERE s.outcome = 'repair' AND t.{key} = s.row_key AND {guard};\n"
            "  GET DIAGNOSTICS changed = ROW_COUNT;\n"
            "  IF kept <> changed THEN\n"
            f"    RAISE EXCEPTION 'refaudit: step {number} quarantined % rows but deleted %; "
            "nothing was applied', kept, changed;\n"
            "  END IF;\n"
        )
    else:
        gone = "'skip'"
        done_when = f"      WHEN t.{col} IS NOT DISTINCT FROM s.new_value THEN 'done'\n"
        change = (
            f"  UPDATE {tbl} t SET {col} = s.new_value FROM {work} s\n"
            f"  WHERE s.outcome = 'repair' AND t.{key} = s.row_key AND {guard};\n"
            "  GET DIAGNOSTICS changed = ROW_COUNT;\n"
        )
    backup = ident(plan.backup_table(k.table))
    out.write(
        "DO $refaudit$\n"
        "DECLARE\n"
        "  planned bigint; matched bigint; already bigint; skipped bigint;\n"
        "  changed bigint := 0; kept bigint := 0; skipped_keys text;\n"
        "BEGIN\n"
        "  -- lock the planned rows, then classify them: still as audited (repair), already\n"
        "  -- repaired (done), or changed since the audit (skip)\n"
        f"  PERFORM 1 FROM {tbl} t JOIN {work} s ON t.{key} = s.row_key FOR UPDATE OF t;\n"
        f"  UPDATE {work} s SET outcome = CASE\n"
        f"      WHEN {guard} THEN 'repair'\n"
        f"{done_when}"
        "      ELSE 'skip' END\n"
        f"  FROM {tbl} t WHERE t.{key} = s.row_key;\n"
        f"  UPDATE {work} s SET outcome = {gone} WHERE outcome IS NULL;  -- no such row now\n"
        f"  INSERT INTO {backup}\n"
        f"  SELECT t.* FROM {tbl} t JOIN {work} s ON t.{key} = s.row_key\n"
        "  WHERE s.outcome = 'repair'\n"
        f"    AND NOT EXISTS (SELECT 1 FROM {backup} b WHERE b.{key} = t.{key});\n"
        f"{change}"
        "  SELECT count(*), count(*) FILTER (WHERE outcome = 'repair'),\n"
        "         count(*) FILTER (WHERE outcome = 'done'),\n"
        "         count(*) FILTER (WHERE outcome = 'skip')\n"
        f"    INTO planned, matched, already, skipped FROM {work};\n"
        f"  IF planned <> {rows} THEN\n"
        f"    RAISE EXCEPTION 'refaudit: step {number} holds % rows, the plan has {rows}; "
        "nothing was applied', planned;\n"
        "  END IF;\n"
        "  IF changed <> matched THEN\n"
        f"    RAISE EXCEPTION 'refaudit: step {number} changed % rows, but % matched their guard; "
        "nothing was applied', changed, matched;\n"
        "  END IF;\n"
        f"  RAISE NOTICE 'refaudit: {label} planned=% changed=% already=% skipped=%',\n"
        "    planned, changed, already, skipped;\n"
        "  IF skipped > 0 THEN\n"
        "    SELECT string_agg(row_key::text, ', ') INTO skipped_keys FROM (\n"
        f"      SELECT row_key FROM {work} WHERE outcome = 'skip' ORDER BY row_key "
        f"LIMIT {SKIPPED_LISTED}) k;\n"
        f"    RAISE NOTICE 'refaudit: step={number} table={k.table} skipped (changed since the "
        "audit): %',\n"
        f"      skipped_keys || CASE WHEN skipped > {SKIPPED_LISTED} "
        f"THEN format(' and %s more', skipped - {SKIPPED_LISTED}) ELSE '' END;\n"
        "  END IF;\n"
        "END $refaudit$;\n\n"
    )


def _write_review(out: TextIO, plan: RepairPlan) -> int:
    n = 0
    lines: list[str] = []
    for item in plan.review():
        n += 1
        lines.append(
            f"--   {item.table} {item.key}: {item.column} = {comment(item.value)} "
            f"[{item.check}] {item.diagnosis} ({item.confidence}): {comment(item.evidence)}"
        )
    if n:
        out.write(
            f"-- Not repaired: {n} rows need a person (ambiguous, or listed for review).\n"
            "-- No statement is generated for them.\n" + "\n".join(lines) + "\n\n"
        )
    return n


def _totals(steps: int) -> str:
    parts = " + ".join(
        f"(SELECT count(*) FILTER (WHERE outcome = '{{o}}') FROM refaudit_step_{i})"
        for i in range(1, steps + 1)
    )
    return (
        "DO $refaudit$ BEGIN\n"
        "  RAISE NOTICE 'refaudit: total changed=% already=% skipped=%',\n"
        f"    {parts.format(o='repair')},\n"
        f"    {parts.format(o='done')},\n"
        f"    {parts.format(o='skip')};\n"
        "END $refaudit$;\n\n"
    )


def write_rollback_sql(
    plan: RepairPlan,
    ctx: RepairContext,
    catalog: CatalogPlan,
    path: Path,
    *,
    database: str,
    lock_timeout_s: float,
    statement_timeout_s: float,
) -> None:
    drops = blocking_fks(plan, catalog)
    lines = [
        "-- refaudit rollback.sql",
        f"-- run {plan.run_id}, suite {plan.suite.suite}, database {comment(database)}.",
        "-- Undoes repair.sql of this run: every row it changed or removed is restored, whole,",
        "-- from the backup tables, its quarantine entries are removed, and the constraints it",
        "-- dropped are re-created as the audit saw them. If constraints.sql was applied, the",
        "-- constraints and triggers it added are dropped first (they would reject the restored",
        "-- rows). Rows changed by others after repair.sql ran are overwritten by the backup.",
        "-- Run:  psql -v ON_ERROR_STOP=1 -f rollback.sql   (or refaudit apply rollback.sql)",
        "",
        "BEGIN;",
        *_settings(lock_timeout_s, statement_timeout_s),
        "",
    ]
    tables = plan.tables()
    if tables:
        checks = "\n".join(
            f"  IF to_regclass({literal(plan.backup_table(t))}) IS NULL THEN\n"
            f"    RAISE EXCEPTION 'refaudit: backup table {plan.backup_table(t)} does not exist: "
            f"repair.sql of run {plan.run_id} was not applied to this database';\n"
            "  END IF;"
            for t in tables
        )
        lines += ["DO $refaudit$ BEGIN", checks, "END $refaudit$;", ""]
    before = _unique(catalog.undo_before + [
        f"ALTER TABLE {table(w.table)} DROP CONSTRAINT IF EXISTS {ident(w.name)};" for w in drops
    ])  # fmt: skip
    if before:
        lines += ["-- 1. what would reject the restored rows", *before, ""]
    for tbl in tables:
        lines.append(_restore(plan, ctx, tbl))
    after = _unique([s for w in drops for s in readd(w)] + catalog.undo_after)
    if after:
        lines += ["-- 3. constraints as the audit saw them", *after, ""]
    lines.append("COMMIT;")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def _unique(statements: list[str]) -> list[str]:
    return list(dict.fromkeys(statements))


def _restore(plan: RepairPlan, ctx: RepairContext, tbl: str) -> str:
    key_name = plan.suite.key_of(tbl)
    key = ident(key_name)
    cols = [c for c in ctx.columns[tbl] if not c.generated]
    # an identity GENERATED ALWAYS column cannot be set; the repair never changes one
    settable = [c for c in cols if c.name != key_name and not c.identity_always]
    backup = ident(plan.backup_table(tbl))
    names = ", ".join(ident(c.name) for c in cols)
    overriding = " OVERRIDING SYSTEM VALUE" if any(c.identity_always for c in cols) else ""
    sets = ",\n      ".join(f"{ident(c.name)} = b.{ident(c.name)}" for c in settable)
    return (
        f"-- 2. rows of {tbl}, from {plan.backup_table(tbl)}\n"
        "DO $refaudit$\n"
        "DECLARE restored bigint; reinserted bigint; released bigint;\n"
        "BEGIN\n"
        f"  UPDATE {table(tbl)} t SET\n      {sets}\n"
        f"  FROM {backup} b WHERE t.{key} = b.{key};\n"
        "  GET DIAGNOSTICS restored = ROW_COUNT;\n"
        f"  INSERT INTO {table(tbl)} ({names}){overriding}\n"
        f"  SELECT {', '.join('b.' + ident(c.name) for c in cols)} FROM {backup} b\n"
        f"  WHERE NOT EXISTS (SELECT 1 FROM {table(tbl)} t WHERE t.{key} = b.{key});\n"
        "  GET DIAGNOSTICS reinserted = ROW_COUNT;\n"
        f"  DELETE FROM {ident(QUARANTINE_TABLE)} WHERE run_id = {literal(plan.run_id)} "
        f"AND table_name = {literal(tbl)};\n"
        "  GET DIAGNOSTICS released = ROW_COUNT;\n"
        f"  RAISE NOTICE 'refaudit: rollback table={tbl} restored=% reinserted=% "
        "unquarantined=%', restored, reinserted, released;\n"
        "END $refaudit$;\n"
    )
