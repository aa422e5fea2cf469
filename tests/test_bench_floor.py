"""The benchmark's floor (`bench/floor.sql`, run as psql runs it) counts what refaudit counts
wherever they share a rule, on the generator's dirty database: the agreement the benchmark
requires before it compares times."""

from __future__ import annotations

import io
from typing import Any

import psycopg2
from refaudit.db import create_engine, read_only_snapshot
from refaudit.engine import run_checks
from refaudit.sink import ViolationSink
from refaudit.suite import Suite

from bench.floor import FLOOR_SQL_SHARED, floor_sql_statements, run_floor, run_floor_sql
from tests.conftest import as_url


def test_floor_sql_runs_as_psql_would() -> None:
    """Its own SET, one transaction, every count in between."""
    statements = floor_sql_statements()
    assert statements[0].startswith("SET ")
    assert statements[1].startswith("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
    assert statements[-1] == "COMMIT"
    assert all(s.startswith("SELECT") for s in statements[2:-1])
    assert not any("--" in s for s in statements)  # the header comment is no statement


def test_floor_sql_and_floor_py_agree_with_refaudit(
    dirty_db: tuple[str, Any], suite: Suite
) -> None:
    uri, _truth = dirty_db
    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            results = run_checks(conn, suite, ViolationSink(io.StringIO(newline="")))
    finally:
        engine.dispose()
    ours = {r.id: r.violations for r in results}
    conn = psycopg2.connect(uri)
    try:
        by_hand = run_floor_sql(conn)
        conn.autocommit = False
        every_check = run_floor(conn)
    finally:
        conn.close()
    assert set(by_hand) == set(FLOOR_SQL_SHARED.values())
    assert by_hand == {k: ours[k] for k in by_hand}
    assert sum(by_hand.values()) > 0
    assert every_check == {k: ours[k] for k in every_check}
