"""Attacks on the promises of a repair plan, each on a real PostgreSQL.

- Inert: functions and operators a user may create in a schema of the audit's search_path
  (an overload of `to_jsonb` for the table's row type, a `current_database()` ahead of
  pg_catalog) are never what the plan calls; values of the suite's CHECK rules reach
  constraints.sql quoted and on one line, and mean what the rule means.
- Bound to its database: a `refaudit.allow_other_database` set by the database, the role or
  the client environment is not the override; only the psql variable or `apply
  --allow-other-database` is.
- Guarded: a column whose collation is not deterministic (case-insensitive) still counts a
  change of case as a change.
- Lossless and exactly reversible: two tables whose names differ only in case or
  punctuation keep separate backups; a self-referencing partitioned table holds the rows
  that rows of another partition reference.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.errors import DatabaseError
from refaudit.sqltext import psql_lines, statements, unsafe
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import REPAIRED, audit, dump, psql, query, requests
from tests.test_repair_safety import copy_of


def plan(uri: str, suite: dict[str, Any], out: Path) -> dict[str, Any]:
    result = run_audit(
        as_url(uri), Suite.model_validate(suite), out, options=AuditOptions(repair=True)
    )
    repair: dict[str, Any] = result.repair
    return repair


def tables_text(uri: str, *tables: str) -> dict[str, list[Any]]:
    """Every row of each table as text, in text order: equal means byte for byte."""
    return {t: query(uri, f"SELECT t::text FROM {t} t ORDER BY 1") for t in tables}


def reference(check_id: str, table: str, column: str, target: str, **extra: Any) -> dict:
    return {
        "id": check_id,
        "kind": "reference",
        "table": table,
        "column": column,
        "target": {"table": target, "column": "id"},
        **extra,
    }


# ---------------------------------------------------------------------- inert
def test_functions_a_user_can_create_on_the_search_path_are_not_called(
    world: str, suite: Suite, pg_server: str, tmp_path: Path
) -> None:
    """An overload `public.to_jsonb(session_requests)` is a better match than
    `pg_catalog.to_jsonb(anyelement)` wherever the search path puts pg_catalog; a
    `public.current_database()` wins where the search path names public before pg_catalog.
    Whoever can create functions in public could otherwise run code as the DBA, or make a
    copy pass for the audited database."""
    db = query(world, "SELECT current_database()")[0][0]
    execute(world, f'ALTER DATABASE "{db}" SET search_path = public, pg_catalog')
    audit(world, suite, tmp_path / "run")
    hijack = """
        CREATE TABLE pwned (what text);
        CREATE FUNCTION public.to_jsonb(r session_requests) RETURNS jsonb
            LANGUAGE plpgsql AS $$
            BEGIN INSERT INTO pwned VALUES ('to_jsonb'); RETURN pg_catalog.to_jsonb(r); END $$;
        CREATE FUNCTION public.format(text, bigint) RETURNS text
            LANGUAGE plpgsql AS $$ BEGIN INSERT INTO pwned VALUES ('format'); RETURN ''; END $$;
    """
    copy = copy_of(pg_server, world, f"refaudit_sp_{tmp_path.name[-20:]}")
    execute(
        copy,
        hijack
        + f"""
        CREATE FUNCTION public.current_database() RETURNS name LANGUAGE sql
            AS $$ SELECT '{db}'::name $$;
        """,
    )
    execute(world, hijack)
    before = dump(copy)
    refused = psql(copy, tmp_path / "run" / "repair.sql")
    assert refused.returncode != 0 and "was made for database" in refused.stderr
    assert dump(copy) == before

    done = psql(world, tmp_path / "run" / "repair.sql")
    assert done.returncode == 0, done.stderr
    assert requests(world) == REPAIRED
    assert query(world, "SELECT count(*) FROM refaudit.quarantine") == [(2,)]
    assert query(world, "SELECT * FROM pwned") == []
    back = psql(world, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert query(world, "SELECT * FROM pwned") == []


HOSTILE_VALUES = [
    "100%",
    "%s%%",
    "a\nb",
    "line\n\\set ON_ERROR_STOP on",
    "x\n\\! touch pwned",
    "sep\u2028arated",
    "it's",
    "back\\slash",
    ":ON_ERROR_STOP :'ON_ERROR_STOP' :\"ON_ERROR_STOP\" :{?ON_ERROR_STOP}",  # psql variables
]


def test_check_constraints_from_the_suite_are_inert_and_mean_the_rule(
    new_database: Any, tmp_path: Path
) -> None:
    """The CHECK that constraints.sql derives from an in_set rule carries the suite's values
    as written: quoted, one line, `%` not doubled; psql and `apply` add the same constraint,
    and it accepts exactly the values the rule accepts."""
    uri = new_database("checks")
    execute(uri, 'CREATE TABLE items (id int PRIMARY KEY, "Sta%tus" text)')
    values = ", ".join(f"({i}, %s)" for i in range(len(HOSTILE_VALUES)))
    import psycopg2

    conn = psycopg2.connect(uri)
    with conn, conn.cursor() as cur:
        cur.execute(f'INSERT INTO items (id, "Sta%%tus") VALUES {values}', HOSTILE_VALUES)
    conn.close()
    suite = {
        "suite": "checks",
        "tables": {"items": {"key": "id"}},
        "checks": [
            {
                "id": "items.status",
                "kind": "in_set",
                "table": "items",
                "column": "Sta%tus",
                "values": HOSTILE_VALUES,
            },
            {
                "id": "catalog.items_status",
                "kind": "constraint",
                "table": "items",
                "name": "items_status_check",
                "type": "check",
                "columns": ["Sta%tus"],
                "for_check": "items.status",
            },
        ],
    }
    run = tmp_path / "run"
    plan(uri, suite, run)
    text = (run / "constraints.sql").read_text(encoding="utf-8")
    for line in text.split("\n"):
        assert not any(unsafe(ch) for ch in line), line
        assert not line.lstrip().startswith("\\") or line.split()[0] in ("\\set", "\\if", "\\endif")
    assert [s.kind for s in statements(psql_lines(text))].count("DoStmt") == 2
    done = psql(uri, run / "constraints.sql")
    assert done.returncode == 0, done.stderr
    assert not Path("pwned").exists()
    by_psql = query(
        uri, "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint "
        "WHERE conname = 'items_status_check'",
    )  # fmt: skip
    assert by_psql[0][1] is True  # every row the rule accepts, the CHECK accepts
    execute(uri, "ALTER TABLE items DROP CONSTRAINT items_status_check")
    apply_plan(as_url(uri), run / "constraints.sql")
    by_apply = query(
        uri, "SELECT pg_get_constraintdef(oid), convalidated FROM pg_constraint "
        "WHERE conname = 'items_status_check'",
    )  # fmt: skip
    assert by_apply == by_psql
    with pytest.raises(psycopg2.errors.CheckViolation):
        execute(uri, "INSERT INTO items VALUES (99, '100%%')")


# ---------------------------------------------------------------------- bound
def test_the_override_is_only_the_one_given_for_this_run(
    world: str, suite: Suite, pg_server: str, tmp_path: Path
) -> None:
    """A copy whose database settings (or the client's PGOPTIONS) turn
    refaudit.allow_other_database on is still another database: the plan refuses."""
    audit(world, suite, tmp_path / "run")
    copy = copy_of(pg_server, world, f"refaudit_ov_{tmp_path.name[-20:]}")
    name = query(copy, "SELECT current_database()")[0][0]
    execute(copy, f'ALTER DATABASE "{name}" SET refaudit.allow_other_database = on')
    before = dump(copy)
    for file in ("repair.sql", "rollback.sql", "constraints.sql"):
        refused = psql(copy, tmp_path / "run" / file)
        assert refused.returncode != 0 and "was made for database" in refused.stderr, file
        with pytest.raises(DatabaseError, match="was made for database"):
            apply_plan(as_url(copy), tmp_path / "run" / file)
    env = {**os.environ, "PGOPTIONS": "-c refaudit.allow_other_database=on"}
    import subprocess

    from tests.test_repair import psql_binary

    by_env = subprocess.run(
        [str(psql_binary()), copy, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f",
         str(tmp_path / "run" / "repair.sql")],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert by_env.returncode != 0 and "was made for database" in by_env.stderr
    assert dump(copy) == before
    # the documented override still works
    rehearsed = apply_plan(as_url(copy), tmp_path / "run" / "repair.sql", allow_other_database=True)
    assert rehearsed.totals["updated"] == 6


# ---------------------------------------------------------------------- lossless
MIXED_CASE = """
CREATE TABLE owners (id int PRIMARY KEY);
INSERT INTO owners VALUES (1);
CREATE TABLE "Orders" (id int PRIMARY KEY, owner int, note text);
CREATE TABLE orders (id int PRIMARY KEY, owner int, note text);
CREATE SCHEMA "a_b";
CREATE SCHEMA "a";
CREATE TABLE a_b.c (id int PRIMARY KEY, owner int, note text);
CREATE TABLE a.b_c (id int PRIMARY KEY, owner int, note text);
INSERT INTO "Orders" VALUES (1, 91, 'upper one'), (2, 1, 'upper ok'), (3, 93, 'upper three');
INSERT INTO orders VALUES (1, 81, 'lower one'), (2, 1, 'lower ok'), (4, 84, 'lower four');
INSERT INTO a_b.c VALUES (1, 71, 'a_b.c one'), (5, 75, 'a_b.c five');
INSERT INTO a.b_c VALUES (1, 61, 'a.b_c one'), (6, 66, 'a.b_c six');
"""


def test_tables_whose_names_differ_only_in_case_keep_separate_backups(
    new_database: Any, tmp_path: Path
) -> None:
    uri = new_database("mixed")
    execute(uri, MIXED_CASE)
    names = ['"Orders"', "orders", "a_b.c", "a.b_c"]
    before = tables_text(uri, *names)
    suite = {
        "suite": "mixed",
        "tables": {
            "owners": {"key": "id"},
            "Orders": {"key": "id"},
            "orders": {"key": "id"},
            "a_b.c": {"key": "id"},
            "a.b_c": {"key": "id"},
        },
        "checks": [
            reference("upper.owner", "Orders", "owner", "owners", on_orphan="quarantine"),
            reference("lower.owner", "orders", "owner", "owners", on_orphan="set_null"),
            reference("ab_c.owner", "a_b.c", "owner", "owners", on_orphan="quarantine"),
            reference("a_bc.owner", "a.b_c", "owner", "owners", on_orphan="set_null"),
        ],
    }
    repair = plan(uri, suite, tmp_path / "run")
    assert len(set(repair["backup_tables"])) == 4, repair["backup_tables"]
    done = psql(uri, tmp_path / "run" / "repair.sql")
    assert done.returncode == 0, done.stderr
    assert query(uri, 'SELECT id, owner FROM "Orders" ORDER BY id') == [(2, 1)]
    assert query(uri, "SELECT id, owner FROM orders ORDER BY id") == [
        (1, None), (2, 1), (4, None),
    ]  # fmt: skip
    back = psql(uri, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert tables_text(uri, *names) == before


# ---------------------------------------------------------------------- guarded
CASELESS = """
CREATE COLLATION caseless (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
CREATE TABLE people (id int PRIMARY KEY, email text COLLATE caseless);
CREATE TABLE cards (id int PRIMARY KEY, owner int);
CREATE TABLE visits (id int PRIMARY KEY, card int, contact text COLLATE caseless);
INSERT INTO people VALUES (1, 'ann@x'), (2, 'bob@x');
INSERT INTO cards VALUES (10, 1), (20, 2);
-- people ids where card numbers belong, each confirmed by its contact
INSERT INTO visits VALUES (1, 1, 'ann@x'), (2, 2, 'bob@x');
"""

CARD_SUITE: dict[str, Any] = {
    "suite": "caseless",
    "tables": {"people": {"key": "id"}, "cards": {"key": "id"}, "visits": {"key": "id"}},
    "key_spaces": {"people": {"table": "people", "key": "id", "attributes": ["email"]}},
    "checks": [
        reference(
            "visits.card",
            "visits",
            "card",
            "cards",
            mis_key={
                "key_space": "people",
                "through": "owner",
                "evidence": [{"attribute": {"column": "contact", "key_space_column": "email"}}],
            },
        )
    ],
}


def test_a_change_of_case_under_a_caseless_collation_is_a_change(
    new_database: Any, tmp_path: Path
) -> None:
    """The guards compare bytes: 'ann@x' -> 'ANN@X' since the audit is a change, though the
    column's own collation calls the two equal."""
    uri = new_database("caseless")
    import psycopg2

    try:
        execute(uri, CASELESS)
    except psycopg2.errors.FeatureNotSupported:
        pytest.skip("this server is built without ICU: no nondeterministic collations")
    repair = plan(uri, CARD_SUITE, tmp_path / "run")
    assert repair["updates"] == 2
    execute(uri, "UPDATE visits SET contact = 'ANN@X' WHERE id = 1")
    seen: list[str] = []
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql", echo=seen.append)
    assert applied.totals["updated"] == 1 and applied.totals["skipped"] == 1, seen
    assert query(uri, "SELECT id, card FROM visits ORDER BY id") == [(1, 1), (2, 20)]


# ---------------------------------------------------------------------- lossless
PARTITIONED = """
CREATE TABLE owners (id int PRIMARY KEY);
INSERT INTO owners VALUES (1);
CREATE TABLE nodes (
    id int, region int, owner int, parent int, parent_region int, note text,
    PRIMARY KEY (id, region)
) PARTITION BY LIST (region);
CREATE TABLE nodes_1 PARTITION OF nodes FOR VALUES IN (1);
CREATE TABLE nodes_2 PARTITION OF nodes FOR VALUES IN (2);
ALTER TABLE nodes ADD CONSTRAINT nodes_parent_fkey FOREIGN KEY (parent, parent_region)
    REFERENCES nodes (id, region) ON DELETE CASCADE;
-- the first row of each partition: both at ctid (0,1). Node 1 is an orphan (owner 99) that
-- node 2, in the other partition, hangs from; node 3 is an orphan nobody references.
INSERT INTO nodes VALUES (1, 1, 99, NULL, NULL, 'orphan parent');
INSERT INTO nodes VALUES (2, 2, 1, 1, 1, 'its child');
INSERT INTO nodes VALUES (3, 2, 98, NULL, NULL, 'lone orphan');
"""


def test_a_self_reference_across_partitions_holds_the_parent(
    new_database: Any, tmp_path: Path
) -> None:
    uri = new_database("parts")
    execute(uri, PARTITIONED)
    assert query(uri, "SELECT ctid::text FROM nodes WHERE id IN (1, 2) ORDER BY id") == [
        ("(0,1)",), ("(0,1)",),
    ]  # fmt: skip
    before = tables_text(uri, "nodes")
    suite = {
        "suite": "parts",
        "tables": {"owners": {"key": "id"}, "nodes": {"key": "id"}},
        "checks": [reference("nodes.owner", "nodes", "owner", "owners", on_orphan="quarantine")],
    }
    repair = plan(uri, suite, tmp_path / "run")
    assert repair["quarantined"] == 2
    done = psql(uri, tmp_path / "run" / "repair.sql")
    assert done.returncode == 0, done.stderr
    assert "held (rows reference them, or they belong to an inheritance child): 1" in done.stderr
    assert query(uri, "SELECT id FROM nodes ORDER BY id") == [(1,), (2,)]  # nothing cascaded
    back = psql(uri, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert tables_text(uri, "nodes") == before
