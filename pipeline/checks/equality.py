"""Two tables holding the same rows (dbt-utils `equality`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field, model_validator

from .base import Key, compile_condition, cut_text, table_clause
from .equal_rowcount import OtherTable
from .model import Check, Filtered
from .stage import SET, Stage

_ROUNDED = ("double precision", "real", "numeric")
"""The types `precision` rounds (dbt-utils: float and numeric columns)."""


class EqualityCheck(Filtered, Check):
    """`equality`: the rows of `table` and of `to: {table}` (those each side's `where`
    keeps) hold the same values in `columns`, as sets (dbt-utils semantics: `EXCEPT` both
    ways, so a row's copies count once and NULL matches NULL). Each set of values only one
    side holds is a finding, keyed by those values (a JSON array, in `columns` order), its
    value saying which table holds it and its evidence how many rows there; dbt-utils
    counts the findings the same way when both sides miss as many. With `precision: n`,
    float and numeric values are rounded to n decimal places first. `columns` names the
    columns compared, which both tables have (dbt-utils' `exclude_columns`: name the others).
    Exports to Great Expectations as the engine's SQL (`UnexpectedRowsExpectation`): GX
    compares columns of one table only. No constraints.sql section: no constraint ties two
    tables' rows."""

    stage: ClassVar[Stage] = SET
    written_order = ("to", "columns", "precision", "where")
    kind: Literal["equality"]
    to: OtherTable
    columns: list[str] = Field(min_length=1)
    precision: int | None = Field(default=None, ge=0)

    @model_validator(mode="after")
    def _once(self) -> EqualityCheck:
        twice = [c for c in dict.fromkeys(self.columns) if self.columns.count(c) > 1]
        if twice:
            raise ValueError(
                f"check {self.id}: `columns:` names `{twice[0]}` twice; name each column once"
            )
        return self

    def column_list(self) -> list[str]:
        return list(self.columns)

    def tables(self) -> list[str]:
        return [self.table, self.to.table]

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        need = {self.table: {*self.columns, *(self.where.columns() if self.where else [])}}
        other = self.to.where.columns() if self.to.where else []
        need.setdefault(self.to.table, set()).update({*self.columns, *other})
        return need

    def evidence(self, kept: Any) -> str:
        rows = "1 row holds" if kept == 1 else f"{kept} rows hold"
        return f"{rows} these values; no row of the other table does"

    def _compared(self, col: Any) -> list[Any]:
        """The compared values of a row, `precision` rounding float and numeric ones (the
        branch is chosen by the value's type, so other types are never cast)."""
        if self.precision is None:
            return [col(c).label(f"v{i}") for i, c in enumerate(self.columns)]
        out = []
        for i, c in enumerate(self.columns):
            typed = sa.cast(sa.func.pg_typeof(col(c)), sa.Text)
            rounded = sa.func.round(sa.cast(sa.cast(col(c), sa.Text), sa.Numeric), self.precision)
            value = sa.case(
                (typed.in_(_ROUNDED), sa.cast(rounded, sa.Text)), else_=sa.cast(col(c), sa.Text)
            )
            out.append(value.label(f"v{i}"))
        return out

    def query(self, key: Key) -> Any:
        """(key, value, kept) per set of values one side lacks: the values, the table
        holding them, how many of its rows do."""

        def side(name: str, where: Any, alias: str, here: int) -> Any:
            cols = [*self.columns, *(where.columns() if where else [])]
            t = table_clause(name, cols).alias(alias)
            stmt = sa.select(*self._compared(lambda c: t.c[c]), sa.literal(here).label("here"))
            return stmt.where(compile_condition(where, lambda c: t.c[c])) if where else stmt

        # both tables' rows in one set, grouped by the values (GROUP BY puts NULLs together,
        # as EXCEPT does): a group with no row of one side is a finding
        both = sa.union_all(
            side(self.table, self.where, "t", 1),  # `t`: the audited table
            side(self.to.table, self.to.where, "u", 0),
        ).subquery("both")
        values = [both.c[f"v{i}"] for i in range(len(self.columns))]
        here = sa.func.count().filter(both.c.here == 1)
        there = sa.func.count().filter(both.c.here == 0)
        found = cut_text(sa.func.json_build_array(*values))
        which = sa.case(
            (there == 0, sa.literal(f"only in {self.table}", sa.Text)),
            else_=sa.literal(f"only in {self.to.table}", sa.Text),
        )
        return (
            sa.select(found.label("key"), which.label("value"), (here + there).label("kept"))
            .group_by(*values)
            .having(sa.or_(here == 0, there == 0))
            .order_by(found, which)
        )
