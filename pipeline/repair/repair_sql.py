"""repair.sql: the plan's steps rendered from templates/sql/repair.sql.j2 and step.sql.j2, as the
steps' spill files are read (flat memory).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from graphlib import CycleError, TopologicalSorter
from pathlib import Path
from typing import Any

from ..checks.reference import Reference
from ..constraints import (
    CatalogPlan,
)
from ..sqlrender import Sql, sql, stream
from ..sqltext import (
    PSQL_ALLOW_OTHER,
    comment,
    ident,
    key_equals,
    literal,
)
from ..words import plural
from .context import RepairContext, TableInfo
from .plan import DEFAULT_SCHEMA, QUARANTINE, Item, RepairPlan, Step, StepKind
from .render import (
    BATCH_ROWS,
    LISTED_KEYS,
    RowKey,
    blocking_fks,
    drift_check,
    guard_holds,
    identity_dict,
    names_target,
    own_schema,
    plan_preamble,
    same_text,
)


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
        guard_holds(f"t.{ident(g)}", f"s.{name}", hashed.get(g))
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
        valid = names_target(
            ctx,
            check,
            "s.new_value" if k.column == check.column else ref,
            "s.new_value" if disc_column and k.column == disc_column else disc,
            through=ref if remapped else None,
        )
    else:  # an orphan: still nothing to name
        valid = f"NOT {names_target(ctx, check, ref, disc)}"
    if k.action != "quarantine":
        others = [
            guard_holds(f"t.{ident(g)}", f"s.{name}", hashed.get(g))
            for g, name in zip(k.guard, guards, strict=True)
            if g != k.column
        ]
        done_when = sql(" AND ".join([same_text(f"t.{ident(k.column)}", "s.new_value"), *others]))
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
    summary = RepairSummary(schema=plan.schema, database=identity_dict(ctx.identity))
    # A row that goes to quarantine needs no other repair, and one quarantine per row.
    quarantined: dict[str, set[str]] = {}
    for step in plan.steps:
        if step.kind.action == "quarantine":
            keys = quarantined.setdefault(step.kind.table, set())
            keys.update(key for key, *_ in step.items())
    steps = []
    seen: dict[str, set[str]] = {}
    for step in removal_order(plan, ctx, plan.steps):
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


def removal_order(plan: RepairPlan, ctx: RepairContext, steps: list[Step]) -> list[Step]:
    """`steps` with the quarantine steps ordered so that a table whose rows name another
    table's rows (a suite reference or a foreign key) loses its rows first: a row held only
    because a row this plan removes names it is then removed in the same run, and a second
    run changes nothing. Tables that name each other keep the plain order."""
    removing = [s for s in steps if s.kind.action == "quarantine"]
    tables = {s.kind.table for s in removing}
    by_sql = {ctx.tables[t].sql: t for t in ctx.tables}
    graph: dict[str, set[str]] = {t: set() for t in tables}  # table -> the tables before it
    for check in plan.suite.checks:
        if isinstance(check, Reference):
            for ref in check.refs():
                if ref.table in tables and check.table in tables and ref.table != check.table:
                    graph[ref.table].add(check.table)
    for t in tables:
        for fk in ctx.tables[t].inbound:
            child = by_sql.get(fk.child)
            if child in tables and child != t:
                graph[t].add(child)
    try:
        rank = {t: i for i, t in enumerate(TopologicalSorter(graph).static_order())}
    except CycleError:
        return steps
    order = sorted(range(len(removing)), key=lambda i: (rank[removing[i].kind.table], i))
    return [s for s in steps if s.kind.action != "quarantine"] + [removing[i] for i in order]


def _review_lines(plan: RepairPlan) -> Iterator[str]:
    for item in plan.review():
        why = f" Not repaired: {item.reason}." if item.reason else ""
        yield (
            f"{item.table} {item.key}: {item.column} = {item.value} [{item.check}] "
            f"{item.diagnosis} ({item.confidence}): {item.evidence}.{why}"
        )


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
            f"{what}: {k.check}, {k.diagnosis} ({k.confidence}), {plural(step.rows, 'row')}, "
            f"guarded on {', '.join(k.guard)}"
        )
    )
