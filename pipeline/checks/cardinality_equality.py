"""Two columns holding the same values as often (dbt-utils `cardinality_equality`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa

from .base import Key, cut_text, table_clause
from .model import Check, KeySpace, Model, TableName
from .stage import SET, Scope, Stage


class OtherColumn(Model):
    """The column compared with: `table` and its `column`."""

    table: TableName
    column: str


class CardinalityEqualityCheck(Check):
    """`cardinality_equality`: `column` of `table` and `to: {table, column}` hold the same
    values, each as many times (dbt-utils semantics: the two columns' `(value, count)` pairs
    are equal; NULL counts as a value). Each value whose count differs between the two, or
    that only one side holds, is a finding about the table, keyed by the value, showing the
    counts on both sides (dbt-utils returns such a value once per side it is on, so its
    failure count can be up to twice refaudit's; both pass and fail alike). Exports to Great
    Expectations as the engine's SQL (`UnexpectedRowsExpectation`): GX compares columns of
    one table only. No constraints.sql section: no constraint ties two tables' counts."""

    stage: ClassVar[Stage] = SET
    finding_scope: ClassVar[Scope | None] = Scope.TABLE
    written_order = ("column", "to")
    kind: Literal["cardinality_equality"]
    column: str
    to: OtherColumn

    def column_list(self) -> list[str]:
        return [self.column]

    def tables(self) -> list[str]:
        return [self.table, self.to.table]

    def reads(self, key_spaces: dict[str, KeySpace]) -> dict[str, set[str]]:
        need = {self.table: {self.column}}
        need.setdefault(self.to.table, set()).add(self.to.column)
        return need

    def evidence(self, kept: Any) -> str:
        return f"{kept} in {self.to.table}.{self.to.column}"

    def query(self, key: Key) -> Any:
        """(key, value, kept) per value whose counts differ: the value, its count in
        `table`, its count in `to`."""
        t = table_clause(self.table, [self.column]).alias("t")
        u = table_clause(self.to.table, [self.to.column]).alias("u")
        # both sides' values in one column (PostgreSQL finds their common type), grouped:
        # GROUP BY puts NULLs together, as dbt-utils' EXCEPT does
        both = sa.union_all(
            sa.select(t.c[self.column].label("v"), sa.literal(1).label("a")),
            sa.select(u.c[self.to.column].label("v"), sa.literal(0).label("a")),
        ).subquery("both")
        here = sa.func.count().filter(both.c.a == 1)
        there = sa.func.count().filter(both.c.a == 0)
        value = cut_text(sa.func.coalesce(sa.cast(both.c.v, sa.Text), sa.literal("NULL")))
        return (
            sa.select(
                value.label("key"), sa.cast(here, sa.Text).label("value"), there.label("kept")
            )
            .group_by(both.c.v)
            .having(here != there)
            .order_by(value)
        )
