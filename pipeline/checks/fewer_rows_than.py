"""A table with fewer rows than another (dbt-utils `fewer_rows_than`)."""

from __future__ import annotations

from typing import Any, Literal

from .equal_rowcount import OtherTable, RowCounts


class FewerRowsThanCheck(RowCounts):
    """`fewer_rows_than`: `table` has fewer rows than `than: {table}` (counting only the
    rows each side's `where` keeps); with `group_by` (columns both tables have), each group
    of rows does. As many rows or more is a finding about the table (a group's: keyed by
    its values) showing this table's count, the other's in the evidence; dbt-utils' failure
    count is the excess (1 for equal counts). Unlike dbt-utils, whose join leaves it out, a
    group only this table holds fails (the other has 0 rows of it). Exports to Great
    Expectations as the engine's SQL (`UnexpectedRowsExpectation`): GX compares a table's
    row count with another's for equality only. No constraints.sql section: no constraint
    ties two tables' sizes."""

    written_order = ("than", "where", "group_by")
    kind: Literal["fewer_rows_than"]
    than: OtherTable

    @property
    def other(self) -> OtherTable:
        return self.than

    def passes(self, here: Any, there: Any) -> Any:
        return here < there

    def expected(self) -> str:
        return "fewer expected"
