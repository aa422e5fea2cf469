"""A column's text matches a regular expression."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Literal

import sqlalchemy as sa

from .base import RowRule, TableScan, as_text
from .model import Check, Filtered, GxSpec


class PatternCheck(Filtered, Check):
    """`pattern`: a value of `column` that is not NULL must match `regex` (PostgreSQL's `~`;
    a regex it rejects is exit 2 before the audit); `where` limits the rows checked."""

    holds_values: ClassVar[bool] = True
    written_order = ("column", "regex", "description", "where")
    kind: Literal["pattern"]
    column: str
    regex: str

    def column_list(self) -> list[str]:
        return [self.column]

    def rules(self, scan: TableScan) -> list[RowRule]:
        c = scan.col(self.column)
        flag = sa.not_(c.regexp_match(self.regex))
        return [RowRule(self.id, self, self.column, flag, as_text(c))]

    def probes(self) -> list[tuple[Any, Callable[[str], str]]]:
        def explain(message: str) -> str:
            return (
                f"regex {self.regex!r} is not valid for PostgreSQL's ~ operator: {message}; "
                "fix its `regex:`"
            )

        return [(sa.select(sa.literal("").regexp_match(self.regex)), explain)]

    def gx(self) -> list[GxSpec]:
        return [
            GxSpec(
                "expect_column_values_to_match_regex",
                {"column": self.column, "regex": self.regex},
                self.column,
            )
        ]

    def check_body(self, col: Any) -> Any:
        return col(self.column).regexp_match(self.regex)
