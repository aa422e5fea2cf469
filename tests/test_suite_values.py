"""A check PostgreSQL cannot run as written (a regex its `~` rejects, a value the column's
type or enum cannot hold) is exit 2 naming the check, found before the audit reads a row."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from refaudit.errors import ExitCode

from tests.conftest import execute
from tests.test_cli import assert_one_line_error, refaudit

HEAD = """
suite: values
tables:
  requests: {key: id}
checks:
  - id: requests.note.pattern
    kind: pattern
    table: requests
    column: note
    regex: '^[a-z]+$'
"""


@pytest.fixture(scope="module")
def values_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("values")
    execute(
        uri,
        "CREATE TYPE request_status AS ENUM ('pending', 'accepted', 'rejected');"
        "CREATE TABLE requests (id int PRIMARY KEY, status request_status, tries int,"
        " note text, created_at timestamp);"
        "INSERT INTO requests VALUES (1, 'pending', 1, 'ok', '2024-01-01'),"
        " (2, 'accepted', 2, 'Bad!', '2024-01-02')",
    )
    return uri


CASES = {
    "regex": (
        "  - {id: requests.note.broken, kind: pattern, table: requests, column: note,"
        " regex: '^(unclosed'}",
        "requests.note.broken",
        "is not valid for PostgreSQL's ~ operator: invalid regular expression",
    ),
    "enum": (
        "  - {id: requests.status.in_set, kind: in_set, table: requests, column: status,"
        " values: [pending, accepted, done]}",
        "requests.status.in_set",
        'invalid input value for enum request_status: "done"',
    ),
    "integer": (
        "  - {id: requests.tries.in_set, kind: in_set, table: requests, column: tries,"
        " values: ['1', 'two']}",
        "requests.tries.in_set",
        'invalid input syntax for type integer: "two"',
    ),
    "row_rule": (
        "  - {id: requests.created.rule, kind: row_rule, table: requests,"
        " require: {column: created_at, ge: 'the beginning'}}",
        "requests.created.rule",
        "invalid input syntax for type timestamp",
    ),
    "type": (
        "  - {id: requests.note.in_set, kind: in_set, table: requests, column: note,"
        " values: [1, 2]}",
        "requests.note.in_set",
        "operator does not exist: text <> integer",
    ),
    "unique_where": (
        "  - {id: requests.note.unique, kind: unique, table: requests, columns: [note],"
        " where: {column: status, eq: archived}}",
        "requests.note.unique",
        'invalid input value for enum request_status: "archived"',
    ),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_check_postgresql_cannot_run_is_exit_2_naming_it(
    tmp_path: Path, values_db: str, case: str
) -> None:
    check, check_id, says = CASES[case]
    suite = tmp_path / "suite.yml"
    suite.write_text(HEAD + check + "\n")
    out = tmp_path / "o"
    proc = refaudit("run", "--db", values_db, "--suite", str(suite), "--out", str(out))
    line = assert_one_line_error(proc, ExitCode.USAGE)
    assert f"check {check_id}:" in line and says in line, line
    assert str(suite) in line
    # found before the audit: no check ran, no violations.csv or report
    assert sorted(p.name for p in out.iterdir()) == ["junit.xml", "results.json"]
    doc = json.loads((out / "results.json").read_text())
    assert (doc["verdict"], doc["exit_code"], doc["checks"]) == ("ERROR", 2, [])


def test_values_that_fit_run_the_audit(tmp_path: Path, values_db: str) -> None:
    suite = tmp_path / "suite.yml"
    suite.write_text(
        HEAD + "  - {id: requests.status.in_set, kind: in_set, table: requests,"
        " column: status, values: [pending]}\n"
        "  - {id: requests.tries.in_set, kind: in_set, table: requests, column: tries,"
        " values: [1, '3']}\n"
    )
    out = tmp_path / "o"
    proc = refaudit("run", "--db", values_db, "--suite", str(suite), "--out", str(out))
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    assert {c["id"]: c["violations"] for c in doc["checks"]} == {
        "requests.note.pattern": 1,
        "requests.status.in_set": 1,
        "requests.tries.in_set": 1,
    }
