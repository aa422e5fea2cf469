"""The peers' own fixtures give the peers' answers under refaudit.

- dbt-utils (github.com/dbt-labs/dbt-utils, `integration_tests/data/schema_tests/`):
  `relationships_where` on `data_test_relationships_where_table_2.id` ->
  `data_test_relationships_where_table_1.id` with `from_condition: id <> 4` passes; its
  macro drops NULLs on both sides. `unique_combination_of_columns` on
  `data_unique_combination_of_columns (month, product)` passes.
- Great Expectations (github.com/great-expectations/great_expectations,
  `tests/test_definitions/column_map_expectations/`): `expect_column_values_to_be_in_set`
  on `x, y, z` (its unexpected_index_list is our keys) and `expect_column_values_to_not_be_null`
  on `one_null, two_null, three_null, no_null, all_null`, `mostly` being a rate threshold.
  Column map expectations skip NULLs, as dbt's `accepted_values` (`not in (...)` is NULL for
  a NULL) and a CHECK constraint do: `in_set` lets NULL pass.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute

FIXTURES = """
CREATE TABLE data_test_relationships_where_table_1 (id int);
CREATE TABLE data_test_relationships_where_table_2 (id int);
INSERT INTO data_test_relationships_where_table_1 VALUES (1), (2), (3);
INSERT INTO data_test_relationships_where_table_2 VALUES (1), (2), (4);
CREATE TABLE data_unique_combination_of_columns (month date, product text, revenue int);
INSERT INTO data_unique_combination_of_columns VALUES
    ('2019-01-01', 'jaffle', 500), ('2019-01-01', 'lamington', 100),
    ('2019-01-01', 'pavlova', 600), ('2019-02-01', 'jaffle', 300),
    ('2019-02-01', 'lamington', 300), ('2019-02-01', 'pavlova', 400);
-- GX datasets get an index (pk_index in its results): the row's position
CREATE TABLE gx_in_set (pk_index int PRIMARY KEY, x int, y float8, z text);
INSERT INTO gx_in_set VALUES (0, 1, 1.1, 'hello'), (1, 2, 2.2, 'jello'), (2, 4, 5.5, 'mello');
CREATE TABLE gx_not_null (pk_index int PRIMARY KEY, one_null int, two_null int,
                          three_null int, no_null text, all_null text);
INSERT INTO gx_not_null VALUES (0, 4, NULL, NULL, 'a', NULL), (1, 5, NULL, NULL, 'b', NULL),
    (2, NULL, 5, NULL, 'c', NULL), (3, 7, 6, 5, 'd', NULL);
"""

REL_1, REL_2 = "data_test_relationships_where_table_1", "data_test_relationships_where_table_2"
UNIQUE = "data_unique_combination_of_columns"


def rel(check_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": check_id, "kind": "reference", "table": REL_2, "column": "id",
            "on_orphan": "report", "target": {"table": REL_1}, **extra}  # fmt: skip


def in_set(check_id: str, column: str, values: list[Any]) -> dict[str, Any]:
    return {"id": check_id, "kind": "in_set", "table": "gx_in_set", "column": column,
            "values": values}  # fmt: skip


def not_null(check_id: str, column: str, **extra: Any) -> dict[str, Any]:
    return {"id": check_id, "kind": "not_null", "table": "gx_not_null", "columns": [column],
            **extra}  # fmt: skip


SUITE: dict[str, Any] = {
    "suite": "peers",
    "tables": {
        REL_1: {"key": "id"},
        REL_2: {"key": "id"},
        UNIQUE: {"key": ["month", "product"]},
        "gx_in_set": {"key": "pk_index"},
        "gx_not_null": {"key": "pk_index"},
    },
    "checks": [
        # dbt-utils: relationships_where with from_condition `id <> 4`: passes
        rel("relationships_where", where={"not": {"column": "id", "eq": 4}}),
        # the same without the condition: the core `relationships` test, one failure
        rel("relationships"),
        # the macro's to_condition: only target rows with id < 2 count, so 2 and 4 fail
        rel("relationships_to_condition", target={"table": REL_1, "where":
            {"column": "id", "lt": 2}}),
        {"id": "unique_combination_of_columns", "kind": "unique", "table": UNIQUE,
         "columns": ["month", "product"]},
        {"id": "unique_month", "kind": "unique", "table": UNIQUE, "columns": ["month"]},
        # GX expect_column_values_to_be_in_set
        in_set("basic_positive_number_set", "x", [1, 2, 4]),
        in_set("exclude_existing_value", "x", [2, 4]),
        in_set("basic_positive_strings", "z", ["hello", "jello", "mello"]),
        in_set("strings_extra_value", "z", ["hello", "jello"]),
        in_set("numbers_no_matching_values", "x", [3]),
        in_set("positive_float_set", "y", [1.1, 2.2, 5.5]),
        in_set("negative_float_set", "y", [1.11, 2.22, 5.51]),
        {"id": "conditional_passes", "kind": "in_set", "table": "gx_in_set", "column": "z",
         "values": ["hello"], "where": {"column": "x", "eq": 1}},
        {"id": "conditional_fails", "kind": "in_set", "table": "gx_in_set", "column": "z",
         "values": ["jello"], "where": {"column": "x", "eq": 1}},
        # GX's column map expectations skip NULLs; so does in_set
        {"id": "in_set_skips_nulls", "kind": "in_set", "table": "gx_not_null",
         "column": "two_null", "values": [5, 6]},
        # GX expect_column_values_to_not_be_null (mostly: a rate of unexpected values)
        not_null("basic_positive", "no_null"),
        not_null("negative_all_missing_values", "all_null"),
        not_null("positive_mostly", "one_null", threshold={"max_rate": 0.3}),
        not_null("negative_no_mostly_one_missing", "one_null"),
        not_null("negative_mostly", "one_null", threshold={"max_rate": 0.2}),
        not_null("negative_75percent_null_no_mostly", "three_null"),
    ],
}  # fmt: skip

# check -> (passes?, keys flagged): the peers' success and unexpected_index_list
EXPECTED: dict[str, tuple[bool, set[str]]] = {
    "relationships_where": (True, set()),
    "relationships": (False, {"4"}),
    "relationships_to_condition": (False, {"2", "4"}),
    "unique_combination_of_columns": (True, set()),
    "unique_month": (False, {
        '["2019-01-01", "lamington"]', '["2019-01-01", "pavlova"]',
        '["2019-02-01", "lamington"]', '["2019-02-01", "pavlova"]',
    }),
    "basic_positive_number_set": (True, set()),
    "exclude_existing_value": (False, {"0"}),
    "basic_positive_strings": (True, set()),
    "strings_extra_value": (False, {"2"}),
    "numbers_no_matching_values": (False, {"0", "1", "2"}),
    "positive_float_set": (True, set()),
    "negative_float_set": (False, {"0", "1", "2"}),
    "conditional_passes": (True, set()),
    "conditional_fails": (False, {"0"}),
    "in_set_skips_nulls": (True, set()),
    "basic_positive": (True, set()),
    "negative_all_missing_values": (False, {"0", "1", "2", "3"}),
    "positive_mostly": (True, {"2"}),
    "negative_no_mostly_one_missing": (False, {"2"}),
    "negative_mostly": (False, {"2"}),
    "negative_75percent_null_no_mostly": (False, {"0", "1", "2"}),
}  # fmt: skip


@pytest.fixture(scope="module")
def peers(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("peers")
    execute(uri, FIXTURES)
    return uri


def test_the_peers_fixtures_give_the_peers_answers(peers: str, tmp_path: Path) -> None:
    result = run_audit(
        as_url(peers), Suite.model_validate(SUITE), tmp_path / "run",
        options=AuditOptions(record_history=False),
    )  # fmt: skip
    with (tmp_path / "run" / "violations.csv").open(encoding="utf-8", newline="") as f:
        keys: dict[str, set[str]] = {}
        for r in csv.DictReader(f):
            keys.setdefault(r["check"], set()).add(r["key"])
    got = {c.id: (c.status == "passed", keys.get(c.id, set())) for c in result.checks}
    assert got == EXPECTED
    checked = {c.id: c.rows_checked for c in result.checks}
    assert checked["relationships_where"] == 2  # id 4 is left out, as from_condition does
    assert checked["conditional_fails"] == 1
