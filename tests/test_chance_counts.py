"""The keys of a target within each chance window (`refaudit.checks.diagnosis._key_counts`),
counted set-based, are the keys an index range scan per window counts: for windows that
overlap, nest, touch, repeat or lie alone, at the ends of the key range and past them, on
a unique key, on a key with duplicates and NULLs, and among the rows a `where` keeps."""

from __future__ import annotations

import psycopg2
import pytest
import sqlalchemy as sa
from refaudit.checks.base import table_clause
from refaudit.checks.diagnosis import _key_counts
from refaudit.checks.model import ColumnRef, Condition

from tests.conftest import execute

WINDOWS = [
    (1, 1), (1, 40), (30, 70), (35, 45), (71, 90), (91, 91), (200, 1200), (600, 700),
    (600, 700), (1150, 1300), (5000, 5010), (-20, 0), (2000, 2000),
]  # fmt: skip

SETUP = """
CREATE TABLE keys (id bigint PRIMARY KEY, kind text);
INSERT INTO keys SELECT g, CASE WHEN g % 3 = 0 THEN 'a' ELSE 'b' END
FROM generate_series(1, 1200) g WHERE g % 7 <> 0 AND g NOT BETWEEN 300 AND 650;
CREATE TABLE dup (id numeric, kind text);
INSERT INTO dup SELECT id, kind FROM keys UNION ALL SELECT id, kind FROM keys WHERE id % 5 = 0
UNION ALL SELECT NULL, 'a';
CREATE INDEX ON dup (id);
CREATE TABLE windows (cl bigint, ch bigint);
"""


@pytest.mark.parametrize(
    ("table", "unique", "where"),
    [
        ("keys", True, None),
        ("keys", True, Condition.model_validate({"column": "kind", "eq": "a"})),
        ("dup", False, None),
        ("dup", False, Condition.model_validate({"column": "kind", "eq": "b"})),
    ],
)
def test_counts_equal_a_count_per_window(new_database, table, unique, where) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("chance_counts")
    values = ", ".join(f"({lo}, {hi})" for lo, hi in WINDOWS)
    execute(uri, SETUP + f"INSERT INTO windows VALUES {values};")
    ref = ColumnRef(table=table, column="id", where=where)
    wanted = table_clause("windows", ["cl", "ch"]).alias("w")
    counts = _key_counts(ref, wanted, unique, "c")
    stmt = sa.select(counts.c.lo, counts.c.hi, counts.c.n).order_by(counts.c.lo, counts.c.hi)
    sql = str(stmt.compile(dialect=sa.dialects.postgresql.dialect(),
                           compile_kwargs={"literal_binds": True}))  # fmt: skip
    kept = "" if where is None else " AND kind = %s" % ("'a'" if where.eq == "a" else "'b'")
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            got = [(int(lo), int(hi), int(n)) for lo, hi, n in cur.fetchall()]
            cur.execute(
                "SELECT w.cl, w.ch, (SELECT count(DISTINCT k.id) FROM "
                + table
                + " k WHERE k.id BETWEEN w.cl AND w.ch"
                + kept
                + ") FROM (SELECT DISTINCT cl, ch FROM windows) w ORDER BY 1, 2"
            )
            expected = [(int(lo), int(hi), int(n)) for lo, hi, n in cur.fetchall()]
    finally:
        conn.close()
    assert got == expected
    assert any(n for _, _, n in got) and any(not n for _, _, n in got)
