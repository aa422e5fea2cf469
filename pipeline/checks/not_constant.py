"""A column that must not hold one value only (dbt-utils `not_constant`)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa

from ..words import plural
from .model import AggregateCheck, GxSpec, Measure, Metric, TableFinding


class NotConstantCheck(AggregateCheck):
    """`not_constant`: `column` holds at least two distinct values (in the rows `where`
    keeps; per group with `group_by`); a table (or group) where every value that is not NULL
    is the same one is a finding about the table, showing that value. NULLs are not values
    (as dbt-utils' `count(distinct ...)`): an empty table, or a column of NULLs only, passes.
    Exports to Great Expectations as `expect_column_unique_value_count_to_be_between`
    (`min_value: 2`), which fails on a column of NULLs too; with `where` or `group_by` it
    is not exported. No constraints.sql section: no
    constraint says "not constant"."""

    written_order = ("column", "where", "group_by")
    kind: Literal["not_constant"]
    column: str

    def metrics(self, m: Measure) -> dict[str, Metric]:
        return {
            "distinct": m.kept(sa.func.count(sa.distinct(m.col(self.column)))),
            "values": m.kept(sa.func.count(m.col(self.column))),
            "value": m.kept(sa.func.min(sa.cast(m.col(self.column), sa.Text))),
        }

    def judge(self, values: dict[str, Any]) -> TableFinding | None:
        if values["distinct"] != 1:
            return None
        return TableFinding(
            str(values["value"]),
            f"each of {plural(values['values'], 'row')} with a value in {self.column} holds "
            "this one; at least 2 distinct values expected",
        )

    def gx(self) -> list[GxSpec]:
        kwargs = {"column": self.column, "min_value": 2}
        return [GxSpec("expect_column_unique_value_count_to_be_between", kwargs, self.column)]
