"""References at the edges of what a target and a type mean: a value the target table has but
its `where` leaves out is not an orphan (and never deleted for one); a text id spelling a uuid
in capitals reads as that uuid but is not its text: `malformed`, rewritten, never deleted."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import psql, query

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


def test_a_text_id_spelling_a_uuid_in_capitals_is_malformed(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
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
    # a lookup by text (`owner_id = users.id::text`) misses note 1: it is reported, not passed
    assert {k: v[0] for k, v in findings(tmp_path / "run").items()} == {
        ("notes.owner", "1"): "malformed",
        ("notes.owner", "3"): "orphan",
    }
    apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert query(uri, "SELECT id, owner_id FROM notes ORDER BY id") == [
        (1, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),  # rewritten as the uuid's text
        (2, "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ]


def test_a_boolean_in_a_condition_stays_a_boolean(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from refaudit.checks.model import Condition

    assert Condition.model_validate({"column": "active", "eq": True}).eq is True
    assert Condition.model_validate({"column": "n", "in": [1, True]}).in_ == [1, True]
    uri = new_database("boolean_where")
    execute(
        uri,
        """
        CREATE TABLE users (id int PRIMARY KEY, active boolean);
        CREATE TABLE orders (id int PRIMARY KEY, user_id int);
        INSERT INTO users VALUES (1, true), (2, false);
        INSERT INTO orders VALUES (1, 1), (2, 2), (3, 9);
        """,
    )
    check = {
        "id": "orders.user",
        "kind": "reference",
        "table": "orders",
        "column": "user_id",
        "target": {"table": "users", "where": {"column": "active", "eq": True}},
    }
    result = run_audit(
        as_url(uri), suite(check, "users", "orders"), tmp_path / "r", options=OPTIONS
    )
    assert {c.id: c.violations for c in result.checks} == {"orders.user": 2}


def test_a_target_filter_value_its_column_cannot_hold_is_a_suite_error(  # type: ignore[no-untyped-def]
    new_database, tmp_path: Path
) -> None:
    from refaudit.errors import SuiteError

    uri = new_database("target_where_type")
    execute(uri, "CREATE TABLE u (id int PRIMARY KEY, n int); CREATE TABLE o (id int, u int);")
    check = {
        "id": "o.u",
        "kind": "reference",
        "table": "o",
        "column": "u",
        "target": {"table": "u", "where": {"column": "n", "eq": "many"}},
    }
    with pytest.raises(SuiteError, match='invalid input syntax for type integer: "many"'):
        run_audit(as_url(uri), suite(check, "u", "o"), tmp_path / "r", options=OPTIONS)


def test_infinite_bounds_are_sql_values() -> None:
    from refaudit.checks.enforce import condition_sql
    from refaudit.checks.model import Condition

    sql = condition_sql(Condition.model_validate({"column": "score", "lt": float("inf")}), "x.")
    assert sql == "x.score < 'Infinity'::pg_catalog.float8"


def test_triggers_qualify_columns_named_like_plpgsql_words(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("found_column")
    execute(
        uri,
        """
        CREATE TABLE items (id int PRIMARY KEY, found text);
        CREATE TABLE notes (id int PRIMARY KEY, owner_type text, owner_id int);
        INSERT INTO items VALUES (1, 'yes'), (2, 'no');
        INSERT INTO notes VALUES (1, 'Item', 1);
        """,
    )
    checks = {
        "suite": "found",
        "tables": {"items": {}, "notes": {}},
        "checks": [
            {
                "id": "notes.owner",
                "kind": "conditional_reference",
                "table": "notes",
                "column": "owner_id",
                "discriminator": "owner_type",
                "targets": {"Item": {"table": "items", "where": {"column": "found", "eq": "yes"}}},
            },
            {"id": "notes.trigger", "kind": "trigger", "table": "notes",
             "name": "notes_owner_ref", "for_check": "notes.owner"},
        ],
    }  # fmt: skip
    run_audit(as_url(uri), Suite.model_validate(checks), tmp_path / "r", options=OPTIONS)
    done = psql(uri, tmp_path / "r" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    execute(uri, "INSERT INTO notes VALUES (2, 'Item', 1)")  # a valid row
    with pytest.raises(psycopg2.Error):
        execute(uri, "INSERT INTO notes VALUES (3, 'Item', 2)")  # item 2 is not `found`
    execute(uri, "DELETE FROM items WHERE id = 2")  # the filter left it out: it held nothing
    with pytest.raises(psycopg2.Error):
        execute(uri, "DELETE FROM items WHERE id = 1")


def test_a_colon_in_a_suite_value_is_text(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("colon")
    execute(uri, "CREATE TABLE t (id int PRIMARY KEY, s text CONSTRAINT t_s_check CHECK "
                 "(s IN ('a', 'b')));")  # fmt: skip
    checks = {
        "suite": "colon",
        "tables": {"t": {}},
        "checks": [
            {"id": "t.s", "kind": "in_set", "table": "t", "column": "s", "values": ["a", "b"],
             "where": {"column": "s", "ne": "x (:y)"}},
            {"id": "t.s.check", "kind": "constraint", "table": "t", "type": "check",
             "name": "t_s_check", "columns": ["s"], "for_check": "t.s"},
        ],
    }  # fmt: skip
    result = run_audit(as_url(uri), Suite.model_validate(checks), tmp_path / "r", options=OPTIONS)
    assert {c.id: c.violations for c in result.checks} == {"t.s": 0, "t.s.check": 1}
    # the rule leaves 'x (:y)' unchecked, the CHECK rejects it: compared, not a bind parameter
    assert "rejects s='x (:y)', which t.s allows" in (tmp_path / "r" / "violations.csv").read_text()
