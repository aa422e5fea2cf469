"""Composite keys, as multi-tenant schemas have them: a table keyed by `(org_id, task_no)`, a
reference over two columns to a table keyed by two, a foreign key present (NOT VALID, so
old rows may break it). The audit flags exactly the faulty rows with their keys as JSON
arrays; repair.sql finds a composite-keyed row by its key; rollback leaves every table as
it was; the GX export agrees."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.roundtrip import audits_alike_from_a_snapshot, dump_tables
from tests.test_repair import psql, query

SCHEMA = """
CREATE TABLE orgs (org_id int PRIMARY KEY, name text);
CREATE TABLE projects (org_id int NOT NULL, project_no int NOT NULL,
                       title text, PRIMARY KEY (org_id, project_no));
CREATE TABLE tasks (org_id int NOT NULL, task_no int NOT NULL, project_no int, state text,
                    PRIMARY KEY (org_id, task_no));
INSERT INTO orgs VALUES (1, 'acme'), (2, 'globex');
INSERT INTO projects VALUES (1, 10, 'site'), (1, 11, 'app'), (2, 20, 'site'),
    (3, 30, 'legacy');      -- no org 3: an orphan in a composite-keyed table
ALTER TABLE projects ADD FOREIGN KEY (org_id) REFERENCES orgs NOT VALID;
INSERT INTO tasks VALUES
    (1, 1, 10, 'open'),     -- clean
    (1, 2, 12, 'open'),     -- no project (1, 12)
    (2, 1, 10, 'done'),     -- project 10 is acme's, not globex's
    (1, 3, NULL, 'open'),   -- no project: names nothing
    (2, 2, 20, 'bogus');    -- a state outside the set
ALTER TABLE tasks ADD CONSTRAINT tasks_project_fkey FOREIGN KEY (org_id, project_no)
    REFERENCES projects (org_id, project_no) NOT VALID;
"""

SUITE: dict[str, Any] = {
    "suite": "tenants",
    "tables": {
        "orgs": {"key": "org_id"},
        "projects": {"key": ["org_id", "project_no"]},
        "tasks": {"key": ["org_id", "task_no"]},
    },
    "checks": [
        {
            "id": "tasks.project",
            "kind": "reference",
            "table": "tasks",
            "columns": ["org_id", "project_no"],
            "target": {"table": "projects", "columns": ["org_id", "project_no"]},
        },
        {  # a reference on one column of the composite foreign key: that key is not its
            "id": "tasks.org",
            "kind": "reference",
            "table": "tasks",
            "column": "org_id",
            "target": {"table": "orgs", "column": "org_id"},
        },
        {
            "id": "tasks.state",
            "kind": "in_set",
            "table": "tasks",
            "column": "state",
            "values": ["open", "done"],
        },
        {
            "id": "projects.org",
            "kind": "reference",
            "table": "projects",
            "column": "org_id",
            "target": {"table": "orgs", "column": "org_id"},
        },
        {
            "id": "projects.title",
            "kind": "unique",
            "table": "projects",
            "columns": ["title"],
        },
        {
            "id": "tasks.project.fk",
            "kind": "constraint",
            "table": "tasks",
            "type": "foreign_key",
            "columns": ["org_id", "project_no"],
            "references": {"table": "projects", "columns": ["org_id", "project_no"]},
        },
    ],
}

TABLES = {"orgs": "org_id", "projects": "org_id, project_no", "tasks": "org_id, task_no"}


def dump_all(uri: str) -> dict[str, list[str]]:
    return dump_tables(uri, TABLES)


@pytest.fixture
def tenants(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("tenants")
    execute(uri, SCHEMA)
    return uri


def test_composite_references_and_keys_round_trip(tenants: str, tmp_path: Path) -> None:
    before = dump_all(tenants)
    suite = Suite.model_validate(SUITE)
    result = run_audit(as_url(tenants), suite, tmp_path / "run", options=AuditOptions(repair=True))
    with (tmp_path / "run" / "violations.csv").open(encoding="utf-8", newline="") as f:
        rows = [(r["check"], r["key"], r["column"], r["value"]) for r in csv.DictReader(f)]
    assert sorted(rows) == sorted(
        [
            ("tasks.project", "[1, 2]", "org_id,project_no", "[1, 12]"),
            ("tasks.project", "[2, 1]", "org_id,project_no", "[2, 10]"),
            ("tasks.state", "[2, 2]", "state", "bogus"),
            ("projects.title", "[2, 20]", "title", "site"),
            ("projects.org", "[3, 30]", "org_id", "3"),
            (
                "tasks.project.fk",
                "tasks_project_fkey",
                "org_id,project_no",
                "FOREIGN KEY (org_id, project_no) REFERENCES projects(org_id, project_no) "
                "NOT VALID",
            ),
        ]
    ), rows
    checked = {c.id: c.rows_checked for c in result.checks}
    assert checked["tasks.project"] == 5 and checked["projects.title"] == 4

    # the orphan project (3, 30) goes to quarantine by its composite key; the composite
    # references' findings carry no diagnosis, so they are for review
    applied = apply_plan(as_url(tenants), tmp_path / "run" / "repair.sql")
    assert applied.totals["quarantine"] == 1 and not applied.totals.get("updated"), applied.totals
    after = dump_all(tenants)
    assert after["projects"] == [r for r in before["projects"] if r != "(3,30,legacy)"]
    assert after["tasks"] == before["tasks"] and after["orgs"] == before["orgs"]
    assert query(tenants, "SELECT row_key FROM refaudit.quarantine") == [("[3, 30]",)]
    again = apply_plan(as_url(tenants), tmp_path / "run" / "repair.sql")
    assert again.totals["quarantine"] == 0 and again.totals["already"] == 1, again.totals
    back = psql(tenants, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump_all(tenants) == before


def test_gx_export_counts_composite_references_alike(tenants: str, tmp_path: Path) -> None:
    from refaudit.gx_export import export_suite, run_with_gx, write_export

    suite = Suite.model_validate(SUITE)
    result = run_audit(as_url(tenants), suite, tmp_path / "run")
    ours = {c.id: c.violations for c in result.checks if c.family != "constraint"}
    write_export(export_suite(suite), tmp_path / "gx")
    gx = run_with_gx(as_url(tenants).render_as_string(hide_password=False), tmp_path / "gx")
    assert gx.broken == {}
    assert {k: v for k, v in gx.counts.items() if v} == {k: v for k, v in ours.items() if v}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"target": {"table": "projects", "columns": ["org_id"]}}, "has 2 columns but the target"),
        ({"column": "project_no"}, "names `column:` or (a composite key) `columns:`"),
    ],
)
def test_composite_reference_mistakes_are_refused(change: dict[str, Any], message: str) -> None:
    check = {**SUITE["checks"][0], **change}
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Suite.model_validate({**SUITE, "checks": [check]})


def test_a_snapshot_of_composite_keyed_tables_audits_alike(
    tenants: str, pg_server: str, tmp_path: Path
) -> None:
    lines = audits_alike_from_a_snapshot(tenants, Suite.model_validate(SUITE), tmp_path, pg_server)
    assert len(lines) == 7


def test_a_foreign_key_sharing_a_column_is_not_the_references(
    tenants: str, tmp_path: Path
) -> None:
    """tasks.org names org_id alone; the composite key (org_id, project_no) -> projects is
    another constraint, not a foreign key of tasks.org to the wrong table."""
    checks = [c for c in SUITE["checks"] if c["id"] in ("tasks.project", "tasks.org")]
    suite = Suite.model_validate({**SUITE, "checks": checks})
    run_audit(as_url(tenants), suite, tmp_path / "run", options=AuditOptions(repair=True))
    done = psql(tenants, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    assert query(tenants, "SELECT conname FROM pg_constraint WHERE conname = 'tasks_project_fkey'")
