"""Identifiers from a suite are quoted everywhere: mixed-case and spaced table and column
names work in the scan, the schema check and the catalog reads."""

from __future__ import annotations

from pathlib import Path

from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute

SCHEMA = """
CREATE TABLE "Tutors" ("Id" integer PRIMARY KEY);
CREATE TABLE "Lesson Requests" ("Id" integer PRIMARY KEY, "Tutor Id" integer, "Status" text);
CREATE INDEX "IdxLessonTutor" ON "Lesson Requests" ("Tutor Id");
INSERT INTO "Tutors" VALUES (1), (2);
INSERT INTO "Lesson Requests" VALUES (10, 1, 'open'), (11, 3, 'open'), (12, 2, 'Closed'),
                                      (13, 1, 'open');
"""


def test_mixed_case_and_spaced_names(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("idents")
    execute(uri, SCHEMA)
    suite = Suite.model_validate(
        {
            "suite": "idents",
            "tables": {"Tutors": {"key": "Id"}, "Lesson Requests": {"key": "Id"}},
            "checks": [
                {
                    "id": "tutor",
                    "kind": "reference",
                    "table": "Lesson Requests",
                    "column": "Tutor Id",
                    "target": {"table": "Tutors", "column": "Id"},
                },
                {
                    "id": "status",
                    "kind": "in_set",
                    "table": "Lesson Requests",
                    "column": "Status",
                    "values": ["open", "closed"],
                },
                {
                    "id": "one_open",
                    "kind": "unique",
                    "table": "Lesson Requests",
                    "columns": ["Tutor Id"],
                    "where": {"column": "Status", "eq": "open"},
                },
                {
                    "id": "idx",
                    "kind": "index",
                    "table": "Lesson Requests",
                    "name": "IdxLessonTutor",
                    "columns": ["Tutor Id"],
                },
                {
                    "id": "fk",
                    "kind": "constraint",
                    "table": "Lesson Requests",
                    "type": "foreign_key",
                    "columns": ["Tutor Id"],
                    "references": {"table": "Tutors", "columns": ["Id"]},
                },
            ],
        }
    )
    result = run_audit(as_url(uri), suite, tmp_path, options=AuditOptions(record_history=False))
    counts = {c.id: c.violations for c in result.checks}
    assert counts == {"tutor": 1, "status": 1, "one_open": 1, "idx": 0, "fk": 1}
    lines = (tmp_path / "violations.csv").read_text().splitlines()
    assert any(line.startswith("tutor,Lesson Requests,11,Tutor Id,3") for line in lines)
