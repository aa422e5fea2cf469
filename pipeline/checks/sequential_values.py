"""A column whose values step by a fixed interval (dbt-utils `sequential_values`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field
from sqlalchemy.dialects.postgresql import INTERVAL

from .base import Key, compile_condition, cut_text, key_columns, key_order, key_value, table_clause
from .model import Check, Filtered
from .stage import SET, Stage

DatePart = Literal["microsecond", "millisecond", "second", "minute", "hour", "day", "week",
                   "month", "year"]  # fmt: skip


class SequentialValuesCheck(Filtered, Check):
    """`sequential_values`: in ascending order of `column` (within each group of `group_by`
    values; among the rows `where` keeps), each value is the one before it plus `interval`
    (default 1); for dates and timestamps, `datepart` names the interval's unit (`interval:
    1, datepart: hour`). A row whose value is not is a finding, keyed by the row, showing
    its value, the value before it in the evidence: a value held twice, or a missing step,
    flags the row after it (dbt-utils semantics). The first row, and a NULL value, pass.
    Exports to Great Expectations as the engine's SQL (`UnexpectedRowsExpectation`): GX's
    `expect_column_values_to_be_increasing` does not fix the step. No constraints.sql
    section: no constraint relates a row to the one before it."""

    stage: ClassVar[Stage] = SET
    written_order = ("column", "interval", "datepart", "group_by", "where")
    kind: Literal["sequential_values"]
    column: str
    interval: int | float = 1
    datepart: DatePart | None = None
    group_by: list[str] | None = Field(default=None, min_length=1)

    def column_list(self) -> list[str]:
        return [self.column]

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        where = self.where.columns() if self.where else []
        return {self.table: {self.column, *(self.group_by or []), *where}}

    def evidence(self, kept: Any) -> str:
        unit = f" {self.datepart}{'' if self.interval == 1 else 's'}" if self.datepart else ""
        step = f"{self.interval}{unit}"
        return f"the value before is {kept}; that plus {step} expected"

    def query(self, key: Key) -> Any:
        """(key, value, kept) per row at fault: its key, its value, the value before it."""
        where = self.where.columns() if self.where else []
        cols = [*key_columns(key), self.column, *(self.group_by or []), *where]
        t = table_clause(self.table, cols).alias("t")
        value = t.c[self.column]
        ranked = sa.select(
            key_value(lambda c: t.c[c], key).label("key"),
            *(t.c[c].label(f"k{i}") for i, c in enumerate(key_columns(key))),
            value.label("v"),
            sa.func.lag(value)
            .over(partition_by=[t.c[c] for c in self.group_by or []], order_by=value)
            .label("before"),
        )
        if self.where is not None:
            ranked = ranked.where(compile_condition(self.where, lambda c: t.c[c]))
        r = ranked.subquery("ranked")
        if self.datepart:
            step = sa.cast(sa.literal(f"{self.interval} {self.datepart}"), INTERVAL)
            follows = r.c.v == r.c.before + step
        else:
            follows = r.c.v == r.c.before + self.interval
        return (
            sa.select(r.c.key, cut_text(r.c.v).label("value"), cut_text(r.c.before).label("kept"))
            .where(sa.not_(follows))
            .order_by(*key_order(lambda c: r.c[f"k{key_columns(key).index(c)}"], key))
        )
