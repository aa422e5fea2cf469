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
- dbt-utils' table-level tests (`integration_tests/models/generic_tests/schema.yml` on the
  seeds in `integration_tests/data/schema_tests/`): `not_constant`, `at_least_one` (and,
  with `group_by_columns` and dbt's `error_if: "<1"`, a test that expects its failing
  group: `threshold.min_count`), `expression_is_true` in its model and column forms, with
  and without `condition`, `cardinality_equality` on two columns of another table and
  `not_null_proportion` with `at_least`, `at_most` and `group_by_columns`: all pass, as the
  peer's suite says. A finding about a table has the key "" (a group's: its values).
- dbt-utils' tests comparing rows with other rows (`equal_rowcount`, `fewer_rows_than`,
  `equality`, `mutually_exclusive_ranges`, `sequential_values`): tests/test_peer_kinds.py.
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
-- dbt-utils seeds (a `_rid` for the seeds without a key: the row's position)
CREATE TABLE data_test_not_constant (_rid int PRIMARY KEY, col_a int, field int);
INSERT INTO data_test_not_constant VALUES (1, 1, 1), (2, 1, 1), (3, 1, 2);
CREATE TABLE data_test_at_least_one (_rid int PRIMARY KEY, field text, value int);
INSERT INTO data_test_at_least_one VALUES (1, 'a', 1), (2, 'b', NULL);
CREATE TABLE data_test_expression_is_true (_rid int PRIMARY KEY, col_a float8, col_b float8);
INSERT INTO data_test_expression_is_true VALUES (1, 0, 1), (2, 1, 0), (3, 0.5, 0.5);
CREATE TABLE data_cardinality_equality_a (_rid int PRIMARY KEY, same_name int);
INSERT INTO data_cardinality_equality_a VALUES (1, 1), (2, 2), (3, 3);
CREATE TABLE data_cardinality_equality_b (_rid int PRIMARY KEY, same_name int,
                                          different_name int);
INSERT INTO data_cardinality_equality_b VALUES (1, 1, 2), (2, 2, 3), (3, 3, 1);
CREATE TABLE data_not_null_proportion (_rid int PRIMARY KEY, point_5 int, point_9 int);
INSERT INTO data_not_null_proportion VALUES (1, 1, 1), (2, NULL, 2), (3, NULL, 3), (4, 4, 4),
    (5, 5, 5), (6, 6, 6), (7, NULL, 7), (8, NULL, 8), (9, NULL, NULL), (10, 10, 10);
-- dbt-utils' test_recency model: today's midnight, in groups col1 and (col1, col2)
CREATE TABLE test_recency (_rid int PRIMARY KEY, today timestamptz, col1 text, col2 text);
INSERT INTO test_recency VALUES (1, date_trunc('day', now()), 'a', 'b');
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


def expression(check_id: str, text: str, **extra: Any) -> dict[str, Any]:
    return {"id": check_id, "kind": "expression", "table": "data_test_expression_is_true",
            "expression": text, **extra}  # fmt: skip


def cardinality(check_id: str, field: str) -> dict[str, Any]:
    return {"id": check_id, "kind": "cardinality_equality",
            "table": "data_cardinality_equality_a", "column": "same_name",
            "to": {"table": "data_cardinality_equality_b", "column": field}}  # fmt: skip


def proportion(check_id: str, column: str, **extra: Any) -> dict[str, Any]:
    return {"id": check_id, "kind": "not_null_proportion", "table": "data_not_null_proportion",
            "column": column, **extra}  # fmt: skip


def recency(check_id: str, **extra: Any) -> dict[str, Any]:
    return {"id": check_id, "kind": "freshness", "table": "test_recency", "column": "today",
            "max_age": "1 day", **extra}  # fmt: skip


SUITE: dict[str, Any] = {
    "suite": "peers",
    "tables": {
        REL_1: {"key": "id"},
        REL_2: {"key": "id"},
        UNIQUE: {"key": ["month", "product"]},
        "gx_in_set": {"key": "pk_index"},
        "gx_not_null": {"key": "pk_index"},
        **{t: {"key": "_rid"} for t in (
            "data_test_not_constant", "data_test_at_least_one", "data_test_expression_is_true",
            "data_cardinality_equality_a", "data_cardinality_equality_b",
            "data_not_null_proportion", "test_recency")},
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
        # dbt-utils generic tests
        {"id": "not_constant", "kind": "not_constant", "table": "data_test_not_constant",
         "column": "field"},
        {"id": "not_constant_col_a", "kind": "not_constant", "table": "data_test_not_constant",
         "column": "col_a"},  # the same macro on the seed's constant column: one row
        {"id": "at_least_one", "kind": "at_least_one", "table": "data_test_at_least_one",
         "column": "field"},
        {"id": "at_least_one_by_field", "kind": "at_least_one",
         "table": "data_test_at_least_one", "column": "value", "group_by": ["field"],
         "threshold": {"min_count": 1}},  # error_if: "<1", warn_if: "<0"
        expression("expression_is_true", "col_a + col_b = 1"),
        expression("expression_is_true_condition", "col_a = 0.5",
                   where={"column": "col_b", "eq": 0.5}),
        expression("expression_is_true_col_a", "+ col_b = 1", column="col_a"),
        expression("expression_is_true_col_b", "= 0.5", column="col_b",
                   where={"column": "col_a", "eq": 0.5}),
        expression("expression_is_false", "col_a + col_b = 2"),  # every row: 3 rows
        cardinality("cardinality_equality_same_name", "same_name"),
        cardinality("cardinality_equality_different_name", "different_name"),
        proportion("not_null_proportion_point_5", "point_5", at_least=0.5, at_most=0.5),
        proportion("not_null_proportion_point_5_by_point_9", "point_5", at_least=0,
                   group_by=["point_9"]),
        proportion("not_null_proportion_point_9", "point_9", at_least=0.9),
        proportion("not_null_proportion_point_5_above", "point_5", at_least=0.6),  # one row
        # dbt-utils recency (datepart: day, interval: 1) is refaudit's freshness
        recency("recency"),
        recency("recency_by_col1", group_by=["col1"]),
        recency("recency_by_col1_col2", group_by=["col1", "col2"]),
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
    "not_constant": (True, set()),
    "not_constant_col_a": (False, {""}),
    "at_least_one": (True, set()),
    "at_least_one_by_field": (True, {"b"}),  # the expected failure: dbt's 1 row, passing
    "expression_is_true": (True, set()),
    "expression_is_true_condition": (True, set()),
    "expression_is_true_col_a": (True, set()),
    "expression_is_true_col_b": (True, set()),
    "expression_is_false": (False, {"1", "2", "3"}),
    "cardinality_equality_same_name": (True, set()),
    "cardinality_equality_different_name": (True, set()),
    "not_null_proportion_point_5": (True, set()),
    "not_null_proportion_point_5_by_point_9": (True, set()),
    "not_null_proportion_point_9": (True, set()),
    "not_null_proportion_point_5_above": (False, {""}),
    "recency": (True, set()),
    "recency_by_col1": (True, set()),
    "recency_by_col1_col2": (True, set()),
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
    by_id = {c.id: c for c in result.checks}
    constant = by_id["not_constant_col_a"]
    assert (constant.scope, constant.violations, constant.rows_checked) == ("table", 1, 3)
    assert constant.found() == "1 finding about the table (3 rows)"
    assert by_id["expression_is_false"].found() == "3 violations in 3 rows (100.00%)"
    assert by_id["at_least_one_by_field"].threshold == ">= 1"
