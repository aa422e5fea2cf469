"""Uniqueness over a (filtered) set of rows: one pending request per tutor, requester and
package; one profile per user and role; one tag per name whatever its case.

With `nulls: distinct` (the default, as PostgreSQL's UNIQUE and every peer on one column) a
row with a NULL in any of the columns (or expressions) duplicates no other; with `nulls:
equal` NULLs compare equal (two pending requests without a package are duplicates), as in
`GROUP BY` and `UNIQUE NULLS NOT DISTINCT`. The first row of a group (lowest key) is kept;
every later row is a violation; with `keep: none` every row of the group is (Great
Expectations' count).

`expressions:` (`lower(name)`) are what a unique index on expressions enforces: parsed and
allow-listed by `refaudit.checks.expression`, their functions immutable as the server
confirms before the audit (`sql_problem`); constraints.sql builds that index.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Literal, Self

import sqlalchemy as sa
from pydantic import Field, model_validator

from .. import sqltext
from ..sqltext import comment, ident, object_name
from .base import (
    Key,
    compile_condition,
    cut_text,
    key_columns,
    key_order,
    key_value,
    table_clause,
)
from .enforce import condition_sql
from .expression import (
    ExpressionError,
    SqlExpression,
    parse_expression,
    volatility_problem,
)
from .model import Check, Condition, Filtered
from .relations import unique_proof
from .stage import SET, Stage

if TYPE_CHECKING:
    from .ddl import DdlContext
    from .relations import Relation


class UniqueCheck(Filtered, Check):
    """`unique`: no two rows (of those `where` keeps) share the values of `columns`; the
    row with the lowest key is kept and every later one is a finding. `nulls: distinct`
    (the default, PostgreSQL's UNIQUE): a row with a NULL in any of the columns duplicates
    none; `nulls: equal` (`UNIQUE NULLS NOT DISTINCT`, `GROUP BY`): NULLs match NULLs.
    `expressions: [lower(name)]` (alone or with `columns`) makes it what a unique index on
    those expressions enforces (django-taggit's case-insensitive tags): each is an SQL
    expression over the table's own columns, read by PostgreSQL's parser and limited to
    columns, constants, operators, function calls, CASE, COALESCE, NULLIF, casts to plain
    types and boolean and NULL tests (no subquery, no other table); every function it calls
    must be immutable, as the server confirms before the audit; a NULL value duplicates
    nothing unless `nulls: equal`. Findings show the expression's value; constraints.sql
    builds the unique index (`CREATE UNIQUE INDEX CONCURRENTLY ... ((lower(name)))`).
    `keep: none` makes every row of a duplicate group a finding, the first one too (as Great
    Expectations counts: 2 of 3 rows for values 1, 1, 2), where `keep: first` (the default)
    keeps the row with the lowest key and counts the rest (as Soda and dbt-utils count).
    A check a valid unique index proves (a primary key or UNIQUE on some of its `columns`,
    without `where` or `expressions`) reads no row: its result says `proven by unique index
    ...` (not a partial or expression index, another operator class or collation, or a
    parent table whose inheritance children the index does not cover)."""

    stage: ClassVar[Stage] = SET

    written_order = ("columns", "expressions", "where", "nulls", "keep", "description")
    kind: Literal["unique"]
    columns: list[str] = Field(default_factory=list)
    expressions: list[str] | None = None
    nulls: Literal["distinct", "equal"] = "distinct"
    keep: Literal["first", "none"] = "first"

    @classmethod
    def propose(
        cls,
        id: str,
        table: str,
        columns: list[str],
        *,
        where: Condition | dict[str, Any] | None = None,
        nulls_equal: bool = False,
        description: str | None = None,
    ) -> Self:
        """No two rows of `table` (of those `where` keeps) share `columns`; with
        `nulls_equal`, NULLs match NULLs (`nulls: equal`, `UNIQUE NULLS NOT DISTINCT`)."""
        data: dict[str, Any] = {"id": id, "kind": "unique", "table": table, "columns": columns}
        if where is not None:
            data["where"] = where
        if nulls_equal:
            data["nulls"] = "equal"
        if description is not None:
            data["description"] = description
        return cls.model_validate(data)

    @model_validator(mode="after")
    def _keys(self) -> UniqueCheck:
        if not self.columns and not self.expressions:
            raise ValueError(
                f"check {self.id}: a unique check needs `columns:` or `expressions:` (or both)"
            )
        for i, text in enumerate(self.expressions or []):
            try:
                parse_expression(text)
            except ExpressionError as exc:
                raise ValueError(
                    f"check {self.id}: expressions[{i}] `{sqltext.comment(text)}` {exc}"
                ) from None
        return self

    def parsed(self) -> list[SqlExpression]:
        """The `expressions`, parsed (see `refaudit.checks.expression`)."""
        return [parse_expression(e) for e in self.expressions or []]

    def column_list(self) -> list[str]:
        return [*self.columns, *(e.text for e in self.parsed())]

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        read = {c for e in self.parsed() for c in e.columns}
        return {self.table: {*self.columns, *read, *(self.where.columns() if self.where else [])}}

    def evidence(self, kept: Any) -> str:
        return f"duplicate of {self.table} {kept}"

    def query(self, key: Key) -> sa.Select[tuple[object, ...]]:
        """(key, value, kept) of every finding, in key order (see `unique_query`)."""
        return unique_query(self, key)

    def proven_by(self, rel: Relation | None) -> str | None:
        """A valid unique index on some of `columns` (a primary key's, a UNIQUE
        constraint's) proves the check, with `keep` either way: the server refuses the rows
        it would find (see `relations.unique_proof`). Not with `where` or `expressions`."""
        if self.where is not None or self.expressions:
            return None
        return unique_proof(rel, self.columns, nulls_equal=self.nulls == "equal")

    def sql_problem(self, conn: Any) -> str | None:
        """An expression PostgreSQL cannot run over the table, or one that calls a function
        that is not immutable (a unique index could not hold it)."""
        for i, expr in enumerate(self.parsed()):
            problem = volatility_problem(conn, self.table, expr, "immutable")
            if problem is not None:
                return comment(f"expressions[{i}] `{expr.text}`: {problem}")  # one line
        return None

    def ddl_section(self, ctx: DdlContext) -> str | None:
        """A unique check on expressions: the unique index that enforces it, built
        `CONCURRENTLY` (a UNIQUE constraint takes plain columns only; a check on columns
        alone is enforced by a `constraint` check). rollback.sql drops an index this file
        built, which would reject the rows it restores."""
        if not self.expressions:
            return None
        parts = [*map(ident, self.columns), *(f"({e.sql()})" for e in self.parsed())]
        head = "-- " + comment(
            f"{self.id}: unique index on {self.table}({', '.join(self.column_list())})"
        )
        if self.table in ctx.views:
            view = f"--   {comment(self.table)} is a view, not a table: nothing is generated"
            return f"{head}\n{view}"
        if self.table not in ctx.resolved:
            return f"{head}\n--   not found at the audit: nothing is generated"
        name = object_name(self.id, "key")
        tbl = ctx.name(self.table)
        index = sqltext.table(sqltext.join_name(sqltext.split_name(tbl)[0], name))
        facts = ctx.facts.get(self.table)
        found = next((i for i in (facts.indexes if facts else []) if i["name"] == name), None)
        if found is not None and found["valid"]:
            return f"{head}\n--   {comment(name)} present at the audit: nothing to do"
        lines = [
            head,
            "--   the build fails while rows the audit listed for this check remain: resolve",
            "--   them and run the file again (the DROP removes what a failed build left)",
        ]
        if found is not None:  # invalid at the audit
            lines.append(f"REINDEX INDEX CONCURRENTLY {index};")
            return "\n".join(lines)
        nulls = " NULLS NOT DISTINCT" if self.nulls == "equal" else ""
        where = f" WHERE {condition_sql(self.where)}" if self.where is not None else ""
        lines.append(f"DROP INDEX CONCURRENTLY IF EXISTS {index};")
        lines.append(
            f"CREATE UNIQUE INDEX CONCURRENTLY {ident(name)} ON "
            f"{sqltext.table(tbl)} ({', '.join(parts)}){nulls}{where};"
        )
        ctx.plan.undo_before.append(f"DROP INDEX IF EXISTS {index};")
        return "\n".join(lines)


def unique_query(check: UniqueCheck, key: Key) -> sa.Select[tuple[object, ...]]:
    """(key, value, kept) for every row but the first of its group, in key order; with
    `keep: none` for the first one too, whose `kept` is then the group's second row.

    The rows are numbered within their group (one sort, parallel where PostgreSQL can) and
    the reported value is built only for the rows that come back, not for every row ranked.
    A group is the values of the columns, then of the expressions (SQL the parser wrote
    back, over the table's alias `t`).
    """
    where = check.where.columns() if check.where else []
    read = [c for e in check.parsed() for c in e.columns]
    cols = list(dict.fromkeys([*key_columns(key), *check.columns, *read, *where]))
    t = table_clause(check.table, cols).alias("t")
    group = [t.c[c] for c in check.columns] + [e.element("t") for e in check.parsed()]
    order = key_order(lambda c: t.c[c], key)
    row_key = key_value(lambda c: t.c[c], key)
    ranked = sa.select(
        row_key.label("key"),
        *(g.label(f"g{i}") for i, g in enumerate(group)),
        sa.func.row_number().over(partition_by=group, order_by=order).label("rn"),
        sa.func.first_value(row_key).over(partition_by=group, order_by=order).label("kept"),
    )
    if check.keep == "none":  # the row after the first, which the first then duplicates
        ranked = ranked.add_columns(
            sa.func.lead(row_key).over(partition_by=group, order_by=order).label("next")
        )
    if check.where is not None:
        ranked = ranked.where(compile_condition(check.where, lambda c: t.c[c]))
    if check.nulls == "distinct":
        ranked = ranked.where(*(g.is_not(None) for g in group))
    sub = ranked.subquery("ranked")
    value = sa.func.concat_ws(
        ",",
        *(
            sa.func.coalesce(sa.cast(sub.c[f"g{i}"], sa.Text), sa.literal("NULL"))
            for i in range(len(group))
        ),
    )
    if check.keep == "first":
        return (
            sa.select(sub.c.key, cut_text(value).label("value"), sub.c.kept)
            .where(sub.c.rn > 1)
            .order_by(sub.c.key)
        )
    # the first row of a group is a finding when a second one follows it
    kept = sa.case((sub.c.rn == 1, sub.c.next), else_=sub.c.kept)
    return (
        sa.select(sub.c.key, cut_text(value).label("value"), kept.label("kept"))
        .where(sa.or_(sub.c.rn > 1, sub.c.next.is_not(None)))
        .order_by(sub.c.key)
    )
