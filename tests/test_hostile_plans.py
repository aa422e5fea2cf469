"""Plans made from hostile data stay inert.

Every name and value the plans carry (table, column, constraint, index and trigger names,
keys, values, evidence, discriminator values, the suite name, the database name) holds
strings written to break out of a literal, an identifier, a comment or a dollar-quoted
body. Each generated file is parsed with PostgreSQL's own parser and must hold exactly the
statements the plan intends; then the files run, with psql and with `refaudit apply`, and
nothing else happens: the canary table survives, the role stays unprivileged, no object
appears but the repair's own, and rollback.sql restores every table byte for byte.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest
from psycopg2 import sql
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.embedded import database_uri
from refaudit.sqltext import psql_lines, statements
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import psql, public_constraints, query

# Each string tries another way out. `x` and `pwned` are what an escape would create.
ESCAPES = [
    "\nCREATE TABLE x (); --",
    "\r\nALTER ROLE victim SUPERUSER; --",
    "'; DROP TABLE canary; --",
    '"; DROP TABLE canary; --',
    "*/ DROP TABLE canary; /*",
    "$$; DROP TABLE canary; $$",
    "$refaudit$; DROP TABLE canary; $refaudit$",
    "\\'; DROP TABLE canary; --",
    "\n\\! touch pwned\n",
    "\u2028DROP TABLE canary; --\u2029",
    "\x0bDROP\x0cTABLE\x1bcanary\x85",
    "%s%n%I %% %",
]


def h(base: str, n: int) -> str:
    """A name or value: readable `base`, then escape attempt `n` (kept under 63 bytes)."""
    text = base + ESCAPES[n % len(ESCAPES)]
    while len(text.encode()) > 63:
        text = text[:-1]
    return text


PEOPLE, PID, MAIL = h("people", 6), h("pid", 1), h("mail", 2)
CARDS, CNO, OWNER = h("cards", 3), h("no", 4), h("owner", 5)
VISITS, VID, CARD, CONTACT = h("visits", 0), h("vid", 7), h("card", 8), h("contact", 9)
HOLDER_TYPE, HOLDER = h("holder_type", 10), h("holder", 11)
WRONG_FK = h("f", 1)
TRIGGER = h("trg", 6)
INDEX = h("idx", 0)
TYPE_CARD, TYPE_PERSON = h("Card", 6), h("Person", 0)

# keys and values
P1, P2, P3 = h("p1", 0), h("p2", 2), h("p3", 5)  # people
C1, C2, C3, C4 = h("c1", 6), h("c2", 3), h("c3", 9), h("c4", 11)  # cards: p1 owns c1, p3 two
MAIL1, MAIL3 = h("m1@x", 4), h("m3@x", 8)
CLEAN, MISKEYED, ORPHAN, AMBIGUOUS = h("v0", 1), h("k1", 0), h("q", 2), h("r", 9)
WRONG_TYPE, HOLDER_ORPHAN = h("w", 5), h("o", 7)
NOWHERE = h("zz", 8)
REPAIR_SCHEMA = h("kept", 6)
SEARCH_PATH_SCHEMA = h("sp", 0)


def q(name: str) -> str:
    """Quoted as the test's own DDL writes it (raw, through psycopg2, never through psql)."""
    return '"' + name.replace('"', '""') + '"'


def lit(value: str) -> str:
    return "E'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def schema_sql() -> str:
    rows = [
        # key, card, contact, holder type, holder
        (CLEAN, C1, MAIL1, TYPE_CARD, C1),
        (MISKEYED, P1, MAIL1, TYPE_CARD, C2),  # people key where a card belongs: card c1
        (ORPHAN, NOWHERE, None, TYPE_PERSON, P1),  # nothing maps: quarantined
        (AMBIGUOUS, P3, None, TYPE_PERSON, P2),  # p3 owns two cards: for review
        (WRONG_TYPE, C1, MAIL1, TYPE_PERSON, C3),  # holder c3 is a card: type Card
        (HOLDER_ORPHAN, C1, MAIL1, TYPE_CARD, NOWHERE),  # holder names nothing: NULL
    ]
    values = ",\n".join(
        "(" + ", ".join("NULL" if v is None else lit(v) for v in row) + ")" for row in rows
    )
    return f"""
CREATE TABLE canary (id int PRIMARY KEY);
INSERT INTO canary VALUES (1);
CREATE ROLE victim NOLOGIN;
CREATE TABLE {q(PEOPLE)} ({q(PID)} text PRIMARY KEY, {q(MAIL)} text);
CREATE TABLE {q(CARDS)} ({q(CNO)} text PRIMARY KEY, {q(OWNER)} text);
CREATE TABLE {q(VISITS)} (
    {q(VID)} text PRIMARY KEY, {q(CARD)} text NOT NULL, {q(CONTACT)} text,
    {q(HOLDER_TYPE)} text, {q(HOLDER)} text
);
INSERT INTO {q(PEOPLE)} VALUES
    ({lit(P1)}, {lit(MAIL1)}), ({lit(P2)}, NULL), ({lit(P3)}, {lit(MAIL3)});
INSERT INTO {q(CARDS)} VALUES ({lit(C1)}, {lit(P1)}), ({lit(C2)}, {lit(P2)}),
    ({lit(C3)}, {lit(P3)}), ({lit(C4)}, {lit(P3)});
INSERT INTO {q(VISITS)} VALUES {values};
-- a legacy foreign key to the wrong table, NOT VALID: repair.sql drops it, rollback.sql
-- puts it back as it was
ALTER TABLE {q(VISITS)} ADD CONSTRAINT {q(WRONG_FK)}
    FOREIGN KEY ({q(CARD)}) REFERENCES {q(PEOPLE)} ({q(PID)}) NOT VALID;
"""


SUITE: dict[str, Any] = {
    "suite": h("hostile suite", 0),
    "tables": {PEOPLE: {"key": PID}, CARDS: {"key": CNO}, VISITS: {"key": VID}},
    "key_spaces": {"people": {"table": PEOPLE, "key": PID, "attributes": [MAIL]}},
    "checks": [
        {
            "id": "visits.card",
            "kind": "reference",
            "table": VISITS,
            "column": CARD,
            "target": {"table": CARDS, "column": CNO},
            "mis_key": {
                "key_space": "people",
                "through": OWNER,
                "evidence": [{"attribute": {"column": CONTACT, "key_space_column": MAIL}}],
            },
        },
        {
            "id": "visits.holder",
            "kind": "conditional_reference",
            "table": VISITS,
            "column": HOLDER,
            "discriminator": HOLDER_TYPE,
            "targets": {
                TYPE_CARD: {"table": CARDS, "column": CNO},
                TYPE_PERSON: {"table": PEOPLE, "column": PID},
            },
            "on_orphan": "set_null",
        },
        {
            "id": "catalog.visits_card_fk",
            "kind": "constraint",
            "table": VISITS,
            "name": h("fk", 3),
            "type": "foreign_key",
            "columns": [CARD],
            "references": {"table": CARDS, "columns": [CNO]},
        },
        {
            "id": "catalog.visits_card_index",
            "kind": "index",
            "table": VISITS,
            "name": INDEX,
            "columns": [CARD],
        },
        {
            "id": "catalog.visits_holder_trigger",
            "kind": "trigger",
            "table": VISITS,
            "name": TRIGGER,
            "for_check": "visits.holder",
        },
    ],
}


def execute_params(uri: str, statement: str, params: tuple[Any, ...]) -> None:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, params)
        conn.commit()
    finally:
        conn.close()


def catalog_state(uri: str) -> dict[str, Any]:
    """What an escape would change: relations, functions, triggers, roles, the canary."""
    return {
        "relations": sorted(
            query(
                uri,
                "SELECT n.nspname, c.relname, c.relkind FROM pg_class c "
                "JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') "
                "AND n.nspname NOT LIKE 'pg_temp%' AND n.nspname NOT LIKE 'pg_toast_temp%'",
            )
        ),
        "functions": sorted(
            query(uri, "SELECT proname FROM pg_proc WHERE pronamespace = 'public'::regnamespace")
        ),
        "triggers": sorted(query(uri, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")),
        "victim": query(uri, "SELECT rolsuper FROM pg_roles WHERE rolname = 'victim'"),
        "canary": query(uri, "SELECT count(*) FROM canary"),
    }


def dump_all(uri: str) -> dict[str, list[Any]]:
    """Every table of the audited schema, in key order, as text."""
    out = {}
    for tbl, key in ((PEOPLE, PID), (CARDS, CNO), (VISITS, VID)):
        out[tbl] = query(uri, f'SELECT t::text FROM {q(tbl)} t ORDER BY {q(key)} COLLATE "C"')
    return out


@pytest.fixture
def hostile_db(pg_server: str) -> str:
    """A database whose own name is hostile too."""
    name = "refaudit hostile" + ESCAPES[0]
    conn = psycopg2.connect(pg_server)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(name)))  # fmt: skip
            cur.execute("DROP ROLE IF EXISTS victim")
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    uri = database_uri(pg_server, quote(name, safe=""))
    execute(uri, schema_sql())
    # the plans run with the audit's search_path: a hostile one must not break out either
    execute(uri, f"CREATE SCHEMA {q(SEARCH_PATH_SCHEMA)}")
    execute(uri, f"ALTER DATABASE {q(name)} SET search_path = public, {q(SEARCH_PATH_SCHEMA)}")
    return uri


def kinds(path: Path, *, allow_other_database: bool = False) -> list[str]:
    text = path.read_text(encoding="utf-8")
    return [s.kind for s in statements(psql_lines(text, allow_other_database=allow_other_database))]


def test_hostile_names_and_values_stay_inert(hostile_db: str, tmp_path: Path) -> None:
    uri = hostile_db
    suite = Suite.model_validate(SUITE)
    before_data, before_catalog = dump_all(uri), catalog_state(uri)
    before_constraints = public_constraints(uri)
    options = AuditOptions(repair=True, repair_schema=REPAIR_SCHEMA)
    result = run_audit(as_url(uri), suite, tmp_path / "run", options=options)
    plan = result.repair
    assert (plan["updates"], plan["set_null"], plan["quarantined"], plan["ambiguous"]) == (
        2, 1, 1, 1,
    )  # fmt: skip
    assert plan["dropped_constraints"] == [WRONG_FK]
    run = tmp_path / "run"

    # every file is one line per line of SQL, whatever the data held
    for name in ("repair.sql", "rollback.sql", "constraints.sql"):
        for line in (run / name).read_text(encoding="utf-8").split("\n"):
            assert not any(ch in line for ch in "\r\x0b\x0c\x1b\x85\u2028\u2029"), (name, line)

    # exactly the statements the plan intends, by PostgreSQL's own parser
    steps = plan["steps"]
    repair_kinds = Counter(kinds(run / "repair.sql"))
    assert repair_kinds == Counter(
        {
            "TransactionStmt": 2,
            "VariableSetStmt": 6,  # the rehearsal setting off, timeouts, literals, messages, JIT
            # the audit's search_path, and its TimeZone, DateStyle, IntervalStyle and
            # extra_float_digits (the guards compare text)
            "SelectStmt": 5,
            # identity, the tables as audited, the repair schema's owner and its tables, the
            # wrong FK's drop, steps, totals
            "DoStmt": 1 + 1 + 2 + 1 + len(steps) + 1,
            "LockStmt": 1,  # the tables it changes, against changes of their definition
            "CreateSchemaStmt": 1,
            "CreateStmt": 1,  # quarantine table
            "CreateTableAsStmt": 1 + len(steps),  # backup table, a work table per step
            "CommentStmt": 1,
            "InsertStmt": len(steps),
        }
    )
    assert kinds(run / "repair.sql", allow_other_database=True).count("VariableSetStmt") == 7
    rollback_kinds = Counter(kinds(run / "rollback.sql"))
    assert rollback_kinds == Counter(
        {
            "TransactionStmt": 2,
            "VariableSetStmt": 6,
            "SelectStmt": 5,
            # identity, backup check, the columns as audited, the repair schema's owner and
            # its tables, triggers off, restore, triggers on, re-create the wrong FK as it was
            "DoStmt": 9,
            "LockStmt": 1,
            "CreateStmt": 1,  # the table rows changed since the repair are kept in
            "CreateTableAsStmt": 1,  # the triggers turned off
            # drop constraints.sql's FK and the legacy NOT VALID one; drop before re-adding
            "AlterTableStmt": 3,
            "DropStmt": 6,  # constraints.sql's three triggers and their functions, if applied
        }
    )
    constraint_kinds = Counter(kinds(run / "constraints.sql"))
    assert constraint_kinds == Counter(
        {
            "VariableSetStmt": 6,
            "SelectStmt": 1,
            # identity, drop the wrong FK, add the right one NOT VALID; and for each trigger
            # function: hand it to its table's owner
            "DoStmt": 1 + 1 + 1 + 3,
            "AlterTableStmt": 1,  # VALIDATE
            "IndexStmt": 1,
            "CreateFunctionStmt": 3,  # the conditional reference's triggers
            "CreateTrigStmt": 3,
        }
    )

    # run them: psql for repair.sql (psql reads backslash commands), refaudit apply after
    first = psql(uri, run / "repair.sql")
    assert first.returncode == 0, first.stderr
    assert "total changed=4 already=0 skipped=0 held=0" in first.stderr
    after = catalog_state(uri)
    assert after["canary"] == [(1,)] and after["victim"] == [(False,)]
    added = set(after["relations"]) - set(before_catalog["relations"])
    assert {(s, r) for s, r, _ in added} == {
        (REPAIR_SCHEMA, "quarantine"),
        (REPAIR_SCHEMA, plan["backup_tables"][0].rsplit(".", 1)[1]),
    }
    assert set(before_catalog["relations"]) - set(after["relations"]) == set()
    assert not Path("pwned").exists() and not (tmp_path / "pwned").exists()
    visits = dict(query(uri, f"SELECT {q(VID)}, {q(CARD)} FROM {q(VISITS)}"))
    assert visits[MISKEYED] == C1 and ORPHAN not in visits
    holders = dict(query(uri, f"SELECT {q(VID)}, {q(HOLDER_TYPE)} FROM {q(VISITS)}"))
    assert holders[WRONG_TYPE] == TYPE_CARD

    again = apply_plan(as_url(uri), run / "repair.sql")
    assert again.totals["already"] == 4 and again.totals.get("updated", 0) == 0

    # the row listed for review, decided by a person, lets the foreign key validate
    decide = f"UPDATE {q(VISITS)} SET {q(CARD)} = %s WHERE {q(VID)} = %s"
    execute_params(uri, decide, (C3, AMBIGUOUS))
    done = psql(uri, run / "constraints.sql")
    assert done.returncode == 0, done.stderr
    assert catalog_state(uri)["canary"] == [(1,)]

    back = psql(uri, run / "rollback.sql")
    assert back.returncode == 0, back.stderr
    execute_params(uri, decide, (P3, AMBIGUOUS))  # the person's own change, undone by hand
    assert dump_all(uri) == before_data
    assert public_constraints(uri) == before_constraints
    final = catalog_state(uri)
    assert final["canary"] == [(1,)] and final["victim"] == [(False,)]
    assert final["triggers"] == before_catalog["triggers"]
    assert not Path("pwned").exists()
