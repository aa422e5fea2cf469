"""`refaudit.frames`: a finished run's violations, checks, diagnoses and repair steps as
DataFrames, read from the run directory `run_audit` wrote."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pandas as pd
import pytest
from refaudit import frames
from refaudit.audit import AuditOptions, run_audit
from refaudit.errors import UsageError
from refaudit.results import AuditResult
from refaudit.suite import Suite

from tests.conftest import as_url
from tests.reports import DIRTY_KEYS, load_dirty_small


@pytest.fixture(scope="module")
def dirty(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("frames")
    load_dirty_small(uri)
    return uri


@pytest.fixture(scope="module")
def repaired(dirty: str, suite: Suite, tmp_path_factory: pytest.TempPathFactory) -> AuditResult:
    out = tmp_path_factory.mktemp("frames") / "run"
    options = AuditOptions(repair=True, record_history=False)
    return run_audit(as_url(dirty), suite, out, options=options)


def csv_rows(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def test_violations_are_the_lines_of_violations_csv_with_their_dtypes(
    repaired: AuditResult,
) -> None:
    assert repaired.out_dir is not None
    frame = frames.violations(repaired.out_dir)
    lines = csv_rows(repaired.out_dir / "violations.csv")
    assert len(frame) == len(lines) == repaired.total_violations > 0
    assert list(frame.columns) == list(lines[0])
    for name in ("check", "table", "column", "diagnosis"):
        assert isinstance(frame[name].dtype, pd.CategoricalDtype), name
    for name in ("key", "value", "proposed_value", "evidence"):
        assert frame[name].dtype == "string", name
    confidence = frame["confidence"].dtype
    assert isinstance(confidence, pd.CategoricalDtype) and confidence.ordered
    assert list(confidence.categories) == ["low", "medium", "high"]
    # the same values, an empty optional field read as <NA>
    for row, line in zip(frame.to_dict("records"), lines, strict=True):
        for name, text in line.items():
            got = row[name]
            if text == "" and name not in ("key", "value"):
                assert pd.isna(got), (name, line)
            else:
                assert got == text, (name, line)
    for check, keys in DIRTY_KEYS.items():
        assert set(keys) <= set(frame.loc[frame["check"] == check, "key"])


def test_checks_are_one_row_per_check_of_results_json(repaired: AuditResult) -> None:
    assert repaired.out_dir is not None
    frame = frames.checks(repaired.out_dir)
    assert list(frame["id"]) == [c.id for c in repaired.checks]
    assert list(frame["violations"]) == [c.violations for c in repaired.checks]
    assert list(frame["status"].astype(str)) == [c.status for c in repaired.checks]
    assert list(frame["columns"]) == [c.columns for c in repaired.checks]
    assert frame["violations"].dtype == "Int64" and frame["rows_checked"].dtype == "Int64"
    assert frame["rate"].dtype == "float64"
    assert frame["known"].isna().all() and frame["new"].isna().all()  # no baseline
    assert frame["violations"].sum() == repaired.total_violations
    failing = frame.loc[frame["status"] == "failed", "id"]
    assert set(failing) == {c.id for c in repaired.checks if c.status == "failed"} != set()


def test_diagnoses_and_repair_steps_add_up_to_the_run(repaired: AuditResult) -> None:
    assert repaired.out_dir is not None and repaired.repair is not None
    diagnosed = frames.diagnoses(repaired.out_dir)
    assert diagnosed.to_dict("records") == repaired.diagnoses != []
    assert diagnosed["rows"].dtype == "Int64"
    steps = frames.repair_steps(repaired.out_dir)
    assert list(steps["step"]) == list(range(1, len(steps) + 1))
    by_action = steps.groupby("action", observed=True)["rows"].sum().to_dict()
    plan = repaired.repair
    assert by_action.get("update", 0) == plan["updates"]
    assert by_action.get("set_null", 0) == plan["set_null"]
    assert by_action.get("quarantine", 0) == plan["quarantined"]
    assert all(isinstance(g, list) for g in steps["guarded_on"])


def test_a_baseline_run_has_known_and_new(
    dirty: str, suite: Suite, repaired: AuditResult, tmp_path: Path
) -> None:
    assert repaired.out_dir is not None
    options = AuditOptions(baseline=repaired.out_dir / "violations.csv", record_history=False)
    again = run_audit(as_url(dirty), suite, tmp_path / "again", options=options)
    assert again.out_dir is not None
    frame = frames.violations(again.out_dir)
    assert isinstance(frame["baseline"].dtype, pd.CategoricalDtype)
    assert set(frame["baseline"]) == {"known"}
    checks = frames.checks(again.out_dir)
    assert (checks["known"] == checks["violations"]).all() and (checks["new"] == 0).all()
    with pytest.raises(UsageError, match="made no repair plan; run it again with refaudit run "
                       "--repair"):  # fmt: skip
        frames.repair_steps(again.out_dir)


def test_what_is_not_a_finished_run_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"holds no results\.json"):
        frames.checks(tmp_path)
    failed = {"verdict": "ERROR", "error": "connection refused", "checks": []}
    (tmp_path / "results.json").write_text(json.dumps(failed))
    with pytest.raises(UsageError, match=r"failed \(connection refused\); it has no findings"):
        frames.violations(tmp_path)
