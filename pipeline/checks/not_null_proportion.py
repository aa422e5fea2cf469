"""The share of a column's rows that hold a value (dbt-utils `not_null_proportion`)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from ..words import plural
from .model import AggregateCheck, GxSpec, Measure, Metric, TableFinding


class NotNullProportionCheck(AggregateCheck):
    """`not_null_proportion`: the proportion of rows (of those `where` keeps; per group with
    `group_by`) whose `column` is not NULL is at least `at_least` (default 0) and at most
    `at_most` (default 1), both between 0 and 1 and inclusive, as in dbt-utils. A table (or
    group) outside the bounds is a finding about the table showing the proportion; an empty
    table has no proportion and passes. Exports to Great Expectations as
    `expect_column_values_to_not_be_null` with `mostly: at_least` and, for `at_most` below
    1, `expect_column_values_to_be_null` with `mostly: 1 - at_most`; with `where` or
    `group_by` it is not exported. No constraints.sql
    section: a constraint holds for each row, not for a share of them."""

    written_order = ("column", "at_least", "at_most", "where", "group_by")
    kind: Literal["not_null_proportion"]
    column: str
    at_least: float = Field(default=0, ge=0, le=1)
    at_most: float = Field(default=1, ge=0, le=1)

    @model_validator(mode="after")
    def _bounds(self) -> NotNullProportionCheck:
        if self.at_least > self.at_most:
            raise ValueError(
                f"check {self.id}: at_least {self.at_least} is above at_most {self.at_most}; "
                "no proportion passes - swap them"
            )
        return self

    def metrics(self, m: Measure) -> dict[str, Metric]:
        return {"values": m.kept(sa.func.count(m.col(self.column)))}

    def judge(self, values: dict[str, Any]) -> TableFinding | None:
        rows = values["rows"]
        if not rows:
            return None
        share = values["values"] / rows
        if self.at_least <= share <= self.at_most:
            return None
        bounds = []
        if self.at_least > 0:
            bounds.append(f"at least {self.at_least:g}")
        if self.at_most < 1:
            bounds.append(f"at most {self.at_most:g}")
        return TableFinding(
            f"{share:.6g}",
            f"{values['values']} of {plural(rows, 'row')} with a value in {self.column}; "
            f"{' and '.join(bounds)} expected",
        )

    def gx(self) -> list[GxSpec]:
        specs = []
        if self.at_least > 0:
            specs.append(
                GxSpec(
                    "expect_column_values_to_not_be_null",
                    {"column": self.column, "mostly": self.at_least},
                    self.column,
                )
            )
        if self.at_most < 1:
            specs.append(
                GxSpec(
                    "expect_column_values_to_be_null",
                    {"column": self.column, "mostly": round(1 - self.at_most, 12)},
                    self.column,
                )
            )
        return specs
