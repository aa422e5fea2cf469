"""The audit's planner settings, and the server the suite runs against."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from refaudit.db import create_engine, read_only_snapshot
from refaudit.jobs import PLANNER_SETTINGS, tune_session

from tests.conftest import as_url, execute

SHOWN = ("jit", "work_mem", "parallel_tuple_cost")


def _settings(conn: sa.Connection) -> dict[str, str]:
    return {n: conn.execute(sa.text("SELECT current_setting(:n)"), {"n": n}).scalar_one()
            for n in SHOWN}


@pytest.mark.parametrize(
    ("server", "expected"),
    [
        # a server with JIT on, little memory and the default costs: the audit's own values
        ({"jit": "on", "work_mem": "4MB", "parallel_tuple_cost": "0.1"},
         {"jit": "off", "work_mem": "64MB", "parallel_tuple_cost": "0.01"}),
        # more memory and cheaper tuples than the audit asks for: kept; JIT off all the same
        ({"jit": "on", "work_mem": "1GB", "parallel_tuple_cost": "0.001"},
         {"jit": "off", "work_mem": "1GB", "parallel_tuple_cost": "0.001"}),
    ],
)
def test_planner_settings_are_the_audits_and_transaction_local(
    new_database, server: dict[str, str], expected: dict[str, str]
) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("settings")
    name = as_url(uri).database
    execute(uri, "; ".join(f"ALTER DATABASE {name} SET {k} = '{v}'" for k, v in server.items()))
    assert {k for k, _ in PLANNER_SETTINGS} == set(SHOWN)
    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            assert _settings(conn) == server
            tune_session(conn)
            assert _settings(conn) == expected
        with engine.connect() as conn:  # SET LOCAL: gone with the audit's transaction
            assert _settings(conn) == server
    finally:
        engine.dispose()
