"""constraints.sql: the DDL that makes a repair stick, generated from the suite's catalog checks
and what the audit found in the catalog.

- foreign keys and CHECKs are added `NOT VALID` (a short lock, no scan) and then validated
  with `VALIDATE CONSTRAINT` (a scan under a lock that lets writes through);
- a constraint pointing at the wrong table (`tutor_id -> users(id)`) is dropped first, but
  only while its definition is still the one the audit saw;
- expected indexes are built `CONCURRENTLY`;
- a conditional reference, which no foreign key can express, gets an enforcement trigger on
  the referencing table (insert/update) and on every target table (delete/update of the key).

Each catalog kind writes its own section (`Check.ddl_section`, in `refaudit.checks.catalog`)
from the building blocks of `refaudit.checks.ddl`; this module puts the sections together
and drops the wrong-target foreign keys no section dealt with.

Every statement can run again without harm. The file is not one transaction (a concurrent
index build cannot run inside one), so psql runs it statement by statement.

`CatalogPlan` also tells rollback.sql how to put the catalog back as the audit saw it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace

from .checks.base import ColumnTypes
from .checks.catalog import CatalogFacts, bare_name
from .checks.ddl import AuditedConstraint, CatalogPlan, DdlContext, guarded_drop, readd
from .checks.reference import Reference
from .sqlrender import render, sql
from .sqltext import comment
from .suite import Suite

# the building blocks come from refaudit.checks.ddl; refaudit.repair and the tests import them here
__all__ = [
    "AuditedConstraint",
    "CatalogPlan",
    "guarded_drop",
    "plan_catalog",
    "readd",
    "render_constraints",
    "wrong_target_fks",
]


def wrong_target_fks(suite: Suite, facts: dict[str, CatalogFacts]) -> list[AuditedConstraint]:
    """Foreign keys on a reference column that point elsewhere than the suite's target (any
    foreign key on a conditional reference is wrong: it has no single target)."""
    wrong: list[AuditedConstraint] = []
    for check in suite.checks:
        if not isinstance(check, Reference):  # the checks that name target rows
            continue
        table_facts = facts.get(check.table)
        if table_facts is None or not table_facts.exists:
            continue
        mine = check.key_of_row()
        for con in table_facts.constraints:
            # a key on exactly these columns; one that only shares a column is another's
            if con["type"] != "foreign_key" or con["columns"] != mine:
                continue
            if check.discriminator_column() is None:  # one target: its own key is right
                ((_, target),) = check.choices()
                right = (
                    bare_name(con["target"]) == bare_name(target.table)
                    and con["target_columns"] == target.key_columns()
                )
                if right:
                    continue
            audited = AuditedConstraint(
                check.table, con["conname"], con["definition"], tuple(con["columns"])
            )
            if audited not in wrong:
                wrong.append(audited)
    return wrong


def plan_catalog(
    suite: Suite,
    facts: dict[str, CatalogFacts],
    views: Iterable[str] = (),
    types: ColumnTypes | None = None,
    resolved: Mapping[str, tuple[str, str]] | None = None,
) -> CatalogPlan:
    """What constraints.sql does: each check's section (`Check.ddl_section`), then the drop
    of every wrong-target foreign key no section dealt with; `views` are suite tables that
    are views (or other relations that are not tables), which get no DDL; `types` the
    columns' types; `resolved` each suite table's (schema, relation) as the audit found it,
    which every statement names it by."""
    plan = CatalogPlan(wrong_fks=wrong_target_fks(suite, facts))
    ctx = DdlContext(
        suite=suite,
        facts=facts,
        plan=plan,
        types=types,
        views=frozenset(views),
        resolved=resolved or {},
    )
    for check in suite.checks:
        section = check.ddl_section(ctx)
        if section is not None:
            plan.sections.append(section)
    extra = [w for w in plan.wrong_fks if (w.table, w.name) not in ctx.owned]
    for w in extra:
        qualified = replace(w, table=ctx.name(w.table))
        plan.sections.append(
            f"-- {comment(w.table)}.{comment(','.join(w.columns))}: {comment(w.name)} "
            f"({comment(w.definition)}) points at the wrong table; it goes\n"
            + guarded_drop(qualified)
        )
        plan.undo_after.extend(readd(qualified))
    return plan


def render_constraints(
    plan: CatalogPlan,
    *,
    run_id: str,
    preamble: str,
) -> str:
    """constraints.sql (templates/sql/constraints.sql.j2); `preamble` binds it to its
    database (see `refaudit.repair.plan_preamble`)."""
    return render(
        "constraints.sql.j2",
        run_id=run_id,
        preamble=sql(preamble),
        sections=[sql(s) for s in plan.sections],
    )
