"""The audit's statements also run on a second connection that imports the first one's
snapshot: it sees exactly the same rows, the output is the same as on one connection, a run
without a second connection still works, and a failure on the second connection ends the run
at once with that error."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlalchemy as sa
from refaudit import db
from refaudit.audit import AuditOptions, run_audit
from refaudit.cli import app
from refaudit.db import companion, create_engine, read_only_snapshot
from refaudit.errors import DatabaseError
from refaudit.results import CheckResult
from refaudit.sink import ViolationSink
from refaudit.suite import Suite, load_suite
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from tests.conftest import SAMPLE_SUITE, as_url, audit_in_snapshot, build_state, execute

NO_HISTORY = AuditOptions(record_history=False)


@pytest.fixture
def companions(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What every companion request of the engine got: a connection, or None."""
    got: list[Any] = []
    real = db.companion

    @contextmanager
    def recording(conn: sa.Connection) -> Iterator[sa.Connection | None]:
        with real(conn) as other:
            got.append(other)
            yield other

    monkeypatch.setattr(db, "companion", recording)
    return got


def audit(uri: str, suite: Suite, *, companion: bool) -> tuple[str, list[CheckResult]]:
    return audit_in_snapshot(uri, suite, companion=companion)


def test_the_companion_sees_the_snapshot_and_cannot_write(new_database: Any) -> None:
    uri = new_database("companion")
    execute(uri, "CREATE TABLE t (id int); INSERT INTO t VALUES (1)")
    count = sa.text("SELECT count(*) FROM t")
    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            execute(uri, "INSERT INTO t VALUES (2)")  # committed after the snapshot
            with companion(conn) as other:
                assert other is not None
                assert other.execute(count).scalar_one() == 1
                assert conn.execute(count).scalar_one() == 1
                assert other.execute(sa.text("SHOW transaction_read_only")).scalar() == "on"
                with pytest.raises(sa.exc.DBAPIError, match="read-only transaction"):
                    other.execute(sa.text("INSERT INTO t VALUES (3)"))
        with engine.connect() as fresh:
            assert fresh.execute(count).scalar_one() == 2
    finally:
        engine.dispose()


@pytest.mark.parametrize("lines", [True, False], ids=["csv-lines", "rows"])
def test_same_violations_with_and_without_the_companion(
    dirty_db: tuple[str, Any],
    suite: Suite,
    companions: list[Any],
    lines: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Both ways violations come (CSV lines written by PostgreSQL; rows turned into
    violations in Python, as for --baseline and --repair)."""
    monkeypatch.setattr(ViolationSink, "takes_lines", property(lambda self: lines))
    uri, _truth = dirty_db
    alone, alone_results = audit(uri, suite, companion=False)
    assert companions == []
    shared, shared_results = audit(uri, suite, companion=True)
    assert len(companions) == 1 and companions[0] is not None
    assert alone.count("\n") > 100
    assert shared == alone
    assert [(r.id, r.rows_checked, r.violations) for r in shared_results] == [
        (r.id, r.rows_checked, r.violations) for r in alone_results
    ]


def test_a_role_allowed_one_connection_is_audited_on_it(
    new_database: Any, generator: Any, suite: Suite, companions: list[Any], tmp_path: Path
) -> None:
    """CONNECTION LIMIT 1: no second connection, the same run on the first."""
    uri = new_database("solo")
    build_state(uri, generator, "before")
    execute(
        uri,
        "DROP ROLE IF EXISTS solo; CREATE ROLE solo LOGIN CONNECTION LIMIT 1; "
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO solo",
    )
    try:
        solo = as_url(uri).set(username="solo", password=None)
        result = run_audit(solo, suite, tmp_path / "solo", options=NO_HISTORY)
        assert companions == [None]
        full = run_audit(as_url(uri), suite, tmp_path / "full", options=NO_HISTORY)
        assert companions[1] is not None
        assert result.total_violations == full.total_violations > 0
        assert (tmp_path / "solo" / "violations.csv").read_bytes() == (
            tmp_path / "full" / "violations.csv"
        ).read_bytes()
    finally:
        execute(uri, "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM solo; DROP ROLE solo")


TWO_TABLES = """
suite: two
tables:
  a: {key: id}
  b: {key: id}
  target: {key: id}
checks:
  - id: a.t_id.reference
    kind: reference
    table: a
    column: t_id
    target: {table: target, column: id}
  - id: b.t_id.reference
    kind: reference
    table: b
    column: t_id
    target: {table: target, column: id}
"""


def test_a_lost_companion_ends_the_run_at_once(new_database: Any, tmp_path: Path) -> None:
    """Both connections wait on locks; the companion's backend is terminated: the run ends
    with that error, without waiting for the first connection's (long) lock timeout."""
    uri = new_database("lost")
    execute(
        uri,
        "CREATE TABLE target (id int PRIMARY KEY); CREATE TABLE a (id int PRIMARY KEY, t_id int);"
        "CREATE TABLE b (id int PRIMARY KEY, t_id int); INSERT INTO a VALUES (1, 7);"
        "INSERT INTO b VALUES (1, 7)",
    )
    (tmp_path / "suite.yml").write_text(TWO_TABLES)
    suite = load_suite(tmp_path / "suite.yml")
    holder = psycopg2.connect(uri)
    admin = psycopg2.connect(uri)
    admin.autocommit = True
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            run_audit(
                as_url(uri),
                suite,
                tmp_path / "o",
                options=AuditOptions(record_history=False, lock_timeout_s=120),
            )
            outcome.append(None)
        except BaseException as exc:  # handed to the test thread
            outcome.append(exc)

    try:
        with holder.cursor() as cur:
            cur.execute("LOCK TABLE a, b IN ACCESS EXCLUSIVE MODE")
        worker = threading.Thread(target=run)
        started = time.monotonic()
        worker.start()
        waiting: list[tuple[int, str]] = []
        while len(waiting) < 2 and time.monotonic() - started < 60:
            time.sleep(0.05)
            with admin.cursor() as cur:
                cur.execute(
                    "SELECT pid, query FROM pg_stat_activity WHERE application_name = 'refaudit'"
                    " AND wait_event_type = 'Lock' ORDER BY backend_start"
                )
                waiting = cur.fetchall()
        assert len(waiting) == 2, "the audit never waited on both connections"
        pid = waiting[-1][0]  # the companion: connected after the first connection
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        worker.join(60)
        assert not worker.is_alive()
        assert time.monotonic() - started < 60  # not the 120 s lock timeout
    finally:
        holder.rollback()
        holder.close()
        admin.close()
    (error,) = outcome
    assert isinstance(error, DatabaseError)
    assert "the connection was lost mid-run" in str(error)
    assert (tmp_path / "o" / "results.json").exists()
    assert not (tmp_path / "o" / "violations.csv").exists()


def test_one_connection_from_the_command_line(
    dirty_db: tuple[str, Any], companions: list[Any], tmp_path: Path
) -> None:
    """`refaudit run --one-connection` never asks for a second connection; same files."""
    uri, _truth = dirty_db
    runner = CliRunner()
    for name, extra in (("one", ["--one-connection"]), ("two", [])):
        done = runner.invoke(
            app,
            [
                "run",
                "--suite",
                SAMPLE_SUITE,
                "--db",
                uri,
                "--out",
                str(tmp_path / name),
                "--no-history",
                "-q",
                *extra,
            ],
        )
        assert done.exit_code == 1, done.output  # the dirty database fails its checks
    assert len(companions) == 1 and companions[0] is not None  # only the second run
    assert (tmp_path / "one" / "violations.csv").read_bytes() == (
        tmp_path / "two" / "violations.csv"
    ).read_bytes()


def test_the_companion_runs_without_parallel_workers(new_database: Any) -> None:
    """The second connection's statements plan no parallel workers (it fills the cores the
    first one's serial steps leave idle); the first connection keeps the server's setting
    for its first statement, and a job it takes over while the companion runs another plans
    the workers of a table's half: the two connections together about what one statement
    would use."""
    from refaudit.jobs import Job, run_jobs
    from refaudit.progress import as_progress

    uri = new_database("companion_serial")
    database = make_url(uri).database
    execute(uri, f"ALTER DATABASE {database} SET max_parallel_workers_per_gather = 4")
    seen: dict[str, tuple[int, str]] = {}
    setting = sa.text(
        "SELECT pg_backend_pid(), current_setting('max_parallel_workers_per_gather')"
    )

    def job(name: str, sleep: float, *, cost: int = 0) -> Job:
        def run(conn: sa.Connection) -> tuple[int, str]:
            got = conn.execute(setting).one()
            conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": sleep})
            return (got[0], got[1])

        return Job("", name, run=run, take=partial(seen.__setitem__, name), cost=cost)

    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            main_pid = conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
            # the companion starts "second" while "first" runs, and still runs it when the
            # first connection, done, takes over "third" (the costlier of those left)
            jobs = [job("first", 0.5), job("second", 1.5), job("last", 0), job("third", 0, cost=1)]
            run_jobs(conn, jobs, as_progress(None), companion=True)
    finally:
        engine.dispose()
    assert seen["first"] == (main_pid, "4")
    assert seen["second"][0] != main_pid and seen["second"][1] == "0"
    assert seen["third"] == (main_pid, "1")  # (4 + 1) // 2 - 1, as jobs.split_workers


def test_early_jobs_run_while_the_first_statement_is_built(new_database: Any) -> None:
    """A job marked `early` (a count: its statement is built in a moment) runs on the second
    connection while the first connection's statement is still being built; the other jobs
    wait until that statement is on its way; the outputs are taken in the jobs' order."""
    from refaudit.jobs import Job, run_jobs
    from refaudit.progress import as_progress

    uri = new_database("companion_early")
    events: list[str] = []
    pid = sa.text("SELECT pg_backend_pid()")

    def first(conn: sa.Connection) -> int:
        time.sleep(0.5)  # building the first statement
        events.append("first built")
        return int(conn.execute(pid).scalar_one())

    def recorded(name: str) -> Any:
        def run(conn: sa.Connection) -> int:
            events.append(f"{name} runs")
            return int(conn.execute(pid).scalar_one())

        return run

    taken: list[tuple[str, int]] = []

    def job(name: str, run: Any, *, early: bool = False) -> Job:
        return Job("", name, run=run, take=lambda got: taken.append((name, got)), early=early)

    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            main_pid = conn.execute(pid).scalar_one()
            jobs = [
                job("first", first),
                job("later", recorded("later")),
                job("count", recorded("count"), early=True),
            ]
            run_jobs(conn, jobs, as_progress(None), companion=True)
    finally:
        engine.dispose()
    assert events.index("count runs") < events.index("first built") < events.index("later runs")
    assert [name for name, _ in taken] == ["first", "later", "count"]
    by_name = dict(taken)
    assert by_name["first"] == main_pid and by_name["count"] != main_pid


def test_outputs_are_taken_while_the_first_connection_runs_the_next_job(
    new_database: Any,
) -> None:
    """After its first job, the first connection runs its jobs in a thread of its own: this
    thread hands a finished job's output to the sink while that connection's next statement
    runs (before, the connection waited for every hand-over); the outputs still come in the
    jobs' order and the results are the same."""
    from refaudit.jobs import Job, run_jobs
    from refaudit.progress import as_progress

    uri = new_database("companion_overlap")
    ran: dict[str, tuple[int, float, float]] = {}  # job -> (backend, start, end)
    handed: list[tuple[str, float, float]] = []
    pid = sa.text("SELECT pg_backend_pid()")

    def job(name: str, sleep: float, *, cost: int = 0, take_s: float = 0.0) -> Job:
        def run(conn: sa.Connection) -> str:
            start = time.monotonic()
            backend = conn.execute(pid).scalar_one()
            conn.execute(sa.text("SELECT pg_sleep(:s)"), {"s": sleep})
            ran[name] = (backend, start, time.monotonic())
            return name

        def take(got: str) -> None:
            start = time.monotonic()
            time.sleep(take_s)
            handed.append((got, start, time.monotonic()))

        return Job("", name, run=run, take=take, cost=cost)

    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            main_pid = conn.execute(pid).scalar_one()
            jobs = [
                job("first", 0.1),
                job("second", 0.3, take_s=0.4),
                job("cheap", 0.6, cost=1),
                job("costly", 0.6, cost=2),
            ]
            run_jobs(conn, jobs, as_progress(None), companion=True)
    finally:
        engine.dispose()
    assert [name for name, _, _ in handed] == ["first", "second", "cheap", "costly"]
    assert ran["first"][0] == main_pid and ran["second"][0] != main_pid
    assert ran["costly"][0] == main_pid  # taken over while the companion ran "second"
    on_main = [(start, end) for backend, start, end in ran.values() if backend == main_pid]
    assert any(
        start < t_end and t_start < end
        for _, t_start, t_end in handed
        for start, end in on_main[1:]
    ), "no output was handed over while the first connection ran a statement"


def test_a_failing_job_on_the_first_connection_ends_the_run_at_once(new_database: Any) -> None:
    """A job the first connection took over fails while the companion runs a long
    statement: run_jobs raises that job's error at once (the companion's statement is
    cancelled), and the outputs taken before it are all there are."""
    from refaudit.jobs import Job, run_jobs
    from refaudit.progress import as_progress

    uri = new_database("companion_failing")
    taken: list[str] = []

    def job(name: str, sql: str, *, cost: int = 0) -> Job:
        def run(conn: sa.Connection) -> str:
            conn.execute(sa.text(sql))
            return name

        return Job("", name, run=run, take=taken.append, cost=cost)

    engine = create_engine(as_url(uri))
    started = time.monotonic()
    try:
        with read_only_snapshot(engine) as (conn, _):
            jobs = [
                job("first", "SELECT pg_sleep(0.2)"),
                job("long", "SELECT pg_sleep(30)"),
                job("failing", "SELECT 1 / 0", cost=5),
            ]
            with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
                run_jobs(conn, jobs, as_progress(None), companion=True)
    finally:
        engine.dispose()
    assert time.monotonic() - started < 15  # not the companion's 30 s
    assert taken == ["first"]


def test_a_job_failing_on_the_first_connection_stops_it_at_once(new_database: Any) -> None:
    """A job the first connection took over fails while this thread hands an output over:
    the companion's statement is cancelled at once (not when the hand-over ends), the error
    is raised as soon as the hand-over ends, and it is that job's error."""
    from refaudit.jobs import Job, run_jobs
    from refaudit.progress import as_progress

    uri = new_database("companion_fails_first")
    ended: dict[str, float] = {}
    taken: list[str] = []

    def job(name: str, sql: str, *, cost: int = 0, take_s: float = 0.0) -> Job:
        def run(conn: sa.Connection) -> str:
            try:
                conn.execute(sa.text(sql))
            finally:
                ended[name] = time.monotonic()
            return name

        def take(got: str) -> None:
            time.sleep(take_s)
            taken.append(got)

        return Job("", name, run=run, take=take, cost=cost)

    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            jobs = [
                job("first", "SELECT pg_sleep(0.2)"),
                job("handed", "SELECT pg_sleep(0.5)", take_s=2.0),  # handed over from ~0.5 s
                # not folded when planned: fails at ~1.0 s, while "handed" is handed over
                job("failing", "SELECT 1 / (pg_backend_pid() * 0) FROM pg_sleep(0.8)", cost=10),
                job("long", "SELECT pg_sleep(30)", cost=1),  # the companion's, after "handed"
            ]
            with pytest.raises(sa.exc.DBAPIError, match="division by zero"):
                run_jobs(conn, jobs, as_progress(None), companion=True)
    finally:
        engine.dispose()
    assert taken == ["first", "handed"]
    assert ended["long"] - ended["failing"] < 0.5  # not at the hand-over's end, 1 s later


def test_a_statement_still_being_built_is_not_sent_once_the_run_stops(
    new_database: Any,
) -> None:
    """The run fails (here: handing an output to the sink) while the first connection's
    thread is still building its next statement: that statement is never sent (a cancel
    request before it arrives would be lost, and the run would wait for its end)."""
    from refaudit.jobs import Job, run_jobs
    from refaudit.progress import as_progress

    uri = new_database("companion_stops_building")

    def building(conn: sa.Connection) -> str:
        time.sleep(1.0)  # building the statement
        conn.execute(sa.text("SELECT pg_sleep(30)"))
        return "long"

    def quick(conn: sa.Connection) -> str:
        conn.execute(sa.text("SELECT pg_sleep(0.2)"))
        return "quick"

    def full(_: Any) -> None:
        raise OSError("no space left on device")

    engine = create_engine(as_url(uri))
    started = time.monotonic()
    try:
        with read_only_snapshot(engine) as (conn, _):
            jobs = [
                Job("", "first", run=quick, take=lambda _: None),
                Job("", "second", run=quick, take=full),
                Job("", "long", run=building, take=lambda _: None, cost=10),
            ]
            with pytest.raises(OSError, match="no space left"):
                run_jobs(conn, jobs, as_progress(None), companion=True)
    finally:
        engine.dispose()
    assert time.monotonic() - started < 10  # not the 30 s statement
