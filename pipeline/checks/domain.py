"""Domain rules on one row: NOT NULL, value sets, patterns and predicates across columns."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from pipeline.checks.base import RowRule, TableScan, as_text, not_one_of, one_of
from pipeline.suite import Condition, InSetCheck, NotNullCheck, Operand, PatternCheck, RowRuleCheck

_COMPARISONS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def compile_condition(cond: Condition, col: Any) -> sa.ColumnElement[bool]:
    """A suite condition as SQL over the columns `col(name)`; values become bound parameters."""
    if cond.all is not None:
        return sa.and_(*(compile_condition(c, col) for c in cond.all))
    if cond.any is not None:
        return sa.or_(*(compile_condition(c, col) for c in cond.any))
    if cond.not_ is not None:
        return sa.not_(compile_condition(cond.not_, col))
    assert cond.column is not None
    left = col(cond.column)
    for op, fn in _COMPARISONS.items():
        right = getattr(cond, op)
        if right is not None:
            return fn(left, col(right.column) if isinstance(right, Operand) else sa.literal(right))
    if cond.in_ is not None:
        return one_of(left, cond.in_)
    if cond.not_in is not None:
        return not_one_of(left, cond.not_in)
    return left.is_(None) if cond.is_null else left.is_not(None)


def not_null_rules(check: NotNullCheck, scan: TableScan) -> list[RowRule]:
    return [
        RowRule(check.id, check, c, scan.col(c).is_(None), sa.literal("NULL"))
        for c in check.columns
    ]


def in_set_rules(check: InSetCheck, scan: TableScan) -> list[RowRule]:
    c = scan.col(check.column)
    return [RowRule(check.id, check, check.column, not_one_of(c, check.values), as_text(c))]


def pattern_rules(check: PatternCheck, scan: TableScan) -> list[RowRule]:
    c = scan.col(check.column)
    return [
        RowRule(check.id, check, check.column, sa.not_(c.regexp_match(check.regex)), as_text(c))
    ]


def row_rule_rules(check: RowRuleCheck, scan: TableScan) -> list[RowRule]:
    flag = sa.not_(compile_condition(check.require, scan.col))
    if check.where is not None:
        flag = sa.and_(compile_condition(check.where, scan.col), flag)
    cols = check.column_list()
    value = sa.func.concat_ws(
        ",", *(sa.func.coalesce(as_text(scan.col(c)), sa.literal("NULL")) for c in cols)
    )
    return [RowRule(check.id, check, ",".join(cols), flag, value)]
