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
from dataclasses import dataclass, field
from typing import Any

from pipeline.checks.base import ColumnTypes, comparable, folds
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
from pipeline.checks.enforce import check_expression, condition_sql
from pipeline.sqlrender import Sql, piece, raise_format, render, sql
from pipeline.sqltext import (
    comment,
    ident,
    key_equals,
    object_name,
    table,
)
from pipeline.suite import (
    ColumnRef,
    ConditionalReferenceCheck,
    ConstraintCheck,
    IndexCheck,
    ReferenceCheck,
    Suite,
    TriggerCheck,
)

_ON_DELETE = {
    "cascade": "CASCADE",
    "set_null": "SET NULL",
    "restrict": "RESTRICT",
    "no_action": "NO ACTION",
    "set_default": "SET DEFAULT",
}


@dataclass(frozen=True)
class AuditedConstraint:
    """A constraint as the audit found it (pg_get_constraintdef)."""

    table: str
    name: str
    definition: str
    columns: tuple[str, ...]


@dataclass
class CatalogPlan:
    """What constraints.sql does, and what rollback.sql must undo around restoring rows."""

    sections: list[str] = field(default_factory=list)
    # statements rollback.sql runs before restoring rows (drop what would reject them)
    undo_before: list[str] = field(default_factory=list)
    # statements rollback.sql runs after restoring rows (re-create what the audit saw)
    undo_after: list[str] = field(default_factory=list)
    wrong_fks: list[AuditedConstraint] = field(default_factory=list)


def _cols(columns: Iterable[str]) -> str:
    return ", ".join(ident(c) for c in columns)


def constraint_definition(suite: Suite, check: ConstraintCheck) -> str | None:
    cols = _cols(check.columns)
    if check.type == "foreign_key":
        assert check.references is not None
        on_delete = f" ON DELETE {_ON_DELETE[check.on_delete]}" if check.on_delete else ""
        ref = check.references
        return (
            f"FOREIGN KEY ({cols}) REFERENCES {table(ref.table)} ({_cols(ref.columns)}){on_delete}"
        )
    if check.type == "check":
        expr = check_expression(suite, check)
        return f"CHECK ({expr})" if expr else None
    if check.type == "unique":
        return f"UNIQUE ({cols})"
    return f"PRIMARY KEY ({cols})"


def guarded_drop(audited: AuditedConstraint) -> Sql:
    """Drop a constraint only while it is still what the audit saw."""
    return piece("guarded_drop.sql.j2", w=audited)


def add_unless_exists(tbl: str, name: str, definition: str, not_valid: bool) -> Sql:
    return piece(
        "add_unless_exists.sql.j2",
        table=tbl,
        name=name,
        definition=sql(definition),
        not_valid=not_valid,
    )


def drop_constraint(tbl: str, name: str) -> Sql:
    return piece("drop_constraint.sql.j2", table=tbl, name=name)


def readd(audited: AuditedConstraint) -> list[str]:
    """rollback.sql: the constraint exactly as the audit saw it (templates/sql/readd.sql.j2)."""
    add = f"ALTER TABLE {table(audited.table)} ADD CONSTRAINT {ident(audited.name)} "
    return [
        drop_constraint(audited.table, audited.name),
        piece("readd.sql.j2", w=audited, add=add),
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
        f"ON {table(check.table)} ({_cols(check.columns)});"
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


def conditional_reference_triggers(
    check: ConditionalReferenceCheck, name: str, types: ColumnTypes | None = None
) -> tuple[list[str], list[str]]:
    """Enforce `column -> targets[discriminator]` with triggers: the referencing row must
    name an existing target row (locked FOR KEY SHARE, as a foreign key would); a target row
    still referenced cannot be deleted or re-keyed. Discriminator values naming one table
    (single-table inheritance) share its branch and its trigger. A value and a key whose
    types do not compare are compared as text. A composite reference (`columns:`) is
    enforced alike on all its columns, MATCH SIMPLE (a NULL in any of them names nothing).
    Returns (statements, rollback drops)."""
    t, disc = check.table, ident(check.discriminator)
    columns = check.key_of_row()
    cols = [ident(c) for c in columns]
    known = types or {}

    def pairs(target: ColumnRef) -> list[tuple[str, str, bool, bool]]:
        """(row column, key column, same, fold) of the reference's columns and the target's."""
        out = []
        for c, k in zip(columns, target.key_columns(), strict=True):
            here, there = known.get((check.table, c)), known.get((target.table, k))
            out.append((ident(c), ident(k), comparable(here, there), folds(here, there)))
        return out

    def named(tbl: str, names: list[str]) -> str:
        """How a message names columns: `t.c`, or `t(a, b)` for a composite key."""
        return f"{tbl}.{names[0]}" if len(names) == 1 else f"{tbl}({', '.join(names)})"

    # placeholders for the key's values in a message: `%`, or `(%, %)`
    shown = ["%"] if len(cols) == 1 else ["(", *_placeholders(len(cols)), ")"]

    by_key: dict[str, tuple[ColumnRef, list[str]]] = {}
    for value, target in check.targets.items():
        by_key.setdefault(target.ref_key(), (target, []))[1].append(value)
    groups = list(by_key.values())
    fn = object_name(name, "fn")

    def found(target: ColumnRef) -> Sql:
        cond = " AND ".join(
            key_equals(_field("x", k), _field("NEW", c), same=same, fold=fold)
            for c, k, same, fold in pairs(target)
        )
        if target.where is not None:
            cond += f" AND {condition_sql(target.where, 'x.')}"
        return sql(cond)

    skip = " OR ".join(f"{_field('NEW', c)} IS NULL" for c in cols)
    if check.where is not None:  # rows the check does not look at
        skip += f" OR NOT coalesce({condition_sql(check.where, 'NEW.')}, false)"
    statements: list[str] = [
        piece(
            "reference_trigger.sql.j2",
            fn=fn,
            name=name,
            table=t,
            skip=sql(skip),
            branches=[
                {"names": values, "table": target.table, "found": found(target)}
                for target, values in groups
            ],
            new_disc=sql(_field("NEW", disc)),
            new_values=[sql(_field("NEW", c)) for c in cols],
            no_target=raise_format(
                f"{check.table}.{check.discriminator} ", "%", " names no target"
            ),
            not_in_target=raise_format(
                named(check.table, columns) + " ",
                *shown,
                f" is not in the table {check.discriminator} ",
                "%",
                " names",
            ),
            watched=[
                sql(c) for c in dict.fromkeys([*cols, disc, *map(ident, check.row_columns())])
            ],
        )
    ]
    undo: list[str] = [piece("drop_trigger.sql.j2", name=name, table=t)]
    drops_fn: list[str] = [piece("drop_function.sql.j2", name=fn)]
    for target, values in groups:
        # one trigger per target table; a second filtered target on the same table gets its own
        own = [t for t, _ in groups if t.table == target.table]
        part = bare_name(target.table) + (f"_{own.index(target) + 1}" if len(own) > 1 else "")
        tname = object_name(name, part)
        tfn = object_name(name, part, "fn")
        keys = [ident(k) for k in target.key_columns()]
        held = " AND ".join(
            key_equals(_field("r", c), _field("OLD", k), same=same, fold=fold)
            for c, k, same, fold in pairs(target)
        )
        if check.where is not None:  # only rows the check looks at hold a target row
            held += f" AND coalesce({condition_sql(check.where, 'r.')}, false)"
        watched = list(keys)
        still = " AND ".join(
            f"{_field('NEW', k)} IS NOT DISTINCT FROM {_field('OLD', k)}" for k in keys
        )
        kept_before = None
        if target.where is not None:  # a row that stops meeting `where` stops counting
            watched += [ident(c) for c in target.where.columns() if ident(c) not in watched]
            still += f" AND coalesce({condition_sql(target.where, 'NEW.')}, false)"
            # a row the filter left out held nothing: deleting or changing it is free
            kept_before = sql(condition_sql(target.where, "OLD."))
        statements.append(
            piece(
                "target_trigger.sql.j2",
                fn=tfn,
                name=tname,
                target=target.table,
                referencing=t,
                still=sql(still),
                kept_before=kept_before,
                r_disc=sql(_field("r", disc)),
                values=values,
                held=sql(held),
                message=raise_format(
                    named(target.table, target.key_columns()) + " ",
                    *shown,
                    f" is still referenced by {named(check.table, columns)}",
                ),
                old_keys=[sql(_field("OLD", k)) for k in keys],
                watched=[sql(c) for c in watched],
            )
        )
        undo.append(piece("drop_trigger.sql.j2", name=tname, table=target.table))
        drops_fn.append(piece("drop_function.sql.j2", name=tfn))
    return statements, undo + drops_fn


def _field(record: str, quoted: str) -> str:
    """`record.field` of a quoted name in PL/pgSQL: `(record).U&"..."` for a Unicode-escaped
    name (a name holding a newline), which PL/pgSQL reads as no field of `NEW.U&"..."`."""
    return f"({record}).{quoted}" if quoted.startswith("U&") else f"{record}.{quoted}"


def _placeholders(n: int) -> list[str]:
    """`%`, `, `, `%`, ... : n RAISE placeholders separated by commas, as message parts."""
    out: list[str] = []
    for i in range(n):
        out += ([", "] if i else []) + ["%"]
    return out


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
