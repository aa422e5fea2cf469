"""A big table's statement split in two halves of its key range, one on each of the audit's
connections (`refaudit.engine._split`, `refaudit.plan.KeyHalf`): the same violations, in
the same order, as one statement and as one connection, whatever the key (its type, a
collation, NULL keys, NaN and infinities, an empty or one-row table, a sample that reads a
few pages of many) and on real data (pagila, with defects made by deleting its rows); the
halves run with the parallel workers `split_workers` gives and leave the connection's own
setting as it was; the second connection waits for the first statement to go out; a job
left waiting is taken costliest first."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from refaudit import engine as engine_module
from refaudit.audit import AuditOptions, run_audit
from refaudit.db import create_engine, on_sending, read_only_snapshot
from refaudit.discover import discover, render_suite
from refaudit.jobs import Job, run_jobs
from refaudit.plan import TablePlan
from refaudit.progress import as_progress
from refaudit.results import CheckResult
from refaudit.sink import ViolationSink
from refaudit.suite import Suite, load_suite

from bench.realworld import DEFAULT_CORPUS, drop_constraints, load_dump
from tests.conftest import as_url, audit_in_snapshot, execute


@pytest.fixture
def halves(monkeypatch: pytest.MonkeyPatch) -> Callable[[bool], list[str]]:
    """`split(True)`: every table whose key allows it is split, whatever its size, with a
    sample of at most 2 pages; `split(False)`: none is. Returns the tables split."""
    split: list[str] = []
    real = engine_module._split

    def recording(run: Any, plan: TablePlan) -> TablePlan:
        done = real(run, plan)
        if done.half is not None:
            split.append(plan.table)
        return done

    monkeypatch.setattr(engine_module, "_split", recording)
    monkeypatch.setattr(engine_module, "SAMPLE_PAGES", 2)

    def choose(on: bool) -> list[str]:
        split.clear()
        monkeypatch.setattr(engine_module, "SPLIT_MIN_PAGES", 0 if on else 10**12)
        return split

    return choose


def audit(uri: str, suite: Suite, **options: Any) -> tuple[str, list[tuple[str, int, int]]]:
    text, results = audit_in_snapshot(uri, suite, **options)
    return text, [counted(r) for r in results]


def counted(r: CheckResult) -> tuple[str, int, int]:
    return (r.id, r.rows_checked, r.violations)


def assert_split_changes_nothing(
    uri: str, suite: Suite, choose: Callable[[bool], list[str]]
) -> tuple[str, list[str]]:
    choose(False)
    whole = audit(uri, suite)
    alone = audit(uri, suite, companion=False)
    split = choose(True)
    halved = audit(uri, suite)
    assert split, "no table was split"
    assert halved == whole == alone
    return halved[0], list(split)


@pytest.mark.parametrize("lines", [True, False], ids=["csv-lines", "rows"])
def test_halves_find_what_one_statement_finds(
    dirty_db: tuple[str, Any],
    suite: Suite,
    halves: Callable[[bool], list[str]],
    lines: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The generated database, with its diagnosis of mis-keyed rows: violations.csv's lines
    (written by PostgreSQL) and the rows turned into violations in Python alike."""
    monkeypatch.setattr(ViolationSink, "takes_lines", property(lambda self: lines))
    found, split = assert_split_changes_nothing(dirty_db[0], suite, halves)
    assert "session_requests" in split
    assert found.count("\n") > 100 and ",mis_keyed_hidden," in found


KEYS = {  # table: (key column type, the keys' values as SQL)
    "k_int": ("bigint", "SELECT g FROM generate_series(1, 5000) g"),
    "k_text": (
        "text",
        "SELECT v || '-' || g FROM generate_series(1, 300) g, "
        "unnest(ARRAY['a', 'B', 'é', 'Z', 'ä', ' space', 'ß', '10', '9', '']) v",
    ),
    "k_c": (
        'text COLLATE "C"',
        "SELECT v || '-' || g FROM generate_series(1, 200) g, unnest(ARRAY['a', 'B', 'é', '_']) v",
    ),
    "k_uuid": ("uuid", "SELECT md5(g::text)::uuid FROM generate_series(1, 2000) g"),
    "k_num": ("numeric", "SELECT g / 7.0 FROM generate_series(-1000, 1000) g"),
    "k_ts": (
        "timestamptz",
        "SELECT '2020-01-01'::timestamptz + g * interval '37 minutes' "
        "FROM generate_series(1, 2000) g",
    ),
    "k_float": (
        "float8",
        "SELECT g::float8 / 3 FROM generate_series(-500, 500) g "
        "UNION ALL SELECT v::float8 FROM unnest(ARRAY['NaN', 'Infinity', '-Infinity']) v",
    ),
    "k_null": ("int", "SELECT g FROM generate_series(1, 2000) g UNION ALL SELECT NULL"),
    "k_empty": ("int", "SELECT 1 WHERE false"),
    "k_one": ("int", "SELECT 42"),
}


def test_halves_whatever_the_key(
    new_database: Callable[[str], str], halves: Callable[[bool], list[str]], tmp_path: Path
) -> None:
    """Keys of many types and collations, NULL keys (a nullable UNIQUE key, its NULL rows
    in the upper half), NaN and infinities, an empty table and a one-row table; every table
    with rows that name a missing target, spread over its keys."""
    uri = new_database("split_keys")
    sql = ["CREATE TABLE target (id int PRIMARY KEY); "
           "INSERT INTO target SELECT generate_series(1, 10);"]
    for table, (kind, values) in KEYS.items():
        key = "UNIQUE" if table == "k_null" else "PRIMARY KEY"
        sql.append(
            f"CREATE TABLE {table} (k {kind} {key}, ref int); "
            f"INSERT INTO {table} SELECT v, (row_number() OVER ()) % 13 FROM ({values}) s(v); "
            f"ANALYZE {table};"
        )
    execute(uri, "\n".join(sql))
    checks = "\n".join(
        f"  - {{id: {t}.ref, kind: reference, table: {t}, column: ref, "
        f"target: {{table: target, column: id}}}}"
        for t in KEYS
    )
    tables = "\n".join(f"  {t}: {{key: k}}" for t in KEYS)
    (tmp_path / "suite.yml").write_text(
        f"suite: keys\ntables:\n  target: {{key: id}}\n{tables}\nchecks:\n{checks}\n"
    )
    suite = load_suite(tmp_path / "suite.yml")
    found, split = assert_split_changes_nothing(uri, suite, halves)
    assert set(split) == set(KEYS)
    assert "k_null,," in found  # a NULL key's row is found, once
    assert found.count("k_null,,") == 1


def test_halves_on_a_sample_of_a_few_pages(
    new_database: Callable[[str], str], halves: Callable[[bool], list[str]], tmp_path: Path
) -> None:
    """A table of many pages whose keys are not in page order, its median from a sample of 2
    of them: both statements take the same median (the same rows in the same snapshot), so
    no row is lost or found twice, and the two halves each hold about half the rows."""
    uri = new_database("split_sample")
    execute(
        uri,
        "CREATE TABLE target (id int PRIMARY KEY); INSERT INTO target VALUES (1);"
        "CREATE TABLE big (id int PRIMARY KEY, ref int);"
        "INSERT INTO big SELECT g, 2 FROM generate_series(1, 40000) g ORDER BY random();"
        "ANALYZE big;",
    )
    (tmp_path / "suite.yml").write_text(
        "suite: big\ntables:\n  big: {key: id}\n  target: {key: id}\nchecks:\n"
        "  - {id: big.ref, kind: reference, table: big, column: ref, "
        "target: {table: target, column: id}}\n"
    )
    suite = load_suite(tmp_path / "suite.yml")
    found, _ = assert_split_changes_nothing(uri, suite, halves)
    assert found.count("\n") == 1 + 40000  # the header, then each row once
    engine = create_engine(as_url(uri))
    try:
        with engine.connect() as conn:
            pages = conn.execute(
                sa.text("SELECT relpages FROM pg_class WHERE relname = 'big'")
            ).scalar_one()
            assert pages > 100
            percent = round(100.0 * 2 / pages, 3)  # what the split's sample reads: 2 pages
            below = conn.execute(sa.text(
                "SELECT count(*) FROM big WHERE id < (SELECT percentile_disc(0.5) WITHIN GROUP"
                " (ORDER BY id) FROM big TABLESAMPLE system(:p) REPEATABLE (0))"
            ), {"p": percent}).scalar_one()
    finally:
        engine.dispose()
    assert 10000 < below < 30000


@pytest.mark.skipif(not DEFAULT_CORPUS.is_dir(), reason=f"no corpus at {DEFAULT_CORPUS}")
def test_halves_on_pagila_with_rows_deleted(
    new_database: Callable[[str], str], halves: Callable[[bool], list[str]], tmp_path: Path
) -> None:
    """Pagila (real data), its foreign keys dropped and some customers, films and staff
    deleted; discover's suite for it, audited whole and in halves."""
    uri = new_database("split_pagila")
    load_dump(DEFAULT_CORPUS / "pagila.sql.gz")(uri)
    suite_path = tmp_path / "suite.yml"
    suite_path.write_text(render_suite(discover(as_url(uri))))
    assert drop_constraints(uri, "A") == []
    execute(
        uri,
        "DELETE FROM customer WHERE customer_id % 17 = 3; DELETE FROM film WHERE film_id % 23 = 5;"
        "DELETE FROM inventory WHERE inventory_id % 29 = 7; ANALYZE;",
    )
    found, split = assert_split_changes_nothing(uri, load_suite(suite_path), halves)
    assert {"rental", "inventory"} <= {t.split(".")[-1] for t in split}
    assert found.count("\n") > 1000


def test_halves_run_with_their_workers_and_restore_the_setting(
    new_database: Callable[[str], str],
) -> None:
    """A job with its own workers (a half) runs with them on either connection; while the
    companion runs a long job, this thread takes the waiting jobs costliest first, with the
    workers of a half too (the companion's statement has a core); after the run, the main
    connection has the server's setting again."""
    uri = new_database("split_workers")
    setting = sa.text("SELECT pg_backend_pid(), current_setting('max_parallel_workers_per_gather')")
    seen: list[tuple[str, int, str]] = []
    others_ran = threading.Event()  # every job but the long one has run

    def job(
        name: str,
        *,
        sleep: float = 0.0,
        workers: int | None = None,
        cost: int = 0,
        until: threading.Event | None = None,
    ) -> Job:
        def run(conn: sa.Connection) -> tuple[str, int, str]:
            if sleep:
                conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": sleep})
            if until is not None:  # long, however slow the machine (a deadline if never)
                until.wait(timeout=15)
            pid, value = conn.execute(setting).one()
            seen.append((name, pid, value))
            if sum(n != "upper" for n, _, _ in seen) == 4:
                others_ran.set()
            return (name, pid, value)

        return Job("", name, run=run, take=lambda _: None, workers=workers, cost=cost)

    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            main = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            server = conn.execute(sa.text("SHOW max_parallel_workers_per_gather")).scalar_one()
            jobs = [
                job("lower", sleep=0.6, workers=0),
                job("upper", workers=0, until=others_ran),
                job("small", cost=1),
                job("big", cost=30),
                job("middle", cost=20),
            ]
            run_jobs(conn, jobs, as_progress(None), companion=True)
            after = conn.execute(setting).one()
    finally:
        engine.dispose()
    assert server != "0"
    by_name = {name: (pid, value) for name, pid, value in seen}
    assert by_name["lower"] == (main, "0") and by_name["upper"][1] == "0"
    assert by_name["upper"][0] != main
    taken_here = [name for name, pid, _ in seen if pid == main and name != "lower"]
    assert taken_here == ["big", "middle", "small"]
    half = str((int(server) + 1) // 2 - 1)  # jobs.split_workers
    assert all(value == half for name, pid, value in seen if pid == main and name != "lower")
    assert tuple(after) == (main, server)


def test_the_callback_runs_once_as_the_first_statement_goes_out(
    new_database: Callable[[str], str],
) -> None:
    """`on_sending`: once, when the first statement (a COPY or a plain one) is built and
    about to go out, never for later ones; on leaving if none went out."""
    uri = new_database("split_sending")
    calls: list[str] = []
    engine = create_engine(as_url(uri))
    try:
        with engine.connect() as conn:
            with on_sending(lambda: calls.append("sent")):
                calls.append("before")
                conn.execute(sa.text("SELECT 1"))
                calls.append("after")
                conn.execute(sa.text("SELECT 2"))
            with on_sending(lambda: calls.append("left")):
                calls.append("nothing sent")
    finally:
        engine.dispose()
    assert calls == ["before", "sent", "after", "nothing sent", "left"]


def test_a_run_from_the_command_line_splits_a_big_table(
    dirty_db: tuple[str, Any], suite: Suite, halves: Callable[[bool], list[str]], tmp_path: Path
) -> None:
    """End to end (run_audit: report, results.json): the same files with the split."""
    uri = dirty_db[0]
    halves(False)
    run_audit(as_url(uri), suite, tmp_path / "whole", options=AuditOptions(record_history=False))
    split = halves(True)
    run_audit(as_url(uri), suite, tmp_path / "split", options=AuditOptions(record_history=False))
    assert split
    assert (tmp_path / "whole" / "violations.csv").read_bytes() == (
        tmp_path / "split" / "violations.csv"
    ).read_bytes()


def test_rows_written_between_the_halves_change_nothing(
    new_database: Callable[[str], str], halves: Callable[[bool], list[str]], tmp_path: Path
) -> None:
    """Another session inserts rows (new pages of the table), updates rows (new versions
    elsewhere in it) and deletes rows after the lower half's statement went out and before
    the upper half's: both halves read the snapshot, so the sample gives both the same
    median and the audit finds what it found before those writes."""
    uri = new_database("split_live")
    execute(
        uri,
        "CREATE TABLE target (id int PRIMARY KEY); INSERT INTO target VALUES (1);"
        "CREATE TABLE big (id int PRIMARY KEY, ref int, pad text);"
        "INSERT INTO big SELECT g, g % 3, repeat('x', 200) FROM generate_series(1, 20000) g "
        "ORDER BY random(); ANALYZE big;",
    )
    (tmp_path / "suite.yml").write_text(
        "suite: big\ntables:\n  big: {key: id}\n  target: {key: id}\nchecks:\n"
        "  - {id: big.ref, kind: reference, table: big, column: ref, "
        "target: {table: target, column: id}}\n"
    )
    suite = load_suite(tmp_path / "suite.yml")
    halves(True)
    before = audit(uri, suite)
    writes = (
        "INSERT INTO big SELECT g, 7, repeat('y', 200) FROM generate_series(20001, 60000) g;"
        "UPDATE big SET ref = 1, pad = repeat('z', 300) WHERE id % 5 = 0;"
        "DELETE FROM big WHERE id % 7 = 0;"
    )
    done: list[str] = []

    def write_then_go() -> None:  # called as the lower half goes out, before the upper
        execute(uri, writes)
        done.append("written")

    during = audit(uri, suite, on_first_statement=write_then_go)
    assert done == ["written"]
    assert during == before
    after = audit(uri, suite)  # and a new audit sees the writes
    assert after != before
