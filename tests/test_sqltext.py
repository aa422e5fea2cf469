"""SQL text helpers: literals and identifiers that survive any value, and the statement
splitter `refaudit apply` relies on."""

from __future__ import annotations

import psycopg2
import pytest

from pipeline.sqltext import code_of, ident, literal, object_name, split_statements, table
from tests.conftest import execute

NASTY = ["plain", "it's", "back\\slash", "two''quotes", "$$dollar$$", "-- not a comment", "é ✓"]


@pytest.fixture(scope="module")
def db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("sqltext")
    return uri


@pytest.mark.parametrize("value", NASTY)
def test_literal_round_trips(db: str, value: str) -> None:
    conn = psycopg2.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute("SET standard_conforming_strings = on")
            cur.execute(f"SELECT {literal(value)}")
            assert cur.fetchone() == (value,)
    finally:
        conn.close()


def test_identifiers_are_quoted_only_when_needed(db: str) -> None:
    assert ident("tutor_id") == "tutor_id"
    assert ident("User Id") == '"User Id"'
    assert ident("select") == '"select"'
    assert ident('a"b') == '"a""b"'
    assert table("audit.Odd Table") == 'audit."Odd Table"'
    execute(db, f"CREATE TABLE {ident('Odd ' + chr(34) + 'Table')} ({ident('User Id')} int)")


def test_object_names_fit_postgresql() -> None:
    long = object_name("refaudit_backup", "20261125T080819Z-788729", "x" * 80)
    assert len(long) == 63 and long != object_name("refaudit_backup", "other", "x" * 80)
    assert object_name("refaudit_backup", "20261125T080819Z-788729", "session_requests") == (
        "refaudit_backup_20261125t080819z_788729_session_requests"
    )


def test_split_respects_quotes_dollar_bodies_and_comments() -> None:
    script = """-- header; with a semicolon
BEGIN;
INSERT INTO t VALUES ('a;b', 'it''s; fine');
DO $refaudit$ BEGIN RAISE NOTICE 'x; y'; END $refaudit$;
/* block; comment */ SELECT 1;
-- only a comment;
COMMIT;
"""
    parts = split_statements(script)
    assert len(parts) == 5
    assert parts[0].endswith("BEGIN;")
    assert parts[1] == "INSERT INTO t VALUES ('a;b', 'it''s; fine');"
    assert parts[2].startswith("DO $refaudit$") and parts[2].endswith("END $refaudit$;")
    assert code_of(parts[4]) == "COMMIT"  # comments before a statement stay with it
