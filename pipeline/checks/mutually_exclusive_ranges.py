"""Ranges of rows that must not overlap (dbt-utils `mutually_exclusive_ranges`)."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import sqlalchemy as sa
from pydantic import Field

from .base import Key, compile_condition, cut_text, key_columns, key_order, key_value, table_clause
from .model import Check, Filtered
from .stage import SET, Stage


class MutuallyExclusiveRangesCheck(Filtered, Check):
    """`mutually_exclusive_ranges`: each row's range from `lower` to `upper` (two columns)
    overlaps no other row's (of those `where` keeps; within each group of `partition_by`
    values), as dbt-utils checks it: in order of `lower` then `upper`, a range must be
    non-empty (`lower < upper`; `lower <= upper` with `zero_length_allowed: true`) and end
    at or before the next one starts. `gaps`: `allowed` (default), `not_allowed` (each range
    ends where the next starts) or `required` (each ends before the next starts). A row
    that breaks either is a finding, keyed by the row, showing its range; a NULL bound
    fails, except a NULL `upper` with `unbounded_upper: true` (a range that never ends, as
    dbt-utils' `coalesce(valid_to, '2099-01-01')`). Exports to Great Expectations as the
    engine's SQL (`UnexpectedRowsExpectation`): GX has no expectation on ranges. No
    constraints.sql section: PostgreSQL enforces it as an exclusion constraint on a range
    type, which is a change of the table's design to review, not a repair."""

    stage: ClassVar[Stage] = SET
    written_order = ("lower", "upper", "partition_by", "gaps", "zero_length_allowed")
    kind: Literal["mutually_exclusive_ranges"]
    lower: str
    upper: str
    partition_by: list[str] | None = Field(default=None, min_length=1)
    gaps: Literal["allowed", "not_allowed", "required"] = "allowed"
    zero_length_allowed: bool = False
    unbounded_upper: bool = False

    def column_list(self) -> list[str]:
        return [self.lower, self.upper]

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        where = self.where.columns() if self.where else []
        return {self.table: {self.lower, self.upper, *(self.partition_by or []), *where}}

    def evidence(self, kept: Any) -> str:
        return str(kept)

    def query(self, key: Key) -> Any:
        """(key, value, kept) per row at fault: its key, its range, the next range's start."""
        where = self.where.columns() if self.where else []
        cols = [*key_columns(key), self.lower, self.upper, *(self.partition_by or []), *where]
        t = table_clause(self.table, cols).alias("t")
        lo, hi = t.c[self.lower], t.c[self.upper]
        part = [t.c[c] for c in self.partition_by or []]
        ranked = sa.select(
            key_value(lambda c: t.c[c], key).label("key"),
            *(t.c[c].label(f"k{i}") for i, c in enumerate(key_columns(key))),
            lo.label("lo"),
            hi.label("hi"),
            sa.func.lead(lo).over(partition_by=part, order_by=[lo, hi]).label("next_lo"),
            (
                sa.func.row_number().over(partition_by=part, order_by=[lo.desc(), hi.desc()]) == 1
            ).label("last"),
        )
        if self.where is not None:
            ranked = ranked.where(compile_condition(self.where, lambda c: t.c[c]))
        r = ranked.subquery("ranked")
        non_empty = r.c.lo <= r.c.hi if self.zero_length_allowed else r.c.lo < r.c.hi
        before = {"allowed": r.c.hi <= r.c.next_lo, "not_allowed": r.c.hi == r.c.next_lo,
                  "required": r.c.hi < r.c.next_lo}[self.gaps]  # fmt: skip
        sound: Any = sa.func.coalesce(non_empty, sa.false())
        ends: Any = sa.func.coalesce(before, r.c["last"], sa.false())
        if self.unbounded_upper:  # a NULL upper never ends: only the last range may have it
            sound = sa.or_(sa.and_(r.c.hi.is_(None), r.c.lo.is_not(None)), sound)
            ends = sa.case((r.c.hi.is_(None), r.c.next_lo.is_(None) & r.c["last"]), else_=ends)
        shown = sa.func.concat(
            sa.func.coalesce(sa.cast(r.c.lo, sa.Text), "NULL"), " to ",
            sa.func.coalesce(sa.cast(r.c.hi, sa.Text), "NULL"),
        )  # fmt: skip
        empty = "a bound is NULL" if not self.unbounded_upper else "the lower bound is NULL"
        order = "at most" if self.zero_length_allowed else "below"
        where_next = {"allowed": "at or after", "not_allowed": "exactly at",
                      "required": "after"}[self.gaps]  # fmt: skip
        why = sa.case(
            (sa.not_(sound), sa.case(
                (sa.or_(r.c.lo.is_(None), r.c.hi.is_(None)), sa.literal(empty, sa.Text)),
                else_=sa.literal(f"the lower bound must be {order} the upper", sa.Text))),
            (r.c.hi.is_(None) & r.c.next_lo.is_not(None), sa.func.concat(
                "the range never ends and the next starts at ", sa.cast(r.c.next_lo, sa.Text))),
            (r.c.next_lo.is_(None), sa.literal(
                "the next range's lower bound is NULL", sa.Text)),
            else_=sa.func.concat(
                "the next range starts at ", sa.cast(r.c.next_lo, sa.Text),
                sa.literal(f"; it must start {where_next} this one's end", sa.Text)),
        )  # fmt: skip
        return (
            sa.select(r.c.key, cut_text(shown).label("value"), cut_text(why).label("kept"))
            .where(sa.not_(sa.and_(sound, ends)))
            .order_by(*key_order(lambda c: r.c[f"k{key_columns(key).index(c)}"], key))
        )
