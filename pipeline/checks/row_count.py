"""Bounds on how many rows a table has."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from ..words import plural
from .model import AggregateCheck, GxSpec, Measure, Metric, TableFinding


class RowCountCheck(AggregateCheck):
    """`row_count`: the table has at least `min` and at most `max` rows (either may be left
    out), counting only the rows `where` keeps; with `group_by`, each group of rows does
    (a group exists only where it has rows, so `min` says how small an existing group may
    be). A count outside the bounds is a finding about the table showing the count. Exports
    to Great Expectations as `expect_table_row_count_to_be_between`; with `where` or
    `group_by` it is not exported. No constraints.sql
    section: no constraint bounds a table's size."""

    written_order = ("min", "max", "where", "group_by")
    kind: Literal["row_count"]
    min: int | None = Field(default=None, ge=0)
    max: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _bounds(self) -> RowCountCheck:
        if self.min is None and self.max is None:
            raise ValueError(f"check {self.id}: a row_count check needs `min:` or `max:` (or both)")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(
                f"check {self.id}: min {self.min} is above max {self.max}; no count passes - "
                "swap them"
            )
        return self

    def metrics(self, m: Measure) -> dict[str, Metric]:
        return {}  # `rows`, which every aggregate check has

    def judge(self, values: dict[str, Any]) -> TableFinding | None:
        rows = values["rows"]
        if (self.min is None or rows >= self.min) and (self.max is None or rows <= self.max):
            return None
        bounds = [f"at least {self.min}"] if self.min is not None else []
        bounds += [f"at most {self.max}"] if self.max is not None else []
        return TableFinding(str(rows), f"{plural(rows, 'row')}; {' and '.join(bounds)} expected")

    def gx(self) -> list[GxSpec]:
        kwargs: dict[str, Any] = {"min_value": self.min, "max_value": self.max}
        return [GxSpec("expect_table_row_count_to_be_between", kwargs)]
