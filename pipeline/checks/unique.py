"""Uniqueness over a (filtered) set of rows: one pending request per tutor, requester and
package; one profile per user and role.

With `nulls: distinct` (the default, as PostgreSQL's UNIQUE and every peer on one column) a
row with a NULL in any of the columns duplicates no other; with `nulls: equal` NULLs compare
equal (two pending requests without a package are duplicates), as in `GROUP BY` and
`UNIQUE NULLS NOT DISTINCT`. The first row of a group (lowest key) is kept; every later row
is a violation.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field

from pipeline.checks.base import (
    Key,
    compile_condition,
    cut_text,
    key_columns,
    key_order,
    key_value,
    table_clause,
)
from pipeline.checks.model import Check, Filtered, Stage


class UniqueCheck(Filtered, Check):
    """`unique`: no two rows (of those `where` keeps) share the values of `columns`; the
    row with the lowest key is kept and every later one is a finding. `nulls: distinct`
    (the default, PostgreSQL's UNIQUE): a row with a NULL in any of the columns duplicates
    none; `nulls: equal` (`UNIQUE NULLS NOT DISTINCT`, `GROUP BY`): NULLs match NULLs."""

    stage: ClassVar[Stage] = "set"

    kind: Literal["unique"]
    columns: list[str] = Field(min_length=1)
    nulls: Literal["distinct", "equal"] = "distinct"

    def column_list(self) -> list[str]:
        return list(self.columns)

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        return {self.table: {*self.columns, *(self.where.columns() if self.where else [])}}

    def evidence(self, kept: Any) -> str:
        return f"duplicate of {self.table} {kept}"

    def query(self, key: Key) -> sa.Select[tuple[object, ...]]:
        """(key, value, kept) of every finding, in key order (see `unique_query`)."""
        return unique_query(self, key)


def unique_query(check: UniqueCheck, key: Key) -> sa.Select[tuple[object, ...]]:
    """(key, value, kept) for every row but the first of its group, in key order.

    The rows are numbered within their group (one sort, parallel where PostgreSQL can) and
    the reported value is built only for the rows that come back, not for every row ranked.
    """
    where = check.where.columns() if check.where else []
    cols = list(dict.fromkeys([*key_columns(key), *check.columns, *where]))
    t = table_clause(check.table, cols).alias("t")
    group = [t.c[c] for c in check.columns]
    order = key_order(lambda c: t.c[c], key)
    row_key = key_value(lambda c: t.c[c], key)
    ranked = sa.select(
        row_key.label("key"),
        *(t.c[c].label(f"g{i}") for i, c in enumerate(check.columns)),
        sa.func.row_number().over(partition_by=group, order_by=order).label("rn"),
        sa.func.first_value(row_key).over(partition_by=group, order_by=order).label("kept"),
    )
    if check.where is not None:
        ranked = ranked.where(compile_condition(check.where, lambda c: t.c[c]))
    if check.nulls == "distinct":
        ranked = ranked.where(*(t.c[c].is_not(None) for c in check.columns))
    sub = ranked.subquery("ranked")
    value = sa.func.concat_ws(
        ",",
        *(
            sa.func.coalesce(sa.cast(sub.c[f"g{i}"], sa.Text), sa.literal("NULL"))
            for i in range(len(check.columns))
        ),
    )
    return (
        sa.select(sub.c.key, cut_text(value).label("value"), sub.c.kept)
        .where(sub.c.rn > 1)
        .order_by(sub.c.key)
    )
