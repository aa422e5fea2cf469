"""A rule's flag is wrapped as `(flag) IS true` so that a row whose flag is NULL is never
flagged. SQLAlchemy writes `not_(x).is_(true())` as `NOT x IS true`, which PostgreSQL reads
as `NOT (x IS true)`: TRUE for a NULL `x`. The wrapper parenthesises whatever it is given;
PostgreSQL itself is the judge here."""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy as sa
from refaudit.checks.base import is_true
from refaudit.db import create_engine

from tests.conftest import as_url


def count_where(
    uri: str, condition: Callable[[sa.ColumnElement[bool]], sa.ColumnElement[bool]]
) -> int:
    rows = sa.values(sa.column("x", sa.Boolean), name="v").data([(None,), (True,), (False,)])
    x = rows.c.x
    engine = create_engine(as_url(uri))
    try:
        with engine.connect() as conn:
            stmt = sa.select(sa.func.count()).select_from(rows).where(condition(x))
            return int(conn.execute(stmt).scalar_one())
    finally:
        engine.dispose()


def test_a_negated_flag_never_flags_a_null_row(new_database: Callable[[str], str]) -> None:
    uri = new_database("flags")
    # the trap the wrapper avoids: SQLAlchemy's own rendering flags the NULL row too
    assert count_where(uri, lambda x: sa.not_(x).is_(sa.true())) == 2
    # the wrapper: only the row whose flag is TRUE (x false)
    assert count_where(uri, lambda x: is_true(sa.not_(x))) == 1
    assert count_where(uri, lambda x: is_true(sa.not_(x == sa.true()))) == 1
    assert count_where(uri, lambda x: is_true(x)) == 1
    assert count_where(uri, lambda x: is_true(sa.or_(sa.not_(x), x.is_(None)))) == 2
