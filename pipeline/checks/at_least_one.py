"""A column that must hold a value somewhere (dbt-utils `at_least_one`)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa

from ..words import plural
from .model import AggregateCheck, GxSpec, Measure, Metric, TableFinding


class AtLeastOneCheck(AggregateCheck):
    """`at_least_one`: at least one row (of those `where` keeps) has a value in `column`
    that is not NULL; with `group_by`, every group of rows does (a group whose rows are all
    NULL in `column` is a finding, its key the group's values). A table that is empty, or
    NULL in every row, is a finding about the table. Exports to Great Expectations as
    `expect_column_unique_value_count_to_be_between` (`min_value: 1`: NULL is not a value);
    with `group_by` or `where` it is not exported. No constraints.sql section: no constraint
    asks for one row."""

    written_order = ("column", "where", "group_by")
    kind: Literal["at_least_one"]
    column: str

    def metrics(self, m: Measure) -> dict[str, Metric]:
        return {"values": m.kept(sa.func.count(m.col(self.column)))}

    def judge(self, values: dict[str, Any]) -> TableFinding | None:
        if values["values"]:
            return None
        rows = values["rows"]
        return TableFinding(
            "NULL" if rows else "",
            f"no value in {self.column} in {plural(rows, 'row')}; at least one expected"
            if rows
            else "no row; at least one with a value expected",
        )

    def gx(self) -> list[GxSpec]:
        kwargs = {"column": self.column, "min_value": 1}
        return [GxSpec("expect_column_unique_value_count_to_be_between", kwargs, self.column)]
