"""Rows streamed through COPY look exactly like rows from a cursor: same values, same types,
NULLs as None, any text round-trips; errors are SQLAlchemy's; stopping early ends the query."""

from __future__ import annotations

import time
from typing import Any

import pytest
import sqlalchemy as sa
from refaudit.copy_stream import (
    copy_each,
    copy_lines,
    copy_rows,
    spool_lines,
    spool_rows,
)
from refaudit.db import create_engine, read_only_snapshot
from refaudit.spool import NOTE_EVERY
from sqlalchemy import exc as sa_exc

from tests.conftest import as_url

AWKWARD = ["plain", "", "tab\there", "new\nline", "back\\slash", "\\N", "cr\rlf", "ünïcødé ✓",
           "a\\tb", "quote ' and \" both", "\x08\x0b\x0c"]


@pytest.fixture(scope="module")
def engine(new_database):  # type: ignore[no-untyped-def]
    eng = create_engine(as_url(new_database("copy")))
    yield eng
    eng.dispose()


def test_values_types_and_nulls_match_a_cursor(engine: sa.Engine) -> None:
    values = sa.values(
        sa.column("i", sa.Integer), sa.column("s", sa.Text), name="v"
    ).data([(n, s) for n, s in enumerate(AWKWARD)] + [(len(AWKWARD), None)])
    stmt = sa.select(
        values.c.i.label("key"),
        values.c.s.label("value"),
        (values.c.i % 2 == 0).label("even"),
        sa.case((values.c.i == 1, sa.null()), else_=sa.cast(values.c.i, sa.Float) / 2)
        .label("half"),
        sa.cast(sa.null(), sa.Boolean).label("unknown"),
    ).order_by(values.c.i)
    with read_only_snapshot(engine) as (conn, _):
        expected = [tuple(r) for r in conn.execute(stmt)]
        got = list(copy_rows(conn, stmt))
    assert [tuple(r) for r in got] == expected
    assert [type(v) for v in got[2]] == [type(v) for v in expected[2]]
    assert got[-1].value is None and got[0].unknown is None
    assert got[3].key == 3 and got[3]._mapping["value"] == "new\nline"


def test_many_rows_in_order_with_notes_while_copying(engine: sa.Engine) -> None:
    n = NOTE_EVERY * 3 + 7
    stmt = sa.select(sa.func.generate_series(1, n).label("key"))
    notes: list[int] = []
    with read_only_snapshot(engine) as (conn, _):
        assert [r.key for r in copy_rows(conn, stmt, notes.append)] == list(range(1, n + 1))
    assert notes == [NOTE_EVERY, 2 * NOTE_EVERY, 3 * NOTE_EVERY]


def test_database_errors_are_sqlalchemy_errors(engine: sa.Engine) -> None:
    stmt = sa.select((sa.literal(1) / sa.literal(0)).label("boom"))
    with read_only_snapshot(engine) as (conn, _), pytest.raises(sa_exc.DBAPIError) as err:
        list(copy_rows(conn, stmt))
    assert "division by zero" in str(err.value.orig)


def test_rows_spill_to_disk_not_memory(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("refaudit.spool.SPOOL_IN_MEMORY", 1024)
    stmt = sa.select(
        sa.func.generate_series(1, 5000).label("key"), sa.func.repeat("x", 100).label("pad")
    )
    with read_only_snapshot(engine) as (conn, _):
        spooled = spool_rows(conn, stmt)
        assert spooled.on_disk and spooled.count == 5000
        rows = spooled.rows()
        assert next(rows).key == 1 and sum(1 for _ in rows) == 4999


@pytest.mark.parametrize("in_memory", [True, False])
def test_spooled_csv_lines_come_back_whole(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, in_memory: bool
) -> None:
    """Lines taken later (from a spool, in memory or gone to disk after its first lines)
    are the lines `copy_lines` hands over as they come, also where a quoted field holds
    newlines."""
    if not in_memory:
        monkeypatch.setattr("refaudit.spool.SPOOL_IN_MEMORY", 16)
    values = sa.values(sa.column("i", sa.Integer), sa.column("s", sa.Text), name="v").data(
        [(n, s) for n, s in enumerate(AWKWARD)] + [(len(AWKWARD), None)]
    )
    stmt = sa.select(values.c.i, values.c.s).order_by(values.c.i)
    with read_only_snapshot(engine) as (conn, _):
        streamed: list[str] = []
        assert copy_lines(conn, stmt, streamed.append) == len(AWKWARD) + 1
        spooled = spool_lines(conn, stmt)
        assert spooled.count == len(AWKWARD) + 1 and spooled.on_disk is not in_memory
        assert list(spooled.lines()) == streamed
    assert any("\n" in line[:-1] for line in streamed)  # a record spanning two lines


def test_rows_handed_over_as_they_come_equal_copy_rows(engine: sa.Engine) -> None:
    n = NOTE_EVERY * 2 + 3
    stmt = sa.select(
        sa.func.generate_series(1, n).label("key"), sa.literal("a\tb").label("value")
    )
    got: list[Any] = []
    notes: list[int] = []
    with read_only_snapshot(engine) as (conn, _):
        assert copy_each(conn, stmt, got.append, notes.append) == n
        assert [tuple(r) for r in got] == [tuple(r) for r in copy_rows(conn, stmt)]
    assert got[-1].key == n and got[0].value == "a\tb"
    assert notes == [NOTE_EVERY, 2 * NOTE_EVERY]


def test_a_failing_consumer_stops_the_statement(new_database: Any) -> None:
    """When the code taking rows fails mid-COPY, the statement is cancelled, not left to run
    (here: until the 30 s statement timeout) before the transaction can end."""
    engine = create_engine(as_url(new_database("copyfail")), statement_timeout_s=30)
    endless = sa.select(sa.func.generate_series(1, 10**12).label("key"))

    def take(row: Any) -> None:
        if row.key == 5:
            raise RuntimeError("consumer failed")

    started = time.monotonic()
    try:
        with pytest.raises(RuntimeError, match="consumer failed"), read_only_snapshot(engine) as (
            conn,
            _,
        ):
            copy_each(conn, endless, take)
    finally:
        engine.dispose()
    assert time.monotonic() - started < 20
