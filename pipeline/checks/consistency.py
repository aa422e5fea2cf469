"""Cross-table consistency: the row a reference points at must agree with the referencing row
(the package belongs to the request's tutor; `package_name` is the package's name)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field

from pipeline.checks.base import RowRule, TableScan, as_text
from pipeline.checks.model import Check, ColumnRef, KeySpace, MatchPair


class ConsistencyCheck(Check):
    """`consistency`: where `column` names a row of `target: {table, column}`, that row must
    agree with this one on every `match: [{column, target_column}]` pair (the package a
    request names belongs to the request's tutor). A missing target row is `reference`'s
    finding, not this one's."""

    kind: Literal["consistency"]
    column: str
    target: ColumnRef
    match: list[MatchPair] = Field(min_length=1)

    def column_list(self) -> list[str]:
        return [self.column, *(m.column for m in self.match)]

    def tables(self) -> list[str]:
        return [self.table, self.target.table]

    def reads(self, key_spaces: dict[str, KeySpace]) -> dict[str, set[str]]:
        return {
            self.table: set(self.column_list()),
            self.target.table: {self.target.column, *(m.target_column for m in self.match)},
        }

    def rules(self, scan: TableScan) -> list[RowRule]:
        def on(alias: Any) -> sa.ColumnElement[bool]:
            return alias.c[self.target.column] == scan.col(self.column)

        j = scan.join(self.target.table, self.target.column, on, (self.column, ""))
        differs = [scan.col(m.column) != j.c[m.target_column] for m in self.match]
        flag = sa.and_(j.c[self.target.column].is_not(None), sa.or_(*differs))
        if len(self.match) == 1:
            value = as_text(scan.col(self.match[0].column))
        else:
            value = sa.func.concat_ws(",", *(as_text(scan.col(m.column)) for m in self.match))
        label = ",".join(m.column for m in self.match)
        return [RowRule(self.id, self, label, flag, value)]
