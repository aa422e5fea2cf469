"""Cross-table consistency: the row a reference points at must agree with the referencing row
(the package belongs to the request's tutor; `package_name` is the package's name)."""

from __future__ import annotations

from typing import Any, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from .base import RowRule, TableScan, as_text, equal_as
from .model import Check, ColumnRef, KeySpace, MatchPair, key_form_problem


class ConsistencyCheck(Check):
    """`consistency`: where `column` names a row of `target: {table, column}`, that row must
    agree with this one on every `match: [{column, target_column}]` pair (the package a
    request names belongs to the request's tutor). A missing target row is `reference`'s
    finding, not this one's; a `where` in the target limits the target rows that count. A
    composite key names `columns: [org_id, package_no]` and
    `target: {table, columns: [...]}`; a row with a NULL in any of them names no row (MATCH
    SIMPLE) and passes."""

    written_order = ("column", "columns", "target", "match")
    kind: Literal["consistency"]
    column: str = ""
    columns: list[str] | None = None
    target: ColumnRef
    match: list[MatchPair] = Field(min_length=1)

    @model_validator(mode="after")
    def _one_form(self) -> ConsistencyCheck:
        if bool(self.column) == bool(self.columns):
            raise ValueError("a consistency check names `column:` or (a composite key) `columns:`")
        if self.columns:
            key_form_problem(self.columns, [self.target])
        elif self.target.columns:
            raise ValueError(
                f"`column: {self.column}` names one column but the target {self.target.table} "
                f"names `columns: [{', '.join(self.target.columns)}]`; give the target "
                "`column:`, or the check `columns: [...]` as many"
            )
        return self

    def key_of_row(self) -> list[str]:
        """The columns naming the target row: `[column]` or `columns`."""
        return list(self.columns) if self.columns else [self.column]

    def column_list(self) -> list[str]:
        return list(dict.fromkeys([*self.key_of_row(), *(m.column for m in self.match)]))

    def tables(self) -> list[str]:
        return [self.table, self.target.table]

    def reads(self, key_spaces: dict[str, KeySpace]) -> dict[str, set[str]]:
        return {
            self.table: set(self.column_list()),
            self.target.table: {
                *self.target.key_columns(),
                *(m.target_column for m in self.match),
                *(self.target.where.columns() if self.target.where else []),
            },
        }

    def target_filters(self) -> list[tuple[str, Any]]:
        return [(self.target.table, self.target.where)] if self.target.where else []

    def rules(self, scan: TableScan) -> list[RowRule]:
        keys = self.target.key_columns()
        if self.columns:
            table, columns = self.target.table, self.columns

            def on(alias: Any) -> sa.ColumnElement[bool]:
                return sa.and_(
                    *(
                        equal_as(
                            scan.comparable((scan.table, col), (table, key)),
                            alias.c[key],
                            scan.col(col),
                            scan.folds((scan.table, col), (table, key)),
                        )
                        for key, col in zip(keys, columns, strict=True)
                    )
                )

            j = scan.join(table, tuple(keys), on, (*columns,), keep=self.target.where)
        else:

            def on(alias: Any) -> sa.ColumnElement[bool]:
                return alias.c[self.target.column] == scan.col(self.column)

            j = scan.join(
                self.target.table, self.target.column, on, (self.column, ""),
                keep=self.target.where,
            )  # fmt: skip
        differs = [scan.col(m.column) != j.c[m.target_column] for m in self.match]
        flag = sa.and_(j.c[keys[0]].is_not(None), sa.or_(*differs))
        if len(self.match) == 1:
            value = as_text(scan.col(self.match[0].column))
        else:
            value = sa.func.concat_ws(",", *(as_text(scan.col(m.column)) for m in self.match))
        label = ",".join(m.column for m in self.match)
        return [RowRule(self.id, self, label, flag, value)]
