"""SQL text helpers: literals and identifiers that survive any value, and the statement
splitter `refaudit apply` relies on."""

from __future__ import annotations

import psycopg2
import pytest
from refaudit.sqltext import comment, ident, literal, object_name, statements, table

from tests.conftest import execute

NASTY = ["plain", "it's", "back\\slash", "two''quotes", "$$dollar$$", "-- not a comment", "é ✓"]
HOSTILE = [
    "k1\nCREATE TABLE x (); --",
    "a\rb",
    "*/ DROP TABLE t; /*",
    "x'; DROP TABLE t; --",
    "\\'; SELECT 1; --",
    "$$; DROP TABLE t; $$",
    "$refaudit$; DROP TABLE t; $refaudit$",
    "bell\x07 esc\x1b[31m tab\t vt\x0b ff\x0c",
    "line\u2028sep\u2029para\x85nel",
    "rtl\u202eoverride zero\u200bwidth",
    "astral \U0001f600 ok",
]


@pytest.fixture(scope="module")
def db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("sqltext")
    return uri


@pytest.mark.parametrize("value", NASTY + HOSTILE)
@pytest.mark.parametrize("conforming", ["on", "off"])
def test_literal_round_trips(db: str, value: str, conforming: str) -> None:
    text = literal(value)
    assert len(text.splitlines()) == 1  # one line whatever the value holds
    conn = psycopg2.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"SET standard_conforming_strings = {conforming}")
            if conforming == "off" and "\\" in value and not text.startswith("E'"):
                return  # plans always set it on; only escape strings are independent of it
            cur.execute(f"SELECT {text}")
            assert cur.fetchone() == (value,)
    finally:
        conn.close()


@pytest.mark.parametrize("name", HOSTILE)
def test_identifiers_round_trip(db: str, name: str) -> None:
    assert len(name.encode()) <= 63
    quoted = ident(name)
    assert len(quoted.splitlines()) == 1
    conn = psycopg2.connect(db)
    try:
        with conn.cursor() as cur:
            cur.execute(f"CREATE TEMP TABLE {quoted} ({quoted} int)")
            cur.execute(
                "SELECT relname, attname FROM pg_class c JOIN pg_attribute a "
                "ON a.attrelid = c.oid AND a.attnum = 1 "
                f"WHERE c.relnamespace = pg_my_temp_schema() AND c.relname = {literal(name)}"
            )
            assert cur.fetchone() == (name, name)
    finally:
        conn.rollback()
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
INSERT INTO t VALUES ('a;b', 'it''s; fine', E'x\\n;');
DO $refaudit$ BEGIN RAISE NOTICE 'x; y'; END $refaudit$;
/* block; comment */ SELECT 1;
-- only a comment;
COMMIT;
"""
    parts = statements(script)
    assert [p.kind for p in parts] == [
        "TransactionStmt", "InsertStmt", "DoStmt", "SelectStmt", "TransactionStmt",
    ]  # fmt: skip
    assert parts[0].transaction == "BEGIN" and parts[-1].transaction == "COMMIT"
    assert parts[1].text == "INSERT INTO t VALUES ('a;b', 'it''s; fine', E'x\\n;')"
    assert parts[2].text.startswith("DO $refaudit$") and parts[2].text.endswith("END $refaudit$")


def test_comments_stay_one_line() -> None:
    for value in HOSTILE:
        text = comment(value)
        assert "\n" not in text and "\r" not in text
        assert len(text.splitlines()) <= 1, repr(text)
