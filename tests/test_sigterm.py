"""SIGTERM (a scheduler stopping the job) ends a run as Ctrl-C does: at once, even while a
statement waits on the server; exit 3 in one line; the output directory holds either a
complete run or only results.json and junit.xml saying ERROR, never a half-written file; the
run history does not keep it."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import FIXTURES, SAMPLE_SUITE, execute
from tests.test_cli import ROOT, assert_one_line_error
from tests.test_operations import lock_held, sql

COMPLETE = ["junit.xml", "report.html", "results.json", "violations.csv"]
FAILED = ["junit.xml", "results.json"]


@pytest.fixture(scope="module")
def gate_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("sigterm")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text())
    execute(uri, (FIXTURES / "gate_rows.sql").read_text())
    return uri


def start(db: str, out: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "refaudit",
            "run",
            "--suite",
            SAMPLE_SUITE,
            "--db",
            db,
            "--out",
            str(out),
            *args,
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    try:
        stdout, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)


def test_sigterm_while_a_statement_waits_stops_at_once(tmp_path: Path, gate_db: str) -> None:
    out, store = tmp_path / "o", tmp_path / "history.db"
    with lock_held(gate_db):
        proc = start(gate_db, out, "--lock-timeout", "120", "--history", str(store))
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and proc.poll() is None:
                waiting = sql(
                    gate_db,
                    "SELECT pid FROM pg_stat_activity WHERE application_name = 'refaudit' "
                    "AND wait_event_type = 'Lock'",
                )
                if waiting:
                    break
                time.sleep(0.05)
            assert waiting, "the audit never reached the locked table"
            sent = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            done = finish(proc)
            took = time.monotonic() - sent
        finally:
            if proc.poll() is None:
                proc.kill()
    # stopped while the lock was still held: the statement was cancelled, not waited for
    assert took < 15
    line = assert_one_line_error(done, 3)
    assert "terminated (SIGTERM); nothing was concluded" in line
    assert sorted(p.name for p in out.iterdir()) == FAILED
    doc = json.loads((out / "results.json").read_text())
    assert (doc["verdict"], doc["exit_code"], doc["checks"]) == ("ERROR", 3, [])
    assert "terminated" in doc["error"]
    with sqlite3.connect(store) as db:
        assert db.execute("SELECT count(*) FROM runs").fetchone() == (0,)
    # the server-side statement is gone too
    assert not sql(gate_db, "SELECT 1 FROM pg_stat_activity WHERE application_name = 'refaudit'")


@pytest.mark.parametrize(
    "seen",
    [
        "violations.csv.partial",  # the checks are running
        "violations.csv",  # the checks are done; history, repair plan and files to come
    ],
)
def test_sigterm_at_any_stage_leaves_complete_files_or_none(
    tmp_path: Path, dirty_db: tuple[str, object], seen: str
) -> None:
    uri, _truth = dirty_db
    out = tmp_path / "o"
    proc = start(uri, out, "--repair", "--no-history")
    deadline = time.monotonic() + 60
    while not (out / seen).exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.002)
    proc.send_signal(signal.SIGTERM)
    done = finish(proc)
    names = sorted(p.name for p in out.iterdir())
    complete = sorted([*COMPLETE, "constraints.sql", "repair.sql", "rollback.sql"])
    if done.returncode == 1 or names == complete:
        # it had just finished (the signal may still come while the summary is printed)
        assert seen == "violations.csv" and done.returncode in (1, 3)
        assert names == complete
        assert json.loads((out / "results.json").read_text())["verdict"].startswith("FAILED")
        return
    assert "terminated (SIGTERM)" in assert_one_line_error(done, 3)
    assert names == FAILED, (names, done.returncode, done.stderr[-500:])
    assert json.loads((out / "results.json").read_text())["verdict"] == "ERROR"
