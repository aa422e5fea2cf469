"""constraints.sql: the DDL that makes a repair stick, generated from the suite's catalog checks
and what the audit found in the catalog.

- foreign keys and CHECKs are added `NOT VALID` (a short lock, no scan) and then validated
  with `VALIDATE CONSTRAINT` (a scan under a lock that lets writes through);
- a constraint pointing at the wrong table (`tutor_id -> users(id)`) is dropped first, but
  only while its definition is still the one the audit saw;
- expected indexes are built `CONCURRENTLY`;
- a conditional reference, which no foreign key can express, gets an enforcement trigger on
  the referencing table (insert/update) and on every target table (delete/update of the key).

Every statement can run again without harm. The file is not one transaction (a concurrent
index build cannot run inside one), so psql runs it statement by statement.

`CatalogPlan` also tells rollback.sql how to put the catalog back as the audit saw it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from pipeline.checks.base import ColumnTypes
from pipeline.checks.catalog import (
    DISAGREES,
    CatalogFacts,
    bare_name,
    check_constraint,
    check_index,
    check_trigger,
    find_constraint,
    unwanted_constraints,
)
from pipeline.checks.ddl import (
    AuditedConstraint,
    CatalogPlan,
    add_unless_exists,
    columns_sql,
    conditional_reference_triggers,
    constraint_definition,
    drop_constraint,
    guarded_drop,
    readd,
)
from pipeline.sqlrender import render, sql
from pipeline.sqltext import comment, ident, object_name, table
from pipeline.suite import (
    ConditionalReferenceCheck,
    ConstraintCheck,
    IndexCheck,
    ReferenceCheck,
    Suite,
    TriggerCheck,
)

# the building blocks come from pipeline.checks.ddl; repair.py and the tests import them here
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
        if not isinstance(check, ReferenceCheck | ConditionalReferenceCheck):
            continue
        table_facts = facts.get(check.table)
        if table_facts is None or not table_facts.exists:
            continue
        mine = check.key_of_row()
        for con in table_facts.constraints:
            # a key on exactly these columns; one that only shares a column is another's
            if con["type"] != "foreign_key" or con["columns"] != mine:
                continue
            if isinstance(check, ReferenceCheck):
                right = (
                    bare_name(con["target"]) == bare_name(check.target.table)
                    and con["target_columns"] == check.target.key_columns()
                    and con["columns"] == mine
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
) -> CatalogPlan:
    """What constraints.sql does; `views` are suite tables that are views (or other
    relations that are not tables), which get no DDL; `types` the columns' types."""
    plan = CatalogPlan(wrong_fks=wrong_target_fks(suite, facts))
    expected_names: set[tuple[str, str]] = set()
    not_tables = set(views)
    for check in suite.checks:
        table_facts = facts.get(check.table, CatalogFacts(exists=False))
        catalog_kind = isinstance(check, ConstraintCheck | IndexCheck | TriggerCheck)
        if catalog_kind and check.table in not_tables:
            plan.sections.append(
                f"-- {comment(check.id)}: {comment(check.table)} is a view, not a table; "
                "constraints, indexes and\n-- triggers belong on the tables it reads from: "
                "nothing is generated for it"
            )
            continue
        if isinstance(check, ConstraintCheck) and check.absent:
            unwanted = unwanted_constraints(check, table_facts)
            section = _unwanted(check, unwanted, plan)
            expected_names |= {(check.table, c["conname"]) for c in unwanted}
        elif isinstance(check, ConstraintCheck):
            section = _constraint(suite, check, table_facts, plan)
            found = find_constraint(check, table_facts) if table_facts.exists else None
            expected_names.add((check.table, found["conname"] if found else check.name or ""))
        elif isinstance(check, IndexCheck):
            section = _index(check, table_facts)
        elif isinstance(check, TriggerCheck):
            section = _trigger(suite, check, table_facts, plan, types)
        else:
            continue
        plan.sections.append(section)
    extra = [w for w in plan.wrong_fks if (w.table, w.name) not in expected_names]
    for w in extra:
        plan.sections.append(
            f"-- {comment(w.table)}.{comment(','.join(w.columns))}: {comment(w.name)} "
            f"({comment(w.definition)}) points at the wrong table; it goes\n" + guarded_drop(w)
        )
        plan.undo_after.extend(readd(w))
    return plan


def _constraint(
    suite: Suite, check: ConstraintCheck, facts: CatalogFacts, plan: CatalogPlan
) -> str:
    head = "-- " + comment(
        f"{check.id}: {check.type.replace('_', ' ')} on {check.table}({','.join(check.columns)})"
    )
    found = find_constraint(check, facts) if facts.exists else None
    problems = [f.problem for f in check_constraint(check, facts)]
    name = check.name or (found["conname"] if found else None)
    if name is None:
        name = object_name(
            check.table,
            *check.columns,
            {"foreign_key": "fkey", "check": "check", "unique": "key", "primary_key": "pkey"}[
                check.type
            ],
        )
    if not problems:
        return f"{head}\n--   present and validated at the audit: nothing to do"
    definition = constraint_definition(suite, check)
    if definition is None:
        return f"{head}\n--   {comment('; '.join(problems))}\n--   no definition can be derived"
    lines = [head, f"--   at the audit: {comment('; '.join(problems))}"]
    audited = (
        AuditedConstraint(
            check.table, found["conname"], found["definition"], tuple(found["columns"])
        )
        if found
        else None
    )
    only_unvalidated = found is not None and not _differs(check, found)
    if audited is not None and not only_unvalidated:
        lines.append(guarded_drop(audited))
    not_valid = check.type in ("foreign_key", "check")
    if not only_unvalidated:
        lines.append(add_unless_exists(check.table, name, definition, not_valid))
    if not_valid:
        lines.append(f"ALTER TABLE {table(check.table)} VALIDATE CONSTRAINT {ident(name)};")
    # rollback: what these statements did would reject the restored rows; put back the audit's
    plan.undo_before.append(drop_constraint(check.table, name))
    if audited is not None:
        plan.undo_after.extend(readd(audited))
    return "\n".join(lines)


def _unwanted(check: ConstraintCheck, found: list[dict[str, Any]], plan: CatalogPlan) -> str:
    kind = check.type.replace("_", " ")
    head = "-- " + comment(f"{check.id}: no {kind} on {check.table}({','.join(check.columns)})")
    if not found:
        return f"{head}\n--   absent at the audit: nothing to do"
    lines = [head]
    if check.description:
        lines.append(f"--   {comment(check.description)}")
    for c in found:
        audited = AuditedConstraint(check.table, c["conname"], c["definition"], tuple(c["columns"]))
        lines.append(f"--   at the audit: {comment(c['conname'] + ' ' + c['definition'])}")
        lines.append(guarded_drop(audited))
        plan.undo_after.extend(readd(audited))
    return "\n".join(lines)


def _differs(check: ConstraintCheck, found: dict[str, Any]) -> bool:
    """The catalog's constraint is another one than the suite expects (type, columns,
    target, ON DELETE), not merely unvalidated."""
    if found["type"] != check.type or found["columns"] != check.columns:
        return True
    if found.get(DISAGREES):  # a CHECK that allows other values than the suite's rule
        return True
    if check.type == "foreign_key" and check.references is not None:
        if bare_name(found["target"]) != bare_name(check.references.table):
            return True
        if found["target_columns"] != check.references.columns:
            return True
        if check.on_delete is not None and found["on_delete"] != check.on_delete:
            return True
    return False


def _index(check: IndexCheck, facts: CatalogFacts) -> str:
    head = "-- " + comment(
        f"{check.id}: index {check.name} on {check.table}({','.join(check.columns or [])})"
    )
    problems = [f.problem for f in check_index(check, facts)]
    if not problems:
        return f"{head}\n--   present at the audit: nothing to do"
    lines = [head, f"--   at the audit: {comment('; '.join(problems))}"]
    if not check.columns:
        return "\n".join([*lines, "--   the suite names no columns: build it by hand"])
    create = (
        f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {ident(check.name)} "
        f"ON {table(check.table)} ({columns_sql(check.columns)});"
    )
    found = next((i for i in facts.indexes if i["name"] == check.name), None)
    if found is not None and found["columns"] != check.columns:
        lines.append(f"DROP INDEX CONCURRENTLY IF EXISTS {ident(check.name)};")
        lines.append(create)
    elif found is not None:
        lines.append(f"REINDEX INDEX CONCURRENTLY {ident(check.name)};")
    else:
        lines.append(create)
    return "\n".join(lines)


def _trigger(
    suite: Suite,
    check: TriggerCheck,
    facts: CatalogFacts,
    plan: CatalogPlan,
    types: ColumnTypes | None = None,
) -> str:
    head = "-- " + comment(f"{check.id}: trigger {check.name} on {check.table}")
    problems = [f.problem for f in check_trigger(check, facts)]
    if not problems:
        return f"{head}\n--   present and enabled at the audit: nothing to do"
    lines = [head, f"--   at the audit: {comment('; '.join(problems))}"]
    found = next((t for t in facts.triggers if t["name"] == check.name), None)
    if found is not None:  # present but disabled
        lines.append(f"ALTER TABLE {table(check.table)} ENABLE TRIGGER {ident(check.name)};")
        plan.undo_before.append(
            f"ALTER TABLE {table(check.table)} DISABLE TRIGGER {ident(check.name)};"
        )
        return "\n".join(lines)
    ref = None
    if check.for_check is not None:
        try:
            ref = suite.check(check.for_check)
        except KeyError:
            ref = None
    if not isinstance(ref, ConditionalReferenceCheck):
        return "\n".join([*lines, "--   no enforcement can be derived for it: write it by hand"])
    statements, undo = conditional_reference_triggers(ref, check.name, types)
    plan.undo_before.extend(undo)
    return "\n".join([*lines, *statements])


def render_constraints(
    plan: CatalogPlan,
    *,
    run_id: str,
    preamble: str,
) -> str:
    """constraints.sql (templates/sql/constraints.sql.j2); `preamble` binds it to its
    database (see `pipeline.repair.plan_preamble`)."""
    return render(
        "constraints.sql.j2",
        run_id=run_id,
        preamble=sql(preamble),
        sections=[sql(s) for s in plan.sections],
    )
