"""References: a column must name an existing row of a target table.

`reference` has one target. `conditional_reference` chooses the target per row from a
discriminator column (`requester_type = 'student'` -> `student_profiles`), a reference no
foreign key can express; a row whose discriminator names no target is its own finding.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pipeline.checks.base import RowRule, TableScan, as_text
from pipeline.suite import ColumnRef, ConditionalReferenceCheck, ReferenceCheck

DISCRIMINATOR_SUFFIX = ".discriminator"


def _target_join(
    scan: TableScan, column: str, target: ColumnRef, when: sa.ColumnElement[bool] | None = None
) -> sa.Alias:
    def on(alias: Any) -> sa.ColumnElement[bool]:
        cond = alias.c[target.column] == scan.col(column)
        return sa.and_(when, cond) if when is not None else cond

    key = (column, str(when.compile()) if when is not None else "")
    return scan.join(target.table, target.column, on, key)


def reference_rules(check: ReferenceCheck, scan: TableScan) -> list[RowRule]:
    j = _target_join(scan, check.column, check.target)
    flag = sa.and_(scan.col(check.column).is_not(None), j.c[check.target.column].is_(None))
    return [RowRule(check.id, check, check.column, flag, as_text(scan.col(check.column)))]


def conditional_reference_rules(check: ConditionalReferenceCheck, scan: TableScan) -> list[RowRule]:
    disc = scan.col(check.discriminator)
    ref = scan.col(check.column)
    missing = []
    for value, target in check.targets.items():
        chosen = disc == sa.literal(value)
        j = _target_join(scan, check.column, target, chosen)
        missing.append(sa.and_(chosen, j.c[target.column].is_(None)))
    flag = sa.and_(ref.is_not(None), sa.or_(*missing))
    unknown = sa.or_(disc.is_(None), disc.not_in(list(check.targets)))
    return [
        RowRule(check.id, check, check.column, flag, as_text(ref)),
        RowRule(
            check.id + DISCRIMINATOR_SUFFIX,
            check,
            check.discriminator,
            unknown,
            sa.func.coalesce(as_text(disc), sa.literal("NULL")),
        ),
    ]
