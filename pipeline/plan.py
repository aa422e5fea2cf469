"""What the engine runs against each table, a statement builder per stage: the row rules of
its checks in one statement (a scan, its shared joins and, per diagnosing rule, a branch
over the rows it flags), split when a table has more rules than one statement may carry
(`TablePlan`); the metrics of its aggregate checks in one statement per grouping
(`AggregatePlan`); and the columns a suite reads."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .checks.base import (
    ColumnTypes,
    DiagnosisScope,
    Key,
    RowRule,
    TableScan,
    check_rules,
    compile_condition,
    cut_text,
    guard_value,
    is_true,
    key_value,
    table_clause,
)
from .checks.model import Measure, TableFinding
from .checks.stage import AGGREGATE, ROW_SCAN
from .suite import Suite


def rule_parts(rule: RowRule) -> list[str]:
    """The result columns a rule has in a table statement, as prefixes of `{prefix}{i}`: flag
    and value; for a diagnosing rule also diagnosis, proposed value, confidence, evidence,
    repair column and the repair's guard (see `_guard`)."""
    return ["f", "v"] + (["d", "p", "c", "e", "rc", "ro"] if rule.diagnoser else [])


def _guard(rule: RowRule, column: Callable[[str], Any]) -> Any:
    """The audited value of every column of the row the rule's diagnosis read, as a JSON
    object of texts (a long one as its length and SHA-256, see `guard_value`): a repair
    changes the row only while each of them still holds."""
    args: list[Any] = []
    for name in rule.columns:
        args += [sa.literal(name, sa.Text), guard_value(column(name))]
    return sa.cast(sa.func.json_build_object(*args), sa.Text)


LOWER_HALF = "lower_half"
"""The parameter that picks a split table statement's half: true the lower, false the upper."""


@dataclass(frozen=True)
class KeyHalf:
    """A big table scanned in two halves of its key range, one statement on each of the
    audit's connections (`refaudit.engine`): the rows whose key is below the median key of a
    sample of the table's pages (parameter LOWER_HALF true), or the others (false; a NULL key
    among them); without a value, every row. One statement for both, compiled once;
    PostgreSQL folds the halves not asked for away before it plans.

    Both halves take their median from the same sample (`TABLESAMPLE SYSTEM (percent)
    REPEATABLE (0)`: which pages it reads depends only on the page numbers and the seed, and
    both connections see the same rows in the snapshot), so every row is in exactly one half,
    whatever the key's type. A statement's rows come in key order, and every key of the lower
    half sorts before the upper half's, so the lower half's rows and then the upper half's
    are the table's rows in key order. Each half is a range of the key, which PostgreSQL may
    read through the key's index rather than read the whole table for each half."""

    percent: float
    """Of the table's pages the sample reads."""
    not_null: bool
    """The key column is NOT NULL."""

    def condition(self, table: str, key: str, column: Any) -> Any:
        sample = sa.tablesample(
            table_clause(table, [key]), sa.func.system(self.percent), name="s",
            seed=sa.literal(0),
        )
        median = sa.select(
            sa.func.percentile_disc(0.5).within_group(sample.c[key])
        ).scalar_subquery()
        # NULL (no value) reads the whole table
        lower = sa.bindparam(LOWER_HALF, None, type_=sa.Boolean, required=False)
        if self.not_null:
            # a range (the key's index can read it), from the least key when the sample is
            # empty (NULL); no key is NULL
            least = table_clause(table, [key]).alias("m")
            # not min(): ORDER BY works for every type a key is sorted by (uuid has no min)
            first = (
                sa.select(least.c[key]).order_by(least.c[key]).limit(1).scalar_subquery()
            )
            upper = column >= sa.func.coalesce(median, first)
        else:
            upper = (column < median).is_not(sa.true())
        # nothing below a NULL median: the upper half is then every row
        return sa.case((lower, column < median), (sa.not_(lower), upper), else_=sa.true())


_CUT = {"v", "e"}
"""The parts of a rule's result that carry values or text made from them (value, evidence):
cut to VALUE_CHARS characters in a statement's output (see `cut_text`), never inside it,
where the diagnosis reads the values whole."""


@dataclass
class TablePlan:
    """Everything the engine will run against one table."""

    table: str
    key: Key
    rules: list[RowRule] = field(default_factory=list)
    scan: TableScan | None = None
    half: KeyHalf | None = None
    """Set: the statement reads only this half of the table's rows."""

    def statement(self, *, cut: bool = True) -> Any:
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

        Values are cut (`cut_text`) unless `cut` is False, which only a statement without
        diagnosing rules honours: `lines_statement` then cuts the one value each line shows
        rather than have every row repeat each rule's expression in the cut's SQL.
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
            flag = is_true(rule.flag)
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
        where = sa.or_(*(is_true(r.flag) for r in self.rules))
        if self.half is not None:
            assert isinstance(self.key, str), "only a one-column key is split"
            where = sa.and_(self.half.condition(self.table, self.key, scan.col(self.key)), where)
        if not diagnosing and not cut:
            return sa.select(*cols).select_from(scan.from_clause()).where(where).order_by(cols[0])
        if not diagnosing:
            shown = [
                cut_text(c.element).label(c.name)
                if c.name[1:].isdigit() and c.name[0] == "v"
                else c
                for c in cols
            ]
            return sa.select(*shown).select_from(scan.from_clause()).where(where).order_by(cols[0])
        scanned = sa.select(*cols).select_from(scan.from_clause()).where(where)

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
            for n in rule_parts(rule):
                expr = given.get(f"{n}{i}")
                if expr is None:
                    expr = sa.false() if n == "f" else sa.cast(sa.null(), sa.Text)
                elif n in _CUT:
                    expr = cut_text(expr)
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
        # every level is a subquery the planner keeps (OFFSET 0): each fact and step is
        # computed once per row, where PostgreSQL would otherwise inline the levels into one
        # and repeat each expression at every use (a larger plan, slower to make and to run)
        d = (
            sa.select(*keep, *(e.label(f"x_{n}") for n, e in {**carried, **facts}.items()))
            .select_from(scope.from_clause())
            .where(v.c[f"f{i}"])
            .offset(0)
            .subquery(f"d{i}_0")
        )

        def named(sub: Any) -> dict[str, Any]:
            return {c.name[2:]: c for c in sub.c if c.name.startswith("x_")}

        def column(sub: Any) -> Callable[[str], Any]:
            return lambda name: sub.c[f"c_{name}"]

        for level, step in enumerate(dg.steps(), start=1):
            more = step(named(d), column(d))
            d = (
                sa.select(*d.c, *(e.label(f"x_{n}") for n, e in more.items()))
                .offset(0)
                .subquery(f"d{i}_{level}")
            )
        diag = dg.conclude(named(d), column(d))
        flag = is_true(diag.flag) if diag.flag is not None else sa.true()
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
        # the conclusion a level of its own, so that cutting a value or the evidence
        # (`cut_text`) reads a column rather than repeat its expression in the statement
        done = (
            sa.select(d.c["__key"], *(e.label(k) for k, e in given.items()))
            .where(flag)
            .offset(0)
            .subquery(f"d{i}_out")
        )
        return sa.select(*self._row(done.c["__key"], {k: done.c[k] for k in given}))

    def lines_statement(self) -> Any:
        """The table's violations as violations.csv lines: one row per (row, rule), ordered
        by key and then rule.

        `statement()`'s rows are unpivoted in PostgreSQL (`unnest(array_positions(flags,
        true))`), so COPY can write the lines and Python handles no value at all. Same lines,
        in the same order, as the per-row path (`refaudit.engine._RuleRows`), which puts the
        violations of one key in rule order whatever order the plan gives the branches' rows.
        """
        # without diagnosing rules the values come uncut, each cut below where a line shows it
        cut_here = all(r.diagnoser is None for r in self.rules)
        w = self.statement(cut=not cut_here).order_by(None).subquery("w")
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
            def shown(i: int) -> Any:
                value = sa.cast(w.c[f"{prefix}{i}"], sa.Text)
                return cut_text(value) if cut_here and prefix in _CUT else value

            cases = {
                i + 1: shown(i) for i in range(len(self.rules)) if f"{prefix}{i}" in w.c
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
    return len(rule_parts(rule)) + len(rule.carry) + len(rule.columns)


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
        if check.stage is ROW_SCAN:
            by_table[check.table].append(check)
    plans = []
    columns = required_columns(suite)

    def plan_of(table: str, checks: list[Any]) -> tuple[TablePlan, list[int]]:
        scan = TableScan(table, columns, unique or set(), suite.key_spaces, types)
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


@dataclass
class AggregatePlan:
    """The aggregate checks of one table that share one grouping (`group_by`), as one
    statement: a `SELECT` of every metric of every check (a check's `where` as a FILTER
    clause on each of its aggregates) with `rows`, the rows each check looks at; grouped by
    the grouping's columns, one result row per group, else one row for the table."""

    table: str
    grouping: tuple[str, ...]
    checks: list[Any] = field(default_factory=list)
    now: Any = None
    """The time the rows stand for (`Measure.now`); None: the server's `now()`."""

    def statement(self) -> Any:
        """`g` (the group's values, as violations.csv writes a key) when grouped, and
        `m{i}_{name}` for metric `name` of check i."""
        need: dict[str, None] = dict.fromkeys(self.grouping)
        for check in self.checks:
            need.update(dict.fromkeys(sorted(check.reads({}).get(self.table, set()))))
            kept = check.row_filter()
            if kept is not None:
                need.update(dict.fromkeys(kept.columns()))
        t = table_clause(self.table, list(need)).alias("t")

        def col(name: str) -> Any:
            return t.c[name]

        out: list[Any] = []
        if self.grouping:
            key = self.grouping[0] if len(self.grouping) == 1 else self.grouping
            out.append(key_value(col, key).label("g"))
        for i, check in enumerate(self.checks):
            where = check.row_filter()
            cond = compile_condition(where, col) if where is not None else None

            def kept(aggregate: Any, cond: Any = cond) -> Any:
                return aggregate if cond is None else aggregate.filter(cond)

            now = sa.func.now() if self.now is None else self.now
            measure = Measure(col, kept, now)
            metrics = {"rows": kept(sa.func.count()), **check.metrics(measure)}
            out.extend(expr.label(f"m{i}_{name}") for name, expr in metrics.items())
        stmt = sa.select(*out).select_from(t)
        if self.grouping:
            groups = [t.c[g] for g in self.grouping]
            stmt = stmt.group_by(*groups).order_by(*groups)
        return stmt

    def findings(self, row: Any) -> list[tuple[Any, str, TableFinding]]:
        """(check, key, finding) for each check the statement's `row` fails: the table's
        row (key ""), or one group's (its values as a key; `NULL` for a group of NULLs; a
        group where none of the check's rows is left by its `where` is not the check's)."""
        values = row._mapping
        key = "" if not self.grouping else str(values["g"]) if values["g"] is not None else "NULL"
        out = []
        for i, check in enumerate(self.checks):
            prefix = f"m{i}_"
            mine = {k[len(prefix) :]: v for k, v in values.items() if k.startswith(prefix)}
            if self.grouping and not mine["rows"]:
                continue
            finding = check.judge(mine)
            if finding is not None:
                out.append((check, key, finding))
        return out


def plan_aggregates(suite: Suite, now: Any = None) -> list[AggregatePlan]:
    """The suite's aggregate checks, per table and grouping; a statement carries at most
    MAX_STATEMENT_COLUMNS metrics (a table with more is read by several). `now`: the time
    the rows stand for (`Measure.now`; None: the server's `now()`)."""
    measure = Measure(sa.column, lambda a: a, sa.func.now())
    plans: dict[tuple[str, tuple[str, ...]], list[AggregatePlan]] = {}
    used: dict[tuple[str, tuple[str, ...]], int] = {}
    for check in suite.checks:
        if check.stage is not AGGREGATE:
            continue
        group = (check.table, tuple(check.grouping()))
        shelf = plans.setdefault(group, [AggregatePlan(*group, now=now)])
        width = 1 + len(check.metrics(measure))  # `rows` and its metrics
        if shelf[-1].checks and used[group] + width > MAX_STATEMENT_COLUMNS:
            shelf.append(AggregatePlan(*group, now=now))
            used[group] = 0
        shelf[-1].checks.append(check)
        used[group] = used.get(group, 0) + width
    return [p for shelf in plans.values() for p in shelf]


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
