"""How a kind runs, as the kind declares it: its stage, and what its findings are about.

A kind names one `Stage` (`stage: ClassVar[Stage] = AGGREGATE`); the engine gives each stage
the checks that declared it, table by table, and builds that stage's statements for the
table (`refaudit.engine`). Outputs never ask which kind a result came from: a result carries
the `Scope` of its findings (rows of the table, or the table as a whole) and its stage's
name, and every output reads those.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Scope(StrEnum):
    """What one finding of a check is about."""

    ROWS = "rows"
    """A row of the table (or a group of them, for a set check): `rows_checked` counts the
    rows looked at, and the rate is findings per row."""
    TABLE = "table"
    """The table as a whole (a count, a proportion, its newest value, its definition in the
    catalog): there is no rate, and `max_rate` does not apply."""


@dataclass(frozen=True)
class Stage:
    """One way of running checks.

    `name` is what the suite reference and results.json call it; `progress` the step the
    progress display shows while it runs; `scope` what its findings are about unless the
    kind says otherwise (`Check.scope`); `reads_rows`: whether it reads the table's rows
    (a catalog check reads `pg_catalog` only, so it counts no rows).
    """

    name: str
    progress: str
    scope: Scope
    reads_rows: bool = True

    def __str__(self) -> str:
        return self.name


ROW_SCAN = Stage("row", "row checks", Scope.ROWS)
"""Flags on every row of one table: every row check of a table is one scan (split only when
the statement would be too wide), returning the flagged rows (`refaudit.plan`)."""

AGGREGATE = Stage("aggregate", "aggregates", Scope.TABLE)
"""Metrics over a table's rows (counts, distinct counts, a newest value): every metric of
every aggregate check of a table is one `SELECT` of aggregates, a check's `where` a FILTER
clause, one statement per grouping (`group_by`); each check then judges its metrics."""

SET = Stage("set", "set checks", Scope.ROWS)
"""A query of the check's own over whole sets of rows (duplicates, two columns' value sets),
returning `(key, value, kept)` per finding."""

CATALOG = Stage("catalog", "catalog", Scope.TABLE, reads_rows=False)
"""Answered from `pg_catalog` (constraints, indexes, triggers): no row is read."""

STAGES: tuple[Stage, ...] = (ROW_SCAN, AGGREGATE, SET, CATALOG)
"""Every stage, in the order the engine runs them."""
