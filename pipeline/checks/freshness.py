"""How old the newest value of a timestamp column may be (a nightly load that did not run)."""

from __future__ import annotations

import re
from typing import Any, Literal

import sqlalchemy as sa
from pydantic import field_validator

from ..words import plural
from .model import AggregateCheck, Measure, Metric, TableFinding

_UNITS = {"minute": 60, "hour": 3600, "day": 86400}
_AGE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(minute|hour|day)s?\s*$")


class FreshnessCheck(AggregateCheck):
    """`freshness`: the newest value of `column` (a date or timestamp; of the rows `where`
    keeps; per group with `group_by`) is at most `max_age` old (`36 hours`, `2 days`,
    `90 minutes`) at the time the audit's snapshot was taken (the server's `now()` in it;
    for a saved snapshot audited later, when it was taken); a `timestamp` without time
    zone is read in the server's TimeZone.
    A newest value older than that, or no value at all, is a finding about the table
    showing the newest value and its age. Not exported to Great Expectations: its column
    expectations take fixed bounds, not an age at the time of the run. No constraints.sql
    section: freshness is about loads, not rows."""

    written_order = ("column", "max_age", "where", "group_by")
    kind: Literal["freshness"]
    column: str
    max_age: str

    @field_validator("max_age")
    @classmethod
    def _age(cls, value: str) -> str:
        if _AGE.match(value) is None:
            raise ValueError(
                f"max_age `{value}` is not an age; write a number and minutes, hours or days "
                "(`36 hours`, `2 days`)"
            )
        return value

    def seconds(self) -> float:
        """`max_age` in seconds."""
        m = _AGE.match(self.max_age)
        assert m is not None  # validated
        return float(m.group(1)) * _UNITS[m.group(2)]

    def metrics(self, m: Measure) -> dict[str, Metric]:
        newest = m.kept(sa.func.max(m.col(self.column)))
        stamp = sa.cast(newest, sa.DateTime(timezone=True))
        return {
            "newest": sa.cast(newest, sa.Text),
            "age": sa.cast(sa.extract("epoch", m.now - stamp), sa.Float),
        }

    def judge(self, values: dict[str, Any]) -> TableFinding | None:
        if values["newest"] is None:
            rows = values["rows"]
            return TableFinding(
                "NULL",
                f"no value in {self.column} in {plural(rows, 'row')}; one at most "
                f"{self.max_age} old expected",
            )
        age = float(values["age"])
        if age <= self.seconds():
            return None
        return TableFinding(
            str(values["newest"]),
            f"the newest {self.column} is {_age(age)} old at the snapshot; at most "
            f"{self.max_age} expected",
        )

    def gx_unsupported(self) -> str | None:
        return (
            "freshness: GX's column expectations take fixed bounds, not an age at the time "
            "of the run; refaudit run answers it"
        )


def _age(seconds: float) -> str:
    """An age in words, in the largest unit that keeps it above 1 (`30.5 hours`)."""
    for unit in ("day", "hour", "minute"):
        n = seconds / _UNITS[unit]
        if n >= 1:
            return f"{n:.3g} {unit}{'' if n == 1 else 's'}"
    return f"{seconds:.3g} seconds"
