"""A column's values lie between bounds."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import model_validator

from .base import RowRule, TableScan, as_text
from .model import Check, Filtered, GxSpec

Bound = int | float | str  # numbers, or text PostgreSQL converts (dates, timestamps)


class RangeCheck(Filtered, Check):
    """`range`: a value of `column` that is not NULL must be at least `min` and at most
    `max` (either may be left out; `exclusive: true` excludes the bounds themselves). Bounds
    are numbers or text the column's type can read (`'2020-01-01'` for a date); one it
    cannot is exit 2 before the audit. `where` limits the rows checked."""

    holds_values: ClassVar[bool] = True
    written_order = ("column", "min", "max", "exclusive", "where")
    kind: Literal["range"]
    column: str
    min: Bound | None = None
    max: Bound | None = None
    exclusive: bool = False

    @model_validator(mode="after")
    def _a_bound(self) -> RangeCheck:
        if self.min is None and self.max is None:
            raise ValueError("a range needs `min:`, `max:` or both")
        return self

    def column_list(self) -> list[str]:
        return [self.column]

    def _inside(self, c: Any) -> Any:
        parts = []
        if self.min is not None:
            low = sa.literal(self.min)
            parts.append(c > low if self.exclusive else c >= low)
        if self.max is not None:
            high = sa.literal(self.max)
            parts.append(c < high if self.exclusive else c <= high)
        return sa.and_(*parts)

    def rules(self, scan: TableScan) -> list[RowRule]:
        c = scan.col(self.column)
        return [RowRule(self.id, self, self.column, sa.not_(self._inside(c)), as_text(c))]

    def gx(self) -> list[GxSpec]:
        kwargs: dict[str, Any] = {"column": self.column}
        if self.min is not None:
            kwargs |= {"min_value": self.min, "strict_min": self.exclusive}
        if self.max is not None:
            kwargs |= {"max_value": self.max, "strict_max": self.exclusive}
        return [GxSpec("expect_column_values_to_be_between", kwargs, self.column)]

    def probe_values(self) -> list[Any]:
        return [b for b in (self.min, self.max) if b is not None]

    def check_body(self, col: Any) -> Any:
        return self._inside(col(self.column))
