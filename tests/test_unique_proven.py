"""A `unique` check the table's catalog proves (a valid unique index on some of its columns:
a primary key, a UNIQUE constraint) reads no row: the result says what proves it. Every
case where an index does not prove the check (partial, on expressions, another operator
class or collation, INCLUDE columns, NULLs the index lets through, an invalid index, a
parent whose inheritance children it does not cover, a view) is read row by row, and the
scan of the same check (forced by a `where` that keeps every row) agrees with every answer."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute

SCHEMA = """
CREATE TABLE keyed (id int PRIMARY KEY, a int UNIQUE, b int UNIQUE NULLS NOT DISTINCT,
                    c int, d int, e text, f int, g int, h int, p text COLLATE "C",
                    q text, r int NOT NULL UNIQUE, flag bool);
CREATE UNIQUE INDEX keyed_d_partial ON keyed (d) WHERE flag;
CREATE UNIQUE INDEX keyed_lower_e ON keyed (lower(e));
CREATE UNIQUE INDEX keyed_p_posix ON keyed (p COLLATE "POSIX");
CREATE UNIQUE INDEX keyed_q_pattern ON keyed (q text_pattern_ops);
CREATE UNIQUE INDEX keyed_f_incl ON keyed (f) INCLUDE (g);
INSERT INTO keyed VALUES
    (1, 1, 1, 7, 5, 'a', 1, 9, 1, 'x', 'x', 1, true),
    (2, NULL, 2, 7, 5, 'b', 2, 9, 1, 'y', 'y', 2, false),
    (3, NULL, NULL, 8, 5, 'c', 3, 8, 2, 'z', 'z', 3, false);
CREATE TABLE parent (id int PRIMARY KEY, v int);
CREATE TABLE child () INHERITS (parent);
INSERT INTO parent VALUES (1, 1);
INSERT INTO child VALUES (1, 2);
CREATE TABLE parted (id int, part int, PRIMARY KEY (id, part)) PARTITION BY LIST (part);
CREATE TABLE parted_1 PARTITION OF parted FOR VALUES IN (1);
CREATE TABLE parted_2 PARTITION OF parted FOR VALUES IN (2);
INSERT INTO parted VALUES (1, 1), (1, 2);
CREATE VIEW keyed_view AS SELECT * FROM keyed;
"""

# check id -> (table, columns, nulls, what proves it (None: its rows are read), violations)
CASES: dict[str, tuple[str, list[str], str, str | None, int]] = {
    "primary_key": ("keyed", ["id"], "distinct", "unique index keyed_pkey", 0),
    "unique_constraint": ("keyed", ["a"], "distinct", "unique index keyed_a_key", 0),
    # UNIQUE lets two NULLs through: `nulls: equal` counts them
    "nulls_equal_unproven": ("keyed", ["a"], "equal", None, 1),
    "nulls_not_distinct": ("keyed", ["b"], "equal", "unique index keyed_b_key", 0),
    "not_null_column": ("keyed", ["r"], "equal", "unique index keyed_r_key", 0),
    "superset_of_a_key": ("keyed", ["c", "id"], "distinct", "unique index keyed_pkey", 0),
    "partial_index": ("keyed", ["d"], "distinct", None, 2),
    "expression_index": ("keyed", ["e"], "distinct", None, 0),
    "other_collation": ("keyed", ["p"], "distinct", None, 0),
    "other_operator_class": ("keyed", ["q"], "distinct", None, 0),
    "include_column": ("keyed", ["g"], "distinct", None, 1),
    "invalid_index": ("keyed", ["h"], "distinct", None, 1),
    "inheritance_parent": ("parent", ["id"], "distinct", None, 1),
    "partitioned": ("parted", ["id", "part"], "distinct", "unique index parted_pkey", 0),
    "partitioned_partial_key": ("parted", ["id"], "distinct", None, 1),
    "view": ("keyed_view", ["id"], "distinct", None, 0),
}


def check(name: str, scanned: bool) -> dict[str, Any]:
    table, columns, nulls, _, _ = CASES[name]
    found: dict[str, Any] = {"id": name + (".scanned" if scanned else ""), "kind": "unique",
                             "table": table, "columns": columns, "nulls": nulls}  # fmt: skip
    if scanned:  # keeps every row, and a check with `where` is never proven
        found["where"] = {"any": [{"column": columns[0], "is_null": True},
                                  {"column": columns[0], "is_null": False}]}  # fmt: skip
    return found


def test_a_unique_check_the_catalog_proves_reads_no_row(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("unique_proven")
    execute(uri, SCHEMA)
    conn = psycopg2.connect(uri)
    conn.autocommit = True
    with conn.cursor() as cur:  # a build over duplicates leaves an invalid index behind
        with pytest.raises(psycopg2.errors.UniqueViolation):
            cur.execute("CREATE UNIQUE INDEX CONCURRENTLY keyed_h ON keyed (h)")
        cur.execute("SELECT indisvalid FROM pg_index WHERE indexrelid = 'keyed_h'::regclass")
        assert cur.fetchone() == (False,)
    conn.close()
    tables = {t: {"key": ["id", "part"] if t == "parted" else "id"}
              for t in ("keyed", "parent", "parted", "keyed_view")}  # fmt: skip
    suite = Suite.model_validate({
        "suite": "proven", "tables": tables,
        "checks": [check(n, s) for n in CASES for s in (False, True)],
    })  # fmt: skip
    result = run_audit(as_url(uri), suite, tmp_path / "run",
                       options=AuditOptions(record_history=False))  # fmt: skip
    by_id = {c.id: c for c in result.checks}
    got = {n: (by_id[n].proven_by, by_id[n].violations) for n in CASES}
    assert got == {n: (proof, count) for n, (_, _, _, proof, count) in CASES.items()}
    # the scan agrees: a proof is never wrong, and an unproven check is the scan itself
    assert {n: by_id[n + ".scanned"].violations for n in CASES} == {
        n: count for n, (*_, count) in CASES.items()
    }
    assert all(by_id[n + ".scanned"].proven_by is None for n in CASES)
    assert all(by_id[n].rows_checked == by_id[n + ".scanned"].rows_checked for n in CASES)
    html = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "proven by unique index keyed_pkey" in html
