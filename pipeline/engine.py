"""The audit engine: every check of a suite, pushed down into PostgreSQL, inside one read-only
snapshot.

Per audited table the engine issues one statement that evaluates every row rule of that table
in a single scan (LEFT JOINs shared between rules) and returns only violating rows, streamed
with COPY (so PostgreSQL may scan in parallel); plus one `count(*)` per table, one windowed
query per uniqueness check and a few catalog queries. The statements after the first also run
on a second connection that imports the snapshot (`_run_jobs`); their output waits in spooled
temporary files for its turn, so violations.csv comes out in the same order either way and
memory stays flat.
"""

from __future__ import annotations

import contextlib
import csv
import operator
from collections import defaultdict
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from typing import Any, TextIO

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection

from pipeline import db, sqltext
from pipeline.baseline import BASELINE_COLUMN, KNOWN, NEW, Baseline, csv_reader
from pipeline.checks.base import (
    VIOLATION_FIELDS,
    ColumnTypes,
    DiagnosisScope,
    Key,
    RowRule,
    TableScan,
    Violation,
    check_rules,
    compile_condition,
    filter_key,
    key_value,
    table_clause,
)
from pipeline.checks.catalog import (
    CatalogFacts,
    annotate_check_constraints,
    catalog_findings,
    column_types,
    read_catalog,
)
from pipeline.copy_stream import Spooled, copy_each, copy_lines, spool_lines, spool_rows
from pipeline.errors import DatabaseError, SuiteError
from pipeline.history import pair
from pipeline.progress import Progress, ProgressLike, as_progress
from pipeline.results import CheckResult
from pipeline.suite import Suite

SAMPLE_SIZE = 20
SAMPLE_CHARS = 120
"""How much of a long field a sample keeps (report.html, junit.xml); violations.csv has it all."""


def shorten(text: str, limit: int = SAMPLE_CHARS) -> str:
    """`text`, or its first `limit` characters and a visible note of how long it is."""
    if len(text) <= limit:
        return text
    return f"{text[:limit]}… [{len(text):,} characters; whole in violations.csv]"


def sample_item(fields: dict[str, str]) -> dict[str, str]:
    """A violation as a sample keeps it: every field shortened (a sample stays small, however
    long the values)."""
    return {name: shorten(value) for name, value in fields.items()}


_violation_fields = operator.attrgetter(*VIOLATION_FIELDS)  # one C call per violation


class ViolationSink:
    """Streams violations to violations.csv, counting per rule and per diagnosis and keeping a
    small sample; `tap`, when given, sees every violation too (the repair planner).

    With a baseline, every line gets a `baseline` column (known|new, after the standard
    columns), counts are kept per rule for known and new violations, and the sample shows new
    violations first.
    """

    def __init__(
        self,
        handle: TextIO,
        baseline: Baseline | None = None,
        tap: Callable[[Violation], None] | None = None,
        *,
        keep_keys: bool = False,
    ) -> None:
        self._handle = handle
        self.keys: dict[str, list[str]] | None = defaultdict(list) if keep_keys else None
        """With `keep_keys`: per check, every violation's `history.pair(key, column)`."""
        self._writer = csv.writer(handle, lineterminator="\n")
        self.baseline = baseline
        self._tap = tap
        self._writer.writerow(VIOLATION_FIELDS + ((BASELINE_COLUMN,) if baseline else ()))
        self.counts: dict[str, int] = defaultdict(int)
        self.known: dict[str, int] = defaultdict(int)
        self.diagnoses: dict[tuple[str, str, str], int] = defaultdict(int)
        self._samples: dict[str, list[dict[str, str]]] = defaultdict(list)
        self._known_samples: dict[str, list[dict[str, str]]] = defaultdict(list)

    @property
    def takes_lines(self) -> bool:
        """Whether violations may come as ready-made violations.csv lines (`add_line`), i.e.
        nothing here needs each one as a `Violation` (a baseline and a tap do)."""
        return self.baseline is None and self._tap is None

    def add_line(self, line: str) -> None:
        """One violation as its violations.csv line, written by PostgreSQL (COPY ... csv):
        what `add` writes, without building it in Python."""
        self._handle.write(line)
        # only a line with a quoted field needs the csv module
        fields = next(csv_reader([line])) if '"' in line else line[:-1].split(",")
        check = fields[0]
        self.counts[check] += 1
        if self.keys is not None:
            self.keys[check].append(pair(fields[2], fields[3]))
        diagnosis = fields[5]
        if diagnosis and diagnosis != "catalog":
            self.diagnoses[(check, diagnosis, fields[7])] += 1
        sample = self._samples[check]
        if len(sample) < SAMPLE_SIZE:
            sample.append(sample_item(dict(zip(VIOLATION_FIELDS, fields, strict=True))))

    def add(self, v: Violation) -> None:
        row: tuple[str, ...] = _violation_fields(v)
        sample = self._samples[v.check]
        if self.baseline is not None:
            known = self.baseline.is_known(v)
            row += (KNOWN if known else NEW,)
            if known:
                self.known[v.check] += 1
                sample = self._known_samples[v.check]
        self._writer.writerow(row)
        self.counts[v.check] += 1
        if self.keys is not None:
            self.keys[v.check].append(pair(v.key, v.column))
        if v.diagnosis and v.diagnosis != "catalog":
            self.diagnoses[(v.check, v.diagnosis, v.confidence)] += 1
        if len(sample) < SAMPLE_SIZE:
            item = sample_item({f: getattr(v, f) for f in VIOLATION_FIELDS})
            if self.baseline is not None:
                item[BASELINE_COLUMN] = row[-1]
            sample.append(item)
        if self._tap is not None:
            self._tap(v)

    def diagnosis_summary(self) -> list[dict[str, Any]]:
        """[{check, diagnosis, confidence, rows}], for results.json and the report."""
        return [
            {"check": check, "diagnosis": diagnosis, "confidence": confidence, "rows": n}
            for (check, diagnosis, confidence), n in sorted(self.diagnoses.items())
        ]

    @property
    def samples(self) -> dict[str, list[dict[str, str]]]:
        """Up to SAMPLE_SIZE violations per rule, new ones first."""
        rules = set(self._samples) | set(self._known_samples)
        return {
            r: (self._samples.get(r, []) + self._known_samples.get(r, []))[:SAMPLE_SIZE]
            for r in rules
        }


def _parts(rule: RowRule) -> list[str]:
    """The result columns a rule has in a table statement, as prefixes of `{prefix}{i}`: flag
    and value; for a diagnosing rule also diagnosis, proposed value, confidence, evidence,
    repair column and the repair's guard (see `_guard`)."""
    return ["f", "v"] + (["d", "p", "c", "e", "rc", "ro"] if rule.diagnoser else [])


def _guard(rule: RowRule, column: Callable[[str], Any]) -> Any:
    """The audited value of every column of the row the rule's diagnosis read, as a JSON
    object of texts: a repair changes the row only while each of them still holds."""
    args: list[Any] = []
    for name in rule.columns:
        args += [sa.literal(name, sa.Text), sa.cast(column(name), sa.Text)]
    return sa.cast(sa.func.json_build_object(*args), sa.Text)


@dataclass
class TablePlan:
    """Everything the engine will run against one table."""

    table: str
    key: Key
    rules: list[RowRule] = field(default_factory=list)
    scan: TableScan | None = None

    def statement(self) -> Any:
        """One statement for the whole table.

        The table is scanned once; only rows some rule flags come back. When rules explain
        their violations (a `Diagnoser`), the flagged rows become a MATERIALIZED CTE `v` and
        the result is a UNION ALL of one branch with the plain rules' findings and, per
        diagnosing rule, one branch over the rows *that rule* flags: its facts are LEFT JOINed
        to those rows only, its steps are subquery levels, and its conclusion fills the
        violations.csv columns. So diagnosis costs grow with the rule's violations, not with
        the table. Every result row has, per rule i, `f{i}` (violates) and `v{i}` (value) and,
        for diagnosing rules, `d{i}`, `p{i}`, `c{i}`, `e{i}` (diagnosis, proposed value,
        confidence, evidence) and `rc{i}`, `ro{i}` (repair column and audited value); a
        branch leaves the other rules' columns FALSE or NULL. Rows come in key order.
        """
        assert self.scan is not None
        scan = self.scan
        cols: list[Any] = [key_value(scan.col, self.key).label("__key")]
        carried_columns: dict[str, None] = {}
        # A flagged row keeps only what its flags need: the value of a rule it violates, the
        # columns for diagnosis when a diagnosing rule flags it (narrow rows: the flagged set
        # of a big table stays in memory for the diagnosis branches, which read it again).
        diagnosing = []
        for i, rule in enumerate(self.rules):
            flag = rule.flag.is_(sa.true())
            cols.append(flag.label(f"f{i}"))
            cols.append(sa.case((flag, rule.value)).label(f"v{i}"))
            for name, expr in rule.carry.items():
                cols.append(expr.label(f"r{i}_{name}"))
            carried_columns.update(dict.fromkeys(rule.columns))
            if rule.diagnoser is not None:
                diagnosing.append(flag)
        if diagnosing:
            needed = sa.or_(*diagnosing)
            cols.extend(sa.case((needed, scan.col(c))).label(f"c_{c}") for c in carried_columns)
        where = sa.or_(*(r.flag.is_(sa.true()) for r in self.rules))
        scanned = sa.select(*cols).select_from(scan.from_clause()).where(where)
        if not any(r.diagnoser for r in self.rules):
            return scanned.order_by(cols[0])

        v = scanned.cte("v").prefix_with("MATERIALIZED")
        plain = [i for i, r in enumerate(self.rules) if r.diagnoser is None]
        branches = []
        if plain:
            columns = {f"f{i}": v.c[f"f{i}"] for i in plain} | {
                f"v{i}": v.c[f"v{i}"] for i in plain
            }
            branches.append(
                sa.select(*self._row(v.c["__key"], columns)).where(
                    sa.or_(*(v.c[f"f{i}"] for i in plain))
                )
            )
        for i, rule in enumerate(self.rules):
            if rule.diagnoser is not None:
                branches.append(self._diagnosis_branch(v, scan, i, rule))
        # in key order: the run's output does not depend on join strategies or branch order
        if len(branches) == 1:
            return branches[0].order_by(sa.literal_column("__key"))
        return sa.union_all(*branches).order_by(sa.literal_column("__key"))

    def _row(self, key: Any, given: dict[str, Any]) -> list[Any]:
        """The result columns of one branch: `given`, the rest FALSE or NULL."""
        out = [key.label("__key")]
        for i, rule in enumerate(self.rules):
            for n in _parts(rule):
                expr = given.get(f"{n}{i}")
                if expr is None:
                    expr = sa.false() if n == "f" else sa.cast(sa.null(), sa.Text)
                out.append(expr.label(f"{n}{i}"))
        return out

    def _diagnosis_branch(self, v: Any, scan: TableScan, i: int, rule: RowRule) -> Any:
        """The rows rule i flags, with its diagnosis (see `Diagnoser`)."""
        dg = rule.diagnoser
        assert dg is not None
        scope = DiagnosisScope(v, scan, rows=v.c[f"f{i}"])
        carried = {name: v.c[f"r{i}_{name}"] for name in rule.carry}
        carried.update(flag=v.c[f"f{i}"], value=v.c[f"v{i}"])
        facts = dg.facts(scope, carried)
        for name in facts:
            assert name not in carried, f"fact {name} of {rule.rule_id} shadows a carried one"
        keep = [v.c["__key"], v.c[f"v{i}"], *(c for c in v.c if c.name.startswith("c_"))]
        d = (
            sa.select(*keep, *(e.label(f"x_{n}") for n, e in {**carried, **facts}.items()))
            .select_from(scope.from_clause())
            .where(v.c[f"f{i}"])
            .subquery(f"d{i}_0")
        )

        def named(sub: Any) -> dict[str, Any]:
            return {c.name[2:]: c for c in sub.c if c.name.startswith("x_")}

        def column(sub: Any) -> Callable[[str], Any]:
            return lambda name: sub.c[f"c_{name}"]

        for level, step in enumerate(dg.steps(), start=1):
            more = step(named(d), column(d))
            d = sa.select(*d.c, *(e.label(f"x_{n}") for n, e in more.items())).subquery(
                f"d{i}_{level}"
            )
        diag = dg.conclude(named(d), column(d))
        flag = diag.flag.is_(sa.true()) if diag.flag is not None else sa.true()
        given = {
            f"f{i}": flag,
            f"v{i}": d.c[f"v{i}"],
            f"d{i}": diag.diagnosis,
            f"p{i}": diag.proposed,
            f"c{i}": diag.confidence,
            f"e{i}": diag.evidence,
            f"rc{i}": diag.repair_column if diag.repair_column is not None else None,
            f"ro{i}": _guard(rule, column(d)),
        }
        given = {k: e for k, e in given.items() if e is not None}
        return sa.select(*self._row(d.c["__key"], given)).where(flag)

    def lines_statement(self) -> Any:
        """The table's violations as violations.csv lines: one row per (row, rule), ordered
        by key and then rule.

        `statement()`'s rows are unpivoted in PostgreSQL (`unnest(array_positions(flags,
        true))`), so COPY can write the lines and Python handles no value at all. Same lines
        as the per-row loop of `run_checks`; within one key that loop follows the statement's
        branches.
        """
        w = self.statement().order_by(None).subquery("w")
        # the positions (1-based) of the rule flags that are TRUE: one row per violation,
        # and only the violations (not one row per rule and row, filtered)
        flagged = (
            sa.func.unnest(
                sa.func.array_positions(
                    postgresql.array([w.c[f"f{i}"] for i in range(len(self.rules))]), sa.true()
                )
            )
            .table_valued("ord")
            .render_derived(name="x")
        )
        ord_ = flagged.c.ord

        def pick(prefix: str) -> Any:
            """`{prefix}{i}` of the flagged rule as text, NULL (written empty) for '' or none."""
            cases = {
                i + 1: sa.cast(w.c[f"{prefix}{i}"], sa.Text)
                for i in range(len(self.rules))
                if f"{prefix}{i}" in w.c
            }
            if not cases:
                return sa.cast(sa.null(), sa.Text)
            return sa.func.nullif(sa.case(cases, value=ord_, else_=sa.null()), "")

        def constant(values: list[str]) -> Any:
            return postgresql.array([sa.literal(v, sa.Text) for v in values])[ord_]

        return (
            sa.select(
                constant([r.rule_id for r in self.rules]).label("check"),
                sa.literal(self.table, sa.Text).label("table"),
                sa.cast(w.c["__key"], sa.Text).label("key"),
                constant([r.column for r in self.rules]).label("column"),
                pick("v").label("value"),
                pick("d").label("diagnosis"),
                pick("p").label("proposed_value"),
                pick("c").label("confidence"),
                pick("e").label("evidence"),
            )
            .select_from(w.join(flagged, sa.true()))
            .order_by(w.c["__key"], ord_)
        )


MAX_STATEMENT_COLUMNS = 1000
"""The most result columns one table statement may have; PostgreSQL refuses a select list of
more than 1664 entries. A table with more rules is scanned by several statements."""


def _width(rule: RowRule) -> int:
    """The result columns a rule adds to a table statement, at most (see `TablePlan`)."""
    return len(_parts(rule)) + len(rule.carry) + len(rule.columns)


def plan_tables(
    suite: Suite,
    unique: set[tuple[str, str]] | None = None,
    types: ColumnTypes | None = None,
) -> list[TablePlan]:
    """Group the suite's row rules by table; each table becomes one scan, or several when its
    rules need more than MAX_STATEMENT_COLUMNS columns. `unique` lists the (table, column)
    pairs known to be unique, which are joined directly; `types` the columns' types (values
    are compared with keys of another type as text)."""
    by_table: dict[str, list[Any]] = defaultdict(list)
    for check in suite.checks:
        if check.stage == "row":
            by_table[check.table].append(check)
    plans = []
    columns = required_columns(suite)

    def plan_of(table: str, checks: list[Any]) -> tuple[TablePlan, list[int]]:
        scan = TableScan(
            table, columns, unique or set(), suite.key_spaces, types,
            composite_key=len(suite.key_columns(table)) > 1,
        )  # fmt: skip
        plan = TablePlan(table, suite.key_of(table), scan=scan)
        widths = []
        for check in checks:
            rules = check_rules(check, scan)
            plan.rules.extend(rules)
            widths.append(sum(_width(r) for r in rules))
        return plan, widths

    for table, checks in by_table.items():
        plan, widths = plan_of(table, checks)
        if 1 + sum(widths) <= MAX_STATEMENT_COLUMNS:
            plans.append(plan)
            continue
        # split the checks (never one check's rules) into statements of bounded width
        groups: list[list[Any]] = [[]]
        width = 1
        for check, w in zip(checks, widths, strict=True):
            if groups[-1] and width + w > MAX_STATEMENT_COLUMNS:
                groups.append([])
                width = 1
            groups[-1].append(check)
            width += w
        plans.extend(plan_of(table, group)[0] for group in groups)
    return plans


def required_columns(suite: Suite) -> dict[str, set[str]]:
    """Every column the row and set checks read, per table, keys included (catalog checks
    need none)."""
    need: dict[str, set[str]] = defaultdict(set)
    for check in suite.checks:
        for table, cols in check.reads(suite.key_spaces).items():
            need[table] |= cols
            need[table] |= set(suite.key_columns(table))
        kept = check.row_filter()
        if kept is not None:
            need[check.table] |= set(kept.columns())
    return need


def verify_schema(conn: Connection, suite: Suite) -> None:
    """Fail with one clear line when the suite names a table or column the database lacks."""
    for table, cols in sorted(required_columns(suite).items()):
        regclass = conn.execute(
            sa.text("SELECT to_regclass(:t)::text"), {"t": sqltext.regclass_text(table)}
        ).scalar()
        if regclass is None:
            raise DatabaseError(
                f"table {table} named by suite {suite.suite} does not exist in the database "
                "- check --db and --suite"
            )
        present = set(
            conn.execute(
                sa.text(
                    "SELECT attname::text FROM pg_attribute WHERE attrelid = to_regclass(:t) "
                    "AND attnum > 0 AND NOT attisdropped"
                ),
                {"t": sqltext.regclass_text(table)},
            ).scalars()
        )
        missing = sorted(cols - present)
        if missing:
            raise DatabaseError(
                f"column {table}.{missing[0]} named by suite {suite.suite} does not exist in the "
                "database - check the suite against the schema"
            )


# What PostgreSQL says when a suite's value does not fit its column: a data exception
# (class 22: invalid input for the type or enum, out of range, invalid regular expression),
# an operator that does not exist for the two types, or mismatched types.
_VALUE_ERROR_CLASS = "22"
_VALUE_ERRORS = frozenset({"42883", "42804"})


def _value_error(exc: sa_exc.DBAPIError) -> str | None:
    """PostgreSQL's message when `exc` says a value does not fit; None for any other error."""
    orig: Any = exc.orig
    code = getattr(orig, "pgcode", None) or ""
    if not (code.startswith(_VALUE_ERROR_CLASS) or code in _VALUE_ERRORS):
        return None
    diag = getattr(orig, "diag", None)
    message = getattr(diag, "message_primary", None) or str(orig).strip().splitlines()[0]
    return " ".join(str(message).split())


def _probe(conn: Connection, stmt: Any) -> str | None:
    """Run `stmt` in a savepoint; PostgreSQL's message if a value did not fit, else None (any
    other error is raised)."""
    try:
        with conn.begin_nested():
            conn.execute(stmt)
    except sa_exc.DBAPIError as exc:
        message = _value_error(exc)
        if message is None:
            raise
        return message
    return None


class _TypedNulls:
    """Stands in for a table's scan: each column is a NULL of the column's type, so a rule's
    SQL can be planned without the table (no lock, no row) and PostgreSQL still converts
    every value to the type it is compared with."""

    def __init__(self, types: dict[str, str]) -> None:
        self._types = types

    def col(self, name: str) -> Any:
        return sa.literal_column(f"CAST(NULL AS {self._types[name]})")


def verify_values(conn: Connection, suite: Suite) -> None:
    """Fail with a SuiteError naming the check when a check cannot run in PostgreSQL as
    written: a `regex` that PostgreSQL's `~` rejects, or a value its column's type (or enum)
    cannot hold or be compared with. The server decides, on the rules' own SQL with each
    column a NULL of its type (no table is read or locked); one statement per table unless
    something is wrong."""
    where = str(suite.path) if suite.path else f"suite {suite.suite}"
    for check in suite.checks:
        for stmt, explain in check.probes():
            message = _probe(conn, stmt)
            if message is not None:
                raise SuiteError(f"{where}: check {check.id}: {explain(message)}")
    by_table: dict[str, list[tuple[Any, list[Any]]]] = defaultdict(list)
    every_type = column_types(conn, [c.table for c in suite.checks])
    types: dict[str, _TypedNulls] = {}
    for (table, column), kind in every_type.items():
        types.setdefault(table, _TypedNulls({}))._types[column] = kind.name
    for check in suite.checks:
        nulls = types.setdefault(check.table, _TypedNulls({}))
        tests = check.value_tests(nulls)
        kept = check.row_filter()
        if kept is not None:
            tests = [*tests, compile_condition(kept, nulls.col)]
        if tests:
            by_table[check.table].append((check, tests))
    for checks in by_table.values():
        every = [t for _check, tests in checks for t in tests]
        for start in range(0, len(every), MAX_STATEMENT_COLUMNS):
            if _probe(conn, sa.select(*every[start : start + MAX_STATEMENT_COLUMNS])) is None:
                continue
            for check, tests in checks:
                message = _probe(conn, sa.select(*tests))
                if message is not None:
                    columns = ", ".join(f"{check.table}.{c}" for c in check.column_list())
                    raise SuiteError(
                        f"{where}: check {check.id}: {message} ({columns}); write values the "
                        "column can hold in the check"
                    )


_UNIQUE_SQL = sa.text("""
SELECT a.attname::text
FROM pg_index i JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = i.indkey[0]
WHERE i.indrelid = to_regclass(:t) AND i.indisunique AND i.indnatts = 1
  AND i.indpred IS NULL AND i.indexprs IS NULL
""")


def unique_columns(conn: Connection, tables: Iterable[str]) -> set[tuple[str, str]]:
    """(table, column) pairs that a single-column unique index guarantees to be unique."""
    return {
        (t, c)
        for t in tables
        for c in conn.execute(_UNIQUE_SQL, {"t": sqltext.regclass_text(t)}).scalars()
    }


def _text(value: Any) -> str:
    return "" if value is None else str(value)


def _each(items: Iterable[Any], take: Callable[[Any], Any]) -> None:
    for item in items:
        take(item)


def _rule_rows(plan: TablePlan, sink: ViolationSink) -> Callable[[Any], None]:
    """What turns one row of a table statement (see `TablePlan.statement`) into violations,
    one per flagged rule. Columns are found by name once, then read by position."""
    rules: list[tuple[RowRule, list[int]]] = []
    where: list[int] = []

    def take(row: Any) -> None:
        if not where:
            names = {name: i for i, name in enumerate(row._mapping)}
            where.append(names["__key"])
            for i, rule in enumerate(plan.rules):
                rules.append((rule, [names[f"{part}{i}"] for part in _parts(rule)]))
        key = str(row[where[0]])
        for rule, at in rules:
            if not row[at[0]]:
                continue
            value = _text(row[at[1]])
            if rule.diagnoser is None:
                sink.add(Violation(rule.rule_id, plan.table, key, rule.column, value))
                continue
            sink.add(
                Violation(
                    rule.rule_id,
                    plan.table,
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
            )

    return take


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


def _rows_job(
    stage: str,
    step: str,
    stmt: Any,
    take: Callable[[Any], None],
    note: Callable[[int], None] | None,
) -> _Job:
    """A statement whose rows go to `take` one by one: as they arrive when run in its turn,
    from its spool otherwise."""
    return _Job(
        stage,
        step,
        run=partial(spool_rows, stmt=stmt),
        take=lambda spooled: _each(spooled.rows(), take),
        stream=partial(copy_each, stmt=stmt, take=take, note=note),
    )


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


# Transaction-local settings for the audit's statements. A table's statement returns only its
# violating rows, but the planner cannot estimate rules across columns and expects most rows
# back, which makes a parallel plan look expensive; and the joins' hash tables and the
# uniqueness sorts should not spill to disk for want of a few MB. JIT off: the planner's
# estimate for the lines statement's `JOIN unnest(array_positions(...))` (and for the diagnosis
# branches over the flagged rows, which it takes for the whole table) runs to 10^10 rows and
# more, past every `jit_*_above_cost`, and a server with JIT (Debian's postgresql-15 has it on
# by default) then spends far longer compiling than running (20 s of 24 s at 1M requests).
# The costs and work_mem are only ever moved in the direction named (never lowering the
# server's own work_mem); jit is always turned off.
PLANNER_SETTINGS = (("jit", "off"), ("parallel_tuple_cost", "0.01"), ("work_mem", "64MB"))
_RAISE_WORK_MEM = sa.text(
    "SELECT set_config('work_mem', :value, true) "
    "WHERE pg_size_bytes(current_setting('work_mem')) < pg_size_bytes(:value)"
)
_LOWER_COST = sa.text(
    "SELECT set_config(:name, :value, true) "
    "WHERE CAST(current_setting(:name) AS float8) > CAST(:value AS float8)"
)
_SET = sa.text("SELECT set_config(:name, :value, true)")


def tune_session(conn: Connection) -> None:
    """Apply PLANNER_SETTINGS to the current transaction (SET LOCAL semantics)."""
    for name, value in PLANNER_SETTINGS:
        if name == "work_mem":
            conn.execute(_RAISE_WORK_MEM, {"value": value})
        elif name.endswith("_cost"):
            conn.execute(_LOWER_COST, {"name": name, "value": value})
        else:
            conn.execute(_SET, {"name": name, "value": value})


@dataclass
class _Job:
    """One statement of the audit. `run` executes it on any connection in the snapshot and
    returns what it produced (spooled); `take` hands that to the sink, on the calling thread,
    in the job's turn; `stream` does both at once, for a job run in its turn."""

    stage: str
    """The progress stage it belongs to; "" for none."""
    step: str
    run: Callable[[Connection], Any]
    take: Callable[[Any], None]
    stream: Callable[[Connection], Any] | None = None


class _Companion:
    """A second connection in the audit's snapshot, running jobs in a thread of its own in the
    order they are submitted (a job it has not started yet can still be cancelled, to run on
    the main connection instead). When one of its statements fails it cancels the main
    connection's statement, so the audit stops at once with that first error."""

    def __init__(self, conn: Connection, main: Connection) -> None:
        self._conn = conn
        self._main: Any = main.connection.dbapi_connection
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="refaudit-companion")
        self.error: BaseException | None = None
        self._closing = False

    def submit(self, job: _Job) -> Future[Any]:
        future = self._pool.submit(job.run, self._conn)
        future.add_done_callback(self._failed)
        return future

    def _failed(self, future: Future[Any]) -> None:
        if self._closing or future.cancelled() or future.exception() is None:
            return
        if self.error is None:
            self.error = future.exception()
            with contextlib.suppress(Exception):  # the main connection may be gone already
                self._main.cancel()

    def check(self) -> None:
        """Raise the companion's error, if it had one (before starting another statement)."""
        if self.error is not None:
            raise self.error

    def close(self, futures: list[Future[Any]]) -> None:
        """Stop: cancel what is queued and the statement running, if any; wait for the
        thread."""
        self._closing = True
        self._pool.shutdown(wait=False, cancel_futures=True)
        if any(f.running() for f in futures):
            with contextlib.suppress(Exception):
                self._conn.connection.dbapi_connection.cancel()  # type: ignore[union-attr]
        self._pool.shutdown(wait=True)


def _run_jobs(conn: Connection, jobs: list[_Job], prog: Progress, *, companion: bool) -> None:
    """Run `jobs` and hand their output to the sink in list order.

    With `companion`, a second connection in the same snapshot runs the jobs after the
    first while the first runs here (PostgreSQL's serial steps, such as diagnosis, leave a
    core idle); each job's output waits in a spool for its turn. A job the companion has not
    started when its turn comes runs here, streamed; while this thread waits for a job the
    companion is running, it takes later jobs the companion has not started yet.
    """
    stage = ""

    def announce(job: _Job) -> None:
        nonlocal stage
        if not job.stage:
            return
        if job.stage != stage:
            stage = job.stage
            prog.stage(stage, sum(j.stage == stage for j in jobs))
        prog.step(job.step)

    def here(job: _Job) -> None:
        if side is not None:
            side.check()
        announce(job)
        if job.stream is not None:
            job.stream(conn)
        else:
            job.take(job.run(conn))

    side: _Companion | None = None
    wanted = companion and len(jobs) > 1
    with db.companion(conn) if wanted else contextlib.nullcontext() as other:
        if other is None:
            for job in jobs:
                here(job)
            return
        tune_session(other)
        side = _Companion(other, conn)
        taken: dict[int, Any] = {}
        futures: list[Future[Any]] = []

        def then_take(job: _Job, spooled: Any) -> None:
            try:
                announce(job)
                job.take(spooled)
            finally:
                if isinstance(spooled, Spooled):
                    spooled.close()

        try:
            futures.extend(side.submit(job) for job in jobs[1:])
            try:
                here(jobs[0])
                for i, (job, future) in enumerate(zip(jobs[1:], futures, strict=True)):
                    side.check()
                    if i in taken:
                        then_take(job, taken.pop(i))
                        continue
                    if future.cancel():
                        here(job)
                        continue
                    for later in range(i + 1, len(futures)):
                        if future.done():
                            break
                        if later not in taken and futures[later].cancel():
                            side.check()
                            taken[later] = jobs[later + 1].run(conn)
                    then_take(job, future.result())
            except Exception:
                # the main connection's statement was cancelled because the companion's
                # failed: report the companion's error, the cause (never for Ctrl-C)
                side.check()
                raise
        finally:
            side.close(futures)
            left = list(taken.values()) + [
                f.result() for f in futures if f.done() and not f.cancelled() and not f.exception()
            ]
            for spooled in left:
                if isinstance(spooled, Spooled):
                    spooled.close()  # output of a run that failed: never read


def run_checks(
    conn: Connection,
    suite: Suite,
    sink: ViolationSink,
    *,
    progress: ProgressLike = None,
    catalog: dict[str, CatalogFacts] | None = None,
    companion: bool = True,
) -> list[CheckResult]:
    """Run every check of `suite` on `conn` (already inside the snapshot). With `companion`,
    statements also run on a second connection in the same snapshot (see `_run_jobs`); the
    output is the same either way."""
    prog = as_progress(progress)
    tune_session(conn)
    rows: dict[str, dict[str, int]] = {}  # table -> filter_key -> rows
    rule_meta: dict[str, tuple[Any, list[str]]] = {}
    plans = plan_tables(suite, unique_columns(conn, suite.tables), column_types(conn, suite.tables))
    jobs: list[_Job] = []

    def found(n: int) -> None:
        prog.note(f"{n:,} violations so far")

    for plan in plans:
        for rule in plan.rules:
            cols = rule_meta.setdefault(rule.rule_id, (rule.check, []))[1]
            if rule.column not in cols:
                cols.append(rule.column)
        step = f"scanning {plan.table} ({len(plan.rules)} rules)"
        if sink.takes_lines:  # PostgreSQL writes the lines: no Python object per violation
            lines = plan.lines_statement()
            jobs.append(
                _Job(
                    "row checks",
                    step,
                    run=partial(spool_lines, stmt=lines),
                    take=lambda spooled: _each(spooled.lines(), sink.add_line),
                    stream=partial(copy_lines, stmt=lines, take=sink.add_line, note=found),
                )
            )
        else:
            jobs.append(
                _rows_job("row checks", step, plan.statement(), _rule_rows(plan, sink), found)
            )

    uniques = [c for c in suite.checks if c.stage == "set"]
    for unique in uniques:
        rule_meta[unique.id] = (unique, unique.column_list())
        stmt = unique.query(suite.key_of(unique.table))
        jobs.append(
            _rows_job("uniqueness", f"checking {unique.id}", stmt, _set_rows(unique, sink), None)
        )
    filters: dict[str, dict[str, Any]] = {}
    for check in suite.checks:
        if check.stage != "catalog":
            kept = check.row_filter()
            per_table = filters.setdefault(check.table, {})
            if kept is not None:
                per_table[filter_key(check)] = kept
    for table in dict.fromkeys([p.table for p in plans] + [c.table for c in uniques]):
        jobs.append(
            _Job(
                "",  # bookkeeping (rows_checked), not a progress step
                f"counting {table}",
                run=partial(_count, table=table, filters=filters.get(table, {})),
                take=partial(rows.__setitem__, table),
            )
        )
    _run_jobs(conn, jobs, prog, companion=companion)

    facts = catalog if catalog is not None else {}
    prog.stage("catalog", len({c.table for c in suite.checks if c.stage == "catalog"}))
    for check in suite.checks:
        if check.stage == "catalog" and check.table not in facts:
            prog.step(f"reading catalog of {check.table}")
            facts[check.table] = read_catalog(conn, check.table)
    annotate_check_constraints(conn, suite, suite.checks, facts)
    for check in suite.checks:
        if check.stage == "catalog":
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

    results = []
    samples = sink.samples
    for rule_id, (check, cols) in rule_meta.items():
        is_catalog = check.stage == "catalog"
        result = CheckResult(
            id=rule_id,
            family=check.kind,
            table=check.table,
            columns=cols,
            severity=check.severity,
            description=check.description or "",
            rows_checked=1 if is_catalog else rows.get(check.table, {}).get(filter_key(check), 0),
            violations=sink.counts.get(rule_id, 0),
            max_count=check.threshold.max_count,
            max_rate=check.threshold.max_rate,
            sample=samples.get(rule_id, []),
        )
        if sink.baseline is not None:
            result.known = sink.known.get(rule_id, 0)
            result.new = result.violations - result.known
        result.settle()
        results.append(result)
    return results
