"""Names holding dots: a table `audit.log` in schema `legacy`, a schema `my.app`. The suite
addresses them as `legacy."audit.log"` or `{schema: legacy, name: audit.log}`; the audit,
repair and rollback find the right tables."""

from __future__ import annotations

from pathlib import Path

import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.sqltext import join_name, split_name
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import psql, query

SCHEMA = """
CREATE SCHEMA legacy;
CREATE SCHEMA "my.app";
CREATE TABLE "my.app".users (id int PRIMARY KEY);
CREATE TABLE legacy."audit.log" (id int PRIMARY KEY, user_id int);
-- a decoy a naive split would find: schema "legacy.audit", table "log"
CREATE SCHEMA "legacy.audit";
CREATE TABLE "legacy.audit".log (id int PRIMARY KEY, user_id int);
INSERT INTO "my.app".users VALUES (1), (2);
INSERT INTO legacy."audit.log" VALUES (1, 1), (2, 9), (3, NULL);
INSERT INTO "legacy.audit".log VALUES (1, 7);
-- a user trigger that logs every update: rollback turns it off while it restores rows
CREATE TABLE legacy.touches (id int);
CREATE FUNCTION legacy.touch() RETURNS trigger LANGUAGE plpgsql AS
    $$BEGIN INSERT INTO legacy.touches VALUES (NEW.id); RETURN NEW; END$$;
CREATE TRIGGER touch BEFORE UPDATE ON legacy."audit.log"
    FOR EACH ROW EXECUTE FUNCTION legacy.touch();
"""


@pytest.mark.parametrize(
    ("name", "parts"),
    [
        ("t", ("", "t")),
        ("public.t", ("public", "t")),
        ('legacy."audit.log"', ("legacy", "audit.log")),
        ('"my.app".users', ("my.app", "users")),
        ('"a""b".t', ('a"b', "t")),
        ('we"ird.t', ('we"ird', "t")),  # a quote inside a part is an ordinary character
        ('"""q".t', ('"q', "t")),
        ('"open', ("", '"open')),
    ],
)
def test_names_split_and_join_back(name: str, parts: tuple[str, str]) -> None:
    assert split_name(name) == parts
    assert split_name(join_name(*parts)) == parts


def test_tables_whose_names_hold_dots(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("dotted")
    execute(uri, SCHEMA)
    suite = Suite.model_validate(
        {
            "suite": "dotted",
            "tables": {'legacy."audit.log"': {"key": "id"}, '"my.app".users': {"key": "id"}},
            "checks": [
                {
                    "id": "log.user",
                    "kind": "reference",
                    "table": {"schema": "legacy", "name": "audit.log"},
                    "column": "user_id",
                    "target": {"table": {"schema": "my.app", "name": "users"}},
                    "on_orphan": "set_null",
                }
            ],
        }
    )
    assert suite.checks[0].table == 'legacy."audit.log"'
    result = run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions(repair=True))
    assert {c.id: (c.violations, c.rows_checked) for c in result.checks} == {"log.user": (1, 3)}
    before = query(uri, 'SELECT x::text FROM legacy."audit.log" x ORDER BY id')
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert applied.totals["set_null"] == 1
    assert query(uri, 'SELECT user_id FROM legacy."audit.log" WHERE id = 2') == [(None,)]
    assert query(uri, 'SELECT user_id FROM "legacy.audit".log') == [(7,)]  # the decoy
    back = psql(uri, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert query(uri, 'SELECT x::text FROM legacy."audit.log" x ORDER BY id') == before
    assert query(uri, "SELECT tgenabled FROM pg_trigger WHERE tgname = 'touch'") == [("O",)]
    assert query(uri, "SELECT id FROM legacy.touches") == [(2,)]  # the repair's, not rollback's
