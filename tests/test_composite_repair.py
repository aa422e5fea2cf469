"""repair.sql and rollback.sql on a table keyed by several columns of several types (text
holding quotes, newlines, `--`, `*/`, `$$`; a timestamp with microseconds and a time zone; a
numeric with trailing zeros), with a composite foreign key into it. Each planned row is
found by its typed key columns and by its key exactly as violations.csv writes it; a row
other rows still reference is held; a key column is never re-keyed (listed for review);
a second run changes nothing; rollback restores every table byte for byte."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.sqltext import ident, psql_lines, statements
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.roundtrip import dump_tables, findings
from tests.test_repair import psql, psql_binary, query

HOSTILE = ["it's", "line\nbreak", "-- not a comment", "*/ $$ end", "sep\u2028x", 'q"uote']

SCHEMA = """
CREATE TABLE customers (id int PRIMARY KEY, name text);
CREATE TABLE regions (code text PRIMARY KEY);
CREATE TABLE orders (
    region text NOT NULL, placed_at timestamptz NOT NULL, n numeric NOT NULL,
    customer_id int, agent_id int, note text,
    PRIMARY KEY (region, placed_at, n)
);
CREATE TABLE order_lines (
    region text, placed_at timestamptz, n numeric, line int,
    FOREIGN KEY (region, placed_at, n) REFERENCES orders ON DELETE RESTRICT
);
INSERT INTO customers VALUES (1, 'ann'), (2, 'bo');
INSERT INTO regions VALUES ('eu');
"""

# (region, customer_id, agent_id): customer 9 and agent 8 do not exist
ROWS = [
    ("eu", 1, 1),  # clean
    (HOSTILE[0], 9, 1),  # orphan customer: set to NULL; region unknown: for review
    (HOSTILE[1], 1, 8),  # orphan agent: quarantined
    (HOSTILE[2], 9, 8),  # both: quarantined (one quarantine covers it)
    (HOSTILE[3], 1, 8),  # orphan agent, but an order line references it: held
    (HOSTILE[4], 9, 1),  # orphan customer: set to NULL
    (HOSTILE[5], 2, 2),  # clean but for its region
]

SUITE: dict[str, Any] = {
    "suite": "orders",
    "tables": {
        "customers": {"key": "id"},
        "regions": {"key": "code"},
        "orders": {"key": ["region", "placed_at", "n"]},
    },
    "checks": [
        {"id": "orders.customer", "kind": "reference", "table": "orders",
         "column": "customer_id", "on_orphan": "set_null",
         "target": {"table": "customers", "column": "id"}},
        {"id": "orders.agent", "kind": "reference", "table": "orders",
         "column": "agent_id", "on_orphan": "quarantine",
         "target": {"table": "customers", "column": "id"}},
        # a key column: repair.sql never re-keys a row
        {"id": "orders.region", "kind": "reference", "table": "orders",
         "column": "region", "on_orphan": "set_null",
         "target": {"table": "regions", "column": "code"}},
    ],
}  # fmt: skip

TABLES = ["orders", "order_lines", "customers", "regions"]


def dump_all(uri: str) -> dict[str, list[str]]:
    return dump_tables(uri, TABLES)


@pytest.fixture
def orders(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("orders")
    execute(uri, SCHEMA)
    conn = psycopg2.connect(uri)  # the hostile keys go in as parameters
    with conn, conn.cursor() as cur:
        for i, (region, customer, agent) in enumerate(ROWS):
            cur.execute(
                "INSERT INTO orders VALUES (%s, %s, %s, %s, %s, %s)",
                (region, f"2024-03-0{i + 1} 10:11:12.123456+02", "1.50", customer, agent, region),
            )
        cur.execute(
            "INSERT INTO order_lines SELECT region, placed_at, n, 1 FROM orders WHERE region = %s",
            (HOSTILE[3],),
        )
    conn.close()
    return uri


def test_composite_keyed_rows_are_repaired_by_their_keys(orders: str, tmp_path: Path) -> None:
    before = dump_all(orders)
    suite = Suite.model_validate(SUITE)
    run_audit(as_url(orders), suite, tmp_path / "run", options=AuditOptions(repair=True))
    got = findings(tmp_path / "run")
    regions = {r["value"] for (check, _), r in got.items() if check == "orders.region"}
    assert regions == set(HOSTILE)
    for name in ("repair.sql", "rollback.sql"):
        text = (tmp_path / "run" / name).read_text(encoding="utf-8")
        # no psql command but the plan's own; PostgreSQL's parser reads every statement
        assert statements(psql_lines(text))
    review = (tmp_path / "run" / "repair.sql").read_text(encoding="utf-8")
    assert "orders.region is part of the table's key" in review

    applied = apply_plan(as_url(orders), tmp_path / "run" / "repair.sql")
    assert applied.totals["set_null"] == 2, applied.totals  # rows 0 and 4 (row 2 is quarantined)
    assert applied.totals["quarantine"] == 2 and applied.totals["held"] == 1, applied.totals
    after = dump_all(orders)
    left = {r[0]: r[1:] for r in query(orders, "SELECT region, customer_id, agent_id FROM orders")}
    assert left == {
        "eu": (1, 1),
        HOSTILE[0]: (None, 1),
        HOSTILE[3]: (1, 8),  # held by its order line
        HOSTILE[4]: (None, 1),
        HOSTILE[5]: (2, 2),
    }
    kept = query(orders, "SELECT row_key FROM refaudit.quarantine ORDER BY row_key")
    assert sorted(got[("orders.agent", k)]["key"] for (k,) in kept) == [k for (k,) in kept]
    assert after["order_lines"] == before["order_lines"]

    run_audit(as_url(orders), suite, tmp_path / "again", options=AuditOptions(repair=True))
    left_over = {k for k in findings(tmp_path / "again") if k[0] != "orders.region"}
    assert left_over == {k for k in got if k[0] == "orders.agent" and HOSTILE[3] in k[1]}
    second = apply_plan(as_url(orders), tmp_path / "run" / "repair.sql")
    assert not second.totals.get("set_null") and not second.totals.get("quarantine")
    assert dump_all(orders) == after

    back = psql(orders, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump_all(orders) == before
    assert query(orders, "SELECT count(*) FROM refaudit.quarantine") == [(0,)]

    # the same plan through psql, and back again
    again = psql(orders, tmp_path / "run" / "repair.sql")
    assert again.returncode == 0, again.stderr
    assert dump_all(orders) == after
    back = psql(orders, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump_all(orders) == before


def test_a_row_changed_since_the_audit_is_skipped(orders: str, tmp_path: Path) -> None:
    suite = Suite.model_validate(SUITE)
    run_audit(as_url(orders), suite, tmp_path / "run", options=AuditOptions(repair=True))
    # after the audit, someone fixes one of the two orphan customers by hand
    execute(orders, "UPDATE orders SET customer_id = 2 WHERE customer_id = 9 AND note LIKE 'it%'")
    applied = apply_plan(as_url(orders), tmp_path / "run" / "repair.sql")
    assert applied.totals["set_null"] == 1 and applied.totals["skipped"] == 1, applied.totals
    assert query(orders, "SELECT customer_id FROM orders WHERE note LIKE 'it%'") == [(2,)]
    assert query(orders, "SELECT customer_id FROM orders WHERE note LIKE 'sep%'") == [(None,)]


CHILD = 'lines\n\\! touch /tmp/refaudit-pwned-child\n'


def test_a_hostile_referencing_table_stays_one_quoted_name(orders: str, tmp_path: Path) -> None:
    """A table that references the repaired one is named in the held test; a name holding
    newlines and a psql command stays one quoted line, and `refaudit apply` runs the file
    psql would run (the row it references is held, nothing else happens)."""
    marker = Path("/tmp/refaudit-pwned-child")
    marker.unlink(missing_ok=True)
    conn = psycopg2.connect(orders)
    with conn, conn.cursor() as cur:
        cur.execute(
            f"CREATE TABLE {ident(CHILD)} (region text, placed_at timestamptz, n numeric, "
            "FOREIGN KEY (region, placed_at, n) REFERENCES orders ON DELETE CASCADE)"
        )
        cur.execute(
            f"INSERT INTO {ident(CHILD)} SELECT region, placed_at, n FROM orders "
            "WHERE region = %s",
            (HOSTILE[1],),
        )
    conn.close()
    suite = Suite.model_validate(SUITE)
    run_audit(as_url(orders), suite, tmp_path / "run", options=AuditOptions(repair=True))
    for name in ("repair.sql", "rollback.sql", "constraints.sql"):
        statements(psql_lines((tmp_path / "run" / name).read_text(encoding="utf-8")))
    applied = apply_plan(as_url(orders), tmp_path / "run" / "repair.sql")
    assert applied.totals["held"] == 2, applied.totals  # HOSTILE[1] too, now
    assert applied.totals["quarantine"] == 1, applied.totals
    assert query(orders, f"SELECT count(*) FROM {ident(CHILD)}") == [(1,)]
    assert not marker.exists()


def test_the_client_s_time_zone_and_styles_change_nothing(orders: str, tmp_path: Path) -> None:
    """repair.sql compares keys and guards as text; it sets the settings that shape that
    text as the audit had them, so a psql with another PGTZ, DateStyle, IntervalStyle or
    extra_float_digits repairs the same rows."""
    suite = Suite.model_validate(SUITE)
    run_audit(as_url(orders), suite, tmp_path / "run", options=AuditOptions(repair=True))
    env = {
        **os.environ,
        "PGTZ": "America/New_York",
        "PGDATESTYLE": "SQL, DMY",
        "PGOPTIONS": "-c IntervalStyle=postgres_verbose -c extra_float_digits=0",
    }
    done = subprocess.run(
        [str(psql_binary()), orders, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-f",
         str(tmp_path / "run" / "repair.sql")],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "total changed=4 already=0 skipped=0 held=1" in done.stderr, done.stderr


def test_a_quoted_repair_schema_rolls_back(orders: str, tmp_path: Path) -> None:
    before = dump_all(orders)
    options = AuditOptions(repair=True, repair_schema='"a".b')
    run_audit(as_url(orders), Suite.model_validate(SUITE), tmp_path / "run", options=options)
    assert apply_plan(as_url(orders), tmp_path / "run" / "repair.sql").totals["quarantine"] == 2
    back = apply_plan(as_url(orders), tmp_path / "run" / "rollback.sql")
    assert back.totals, back
    assert dump_all(orders) == before


def test_a_key_of_an_array_is_for_review(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri: str = new_database("arraykey")
    execute(
        uri,
        "CREATE TABLE customers (id int PRIMARY KEY);"
        "CREATE TABLE tags (tag int[] NOT NULL, n int NOT NULL, customer_id int,"
        " PRIMARY KEY (tag, n));"
        "INSERT INTO tags VALUES ('{1,2}', 1, 7);",
    )
    suite = Suite.model_validate(
        {
            "suite": "tags",
            "tables": {"customers": {"key": "id"}, "tags": {"key": ["tag", "n"]}},
            "checks": [
                {"id": "tags.customer", "kind": "reference", "table": "tags",
                 "column": "customer_id", "target": {"table": "customers"}},
            ],
        }
    )
    run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions(repair=True))
    repair = (tmp_path / "run" / "repair.sql").read_text(encoding="utf-8")
    assert "tags's key column tag is of type integer[]" in repair and "-- 0 steps" in repair
