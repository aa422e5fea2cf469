"""A boolean SQL expression every row must satisfy (dbt-utils `expression_is_true`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import model_validator

from .. import sqltext
from .base import RowRule, TableScan, as_text
from .expression import ExpressionError, SqlExpression, parse_expression, volatility_problem
from .model import Check, Filtered


class ExpressionCheck(Filtered, Check):
    """`expression`: every row (of those `where` keeps) makes `expression` true; a row where
    it is false is a finding (NULL passes, as dbt-utils' `where not (...)`). The expression
    is SQL over the row's own columns (`col_a + col_b = 1`, `lower(email) = email`), read by
    PostgreSQL's parser and limited to columns, constants, operators, function calls, CASE,
    COALESCE, NULLIF, casts to plain types and boolean and NULL tests: no subquery, no other
    table; every function it calls must be immutable or stable, as the server confirms
    before the audit. With `column`, the expression is written after that column, as in
    dbt-utils' column form (`column: col_a`, `expression: "+ col_b = 1"`). Findings show the
    values of the columns it reads. A row on which the expression raises (a division by
    zero, a text that does not cast) is a finding too, with the diagnosis `error` and the
    server's message as evidence; the audit goes on. Exports to Great Expectations as the
    engine's SQL (`UnexpectedRowsExpectation`). No constraints.sql section: a CHECK constraint needs
    immutable functions, and a row rule that holds can be enforced by a `constraint`
    check of type `check`."""

    may_raise: ClassVar[bool] = True
    written_order = ("column", "expression", "where", "description")
    kind: Literal["expression"]
    expression: str
    column: str | None = None

    @model_validator(mode="after")
    def _parses(self) -> ExpressionCheck:
        try:
            parse_expression(self.text())
        except ExpressionError as exc:
            raise ValueError(
                f"check {self.id}: expression `{sqltext.comment(self.text())}` {exc}"
            ) from None
        return self

    def text(self) -> str:
        """The whole expression: `column` and `expression` when both are given."""
        return f"{self.column} {self.expression}" if self.column else self.expression

    def parsed(self) -> SqlExpression:
        return parse_expression(self.text())

    def column_list(self) -> list[str]:
        return list(self.parsed().columns)

    def rules(self, scan: TableScan) -> list[RowRule]:
        expr = self.parsed()
        flag = sa.not_(expr.element(scan.t.name))  # `(NOT (...)) IS true`: NULL passes
        shown = [sa.func.coalesce(as_text(scan.col(c)), sa.literal("NULL")) for c in expr.columns]
        value = sa.func.concat_ws(",", *shown) if shown else sa.literal("", sa.Text)
        return [RowRule(self.id, self, ",".join(expr.columns), flag, value)]

    def sql_problem(self, conn: Any) -> str | None:
        """An expression PostgreSQL cannot run over the table, or one that calls a volatile
        function (its value would change within the audit)."""
        problem = volatility_problem(conn, self.table, self.parsed(), "stable")
        return None if problem is None else sqltext.comment(f"expression: {problem}")
