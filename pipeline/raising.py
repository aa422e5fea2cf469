"""Rows on which a rule raises: a table statement that stops on a data exception (SQLSTATE
class 22: a division by zero, a text that does not cast) in a rule of a kind that `may_raise`
(SQL the suite wrote) does not end the audit.

The statement runs in a savepoint. When it raises, each such rule is tried alone; for one
that raises, its raising rows are found by bisection over the table's keys in key order
(each half tried in a savepoint, a range of keys found through the key's index, the rule
guarded by a CASE so that it is evaluated on that range only): a few statements per raising
row, all in the audit's snapshot, none writing anything. The table statement then runs again
with those rows left out of those rules (a CASE again), and each raising row becomes a
finding of its rule, with the diagnosis `error` and the server's message as evidence.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .checks.base import Violation, is_true, key_columns, key_value
from .plan import TablePlan

DATA_EXCEPTION = "22"
"""SQLSTATE class of the errors a row's values cause (PostgreSQL's "data exception")."""


def data_error(exc: sa_exc.DBAPIError) -> str | None:
    """The server's one-line message when `exc` is a data exception, else None."""
    orig: Any = exc.orig
    if not (getattr(orig, "pgcode", None) or "").startswith(DATA_EXCEPTION):
        return None
    diag = getattr(orig, "diag", None)
    message = getattr(diag, "message_primary", None) or str(orig).strip().splitlines()[0]
    return " ".join(str(message).split())


def _raises(conn: Connection, stmt: Any) -> str | None:
    """Run `stmt` in a savepoint: the data exception's message, or None when it runs."""
    try:
        with conn.begin_nested():
            conn.execute(stmt).all()
    except sa_exc.DBAPIError as exc:
        message = data_error(exc)
        if message is None:
            raise
        return message
    return None


def _raising_rows(conn: Connection, plan: TablePlan) -> dict[int, list[tuple[str, str]]]:
    """Per rule (its index in the plan) that raises on its own: (key, message) of each row
    it raises on."""
    assert plan.scan is not None
    t = plan.scan.t
    cols = [t.c[c] for c in key_columns(plan.key)]
    row_key = sa.cast(key_value(lambda c: t.c[c], plan.key), sa.Text)
    keys: list[Any] | None = None
    found: dict[int, list[tuple[str, str]]] = {}

    def between(lo: Any, hi: Any) -> Any:
        if len(cols) == 1:
            return sa.and_(cols[0] >= lo[0], cols[0] <= hi[0])
        return sa.and_(sa.tuple_(*cols) >= sa.tuple_(*lo), sa.tuple_(*cols) <= sa.tuple_(*hi))

    def probe(keys: list[Any], flag: Any, lo: int, hi: int) -> str | None:
        """The message if `flag` raises on the rows of keys[lo..hi] (and on no other)."""
        inside = between(keys[lo][:-1], keys[hi][:-1])
        guarded = sa.case((inside, is_true(flag)), else_=sa.false())
        return _raises(conn, sa.select(sa.func.count()).select_from(t).where(inside, guarded))

    for i, rule in enumerate(plan.rules):
        if not rule.check.may_raise:
            continue
        message = _raises(conn, sa.select(sa.func.count()).select_from(t).where(is_true(rule.flag)))
        if message is None:
            continue
        if keys is None:
            keys = list(conn.execute(sa.select(*cols, row_key).order_by(*cols)).all())
        rows: list[tuple[str, str]] = []
        todo = [(0, len(keys) - 1, message)]
        while todo:
            lo, hi, said = todo.pop()
            if lo == hi:
                rows.append((str(keys[lo][-1]), said))
                continue
            mid = (lo + hi) // 2
            for a, b in ((mid + 1, hi), (lo, mid)):  # popped low half first: key order
                half = probe(keys, rule.flag, a, b)
                if half is not None:
                    todo.append((a, b, half))
        found[i] = rows
    return found


def _leaving_out(plan: TablePlan, raising: dict[int, list[tuple[str, str]]]) -> TablePlan:
    """`plan` with each raising row left out of the rule it raises in (never evaluated)."""
    assert plan.scan is not None
    row_key = sa.cast(key_value(plan.scan.col, plan.key), sa.Text)
    rules = list(plan.rules)
    for i, rows in raising.items():
        out = row_key.in_([k for k, _ in rows])
        rules[i] = replace(rules[i], flag=sa.case((out, sa.false()), else_=rules[i].flag))
    return replace(plan, rules=rules)


def guarded_run(
    plan: TablePlan, run: Callable[[Connection, TablePlan], Any]
) -> Callable[[Connection], tuple[Any, list[Violation]]]:
    """What runs `run(conn, plan)` (a table statement into a spool) so that rows on which
    a rule of a kind that `may_raise` raises become findings: (its output, those findings).
    Any other error is raised."""

    def go(conn: Connection) -> tuple[Any, list[Violation]]:
        try:
            with conn.begin_nested():
                return run(conn, plan), []
        except sa_exc.DBAPIError as exc:
            if data_error(exc) is None:
                raise
            raising = _raising_rows(conn, plan)
            if not raising:
                raise
        errors = [
            Violation(
                plan.rules[i].rule_id,
                plan.table,
                key,
                plan.rules[i].column,
                "",
                diagnosis="error",
                evidence=message,
            )
            for i, rows in raising.items()
            for key, message in rows
        ]
        return run(conn, _leaving_out(plan, raising)), errors

    return go
