"""A column's values come from a fixed set."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from .base import RowRule, TableScan, as_text, not_one_of, one_of
from .model import Check, Filtered, GxSpec

Scalar = str | int | float | bool | None


class InSetCheck(Filtered, Check):
    """`in_set`: a value of `column` that is not NULL must be one of `values` (strings,
    numbers, booleans; PostgreSQL converts each to the column's type, and one it cannot hold
    is exit 2 before the audit). NULL always passes, as in a CHECK constraint, dbt's
    `accepted_values` and GX's `expect_column_values_to_be_in_set`; writing `null` among the
    values says so explicitly. `where` limits the rows checked."""

    holds_values: ClassVar[bool] = True
    written_order = ("column", "values", "where")
    kind: Literal["in_set"]
    column: str
    values: list[Scalar] = Field(min_length=1)

    def column_list(self) -> list[str]:
        return [self.column]

    def allowed(self) -> list[Any]:
        """The values a non-NULL value may be."""
        return [v for v in self.values if v is not None]

    def _outside(self, c: Any) -> Any:
        allowed = self.allowed()
        return not_one_of(c, allowed) if allowed else c.is_not(None)

    def rules(self, scan: TableScan) -> list[RowRule]:
        c = scan.col(self.column)
        return [RowRule(self.id, self, self.column, self._outside(c), as_text(c))]

    def gx(self) -> list[GxSpec]:
        return [
            GxSpec(
                "expect_column_values_to_be_in_set",
                {"column": self.column, "value_set": self.allowed()},
                self.column,
            )
        ]

    def probe_values(self) -> list[Any]:
        return self.allowed()

    def check_body(self, col: Any) -> Any:
        allowed = self.allowed()
        return one_of(col(self.column), allowed) if allowed else col(self.column).is_(None)
