"""References at the edges of what a target and a type mean: a value the target table has but
its `where` leaves out is not an orphan (and never deleted for one); a text id spelling a uuid
in capitals is that uuid."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from pipeline.apply import apply_plan
from pipeline.audit import AuditOptions, run_audit
from pipeline.suite import Suite
from tests.conftest import as_url, execute
from tests.test_repair import query

OPTIONS = AuditOptions(repair=True, record_history=False)


def findings(run: Path) -> dict[tuple[str, str], tuple[str, str]]:
    with (run / "violations.csv").open(encoding="utf-8", newline="") as f:
        return {(r["check"], r["key"]): (r["diagnosis"], r["evidence"]) for r in csv.DictReader(f)}


def suite(check: dict[str, Any], *tables: str) -> Suite:
    return Suite.model_validate(
        {"suite": "edges", "tables": {t: {} for t in tables}, "checks": [check]}
    )


def test_a_target_row_the_filter_leaves_out_is_not_an_orphan(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("filtered_target")
    execute(
        uri,
        """
        CREATE TABLE users (id int PRIMARY KEY, status text);
        CREATE TABLE orders (id int PRIMARY KEY, user_id int);
        INSERT INTO users VALUES (1, 'active'), (2, 'closed');
        INSERT INTO orders VALUES (1, 1), (2, 2), (3, 9);
        """,
    )
    check = {
        "id": "orders.user",
        "kind": "reference",
        "table": "orders",
        "column": "user_id",
        "target": {"table": "users", "where": {"column": "status", "eq": "active"}},
    }
    run_audit(as_url(uri), suite(check, "users", "orders"), tmp_path / "run", options=OPTIONS)
    got = findings(tmp_path / "run")
    assert {k: v[0] for k, v in got.items()} == {
        ("orders.user", "2"): "filtered_out",  # user 2 exists, closed: for a person
        ("orders.user", "3"): "orphan",  # nothing has 9
    }
    assert "the table has it" in got[("orders.user", "2")][1]
    apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert query(uri, "SELECT id FROM orders ORDER BY id") == [(1,), (2,)]  # 3 quarantined


def test_a_text_id_spelling_a_uuid_in_capitals_is_that_uuid(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("uuid_case")
    execute(
        uri,
        """
        CREATE TABLE users (id uuid PRIMARY KEY);
        CREATE TABLE notes (id int PRIMARY KEY, owner_type text, owner_id text);
        INSERT INTO users VALUES ('a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
        INSERT INTO notes VALUES (1, 'User', 'A0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'),
                                 (2, 'User', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'),
                                 (3, 'User', 'b0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11');
        """,
    )
    check = {
        "id": "notes.owner",
        "kind": "conditional_reference",
        "table": "notes",
        "column": "owner_id",
        "discriminator": "owner_type",
        "targets": {"User": {"table": "users"}},
    }
    run_audit(as_url(uri), suite(check, "users", "notes"), tmp_path / "run", options=OPTIONS)
    assert set(findings(tmp_path / "run")) == {("notes.owner", "3")}
    apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert query(uri, "SELECT id FROM notes ORDER BY id") == [(1,), (2,)]
