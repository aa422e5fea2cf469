"""rollback.sql: every row repair.sql changed or removed back from its backup, exactly
(templates/sql/rollback.sql.j2 and restore.sql.j2).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..checks.ddl import drop_constraint
from ..constraints import (
    CatalogPlan,
    readd,
)
from ..sqlrender import Sql, render, sql
from ..sqltext import (
    ident,
    join_name,
    qualified,
    regclass_text,
)
from .context import RepairContext, TableInfo
from .plan import CONFLICTS, RepairPlan
from .render import (
    LISTED_KEYS,
    RowKey,
    blocking_fks,
    deduplicated,
    drift_check,
    own_schema,
    plan_preamble,
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
    before = deduplicated(
        [
            *catalog.undo_before,
            *(drop_constraint(ctx.name(w.table), w.name) for w in [*drops, *unvalidated]),
        ]
    )
    after = deduplicated(
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
