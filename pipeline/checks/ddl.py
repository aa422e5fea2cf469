"""The DDL building blocks of constraints.sql and rollback.sql: how a constraint is added,
dropped and put back, and the triggers that enforce a conditional reference. Each catalog
kind (`refaudit.checks.catalog`) writes its own section of constraints.sql from these
(`Check.ddl_section`), told what the audit saw by a `DdlContext`.

Every statement can run again without harm.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .. import sqltext
from ..sqlrender import Sql, piece, raise_format, sql
from ..sqltext import ident, key_equals, object_name, table
from .base import ColumnTypes, comparable, folds
from .enforce import check_expression, condition_sql
from .model import ColumnRef

if TYPE_CHECKING:
    from .catalog import CatalogFacts, ConstraintCheck
    from .reference import ConditionalReferenceCheck

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
    # statements rollback.sql runs after restoring rows (re-create what the audit saw); the
    # constraints as the suite names their tables, as repair.sql's own re-adds do, so that
    # rollback.sql (under the audit's search_path) re-creates each once
    undo_after: list[str] = field(default_factory=list)
    wrong_fks: list[AuditedConstraint] = field(default_factory=list)


@dataclass
class DdlContext:
    """What a check's section of constraints.sql is written from: the suite (`suite.check(id)`
    finds the check a constraint or trigger enforces), the catalog as the audit saw it, the
    columns' types, the suite tables that are views; and the plan the section adds its
    rollback statements to."""

    suite: Any
    facts: Mapping[str, CatalogFacts]
    plan: CatalogPlan
    types: ColumnTypes | None = None
    views: frozenset[str] = frozenset()
    # (table, name) of the constraints some check's section already deals with
    owned: set[tuple[str, str]] = field(default_factory=set)
    # suite table -> (schema, relation) as the audit resolved it (tables that existed)
    resolved: Mapping[str, tuple[str, str]] = field(default_factory=dict)

    def name(self, tbl: str) -> str:
        """A suite table spelled with the schema the audit found it in (`schema.table`, as
        `sqltext.split_name` reads it), so that the statements written with it name that
        table whatever `search_path` the file runs under; as the suite writes it when the
        audit did not find it."""
        found = self.resolved.get(tbl)
        return sqltext.join_name(*found) if found is not None else tbl


def columns_sql(columns: Iterable[str]) -> str:
    """`"a", "b"`: columns as a DDL statement lists them."""
    return ", ".join(ident(c) for c in columns)


def constraint_definition(
    suite: Any, check: ConstraintCheck, ctx: DdlContext | None = None
) -> str | None:
    cols = columns_sql(check.columns)
    if check.type == "foreign_key":
        assert check.references is not None
        on_delete = f" ON DELETE {_ON_DELETE[check.on_delete]}" if check.on_delete else ""
        ref = check.references
        target = ctx.name(ref.table) if ctx is not None else ref.table
        return (
            f"FOREIGN KEY ({cols}) REFERENCES {table(target)} "
            f"({columns_sql(ref.columns)}){on_delete}"
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


def conditional_reference_triggers(
    check: ConditionalReferenceCheck, name: str, ctx: DdlContext
) -> tuple[list[str], list[str]]:
    """Enforce `column -> targets[discriminator]` with triggers: the referencing row must
    name an existing target row (locked FOR KEY SHARE, as a foreign key would); a target row
    still referenced cannot be deleted or re-keyed. Discriminator values naming one table
    (single-table inheritance) share its branch and its trigger. A value and a key whose
    types do not compare are compared as text. A composite reference (`columns:`) is
    enforced alike on all its columns, MATCH SIMPLE (a NULL in any of them names nothing).

    The triggers hold like a foreign key whoever writes and whatever `search_path` the
    writer's session has: every table is named with the schema the audit found it in (a
    temporary table of the same name never stands in for it); each trigger function lives in
    the schema of the table whose trigger calls it, runs with the rights of that table's
    owner (`SECURITY DEFINER`, owned by it: see `definer.sql.j2`) under `search_path =
    pg_catalog, pg_temp`, so a writer needs no right on the other table, as with a foreign
    key. Tables the audit did not find get no trigger (a comment says so).
    Returns (statements, rollback drops)."""
    t, disc = check.table, ident(check.discriminator)
    columns = check.key_of_row()
    cols = [ident(c) for c in columns]
    known = ctx.types or {}

    tables = dict.fromkeys([t, *(r.table for r in check.targets.values())])
    missing = [x for x in tables if x not in ctx.resolved]
    if missing:
        return [
            f"--   {sqltext.comment(', '.join(missing))}: not found at the audit; "
            "no trigger is generated (run the audit again once the tables exist)"
        ], []

    def pairs(target: ColumnRef) -> list[tuple[str, str, bool, bool]]:
        """(row column, key column, same, fold) of the reference's columns and the target's."""
        out = []
        for c, k in zip(columns, target.key_columns(), strict=True):
            here, there = known.get((check.table, c)), known.get((target.table, k))
            # one text id is compared with the key's text exactly, as the audit compares it
            fold = folds(here, there) and len(columns) > 1
            out.append((ident(c), ident(k), comparable(here, there), fold))
        return out

    def named(tbl: str, names: list[str]) -> str:
        """How a message names columns: `t.c`, or `t(a, b)` for a composite key."""
        return f"{tbl}.{names[0]}" if len(names) == 1 else f"{tbl}({', '.join(names)})"

    def function(tbl: str, fname: str) -> Sql:
        """A trigger function's name, in the schema of the table whose trigger calls it."""
        return sql(sqltext.qualified(ctx.resolved[tbl][0], fname))

    def definer(tbl: str, fname: str, needs: list[tuple[str, str]]) -> Sql:
        """The block that hands the function `fname` of `tbl`'s trigger to the table's owner;
        `needs` the (table, privilege) its body uses, which that owner must hold."""
        schema = ctx.resolved[tbl][0]
        return piece(
            "definer.sql.j2",
            fn=function(tbl, fname),
            fn_text=f"{function(tbl, fname)}()",
            # as `::regprocedure` reads it (each part double-quoted: it knows no U&"...")
            fn_reg=sqltext.regclass_text(sqltext.join_name(schema, fname)) + "()",
            table=ctx.name(tbl),
            needs=[{"table": ctx.name(x), "privilege": p} for x, p in needs],
        )

    # placeholders for the key's values in a message: `%`, or `(%, %)`
    shown = ["%"] if len(cols) == 1 else ["(", *_placeholders(len(cols)), ")"]

    by_key: dict[str, tuple[ColumnRef, list[str]]] = {}
    for value, target in check.targets.items():
        by_key.setdefault(target.ref_key(), (target, []))[1].append(value)
    groups = list(by_key.values())
    fname = object_name(name, "fn")
    fn = function(t, fname)

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
    # FOR KEY SHARE asks for UPDATE on the target besides SELECT: of the function's owner
    reads = dict.fromkeys(target.table for target, _ in groups)
    statements: list[str] = [
        piece(
            "reference_trigger.sql.j2",
            fn=fn,
            definer=definer(t, fname, [(x, p) for x in reads for p in ("SELECT", "UPDATE")]),
            name=name,
            table=ctx.name(t),
            skip=sql(skip),
            branches=[
                {"names": values, "table": ctx.name(target.table), "found": found(target)}
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
    undo: list[str] = [piece("drop_trigger.sql.j2", name=name, table=ctx.name(t))]
    drops_fn: list[str] = [piece("drop_function.sql.j2", fn=fn)]
    for target, values in groups:
        # one trigger per target table; a second filtered target on the same table gets its own
        own = [t for t, _ in groups if t.table == target.table]
        bare = sqltext.split_name(target.table)[1]  # without its schema, as catalog.bare_name
        part = bare + (f"_{own.index(target) + 1}" if len(own) > 1 else "")
        tname = object_name(name, part)
        tfname = object_name(name, part, "fn")
        tfn = function(target.table, tfname)
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
                definer=definer(target.table, tfname, [(t, "SELECT")]),
                name=tname,
                target=ctx.name(target.table),
                referencing=ctx.name(t),
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
        undo.append(piece("drop_trigger.sql.j2", name=tname, table=ctx.name(target.table)))
        drops_fn.append(piece("drop_function.sql.j2", fn=tfn))
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
