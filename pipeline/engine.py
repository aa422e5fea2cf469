"""The audit engine: every check of a suite, pushed down into PostgreSQL, inside one read-only
snapshot.

Each kind declares its stage (`refaudit.checks.stage`), and each stage has its statements per
table. Row scan: per audited table one statement evaluates every row rule of that table in a
single scan (LEFT JOINs shared between rules) and returns only violating rows, streamed with
COPY (so PostgreSQL may scan in parallel). Aggregate: per table (and grouping) one `SELECT`
of every metric its aggregate checks ask for, which each check then judges. Set: one query
per check. Catalog: a few catalog queries. Plus one `count(*)` per table (and per row
filter). Its parts, by job: `refaudit.plan` (the table statements), `refaudit.jobs`
(running them on the snapshot's connection and a second one that imports the snapshot;
their output waits in spooled temporary files for its turn, so violations.csv comes out in
the same order either way and memory stays flat), `refaudit.sink` (where findings go),
`refaudit.verify` (the suite against the schema, before a row is read), `refaudit.raising`
(rows on which a rule the suite wrote raises, found and reported instead of ending the
audit); this module puts them together (`run_checks`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .checks.base import (
    ColumnTypes,
    RowRule,
    Violation,
    compile_condition,
    filter_key,
    table_clause,
)
from .checks.catalog import (
    CatalogFacts,
    annotate_check_constraints,
    catalog_findings,
    read_catalogs,
    relation_types,
    relation_unique_columns,
)
from .checks.reference import LOOKUP_SUFFIX, ConditionalReferenceCheck
from .checks.relations import NO_DEFINITION, Relation, read_relations
from .checks.stage import AGGREGATE, CATALOG, ROW_SCAN, SET, STAGES, Stage
from .copy_stream import Bound, Query, Shared, copy_each, copy_lines, spool_lines, spool_rows
from .jobs import Job, run_jobs, split_workers, tune_session
from .plan import (
    LOWER_HALF,
    AggregatePlan,
    KeyHalf,
    TablePlan,
    plan_aggregates,
    plan_tables,
    rule_parts,
)
from .progress import Progress, ProgressLike, as_progress
from .raising import guarded_run
from .results import CheckResult
from .sink import ViolationSink
from .suite import Suite


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _each(items: Iterable[Any], take: Callable[[Any], Any]) -> None:
    for item in items:
        take(item)


class _RuleRows:
    """What turns the rows of a table statement (see `TablePlan.statement`) into violations,
    one per flagged rule. Columns are found by name once, then read by position.

    A row's key can come in several rows (one per statement branch that flags it), in an
    order the plan decides; the violations of one key are handed on in rule order, as
    `TablePlan.lines_statement` writes them, once the next key (or `finish`) shows that key
    is complete. Rows come in key order, so this holds one key's violations at a time."""

    def __init__(self, plan: TablePlan, sink: ViolationSink) -> None:
        self.plan, self.sink = plan, sink
        self.rules: list[tuple[int, RowRule, list[int]]] = []
        self.key_at = 0
        self.key: str | None = None
        self.held: list[tuple[int, Violation]] = []

    def __call__(self, row: Any) -> None:
        if not self.rules:
            names = {name: i for i, name in enumerate(row._mapping)}
            self.key_at = names["__key"]
            for i, rule in enumerate(self.plan.rules):
                self.rules.append((i, rule, [names[f"{part}{i}"] for part in rule_parts(rule)]))
        key = str(row[self.key_at])
        if key != self.key:
            self.finish()
            self.key = key
        for i, rule, at in self.rules:
            if row[at[0]]:
                self.held.append((i, self._violation(rule, key, row, at)))

    def _violation(self, rule: RowRule, key: str, row: Any, at: list[int]) -> Violation:
        value = _text(row[at[1]])
        if rule.diagnoser is None:
            return Violation(rule.rule_id, self.plan.table, key, rule.column, value)
        return Violation(
            rule.rule_id,
            self.plan.table,
            key,
            rule.column,
            value,
            diagnosis=_text(row[at[2]]),
            proposed_value=_text(row[at[3]]),
            confidence=_text(row[at[4]]),
            evidence=_text(row[at[5]]),
            repair_column=_text(row[at[6]]),
            repair_guard=row[at[7]],
        )

    def finish(self) -> None:
        """Hand on the violations of the last key."""
        self.held.sort(key=lambda held: held[0])
        for _, violation in self.held:
            self.sink.add(violation)
        self.held.clear()


def _set_rows(check: Any, sink: ViolationSink) -> Callable[[Any], None]:
    """What turns one row (key, value, kept) of a set check's `query` into a violation."""
    column = ",".join(check.column_list())

    def take(row: Any) -> None:
        sink.add(
            Violation(
                check.id,
                check.table,
                str(row.key),
                column,
                row.value,
                evidence=check.evidence(row.kept),
            )
        )

    return take


def _aggregate_rows(plan: AggregatePlan, sink: ViolationSink) -> Callable[[Any], None]:
    """What turns one row of an aggregate statement (the table's, or one group's) into the
    findings of the checks it fails."""

    def take(row: Any) -> None:
        for check, key, finding in plan.findings(row):
            sink.add(
                Violation(
                    check.id,
                    check.table,
                    key,
                    ",".join(check.column_list()),
                    finding.value,
                    evidence=finding.evidence,
                )
            )

    return take


def _guarded_job(step: str, plan: TablePlan, sink: ViolationSink) -> Job:
    """A table statement with rules that may raise on a row (`refaudit.raising`): run in a
    savepoint, spooled (never streamed: nothing reaches the sink before it is known to have
    run), a raising row a finding of its rule."""

    def run(conn: Connection, plan: TablePlan) -> Any:
        if sink.takes_lines:
            return spool_lines(conn, plan.lines_statement())
        return spool_rows(conn, plan.statement())

    def take(done: tuple[Any, list[Violation]]) -> None:
        spooled, errors = done
        if sink.takes_lines:
            _each(spooled.lines(), sink.add_line)
        else:
            rows = _RuleRows(plan, sink)
            _each(spooled.rows(), rows)
            rows.finish()
        _each(errors, sink.add)

    return Job(ROW_SCAN.progress, step, run=guarded_run(plan, run), take=take)


def _rows_job(
    stage: str,
    step: str,
    stmt: Query,
    take: Callable[[Any], None],
    note: Callable[[int], None] | None,
    finish: Callable[[], None] = lambda: None,
) -> Job:
    """A statement whose rows go to `take` one by one: as they arrive when run in its turn,
    from its spool otherwise; then `finish` is called."""

    def taken(spooled: Any) -> None:
        _each(spooled.rows(), take)
        finish()

    def stream(conn: Connection) -> None:
        copy_each(conn, stmt, take, note)
        finish()

    return Job(stage, step, run=partial(spool_rows, stmt=stmt), take=taken, stream=stream)


def _count(conn: Connection, table: str, filters: dict[str, Any]) -> dict[str, int]:
    """The table's rows, and the rows each filter keeps (`filter_key` -> count), in one scan."""
    columns = sorted({c for f in filters.values() for c in f.columns()})
    t = table_clause(table, columns).alias("t")
    keys = list(filters)
    counted = [
        sa.func.count().filter(compile_condition(filters[k], lambda c: t.c[c])) for k in keys
    ]
    row = conn.execute(sa.select(sa.func.count(), *counted).select_from(t)).one()
    return {"": int(row[0]), **{k: int(n) for k, n in zip(keys, row[1:], strict=True)}}


@dataclass
class _Run:
    """What a stage's statement builder needs from the audit: the snapshot's connection, the
    suite, where findings go, and `meta` (check id -> (check, columns)) to fill."""

    conn: Connection
    suite: Suite
    sink: ViolationSink
    prog: Progress
    types: ColumnTypes
    as_of: str | None
    meta: dict[str, tuple[Any, list[str]]]
    relations: dict[str, Relation]
    """What the catalog says of the suite's tables (columns and indexes), read once."""
    companion: bool
    """The audit has a second connection: a big table's scan is split in two halves
    (`KeyHalf`), one on each."""
    proven: dict[str, str] = field(default_factory=dict)  # check id -> what proves it
    _split_workers: int | None = None

    def split_workers(self) -> int:
        """The parallel workers of each half (`jobs.split_workers`), read when first asked."""
        if self._split_workers is None:
            self._split_workers = split_workers(self.conn)
        return self._split_workers

    def pages(self, table: str) -> int:
        """The table's size in pages, as the catalog last measured it (0: not known)."""
        rel = self.relations.get(table)
        return rel.pages if rel is not None else 0


SPLIT_MIN_PAGES = 4096
"""A table of at least this many pages (32 MB of 8 kB pages) is scanned in two halves."""
SAMPLE_PAGES = 500
"""About how many of its pages the sample that splits a table reads."""


def _split(run: _Run, plan: TablePlan) -> TablePlan:
    """`plan` with a `KeyHalf`, to run as two statements over the halves of the table's key
    range, when the audit has two connections and the table is big (a table, or a
    materialized view: what TABLESAMPLE reads) and its key one column (a plan none of whose
    rules may raise); else as it is.

    Why: PostgreSQL runs a table statement's scan and joins in parallel, but what follows
    them (the diagnosis of the flagged rows, the sort) in one process, while the second
    connection has often finished its statements: one core then waits. Two halves, one on
    each connection, overlap those steps as well. Measured on a 2-core machine at 1M
    requests: the table statement alone 3.4-3.8 s with two parallel workers, its two halves
    side by side 3.2 s without any; at 10M 34.9 s against 31.0 s."""
    rel = run.relations.get(plan.table)
    if (
        not run.companion
        or rel is None
        or rel.kind not in ("r", "m")
        or rel.pages < SPLIT_MIN_PAGES
        or not isinstance(plan.key, str)
    ):
        return plan
    percent = 100.0 if rel.pages <= SAMPLE_PAGES else round(100.0 * SAMPLE_PAGES / rel.pages, 3)
    column = rel.column(plan.key)
    return replace(plan, half=KeyHalf(percent, column is not None and column.not_null))


def _row_scan_jobs(run: _Run) -> list[Job]:
    """One statement per table (or a few, when its rules are too many for one)."""
    sink, jobs = run.sink, []

    def found(n: int) -> None:
        run.prog.note(f"{n:,} violations so far")

    for plan in plan_tables(run.suite, relation_unique_columns(run.relations), run.types):
        for rule in plan.rules:
            cols = run.meta.setdefault(rule.rule_id, (rule.check, []))[1]
            if rule.column not in cols:
                cols.append(rule.column)
        step = f"scanning {plan.table} ({len(plan.rules)} rules)"
        if any(rule.check.may_raise for rule in plan.rules):
            jobs.append(_guarded_job(step, plan, sink))
            continue
        plan = _split(run, plan)
        lines = sink.takes_lines  # PostgreSQL writes the lines: no Python object per violation
        # built by the thread that runs it, when it does: the first statement goes out sooner
        build = plan.lines_statement if lines else plan.statement
        parts: list[tuple[Query, str, int | None, int]] = [
            (build, step, None, run.pages(plan.table))
        ]
        if plan.half is not None:
            shared = Shared(build)
            parts = [
                (Bound(shared, {LOWER_HALF: lower}), f"{step}, {half} half of its keys",
                 run.split_workers(), run.pages(plan.table) // 2)
                for lower, half in ((True, "lower"), (False, "upper"))
            ]
        for query, named, workers, cost in parts:
            if lines:
                job = Job(
                    ROW_SCAN.progress,
                    named,
                    run=partial(spool_lines, stmt=query),
                    take=lambda spooled: _each(spooled.lines(), sink.add_line),
                    stream=partial(copy_lines, stmt=query, take=sink.add_line, note=found),
                )
            else:
                rows = _RuleRows(plan, sink)
                job = _rows_job(ROW_SCAN.progress, named, query, rows, found, rows.finish)
            jobs.append(replace(job, workers=workers, cost=cost))
    return jobs


def _aggregate_jobs(run: _Run) -> list[Job]:
    """One statement per table and grouping (or a few, when its metrics are too many),
    judged at one time for every connection: the snapshot's `now()`, or `as_of`."""
    now = run.as_of
    if now is None and any(c.stage is AGGREGATE for c in run.suite.checks):
        now = run.conn.execute(sa.select(sa.cast(sa.func.now(), sa.Text))).scalar_one()
    at = sa.cast(sa.literal(now), sa.DateTime(timezone=True))
    jobs = []
    for agg in plan_aggregates(run.suite, at):
        for check in agg.checks:
            run.meta[check.id] = (check, check.column_list())
        grouped = f" by {', '.join(agg.grouping)}" if agg.grouping else ""
        step = f"measuring {agg.table}{grouped} ({len(agg.checks)} checks)"
        take = _aggregate_rows(agg, run.sink)
        job = _rows_job(AGGREGATE.progress, step, agg.statement(), take, None)
        jobs.append(replace(job, cost=run.pages(agg.table)))
    return jobs


def _set_jobs(run: _Run) -> list[Job]:
    """One query per check: (key, value, kept) of each finding; none for a check the
    table's catalog proves (`Check.proven_by`), which reads no row."""
    jobs = []
    checks = [c for c in run.suite.checks if c.stage is SET]
    for check in checks:
        run.meta[check.id] = (check, check.column_list())
        proof = check.proven_by(run.relations.get(check.table))
        if proof is not None:
            run.proven[check.id] = proof
            continue
        stmt = check.query(run.suite.key_of(check.table))
        take = _set_rows(check, run.sink)
        job = _rows_job(SET.progress, f"checking {check.id}", stmt, take, None)
        jobs.append(replace(job, cost=run.pages(check.table)))
    return jobs


_STATEMENTS: dict[Stage, Callable[[_Run], list[Job]]] = {
    ROW_SCAN: _row_scan_jobs,
    AGGREGATE: _aggregate_jobs,
    SET: _set_jobs,
}
"""The statement builder of each stage that reads rows, in the order they run; the catalog
stage reads `pg_catalog` after them (`run_checks`)."""


def run_checks(
    conn: Connection,
    suite: Suite,
    sink: ViolationSink,
    *,
    progress: ProgressLike = None,
    catalog: dict[str, CatalogFacts] | None = None,
    companion: bool = True,
    types: ColumnTypes | None = None,
    as_of: str | None = None,
    on_first_statement: Callable[[], None] = lambda: None,
) -> list[CheckResult]:
    """Run every check of `suite` on `conn` (already inside the snapshot). With `companion`,
    statements also run on a second connection in the same snapshot (see `run_jobs`); the
    output is the same either way. `types`: the suite tables' column types, when already
    read (`verify_values` returns them). `as_of`: when the rows stand for another time (a
    saved snapshot: when it was taken, ISO 8601), what aggregate checks take as now; else
    the snapshot's own `now()`, read once so every connection uses the same.
    `on_first_statement` is called once the first statement is on its way."""
    prog = as_progress(progress)
    tune_session(conn)
    rows: dict[str, dict[str, int]] = {}  # table -> filter_key -> rows
    rule_meta: dict[str, tuple[Any, list[str]]] = {}
    unknown = {c.stage.name for c in suite.checks if c.stage not in STAGES}
    assert not unknown, f"no engine stage runs {unknown}"
    relations = read_relations(conn, suite.tables, {"columns", "indexes"}, NO_DEFINITION)
    if types is None:
        types = relation_types(relations)
    run = _Run(conn, suite, sink, prog, types, as_of, rule_meta, relations, companion)
    jobs = [job for build in _STATEMENTS.values() for job in build(run)]
    filters: dict[str, dict[str, Any]] = {}
    for check in suite.checks:
        if check.stage.reads_rows:
            kept = check.row_filter()
            per_table = filters.setdefault(check.table, {})
            if kept is not None:
                per_table[filter_key(check)] = kept
    for table in filters:
        jobs.append(
            Job(
                "",  # bookkeeping (rows_checked), not a progress step
                f"counting {table}",
                run=partial(_count, table=table, filters=filters[table]),
                take=partial(rows.__setitem__, table),
                cost=run.pages(table),
                early=True,
            )
        )
    run_jobs(conn, jobs, prog, companion=companion, on_first_statement=on_first_statement,
             split=run.split_workers)

    facts = catalog if catalog is not None else {}
    in_catalog = [c for c in suite.checks if c.stage is CATALOG]
    prog.stage(CATALOG.progress, len({c.table for c in in_catalog}))
    unread = [c.table for c in in_catalog if c.table not in facts]
    for tbl in dict.fromkeys(unread):
        prog.step(f"reading catalog of {tbl}")
    facts.update(read_catalogs(conn, unread))  # every table at once
    annotate_check_constraints(conn, suite, suite.checks, facts)
    for check in in_catalog:
        rule_meta[check.id] = (check, check.column_list())
        for f in catalog_findings(check, facts[check.table]):
            sink.add(
                Violation(
                    check.id,
                    check.table,
                    f.key,
                    f.column,
                    f.value,
                    diagnosis="catalog",
                    evidence=f.problem,
                )
            )

    lookups = [
        c for c in suite.checks if isinstance(c, ConditionalReferenceCheck) and c.lookup
    ]
    for check in lookups:
        for finding in check.lookup_findings:
            sink.add(finding)

    results = []
    samples = sink.samples
    for rule_id, (check, cols) in rule_meta.items():
        reads_rows = check.stage.reads_rows
        result = CheckResult(
            id=rule_id,
            family=check.kind,
            table=check.table,
            columns=cols,
            severity=check.severity,
            description=check.description or "",
            rows_checked=rows.get(check.table, {}).get(filter_key(check), 0) if reads_rows else 1,
            violations=sink.counts.get(rule_id, 0),
            max_count=check.threshold.max_count,
            max_rate=check.threshold.max_rate,
            min_count=check.threshold.min_count,
            min_rate=check.threshold.min_rate,
            scope=check.scope.value,
            stage=check.stage.name,
            sample=samples.get(rule_id, []),
            proven_by=run.proven.get(rule_id),
        )
        if sink.baseline is not None:
            result.known = sink.known.get(rule_id, 0)
            result.new = result.violations - result.known
        result.settle()
        results.append(result)
    results += [_lookup_result(check, sink) for check in lookups]
    return results


def _lookup_result(check: ConditionalReferenceCheck, sink: ViolationSink) -> CheckResult:
    """The result of a `lookup`'s type table itself, `<id>.lookup` (`refaudit.lookups`): an
    error when the suite names a type the table does not hold (a mistake of the suite, whatever
    the check's severity), else of the check's severity; any finding is over its threshold."""
    assert check.lookup is not None
    rule_id = check.id + LOOKUP_SUFFIX
    unknown = any(f.diagnosis == "unknown_name" for f in check.lookup_findings)
    result = CheckResult(
        id=rule_id,
        family=check.kind,
        table=check.lookup.table,
        columns=check.lookup.name_columns(),
        severity="error" if unknown else check.severity,
        description=f"the type table of {check.id}",
        rows_checked=len(check.labels),
        violations=sink.counts.get(rule_id, 0),
        sample=sink.samples.get(rule_id, []),
    )
    if sink.baseline is not None:
        result.known = sink.known.get(rule_id, 0)
        result.new = result.violations - result.known
    result.settle()
    return result
