"""A predicate across the columns of one row."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa

from .base import RowRule, TableScan, as_text, compile_condition
from .model import Check, Condition, Filtered


class RowRuleCheck(Filtered, Check):
    """`row_rule`: where the condition `where` holds (every row without one), `require`
    must hold; a row where it is false is a finding (NULL passes). `columns` names what the
    findings show (default: the columns the conditions read)."""

    holds_values: ClassVar[bool] = True
    written_order = ("columns", "description", "where", "require")
    kind: Literal["row_rule"]
    require: Condition
    columns: list[str] | None = None

    def column_list(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        where = self.where.columns() if self.where else []
        return list(dict.fromkeys([*where, *self.require.columns()]))

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        where = self.where.columns() if self.where else []
        return {self.table: {*self.column_list(), *where, *self.require.columns()}}

    def rules(self, scan: TableScan) -> list[RowRule]:
        flag = sa.not_(compile_condition(self.require, scan.col))  # `where`: the engine
        cols = self.column_list()
        value = sa.func.concat_ws(
            ",", *(sa.func.coalesce(as_text(scan.col(c)), sa.literal("NULL")) for c in cols)
        )
        return [RowRule(self.id, self, ",".join(cols), flag, value)]

    def check_body(self, col: Any) -> Any:
        return compile_condition(self.require, col)  # `where`: constraints.sql
