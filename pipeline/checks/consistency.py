"""Cross-table consistency: the row a reference points at must agree with the referencing row
(the package belongs to the request's tutor; `package_name` is the package's name)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pipeline.checks.base import RowRule, TableScan, as_text
from pipeline.suite import ConsistencyCheck


def consistency_rules(check: ConsistencyCheck, scan: TableScan) -> list[RowRule]:
    def on(alias: Any) -> sa.ColumnElement[bool]:
        return alias.c[check.target.column] == scan.col(check.column)

    j = scan.join(check.target.table, check.target.column, on, (check.column, ""))
    differs = [scan.col(m.column) != j.c[m.target_column] for m in check.match]
    flag = sa.and_(j.c[check.target.column].is_not(None), sa.or_(*differs))
    if len(check.match) == 1:
        value = as_text(scan.col(check.match[0].column))
    else:
        value = sa.func.concat_ws(",", *(as_text(scan.col(m.column)) for m in check.match))
    label = ",".join(m.column for m in check.match)
    return [RowRule(check.id, check, label, flag, value)]
