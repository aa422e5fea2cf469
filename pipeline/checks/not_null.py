"""NOT NULL on one or more columns."""

from __future__ import annotations

from typing import Any, Literal, Self

import sqlalchemy as sa
from pydantic import Field

from .base import RowRule, TableScan
from .model import Check, Condition, Filtered, GxSpec


class NotNullCheck(Filtered, Check):
    """`not_null`: none of `columns` may be NULL (in the rows `where` keeps); one finding
    per row and column."""

    written_order = ("columns", "where")
    kind: Literal["not_null"]
    columns: list[str] = Field(min_length=1)

    @classmethod
    def propose(
        cls, id: str, table: str, columns: list[str], *, where: Condition | None = None
    ) -> Self:
        """None of `columns` of `table` is NULL (in the rows `where` keeps)."""
        data: dict[str, Any] = {"id": id, "kind": "not_null", "table": table, "columns": columns}
        if where is not None:
            data["where"] = where
        return cls.model_validate(data)

    def column_list(self) -> list[str]:
        return list(self.columns)

    def rules(self, scan: TableScan) -> list[RowRule]:
        return [
            RowRule(self.id, self, c, scan.col(c).is_(None), sa.literal("NULL"))
            for c in self.columns
        ]

    def gx(self) -> list[GxSpec]:
        return [
            GxSpec("expect_column_values_to_not_be_null", {"column": c}, c) for c in self.columns
        ]

    def check_body(self, col: Any) -> Any:
        return sa.and_(*(col(c).is_not(None) for c in self.columns))
