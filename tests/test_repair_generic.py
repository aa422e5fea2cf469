"""Diagnosis and repair know nothing about Astegni: a suite over other tables, with column
names that need quoting, an identity key and a generated column, round-trips the same way."""

from __future__ import annotations

from pathlib import Path

from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import dump, psql, query

SCHEMA = """
CREATE TABLE people (pid int PRIMARY KEY, "E-mail" text);
CREATE TABLE cards ("Card No" int PRIMARY KEY, "Owner" int);
CREATE TABLE visits (
    "Visit Id" int GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    "Card" int,
    "select" text,
    shout text GENERATED ALWAYS AS (upper("select")) STORED
);
INSERT INTO people VALUES (1, 'ann@x'), (2, 'bob@x'), (7, 'eve@x'), (500, 'zed@x');
INSERT INTO cards VALUES (10, 1), (20, 2), (7, 500);
INSERT INTO visits ("Card", "select") VALUES
    (10, 'ann@x'),  -- clean
    (1, 'ann@x'),   -- people.pid 1 where a card number belongs: card 10
    (7, 'eve@x'),   -- card 7 exists (owner 500), but the contact is person 7's: hidden, no card
    (2, NULL),      -- person 2 -> card 20, no evidence
    (99, 'x''y');   -- nothing maps: quarantined
"""

SUITE = {
    "suite": "generic",
    "tables": {
        "people": {"key": "pid"},
        "cards": {"key": "Card No"},
        "visits": {"key": "Visit Id"},
    },
    "key_spaces": {"people": {"table": "people", "key": "pid", "attributes": ["E-mail"]}},
    "checks": [
        {
            "id": "visits.card",
            "kind": "reference",
            "table": "visits",
            "column": "Card",
            "target": {"table": "cards", "column": "Card No"},
            "mis_key": {
                "key_space": "people",
                "through": "Owner",
                "evidence": [{"attribute": {"column": "select", "key_space_column": "E-mail"}}],
            },
        }
    ],
}


def test_generic_suite_round_trip(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("generic")
    execute(uri, SCHEMA)
    suite = Suite.model_validate(SUITE)
    before = dump(uri, "visits", '"Visit Id"')
    result = run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions(repair=True))
    lines = (tmp_path / "run" / "violations.csv").read_text().splitlines()[1:]
    got = {ln.split(",")[2]: ln.split(",")[5:8] for ln in lines}
    assert got == {
        "2": ["mis_keyed", "10", "high"],
        "4": ["mis_keyed", "20", "medium"],
        "5": ["orphan", "", "high"],
    }
    assert result.repair["updates"] == 2

    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert applied.totals["updated"] == 2 and applied.totals["quarantine"] == 1
    cards = query(uri, 'SELECT "Visit Id", "Card" FROM visits ORDER BY 1')
    assert cards == [(1, 10), (2, 10), (3, 7), (4, 20)]
    assert query(uri, "SELECT row_data->>'select' FROM refaudit.quarantine") == [("x'y",)]

    back = psql(uri, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump(uri, "visits", '"Visit Id"') == before
