"""A lost connection, whichever layer notices it (libpq on the next statement, psycopg2 on a
closed connection, SQLAlchemy on a connection it invalidated), is one line that says so,
without the driver's class names, links or follow-up lines."""

from __future__ import annotations

import psycopg2
import pytest
import sqlalchemy as sa
from refaudit.db import create_engine, database_error, read_only_snapshot
from sqlalchemy import exc as sa_exc

from tests.conftest import as_url
from tests.test_operations import sql

DRIVER_WORDS = ("psycopg2", "sqlalche.me", "Background", "rollback()", "InterfaceError", "\n")


@pytest.fixture
def db(new_database) -> str:  # type: ignore[no-untyped-def]
    return str(new_database("lost"))


def _terminate(uri: str) -> None:
    for (pid,) in sql(uri, "SELECT pid FROM pg_stat_activity WHERE application_name = 'refaudit'"):
        sql(uri, f"SELECT pg_terminate_backend({pid}, 5000)")


def _assert_one_clear_line(exc: BaseException, uri: str) -> None:
    message = str(database_error(exc, as_url(uri), doing="auditing"))
    for word in DRIVER_WORDS:
        assert word not in message, message
    assert message.startswith("auditing failed on postgresql://postgres")
    assert message.endswith("the connection was lost mid-run; nothing was concluded, run again")


def test_every_layer_that_sees_the_connection_gone_gives_one_clear_line(db: str) -> None:
    seen: list[BaseException] = []
    engine = create_engine(as_url(db))
    try:
        with pytest.raises(BaseException), read_only_snapshot(engine) as (conn, _snap):  # noqa: B017
            _terminate(db)
            for stmt in ("SELECT 1", "SELECT 2"):  # libpq's error, then SQLAlchemy's
                try:
                    conn.execute(sa.text(stmt))
                except sa_exc.SQLAlchemyError as exc:
                    seen.append(exc)
            raw = psycopg2.connect(db)
            raw.close()
            try:
                raw.cursor()  # psycopg2's own words for a closed connection
            except psycopg2.Error as exc:
                seen.append(exc)
            raise seen[-1]
    finally:
        engine.dispose()
    kinds = [type(e).__name__ for e in seen]
    assert kinds == ["OperationalError", "PendingRollbackError", "InterfaceError"], kinds
    for exc in seen:
        _assert_one_clear_line(exc, db)
