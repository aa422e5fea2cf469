"""Two tables with as many rows (dbt-utils `equal_rowcount`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field

from ..words import plural
from .base import Key, compile_condition, key_value, table_clause
from .model import Check, Condition, Filtered, GxSpec, Model, TableName
from .stage import SET, Scope, Stage


class OtherTable(Model):
    """The table compared with: `table`, and with `where`, only the rows it keeps."""

    table: TableName
    where: Condition | None = None


class RowCounts(Filtered, Check):
    """What the kinds comparing two tables' row counts share: `where` (the rows of `table`
    counted), the other table (`where` of its own), `group_by` (columns both tables have,
    each combination of their values compared on its own)."""

    stage: ClassVar[Stage] = SET
    finding_scope: ClassVar[Scope | None] = Scope.TABLE
    written_order = ("to", "where", "group_by")
    group_by: list[str] | None = Field(default=None, min_length=1)

    @property
    def other(self) -> OtherTable:
        raise NotImplementedError

    def passes(self, here: Any, there: Any) -> Any:
        """SQL: whether the counts `here` and `there` (of one group) pass."""
        raise NotImplementedError

    def expected(self) -> str:
        raise NotImplementedError

    def tables(self) -> list[str]:
        return [self.table, self.other.table]

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        group = set(self.group_by or [])
        need = {self.table: {*group, *(self.where.columns() if self.where else [])}}
        other = self.other.where.columns() if self.other.where else []
        need.setdefault(self.other.table, set()).update({*group, *other})
        return need

    def evidence(self, kept: Any) -> str:
        return f"{plural(int(kept), 'row')} in {self.other.table}; {self.expected()}"

    def query(self, key: Key) -> Any:
        """(key, value, kept) per failing group ("" for the table): the group's values, its
        row count in `table`, its row count in the other table. A group only one table
        has counts 0 rows in the other; NULLs group together."""
        group = list(self.group_by or [])

        def rows(name: str, where: Condition | None, side: int) -> Any:
            cols = [*group, *(where.columns() if where else [])]
            t = table_clause(name, cols).alias("t" if side else "u")  # `t`: the audited table
            stmt = sa.select(*(t.c[g].label(f"g{i}") for i, g in enumerate(group)),
                             sa.literal(side).label("side")).select_from(t)  # fmt: skip
            return stmt.where(compile_condition(where, lambda c: t.c[c])) if where else stmt

        # both tables' rows in one set, grouped: a group only one side has counts 0 on the
        # other, and GROUP BY puts NULLs together
        here_rows = rows(self.table, self.where, 1)
        there_rows = rows(self.other.table, self.other.where, 0)
        both = sa.union_all(here_rows, there_rows).subquery("both")
        values = [both.c[f"g{i}"] for i in range(len(group))]
        here = sa.func.count().filter(both.c.side == 1)
        there = sa.func.count().filter(both.c.side == 0)
        if group:
            one = "g0" if len(group) == 1 else tuple(f"g{i}" for i in range(len(group)))
            value = key_value(lambda c: both.c[c], one)
            row_key: Any = sa.func.coalesce(sa.cast(value, sa.Text), sa.literal("NULL"))
        else:
            row_key = sa.literal("", sa.Text)
        return (
            sa.select(
                row_key.label("key"), sa.cast(here, sa.Text).label("value"), there.label("kept")
            )
            .group_by(*values)
            .having(sa.not_(self.passes(here, there)))
            .order_by(*([row_key] if group else []))
        )


class EqualRowcountCheck(RowCounts):
    """`equal_rowcount`: `table` has as many rows as `to: {table}` (counting only the rows
    each side's `where` keeps); with `group_by` (columns both tables have), each group of
    rows does. A count that differs is a finding about the table (a group's: keyed by its
    values) showing this table's count, the other's in the evidence; dbt-utils' failure
    count is the difference. Unlike dbt-utils, whose join leaves it out, a group only one
    table holds fails (the other has 0 rows of it), and a group of NULLs is compared with
    the other table's. Exports to Great Expectations as
    `expect_table_row_count_to_equal_other_table`; with `where` or `group_by`, as the
    engine's SQL (`UnexpectedRowsExpectation`). No constraints.sql section: no constraint
    ties two tables' sizes."""

    kind: Literal["equal_rowcount"]
    to: OtherTable

    @property
    def other(self) -> OtherTable:
        return self.to

    def passes(self, here: Any, there: Any) -> Any:
        return here == there

    def expected(self) -> str:
        return "as many expected"

    def gx(self) -> list[GxSpec] | None:
        if self.group_by or self.to.where is not None:
            return None
        return [GxSpec("expect_table_row_count_to_equal_other_table",
                       {"other_table_name": self.to.table})]  # fmt: skip
