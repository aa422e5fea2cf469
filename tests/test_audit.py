"""The engine end to end on databases it has never seen: the generated dirty database, the
seed's "before" and "after" states, and `refaudit demo`."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.demo import build_sample
from refaudit.errors import ExitCode

from tests.conftest import SAMPLE_SUITE, as_url
from tests.test_cli import refaudit

NO_HISTORY = AuditOptions(record_history=False)


def violations(out: Path) -> pd.DataFrame:
    with (out / "violations.csv").open(newline="") as f:
        return pd.DataFrame(list(csv.DictReader(f)))


def test_dirty_database_every_defective_row_and_no_clean_row(dirty_db, suite, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri, truth = dirty_db
    result = run_audit(as_url(uri), suite, tmp_path, options=NO_HISTORY)
    got = violations(tmp_path)
    data = got[~got["check"].str.startswith("catalog.")]
    expected = truth.violations  # hidden mis-keys included: the reference checks flag them
    # rows are compared by (check, key); not_null reports one line per NULL column
    column = lambda frame: frame["column"].where(frame["check"].str.endswith("not_null"), "")  # noqa: E731
    found = set(zip(data["check"], data["key"], column(data), strict=True))
    wanted = set(zip(expected["check"], expected["key"].astype(str), column(expected), strict=True))
    assert found == wanted
    assert len(data) == len(expected)
    # per-check counts in results.json agree with the CSV and with the generator
    by_id = {c.id: c for c in result.checks}
    for check_id, n in truth.counts.items():
        assert by_id[check_id].violations == n, check_id
    assert (
        by_id["session_requests.tutor_id.reference"].rows_checked == truth.rows["session_requests"]
    )


def test_seed_before_exits_1_with_all_six_requests_flagged(seed_before_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri, _ = seed_before_db
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", uri, "--out", str(tmp_path), "--no-history"
    )
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    got = violations(tmp_path)
    tutor = got[got["check"] == "session_requests.tutor_id.reference"]
    assert sorted(tutor["key"].astype(int)) == [1, 2, 3, 4, 5, 6]
    assert set(tutor["value"]) == {"115"}
    requester = got[got["check"] == "session_requests.requester_id.reference"]
    assert sorted(requester["key"].astype(int)) == [1, 2, 3, 4, 5, 6]
    doc = json.loads((tmp_path / "results.json").read_text())
    status = {c["id"]: c["status"] for c in doc["checks"]}
    assert status["session_requests.tutor_id.reference"] == "failed"
    fk = got[got["check"] == "catalog.fk_session_requests_tutor"]
    assert len(fk) == 1
    assert "references users(id), expected tutor_profiles(id)" in fk.iloc[0]["evidence"]
    requester_fk = got[got["check"] == "catalog.no_fk_session_requests_requester"]
    assert list(requester_fk["key"]) == ["fk_session_requests_requester"]
    assert "REFERENCES users(id)" in requester_fk.iloc[0]["value"]


def test_seed_before_student_and_parent_requesters(seed_before_db, generator, tmp_path) -> None:  # type: ignore[no-untyped-def]
    import psycopg2

    uri, _ = seed_before_db
    run_audit(
        as_url(uri), __import__("refaudit.suite").suite.load_suite(), tmp_path, options=NO_HISTORY
    )
    got = violations(tmp_path)
    keys = got[got["check"] == "session_requests.requester_id.reference"]["key"].astype(int)
    conn = psycopg2.connect(uri)
    with conn.cursor() as cur:
        cur.execute("SELECT id, requester_type FROM session_requests")
        types = dict(cur.fetchall())
    conn.close()
    flagged = [types[k] for k in keys]
    assert flagged.count("student") == 5 and flagged.count("parent") == 1


def test_seed_after_exits_0(seed_after_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri, _ = seed_after_db
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", uri, "--out", str(tmp_path), "--no-history"
    )
    assert proc.returncode == ExitCode.PASSED, proc.stdout + proc.stderr
    doc = json.loads((tmp_path / "results.json").read_text())
    failed = [c["id"] for c in doc["checks"] if c["status"] == "failed"]
    assert failed == []
    # what refaudit recommends beyond the seed's fix is a warning, not a failure
    warned = {c["id"] for c in doc["checks"] if c["status"] == "warned"}
    assert warned == {"catalog.requester_reference_trigger"}
    data = violations(tmp_path)
    assert set(data["check"]) == {"catalog.requester_reference_trigger"}


def test_demo_runs_with_nothing_but_the_package(tmp_path: Path) -> None:
    out = tmp_path / "demo"
    proc = refaudit("demo", "--requests", "400", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "report.html" in proc.stdout
    doc = json.loads((out / "results.json").read_text())
    assert doc["summary"]["violations"] > 0
    assert (out / "report.html").stat().st_size > 1000
    assert doc["repair"]["updates"] > 0 and "COMMIT;" in (out / "repair.sql").read_text()


def test_two_demo_runs_show_a_trend(tmp_path: Path) -> None:
    for run in ("first", "second"):
        proc = refaudit("demo", "--requests", "50", "--out", str(tmp_path / run))
        assert proc.returncode == 0, proc.stderr
    assert "since the last run" in proc.stdout
    history = json.loads((tmp_path / "second" / "results.json").read_text())["history"]
    assert history["runs"] == 2 and history["previous"] is not None
    assert (history["new"], history["fixed"]) == (0, 0)


@pytest.mark.parametrize("requests", [0, 50])
def test_generator_sizes_are_consistent(new_database, suite, tmp_path, requests) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("size")
    truth = build_sample(uri, suite, requests=requests, seed=3, truth=True)
    result = run_audit(as_url(uri), suite, tmp_path, options=NO_HISTORY)
    for c in result.checks:
        if c.id in truth.counts:
            assert c.violations == truth.counts[c.id], c.id
