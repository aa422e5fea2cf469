"""How a check is enforced by the database: the CHECK body of a row check, and suite
conditions as SQL text, rendered as the plans write values (`refaudit.sqltext`)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql.base import PGCompiler, PGDialect

from ..sqltext import ident, literal
from .base import compile_condition

if TYPE_CHECKING:
    from .catalog import ConstraintCheck


class _PlanCompiler(PGCompiler):
    """Renders values as `refaudit.sqltext` does: quoted, one line, no `%` doubling (a
    plan is run as it is written, never through a driver's format string)."""

    def render_literal_value(self, value: Any, type_: Any) -> str:
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, float) and not math.isfinite(value):
            # `inf` and `nan` are no SQL literals (they would read as column names)
            word = "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
            return f"'{word}'::pg_catalog.float8"
        if isinstance(value, int | float):
            return repr(value)
        if isinstance(value, str):
            return literal(value)
        return str(super().render_literal_value(value, type_))


class _PlanDialect(PGDialect):
    statement_compiler = _PlanCompiler
    default_paramstyle = "named"  # no `%` doubling in names or values


def literal_sql(expr: Any) -> str:
    return str(expr.compile(dialect=_PlanDialect(), compile_kwargs={"literal_binds": True}))


def _column(name: str) -> Any:
    """A column of a CHECK body, quoted by `refaudit.sqltext.ident`."""
    return sa.literal_column(ident(name))


def condition_sql(cond: Any, prefix: str = "") -> str:
    """A suite condition as SQL text over columns `prefix + "col"` (`x.`, `NEW.`), values
    written by `refaudit.sqltext`."""

    def column(c: str) -> Any:
        name = ident(c)
        if prefix and name.startswith("U&"):  # PL/pgSQL finds no field `NEW.U&"..."`
            return sa.literal_column(f"({prefix.removesuffix('.')}).{name}")
        return sa.literal_column(prefix + name)

    return literal_sql(compile_condition(cond, column))


def check_expression(suite: Any, check: ConstraintCheck) -> str | None:
    """The CHECK body for a `type: check` constraint, from the row check it enforces."""
    if check.for_check is None:
        return None
    try:
        rule = suite.check(check.for_check)
    except KeyError:
        return None
    body = rule.check_body(_column)
    if body is None:
        return None
    kept = rule.row_filter()
    if kept is not None:  # rows the check does not look at pass
        body = sa.or_(sa.not_(compile_condition(kept, _column)), body)
    return literal_sql(body)
