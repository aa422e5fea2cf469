"""The library's two steps: `audit` returns a result and writes no run file; `write_audit`
writes a result's files into a directory (as often as wanted); `run_audit` is the two."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, audit, run_audit, write_audit
from refaudit.errors import ExitCode, RefauditError
from refaudit.suite import Suite

from tests.conftest import as_url
from tests.reports import load_dirty_small

REPAIR = AuditOptions(repair=True, record_history=False)
COMPLETE = {"constraints.sql", "junit.xml", "repair.sql", "report.html", "results.json",
            "rollback.sql", "violations.csv"}  # fmt: skip


@pytest.fixture(scope="module")
def dirty(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("library")
    load_dirty_small(uri)
    return uri


def listing(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def sorted_lines(path: Path) -> list[str]:
    header, *lines = path.read_text(encoding="utf-8").splitlines()
    return [header, *sorted(lines)]


def test_audit_writes_no_file_and_finds_what_run_audit_writes(
    dirty: str, suite: Suite, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    home, spill = tmp_path / "home", tmp_path / "spill"
    home.mkdir()
    spill.mkdir()
    monkeypatch.chdir(home)  # where reports/ and its history.db would go by default
    before = listing(home)
    with audit(as_url(dirty), suite, options=AuditOptions(repair=True), workdir=spill) as done:
        assert listing(home) == before
        assert done.result.out_dir is None and done.result.history is None
        assert done.violations.is_relative_to(spill) and done.repair_plan is not None
        assert done.repair_plan.dir.is_relative_to(spill)
        rows = list(done.read_violations())
        assert len(rows) == done.result.total_violations > 0
        written = run_audit(as_url(dirty), suite, tmp_path / "run", options=REPAIR)
        doc = json.loads((tmp_path / "run" / "results.json").read_text())
        assert doc["summary"]["violations"] == done.result.total_violations
        assert [(c.id, c.violations, c.status) for c in done.result.checks] == [
            (c["id"], c["violations"], c["status"]) for c in doc["checks"]
        ]
        assert done.result.verdict() == doc["verdict"]
        assert done.result.exit_code() == written.exit_code() == ExitCode.VIOLATIONS
        assert done.result.diagnoses == doc["diagnoses"]
        assert sorted_lines(done.violations) == sorted_lines(tmp_path / "run" / "violations.csv")
    assert listing(home) == before
    assert listing(spill) == []  # the discarded result took its files with it
    assert done.closed
    with pytest.raises(ValueError, match="closed"):
        write_audit(done, tmp_path / "late")


def test_a_result_written_twice_gives_the_same_files_and_one_run_in_the_history(
    dirty: str, suite: Suite, tmp_path: Path
) -> None:
    store = tmp_path / "history.db"
    options = AuditOptions(repair=True, history=store)
    first = run_audit(as_url(dirty), suite, tmp_path / "first", options=options)
    done = audit(as_url(dirty), suite, options=options, workdir=tmp_path)
    try:
        a = write_audit(done, tmp_path / "a")
        assert a.out_dir == tmp_path / "a"
        b = write_audit(done, tmp_path / "b")
        assert b is done.result and b.out_dir == tmp_path / "b"
    finally:
        done.close()
    assert {p.name for p in (tmp_path / "a").iterdir()} == COMPLETE
    for name in sorted(COMPLETE):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # the history keeps the run once; its comparison (keys read back from violations.csv)
    # says what a run_audit of the unchanged database says
    with sqlite3.connect(store) as db:
        runs = db.execute("SELECT run_id, out_dir FROM runs ORDER BY seq").fetchall()
    assert runs == [
        (first.run.run_id, str(tmp_path / "first")),
        (done.result.run.run_id, str(tmp_path / "a")),
    ]
    history = json.loads((tmp_path / "b" / "results.json").read_text())["history"]
    assert history["previous"]["run_id"] == first.run.run_id
    assert (history["new"], history["fixed"]) == (0, 0)
    assert all(c["new"] == c["fixed"] == 0 for c in history["checks"].values())
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("refaudit-")] == []


def test_an_audit_that_fails_leaves_no_file(suite: Suite, tmp_path: Path) -> None:
    url = as_url("postgresql://nobody@127.0.0.1:1/none")
    with pytest.raises(RefauditError) as raised:
        audit(url, suite, options=REPAIR, workdir=tmp_path)
    assert raised.value.exit_code == ExitCode.RUNTIME
    assert listing(tmp_path) == []


def test_a_result_is_not_written_over_its_baseline(
    dirty: str, suite: Suite, tmp_path: Path
) -> None:
    run_audit(as_url(dirty), suite, tmp_path / "run", options=AuditOptions(record_history=False))
    baseline = tmp_path / "run" / "violations.csv"
    options = AuditOptions(baseline=baseline, record_history=False)
    with audit(as_url(dirty), suite, options=options, workdir=tmp_path) as done:
        assert done.result.baseline is not None and done.result.baseline["new"] == 0
        with pytest.raises(RefauditError, match="inside --out"):
            write_audit(done, tmp_path / "run")
        write_audit(done, tmp_path / "again")
    again = sorted_lines(tmp_path / "again" / "violations.csv")[1:]
    assert set(again) == {f"{line},known" for line in sorted_lines(baseline)[1:]}
