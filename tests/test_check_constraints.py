"""A catalog check of a CHECK constraint compares what the CHECK allows with the suite's rule
it stands for, not merely that some CHECK exists on the column."""

from __future__ import annotations

from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import load_suite

from tests.conftest import as_url, execute

SUITE = """
suite: checks
tables:
  requests: {key: id}
checks:
  - id: requests.status.in_set
    kind: in_set
    table: requests
    column: status
    values: [pending, accepted, rejected]
  - id: requests.note.not_null
    kind: not_null
    table: requests
    columns: [note]
  - id: catalog.requests_status_check
    kind: constraint
    table: requests
    type: check
    columns: [status]
    for_check: requests.status.in_set
  - id: catalog.requests_note_check
    kind: constraint
    table: requests
    type: check
    columns: [note]
    for_check: requests.note.not_null
"""

CASES = {
    "same": ("status IN ('pending', 'accepted', 'rejected')", None),
    "same, written otherwise": (
        "status = 'rejected' OR status = 'pending' OR status = 'accepted'",
        None,
    ),
    "one value more": (
        "status IN ('pending', 'accepted', 'rejected', 'done')",
        "allows status='done', which requests.status.in_set rejects",
    ),
    "one value less": (
        "status IN ('pending', 'accepted')",
        "rejects status='rejected', which requests.status.in_set allows",
    ),
    "any non-empty value": (
        "status <> ''",
        "allows status='refaudit?', which requests.status.in_set rejects",
    ),
    "nothing but NOT NULL": (
        "status IS NOT NULL",
        "allows status='', status='refaudit?'",
    ),
}


@pytest.fixture(scope="module")
def checks_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("checks")
    execute(uri, "CREATE TABLE requests (id int PRIMARY KEY, status varchar(20), note text)")
    return uri


@pytest.mark.parametrize("case", list(CASES))
def test_a_check_constraint_is_compared_with_its_rule(
    tmp_path: Path, checks_db: str, case: str
) -> None:
    body, says = CASES[case]
    execute(
        checks_db,
        "ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_status_check;"
        "ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_note_check;"
        f"ALTER TABLE requests ADD CONSTRAINT requests_status_check CHECK ({body});"
        "ALTER TABLE requests ADD CONSTRAINT requests_note_check CHECK (note IS NOT NULL)",
    )
    (tmp_path / "suite.yml").write_text(SUITE)
    result = run_audit(
        as_url(checks_db),
        load_suite(tmp_path / "suite.yml"),
        tmp_path / "o",
        options=AuditOptions(record_history=False),
    )
    by_id = {c.id: c for c in result.checks}
    assert by_id["catalog.requests_note_check"].violations == 0  # the NOT NULL one agrees
    status = by_id["catalog.requests_status_check"]
    if says is None:
        assert status.violations == 0, status.sample
        return
    assert status.violations == 1
    (finding,) = status.sample
    assert finding["key"] == "requests_status_check"
    assert says in finding["evidence"], finding["evidence"]


def test_a_check_on_the_column_that_lets_null_through_a_not_null_rule(
    tmp_path: Path, checks_db: str
) -> None:
    execute(
        checks_db,
        "ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_note_check;"
        "ALTER TABLE requests ADD CONSTRAINT requests_note_check CHECK (note <> '')",
    )
    (tmp_path / "suite.yml").write_text(SUITE)
    result = run_audit(
        as_url(checks_db),
        load_suite(tmp_path / "suite.yml"),
        tmp_path / "o",
        options=AuditOptions(record_history=False),
    )
    note = next(c for c in result.checks if c.id == "catalog.requests_note_check")
    assert note.violations == 1
    assert "allows NULL, which requests.note.not_null rejects" in note.sample[0]["evidence"]


def test_constraints_sql_replaces_a_check_that_allows_other_values(
    tmp_path: Path, checks_db: str
) -> None:
    from tests.test_repair import psql, query

    execute(
        checks_db,
        "ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_status_check;"
        "ALTER TABLE requests DROP CONSTRAINT IF EXISTS requests_note_check;"
        "ALTER TABLE requests ADD CONSTRAINT requests_status_check "
        "CHECK (status IN ('pending', 'accepted', 'rejected', 'done'))",
    )
    (tmp_path / "suite.yml").write_text(SUITE)
    run_audit(
        as_url(checks_db),
        load_suite(tmp_path / "suite.yml"),
        tmp_path / "o",
        options=AuditOptions(record_history=False, repair=True),
    )
    done = psql(checks_db, tmp_path / "o" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    (definition,) = query(
        checks_db,
        "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
        "WHERE conname = 'requests_status_check'",
    )[0]
    assert "'done'" not in definition and "'rejected'" in definition
