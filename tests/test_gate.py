"""The CI gate: a baseline of known violations, thresholds on new ones, and JUnit XML that CI
tools read. Runs the CLI against a real PostgreSQL."""

from __future__ import annotations

import csv
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from junitparser import Error, Failure, JUnitXml
from refaudit.baseline import load_baseline
from refaudit.checks.base import VIOLATION_FIELDS, Violation
from refaudit.errors import ExitCode, UsageError

from tests.conftest import FIXTURES, SAMPLE_SUITE, execute
from tests.test_cli import ROOT, assert_one_line_error, refaudit


@pytest.fixture(scope="module")
def gate_schema(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("gate")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text())
    return uri


@pytest.fixture
def gate_db(gate_schema: str) -> str:
    """The bare schema with a few rows with known defects, fresh for each test."""
    execute(
        gate_schema,
        "TRUNCATE users, tutor_profiles, student_profiles, parent_profiles, "
        "tutor_packages, session_requests;" + (FIXTURES / "gate_rows.sql").read_text(),
    )
    return gate_schema


def results(out: Path) -> dict[str, Any]:
    return json.loads((out / "results.json").read_text())


def violations(out: Path) -> list[dict[str, str]]:
    with (out / "violations.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def junit_cases(out: Path) -> dict[str, Any]:
    """Parse junit.xml the way CI tools do; name -> testcase."""
    xml = JUnitXml.fromfile(str(out / "junit.xml"))
    return {case.name: case for suite in xml for case in suite}


def run(db: str, out: Path, *args: str) -> Any:
    return refaudit("run", "--suite", SAMPLE_SUITE, "--db", db, "--out", str(out), "--quiet", *args)


# ---------------------------------------------------------------- the gate end to end


def test_known_violations_pass_and_a_new_one_fails(tmp_path: Path, gate_db: str) -> None:
    first = run(gate_db, tmp_path / "first")
    assert first.returncode == ExitCode.VIOLATIONS, first.stderr
    total = results(tmp_path / "first")["summary"]["violations"]
    assert total > 0

    # same data, the first run as baseline: every violation is known, the gate passes
    again = run(gate_db, tmp_path / "again", "--baseline", str(tmp_path / "first"))
    assert again.returncode == ExitCode.PASSED, again.stdout + again.stderr
    doc = results(tmp_path / "again")
    assert doc["baseline"]["known"] == total and doc["baseline"]["new"] == 0
    assert doc["summary"] == {**doc["summary"], "known": total, "new": 0}
    assert all(c["new"] == 0 and c["known"] == c["violations"] for c in doc["checks"])
    assert {v["baseline"] for v in violations(tmp_path / "again")} == {"known"}
    assert f"0 new, {total} known" in again.stdout
    cases = junit_cases(tmp_path / "again")
    assert not any(case.result for case in cases.values())

    # one new bad row: only it fails the gate, and JUnit names its key
    execute(
        gate_db,
        """INSERT INTO session_requests (id, tutor_id, requester_id, requester_type,
        package_id, package_name, status, contact_phone, contact_email, created_at, updated_at)
        VALUES (906, 1, 1, 'student', 1, 'Math', 'lost', '+251911000003',
                'kebede@example.et', '2024-02-01', '2024-02-01')""",
    )
    new = run(gate_db, tmp_path / "new", "--baseline", str(tmp_path / "first" / "violations.csv"))
    assert new.returncode == ExitCode.VIOLATIONS, new.stderr
    doc = results(tmp_path / "new")
    assert (doc["baseline"]["known"], doc["baseline"]["new"]) == (total, 1)
    status = doc["baseline"]["per_check"]["session_requests.status.in_set"]
    assert (status["known"], status["new"]) == (1, 1)
    failed = [c for c in doc["checks"] if c["status"] == "failed"]
    assert [c["id"] for c in failed] == ["session_requests.status.in_set"]
    new_rows = [v for v in violations(tmp_path / "new") if v["baseline"] == "new"]
    assert [(v["key"], v["value"]) for v in new_rows] == [("906", "lost")]
    failure = junit_cases(tmp_path / "new")["session_requests.status.in_set"].result[0]
    assert isinstance(failure, Failure)
    assert "1 new, 1 known in the baseline" in failure.message
    assert "new keys 906" in failure.message and "[new] session_requests 906" in failure.text


def test_a_changed_wrong_value_is_new(tmp_path: Path, gate_db: str) -> None:
    run(gate_db, tmp_path / "base")
    execute(gate_db, "UPDATE session_requests SET status = 'gone' WHERE id = 4")
    proc = run(gate_db, tmp_path / "o", "--baseline", str(tmp_path / "base"))
    assert proc.returncode == ExitCode.VIOLATIONS
    status = results(tmp_path / "o")["baseline"]["per_check"]["session_requests.status.in_set"]
    assert status == {"known": 0, "new": 1, "resolved": 1}


def test_a_fixed_row_is_resolved_and_passes(tmp_path: Path, gate_db: str) -> None:
    run(gate_db, tmp_path / "base")
    execute(
        gate_db,
        "UPDATE session_requests SET status = 'accepted', responded_at = '2024-01-06' WHERE id = 4",
    )
    proc = run(gate_db, tmp_path / "o", "--baseline", str(tmp_path / "base"))
    assert proc.returncode == ExitCode.PASSED, proc.stdout
    doc = results(tmp_path / "o")
    assert doc["baseline"]["per_check"]["session_requests.status.in_set"]["resolved"] == 1
    assert doc["baseline"]["resolved"] == 1


def test_threshold_applies_to_new_violations(tmp_path: Path, gate_db: str) -> None:
    """A warn check over its threshold fails with --fail-on warn, unless its findings are
    known."""
    proc = run(gate_db, tmp_path / "base", "--fail-on", "warn")
    doc = results(tmp_path / "base")
    warned = {c["id"] for c in doc["checks"] if c["status"] == "warned"}
    assert warned and proc.returncode == ExitCode.VIOLATIONS
    proc = run(gate_db, tmp_path / "o", "--fail-on", "warn", "--baseline", str(tmp_path / "base"))
    assert proc.returncode == ExitCode.PASSED


def test_baseline_inside_out_is_refused(tmp_path: Path, gate_db: str) -> None:
    run(gate_db, tmp_path / "o")
    proc = run(gate_db, tmp_path / "o", "--baseline", str(tmp_path / "o"))
    assert "--baseline" in assert_one_line_error(proc, ExitCode.USAGE)
    assert (tmp_path / "o" / "violations.csv").exists()  # the baseline was not destroyed


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("", "lacks the column(s) check, table, key, column"),
        ("id,name\n1,x\n", "lacks the column(s) check, table, key, column"),
        ("check,table,key,column,value\na,b,1\n", "is the file complete"),
        (b"\xff\xfe\x00garbage", "not a UTF-8 CSV"),
    ],
)
def test_unusable_baseline_is_exit_2(tmp_path: Path, content: Any, says: str) -> None:
    path = tmp_path / "baseline.csv"
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content is not None:
        path.write_text(content)
    proc = run("postgresql://nobody@127.0.0.1:1/x", tmp_path / "o", "--baseline", str(path))
    assert says in assert_one_line_error(proc, ExitCode.USAGE)
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- the baseline file


def write_baseline(path: Path, rows: list[tuple[str, ...]], fields: tuple[str, ...]) -> Path:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(fields)
        w.writerows(rows)
    return path


def v(check: str, key: str, value: str, column: str = "c") -> Violation:
    return Violation(check, "t", key, column, value)


def test_identity_is_check_table_key_column_value(tmp_path: Path) -> None:
    rows = [("a", "t", "1", "c", "x", "", "", "", ""), ("a", "t", "2", "c", "y", "", "", "", "")]
    b = load_baseline(write_baseline(tmp_path / "v.csv", rows, VIOLATION_FIELDS))
    assert b.is_known(v("a", "1", "x"))
    assert not b.is_known(v("a", "1", "y"))  # the wrong value changed
    assert not b.is_known(v("b", "1", "x"))  # another check
    assert not b.is_known(v("a", "3", "x"))  # another row
    assert not b.is_known(v("a", "1", "x", column="d"))
    assert b.count("a") == 2 and b.lines == 2


def test_baseline_without_value_column_matches_rows(tmp_path: Path) -> None:
    path = write_baseline(
        tmp_path / "v.csv", [("a", "t", "1", "c")], ("check", "table", "key", "column")
    )
    b = load_baseline(path)
    assert not b.match_value
    assert b.is_known(v("a", "1", "anything"))


def test_baseline_with_its_own_baseline_column_loads(tmp_path: Path) -> None:
    row = ("a", "t", "1", "c", "x", "", "", "", "", "new")
    path = write_baseline(tmp_path / "violations.csv", [row], (*VIOLATION_FIELDS, "baseline"))
    assert load_baseline(tmp_path).is_known(v("a", "1", "x"))
    assert load_baseline(path).is_known(v("a", "1", "x"))


def test_missing_baseline_is_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match=r"earlier run's violations\.csv"):
        load_baseline(tmp_path)


_MEASURE = """
import resource, sys
from pathlib import Path
from refaudit.baseline import load_baseline
from refaudit.checks.base import Violation
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
b = load_baseline(Path(sys.argv[1]))
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
known = b.is_known(Violation("check.3", "session_requests", "3", "tutor_id", "93"))
changed = b.is_known(Violation("check.3", "session_requests", "3", "tutor_id", "94"))
print(b.lines, known, changed, grown)
"""


def test_baseline_of_300k_lines_is_read_in_bounded_memory(tmp_path: Path) -> None:
    n = 300_000
    path = tmp_path / "big.csv"
    lines = [",".join(VIOLATION_FIELDS)]
    lines += [
        f"check.{i % 7},session_requests,{i},tutor_id,{i * 31},mis-keyed,{i},high,"
        f"contact_email matches users.id {i}"
        for i in range(n)
    ]
    path.write_text("\n".join(lines) + "\n")
    size_mib = path.stat().st_size / 2**20
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    count, known, changed, grown_kib = proc.stdout.split()
    assert (int(count), known, changed) == (n, "True", "False")
    # one compact entry per line (key + 8-byte value digest in a set): about 30 MiB, where
    # a set of the lines' 5-tuples takes over 100 MiB and pandas holds the whole file
    grown_mib = int(grown_kib) / 1024
    assert grown_mib < 48, f"grew {grown_mib:.0f} MiB reading a {size_mib:.0f} MiB baseline"


# ---------------------------------------------------------------- JUnit


def test_junit_parses_and_has_one_testcase_per_check(tmp_path: Path, gate_db: str) -> None:
    proc = run(gate_db, tmp_path / "o")
    assert proc.returncode == ExitCode.VIOLATIONS
    doc = results(tmp_path / "o")
    xml = JUnitXml.fromfile(str(tmp_path / "o" / "junit.xml"))
    suites = list(xml)
    assert len(suites) == 1
    suite = suites[0]
    assert suite.tests == len(doc["checks"]) == len(list(suite))
    assert suite.failures == doc["summary"]["failed"] and suite.errors == 0
    cases = {case.name: case for case in suite}
    assert set(cases) == {c["id"] for c in doc["checks"]}
    for c in doc["checks"]:
        result = cases[c["id"]].result
        if c["status"] == "failed":
            assert len(result) == 1 and isinstance(result[0], Failure)
            message = result[0].message
            if c["scope"] == "rows":
                counted = rf"\b{c['violations']} violations? in {c['rows_checked']} rows?\b"
            else:  # a catalog check: about the table's definition, no row read
                assert c["stage"] == "catalog"
                counted = rf"\b{c['violations']} findings? about the table;"
            assert re.search(counted, message), message
            assert f"threshold {'0' if c['threshold']['max_count'] is None else ''}" in message
        else:
            assert result == []
    tutor = cases["session_requests.tutor_id.reference"].result[0]
    assert "keys 2" in tutor.message and "session_requests 2: tutor_id=7" in tutor.text
    assert ": 1 violation in 5 rows (20.00%); " in tutor.message  # one is singular
    # a warned check is not a failure, but CI logs say why
    warned = next(c for c in doc["checks"] if c["status"] == "warned")
    assert "warned:" in (cases[warned["id"]].system_out or "")


def test_junit_message_names_at_most_five_keys(tmp_path: Path, gate_db: str) -> None:
    execute(
        gate_db,
        "INSERT INTO session_requests (id, tutor_id, requester_id, requester_type,"
        " status, created_at) SELECT g, 1, 1, 'student', 'odd', now() "
        "FROM generate_series(100, 111) g",
    )
    run(gate_db, tmp_path / "o")
    msg = junit_cases(tmp_path / "o")["session_requests.status.in_set"].result[0].message
    assert "13 violations" in msg and "keys 4, 100, 101, 102, 103 (+8 more)" in msg


def test_failed_run_leaves_an_error_not_a_pass(tmp_path: Path, gate_db: str) -> None:
    out = tmp_path / "o"
    assert run(gate_db, out).returncode == ExitCode.VIOLATIONS
    proc = run(gate_db.replace("/refaudit_gate", "/refaudit_nosuchdb"), out)
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "does not exist - check the database name in --db" in line
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "results.json"]
    doc = results(out)
    assert doc["verdict"] == "ERROR" and doc["exit_code"] == ExitCode.RUNTIME
    assert doc["checks"] == [] and "does not exist" in doc["error"]
    (case,) = list(junit_cases(out).values())
    assert isinstance(case.result[0], Error)
