"""More of the peers' own cases on the peers' fixtures, each with the peer's expected outcome,
expressed with refaudit's existing kinds.

- dbt-utils (`integration_tests/models/generic_tests/schema.yml`, `models/sql/schema.yml`):
  `accepted_range` is `range` (`inclusive: false` is `exclusive: true`); `not_accepted_values`
  is an `expression` (`city NOT IN (...)`: NULL passes, as the macro's `in`); `not_empty_string`
  is an `expression` over `trim(...)` (NULL passes, as the macro's `= ''`); dbt's
  `error_if: "<1"` is `threshold.min_count: 1`.
- Great Expectations (`tests/test_definitions/column_map_expectations/
  expect_column_values_to_match_regex.json`): `pattern`; GX's `mostly` is a rate of the rows
  that are not NULL (`where: {column, is_null: false}`, `max_rate: 1 - mostly`); its
  `unexpected_index_list` is our keys (`pk_index`).
- Great Expectations' `expect_column_values_to_be_between`: `range`; `strict_min` or
  `strict_max` alone an `expression` (`x > 1 AND x <= 10`); `parse_strings_as_datetimes` an
  `expression` over `to_timestamp(ts, ...)`. GX's `BOOLEAN_ONLY` cases report no index list:
  the keys given are refaudit's, those of the same bounds' other cases.
- Great Expectations' `expect_column_values_to_be_in_set` (beyond test_peer_semantics.py):
  an empty set (a `row_rule`), an empty column, and `parse_strings_as_datetimes` (an
  `expression` over `dates::timestamp`).
- Great Expectations' `expect_column_values_to_not_be_in_set`: a `row_rule` requiring
  `not_in` (NULL passes, as GX skips it); `value_set: [null]` an `expression` (`n NOT IN
  (NULL)`, never false).
- Great Expectations' `expect_column_pair_values_A_to_be_greater_than_B` and
  `expect_column_pair_values_to_be_equal` (`column_pair_map_expectations/`): an `expression`
  (`x > w`, `w >= z` for `or_equal`; a NULL side passes, as `ignore_row_if:
  either_value_is_missing`); `mostly` over all rows (no row misses both values).
- Great Expectations' `expect_select_column_values_to_be_unique_within_record` (two
  columns): an `expression` `a <> b` (a row missing a value passes); its second dataset is
  the compound-unique one.
- Great Expectations' `expect_column_values_to_be_unique` (its first dataset; the second is
  Spark's only) and `expect_compound_columns_to_be_unique` (`multicolumn_map_expectations/`,
  its dataset of columns `w, x, y, z, a, b`): `unique`; GX lists every row of a duplicate
  group, refaudit the rows after the first, each naming the row kept: the two together are
  GX's `unexpected_index_list`; with `keep: none` refaudit counts every row of the group as
  GX does, so `mostly` (`max_rate: 1 - mostly` of the non-NULL rows) gives GX's verdict.
  A pandas `row_condition` keeps a NaN that `!=` compares with.
- dbt-core (`tests/functional/schema_tests/fixtures.py`, `models_v2/models/schema.yml`, on
  the seeds `seed` and `seed_failure`: tests/fixtures/peer_dbt_core.sql): `not_null`,
  `unique`, `accepted_values` (`in_set`) and `relationships` (`reference`); the tests tagged
  `xfail` fail. dbt counts the rows its test query returns: one per duplicated value for
  `unique`, one per value for `accepted_values`, one per row otherwise.
- dbt-core's custom generic tests (`test_schema_v2_tests.py` `TestCustomSchemaTests` and
  `TestCustomConfigSchemaTests`, models `custom` and `custom_configs` over the seed): the
  macros `every_value_is_blue` and `rejected_values` are `expression`s (`!=` and `in` let
  NULL pass), `local_dep.equality` to itself is `equality`; a test that returns every row
  (`select * from model`) is `expression: "false"`, its `where` config a `where`, `1 = 0`
  the expression `NOT (1 = 0)`, `error_if: "<= 0"` a `min_count: 1`; a `relationships` to
  itself is a `reference`; the model `"table.copy.with.dots"` is named so in the suite.
- Soda Core (`soda-tests/tests/integration/test_duplicate_column_check.py`,
  `test_duplicate_dataset_check.py`, `test_missing_check.py`, `test_invalid_check.py`,
  `test_invalid_reference_check.py`): `duplicate` is `unique` (Soda's count, rows minus
  distinct values, is refaudit's rows after the first of their group); `missing` is
  `not_null`, or with `missing_values` an `expression`; `invalid` is `in_set`
  (`valid_values`), `range` (`valid_min`, `valid_max`), `pattern` (`valid_format`), or for
  `invalid_values`, `invalid_format` and `valid_max_length` a `row_rule` or an
  `expression`; an invalid reference is `reference` (NULL is missing, not invalid); a
  check's `filter` (and the contract's) is `where`; `threshold.must_be_less_than: n` is
  `max_count: n - 1`, `must_be: n` is `min_count` and `max_count` n, `level: warn` is
  `severity: warn`; `metric: percent` thresholds are `min_rate` and `max_rate`.

Refused on purpose, as GX itself on a SQL database (`test_what_gx_refuses_refaudit_refuses`):
GX's `allow_cross_type_comparisons` (2 cases) compares a pandas column of mixed Python types
with numbers; GX's own test runner skips them on every SQLAlchemy backend ("SqlAlchemy does
not support allow_cross_type_comparisons"), and without it GX raises on the same bounds
("Column values, min_value, and max_value must either be None or of the same type"), as
refaudit refuses them (exit 2). GX's `value_set: null` is "vacuously true" in one case and
a TypeError ("Values set is missing") in the next; refaudit refuses an `in_set` without its
values. Not expressed: dbt-core's `custom_configs` `limit` (0: dbt fetches no failing row) and
`fail_calc` (`count(*) - count(*)`: a failure count of 0 whatever the rows) configure how dbt
runs a test, not what the data must satisfy (dbt's own test asserts only that they ran);
refaudit counts every finding and has neither knob.
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
CREATE TABLE data_test_accepted_range (_rid int PRIMARY KEY, id int);
INSERT INTO data_test_accepted_range VALUES (1, -1), (2, 11);
CREATE TABLE data_test_not_accepted_values (_rid int PRIMARY KEY, id int, city text);
INSERT INTO data_test_not_accepted_values VALUES (1, 1, 'Barcelona'), (2, 2, 'London'),
    (3, 3, 'Paris'), (4, 4, 'New York');
CREATE VIEW test_not_empty_string_failing AS SELECT * FROM (VALUES
    (1, 'not an empty string'), (2, 'also not an empty string'),
    (3, 'string with trailing whitespace  '), (4, '   '), (5, ''), (6, NULL))
    AS blank_data (id, string_trim_whitespace_true);
CREATE VIEW test_not_empty_string_passing AS SELECT * FROM (VALUES
    (1, 'not an empty string', 'not an empty string'),
    (2, 'also not an empty string', 'also not an empty string'),
    (3, 'string with trailing whitespace  ', '   '), (6, NULL, NULL))
    AS blank_data (id, string_trim_whitespace_true, string_trim_whitespace_false);
CREATE TABLE soda_duplicate_column (_rid int PRIMARY KEY, id varchar(255), age int,
    country varchar(3));
INSERT INTO soda_duplicate_column VALUES (1, '1', 1, 'USA'), (2, '2', 2, 'USA'), (3, '3', 2, 'BE'),
    (4, '4', 3, 'USA'), (5, '5', 3, 'BE'), (6, '6', 3, 'BE'), (7, '7', 3, 'BE'),
    (8, '8', 4, 'USA'), (9, '9', 4, 'BE'), (10, NULL, NULL, 'BE');
CREATE TABLE soda_duplicate_dataset (_rid int PRIMARY KEY, rep varchar(4), country varchar(3),
    zip varchar(4));
INSERT INTO soda_duplicate_dataset VALUES (1, 'Joe', 'USA', '1000'), (2, 'Joe', 'USA', '1234'),
    (3, 'Joe', 'USA', '2000'), (4, 'Joe', 'USA', '2000'), (5, 'Joe', 'USA', '2000'),
    (6, 'Joe', 'JAP', '1000'), (7, 'Joe', 'JAP', '1234'), (8, 'Jack', 'USA', '1000'),
    (9, 'Jack', 'USA', '1234'), (10, 'Jack', 'USA', '2000'), (11, 'Jack', 'JAP', '1000'),
    (12, 'Jack', 'JAP', '1234'), (13, NULL, NULL, '9999');
CREATE TABLE soda_invalid (_rid int PRIMARY KEY, id varchar(255), age int);
INSERT INTO soda_invalid VALUES (1, '1', 1), (2, NULL, -1), (3, '3', NULL), (4, 'X', 2);
CREATE TABLE soda_missing (_rid int PRIMARY KEY, id varchar(255), age int);
INSERT INTO soda_missing VALUES (1, '1', 1), (2, NULL, -1), (3, '3', NULL), (4, 'X', 2);
CREATE TABLE soda_invalid_referencing (_rid int PRIMARY KEY, id int, country varchar(2),
    zip varchar(6));
INSERT INTO soda_invalid_referencing VALUES (1, 1, 'NL', 'NL4775'), (2, 2, 'NL', 'XXXXXX'),
    (3, 3, 'XX', 'NL4775'), (4, 4, 'BE', 'NL4775'), (5, 5, 'XX', 'XXXXXX'), (6, 6, 'XX', NULL),
    (7, 7, NULL, 'XXXXXX'), (8, 8, NULL, NULL);
CREATE TABLE soda_invalid_referenced (country_code varchar(2) PRIMARY KEY, zip_code varchar(6));
INSERT INTO soda_invalid_referenced VALUES ('NL', 'NL4775'), ('BE', '2300');
CREATE TABLE gx_compound (pk_index int PRIMARY KEY, w int, x int, y int, z int, a int, b int);
INSERT INTO gx_compound SELECT i - 1, w, i, w, z, a, b FROM unnest(
    ARRAY[2, 3, 4, 5, 6, 7, 8, 9, 10, NULL], ARRAY[1, 2, 3, 4, 5, NULL, NULL, NULL, NULL, NULL],
    ARRAY[1, 1, 1, 1, 1, 2, 2, 2, 2, NULL], ARRAY[1, 2, 1, 2, 1, 2, 1, 2, 1, NULL])
    WITH ORDINALITY AS d (w, z, a, b, i);
CREATE TABLE gx_pair (pk_index int PRIMARY KEY, w int, x int, y int, z int, c int);
INSERT INTO gx_pair SELECT i - 1, i, i + 1, NULLIF(i, 10), CASE WHEN i <= 5 THEN i END, c
    FROM unnest(ARRAY[1, 2, 3, 6, 7, 6, 7, 8, 9, 10]) WITH ORDINALITY AS d (c, i);
CREATE TABLE gx_pair_equal (pk_index int PRIMARY KEY, x int, a int);
INSERT INTO gx_pair_equal SELECT i - 1, i, a
    FROM unnest(ARRAY[1, 2, 3, 4, 5, 6, 7, 8, 9, 11]) WITH ORDINALITY AS d (a, i);
CREATE TABLE gx_not_in_set (pk_index int PRIMARY KEY, x int, z text, y float8, n int);
INSERT INTO gx_not_in_set VALUES (0, 1, 'hello', 1.1, NULL), (1, 2, 'jello', 2.2, NULL),
    (2, 4, 'mello', 5.5, 2);
CREATE TABLE gx_within_record (pk_index int PRIMARY KEY, a int, b int, c int);
INSERT INTO gx_within_record VALUES (0, 1, 5, 1), (1, 2, 6, 4), (2, 3, 7, 2), (3, 4, 8, 3);
CREATE TABLE gx_unique (pk_index int PRIMARY KEY, a text, c int, n int, "unique" int,
    "null" int, mult_dup text);
INSERT INTO gx_unique VALUES (0, '2', 1, NULL, 1, NULL, '1'), (1, '2', 1, NULL, 2, NULL, '1'),
    (2, '2', 2, 2, 3, NULL, '2'), (3, NULL, NULL, NULL, NULL, NULL, '2');
CREATE TABLE gx_between (pk_index int PRIMARY KEY, x int, z int, ts text);
INSERT INTO gx_between SELECT i - 1, i, CASE WHEN i <= 5 THEN i END, ts
    FROM unnest(ARRAY['Jan 01 1970 12:00:01', 'Dec 31 1999 12:00:01', 'Jan 01 2000 12:00:01',
        'Feb 01 2000 12:00:01', 'Mar 01 2000 12:00:01', 'Apr 01 2000 12:00:01',
        'May 01 2000 12:00:01', 'Jun 01 2000 12:00:01', NULL, 'Jan 01 2001 12:00:01'])
    WITH ORDINALITY AS d (ts, i);
CREATE TABLE gx_between_text (pk_index int PRIMARY KEY, y text, "numeric" text);
INSERT INTO gx_between_text SELECT i - 1, CASE WHEN i < 10 THEN i::text ELSE 'abc' END, i::text
    FROM generate_series(1, 10) AS i;
CREATE TABLE gx_in_set (pk_index int PRIMARY KEY, x int);
INSERT INTO gx_in_set VALUES (0, 1), (1, 2), (2, 4);
CREATE TABLE gx_in_set_empty (pk_index int PRIMARY KEY, empty_column text);
CREATE TABLE gx_in_set_dates (pk_index int PRIMARY KEY, dates text);
INSERT INTO gx_in_set_dates VALUES (0, '2018-01-01'), (1, '2018-01-02'),
    (2, '2018-01-02 00:34:01');
CREATE TABLE gx_match_regex (pk_index int PRIMARY KEY, a text, b text, c text);
INSERT INTO gx_match_regex VALUES (0, 'aaa', 'aaa', NULL), (1, 'abb', 'abb', NULL),
    (2, 'acc', 'acc', NULL), (3, 'add', 'bdd', NULL), (4, 'bee', NULL, NULL);
"""

GX_TABLES = ("gx_in_set", "gx_in_set_empty", "gx_in_set_dates", "gx_between", "gx_between_text",
             "gx_match_regex", "gx_pair", "gx_pair_equal", "gx_unique", "gx_within_record",
             "gx_not_in_set", "gx_compound")  # fmt: skip
TABLES = {"data_test_accepted_range": "_rid", "data_test_not_accepted_values": "_rid",
          "test_not_empty_string_failing": "id", "test_not_empty_string_passing": "id",
          "soda_duplicate_column": "_rid", "soda_duplicate_dataset": "_rid",
          "soda_missing": "_rid", "soda_invalid": "_rid", "soda_invalid_referencing": "_rid",
          "soda_invalid_referenced": "country_code",
          **dict.fromkeys(GX_TABLES, "pk_index")}  # fmt: skip


def accepted_range(**keys: Any) -> dict[str, Any]:
    return {"kind": "range", "table": "data_test_accepted_range", "column": "id", **keys}


def not_empty(table: str, column: str, trim: bool = True, **keys: Any) -> dict[str, Any]:
    value = f"trim({column})" if trim else column
    return {"kind": "expression", "table": table, "expression": f"{value} <> ''", **keys}


def regex(column: str, pattern: str, mostly: float | None = None) -> dict[str, Any]:
    check: dict[str, Any] = {"kind": "pattern", "table": "gx_match_regex", "column": column,
                             "regex": pattern}  # fmt: skip
    if mostly is not None:
        check["where"] = {"column": column, "is_null": False}
        check["threshold"] = {"max_rate": round(1 - mostly, 10)}
    return check


def pair(text: str, mostly: float | None = None, table: str = "gx_pair") -> dict[str, Any]:
    check: dict[str, Any] = {"kind": "expression", "table": table, "expression": text}
    if mostly is not None:
        check["threshold"] = {"max_rate": round(1 - mostly, 10)}
    return check


def not_in(column: str, values: list[Any], mostly: float | None = None) -> dict[str, Any]:
    check: dict[str, Any] = {"kind": "row_rule", "table": "gx_not_in_set",
                             "require": {"column": column, "not_in": values}}  # fmt: skip
    if mostly is not None:
        check["threshold"] = {"max_rate": round(1 - mostly, 10)}
    return check


def between(column: str = "x", mostly: float | None = None, **bounds: Any) -> dict[str, Any]:
    check: dict[str, Any] = {"kind": "range", "table": "gx_between", "column": column, **bounds}
    if mostly is not None:
        check["where"] = {"column": column, "is_null": False}
        check["threshold"] = {"max_rate": round(1 - mostly, 10)}
    return check


def between_sql(text: str) -> dict[str, Any]:
    return {"kind": "expression", "table": "gx_between", "expression": text}


def between_times(low: str, high: str) -> dict[str, Any]:
    ts = "to_timestamp(ts, 'Mon DD YYYY HH24:MI:SS')"
    return between_sql(f"{ts} >= '{low}' AND {ts} <= '{high}'")


# check id -> (the check, whether the peer passes it, the keys it reports)
CASES: dict[str, tuple[dict[str, Any], bool, set[str]]] = {
    "accepted_range_inclusive": (accepted_range(min=-1, max=11), True, set()),
    "accepted_range_exclusive": (accepted_range(min=-2, max=11.1, exclusive=True), True, set()),
    "accepted_range_where": (accepted_range(min=0, where={"not": {"column": "id", "eq": -1}}),
                             True, set()),
    "not_accepted_values": ({"kind": "expression", "table": "data_test_not_accepted_values",
                             "expression": "city NOT IN ('Madrid', 'Berlin')"}, True, set()),
    "not_empty_string_failing": (not_empty("test_not_empty_string_failing",
                                           "string_trim_whitespace_true",
                                           threshold={"min_count": 1}), True, {"4", "5"}),
    "not_empty_string_passing": (not_empty("test_not_empty_string_passing",
                                           "string_trim_whitespace_true"), True, set()),
    "not_empty_string_no_trim": (not_empty("test_not_empty_string_passing",
                                           "string_trim_whitespace_false", trim=False),
                                 True, set()),
    "between_basic_positive": (between(min=1, max=10), True, set()),
    "between_another_basic_positive": (between(min=0, max=20), True, set()),
    "between_positive_with_timestamps": (between_times("1970-01-01 12:00:00",
                                                       "2020-01-01 12:00:02"), True, set()),
    "between_missing_min_value": (between(max=20), True, set()),
    "between_null_min_value": (between(max=20), True, set()),
    "between_missing_max_value": (between(min=0), True, set()),
    "between_null_max_value": (between(min=0), True, set()),
    "between_basic_negative": (between(min=1, max=9), False, {"9"}),
    "between_another_negative": (between(min=3, max=10), False, {"0", "1"}),
    "between_negative_with_timestamps": (between_times("1990-01-01 12:00:00",
                                                       "2001-01-01 12:00:00"), False, {"0", "9"}),
    "between_positive_boolean_only": (between(min=1, max=10), True, set()),
    "between_another_positive_boolean_only": (between(min=0, max=20), True, set()),
    "between_negative_boolean_only": (between(min=1, max=9), False, {"9"}),
    "between_another_negative_boolean_only": (between(min=3, max=10), False, {"0", "1"}),
    "between_positive_with_mostly": (between(mostly=0.9, min=1, max=10), True, set()),
    "between_2nd_positive_with_mostly": (between(mostly=0.9, min=0, max=20), True, set()),
    "between_3rd_positive_with_mostly": (between(mostly=0.9, min=1, max=9), True, {"9"}),
    "between_negative_with_mostly": (between(mostly=0.9, min=3, max=10), False, {"0", "1"}),
    "between_mostly_denominator_negative": (between("z", 0.9, min=1, max=4), False, {"4"}),
    "between_mostly_denominator_positive": (between("z", 0.8, min=1, max=4), True, {"4"}),
    "between_strict_min_failure": (between_sql("x > 1 AND x <= 10"), False, {"0"}),
    "between_strict_min_success": (between(min=1, max=10), True, set()),
    "between_strict_max_failure": (between_sql("x >= 0 AND x < 10"), False, {"9"}),
    "between_strict_max_success": (between(min=0, max=10), True, set()),
    # in_set takes one value at least; a row_rule's `in` any list
    "in_set_empty_values_set": ({"kind": "row_rule", "table": "gx_in_set",
                                 "require": {"column": "x", "in": []}}, False, {"0", "1", "2"}),
    "in_set_empty_column": ({"kind": "in_set", "table": "gx_in_set_empty",
                             "column": "empty_column", "values": ["cat", "dog"]}, True, set()),
    "in_set_datetime_positive": ({"kind": "expression", "table": "gx_in_set_dates",
                                  "expression": "dates::timestamp IN ('2018-01-01', "
                                  "'2018-01-02', '2018-01-02 00:34:01')"}, True, set()),
    "in_set_datetime_negative": ({"kind": "expression", "table": "gx_in_set_dates",
                                  "expression": "dates::timestamp IN ('2018-01-02', "
                                  "'2018-01-02 00:34:01')"}, False, {"0"}),
    "not_in_single_value_not_in_column": (not_in("x", [0]), True, set()),
    "not_in_one_existing_value": (not_in("x", [1]), False, {"0"}),
    "not_in_empty_set": (not_in("x", []), True, set()),
    "not_in_all_character_values": (not_in("z", ["hello", "jello", "mello"]), False,
                                    {"0", "1", "2"}),
    "not_in_extra_value_in_column": (not_in("z", ["ello"]), True, set()),
    "not_in_floats_mostly_65": (not_in("y", [1.1, 2.2], 0.65), False, {"0", "1"}),
    "not_in_floats_mostly_70": (not_in("y", [1.1, 2.2], 0.7), False, {"0", "1"}),
    "not_in_null": ({"kind": "expression", "table": "gx_not_in_set",
                     "expression": "n NOT IN (NULL)"}, True, set()),
    "pair_basic_positive": (pair("x > w"), True, set()),
    "pair_either_value_is_missing": (pair("x > z"), True, set()),
    "pair_ties": (pair("w > z"), False, {"0", "1", "2", "3", "4"}),
    "pair_ties_or_equal": (pair("w >= z"), True, set()),
    "pair_mostly": (pair("x > c", mostly=0.8), True, {"3", "4"}),
    "pair_equal_mostly": (pair("a = x", 0.9, "gx_pair_equal"), True, {"9"}),
    "within_record_a_b": (pair("a <> b", table="gx_within_record"), True, set()),
    "within_record_a_c": (pair("a <> c", table="gx_within_record"), False, {"0"}),
    "within_record_a_c_mostly_70": (pair("a <> c", 0.7, "gx_within_record"), True, {"0"}),
    "within_record_a_c_mostly_80": (pair("a <> c", 0.8, "gx_within_record"), False, {"0"}),
    "within_record_w_x": (pair("w <> x", table="gx_compound"), True, set()),
    "within_record_w_x_any_missing": (pair("w <> x", table="gx_compound"), True, set()),
    "within_record_unexpected_values": (pair("a <> b", table="gx_compound"), False,
                                        {"0", "2", "4", "5", "7"}),
    "within_record_exact_no_index_list": (pair("a <> b", table="gx_compound"), False,
                                          {"0", "2", "4", "5", "7"}),
    "within_record_exact_without_index_list": (pair("a <> b", table="gx_compound"), False,
                                               {"0", "2", "4", "5", "7"}),
    "regex_insufficient_mostly": (regex("a", "^a", 0.9), False, {"4"}),
    "regex_exact_mostly": (regex("a", "^a", 0.8), True, {"4"}),
    "regex_sufficient_mostly": (regex("a", "^a", 0.7), True, {"4"}),
    "regex_missing_insufficient_mostly": (regex("b", "^a", 0.8), False, {"3"}),
    "regex_missing_exact_mostly": (regex("b", "^a", 0.75), True, {"3"}),
    "regex_missing_sufficient_mostly": (regex("b", "^a", 0.7), True, {"3"}),
    "regex_all_missing": (regex("c", "^a"), True, set()),
    "regex_all_missing_mostly": (regex("c", "^a", 0.2), True, set()),
    "regex_empty": (regex("b", ""), True, set()),
    "regex_complicated": (regex("b", "[ab]{1}[a-d]{2}"), True, set()),
    "regex_not_at_the_beginning": (regex("a", "b", 0.4), True, {"0", "2", "3"}),
}  # fmt: skip


def duplicate(table: str, columns: list[str], **keys: Any) -> dict[str, Any]:
    return {"kind": "unique", "table": table, "columns": columns, **keys}


def missing(column: str, values: list[Any] | None = None, **keys: Any) -> dict[str, Any]:
    if values is None:
        return {"kind": "not_null", "table": "soda_missing", "columns": [column], **keys}
    listed = ", ".join(repr(v) for v in values)
    text = f"{column} IS NOT NULL AND {column} NOT IN ({listed})"
    return {"kind": "expression", "table": "soda_missing", "expression": text, **keys}


def invalid_reference(**keys: Any) -> dict[str, Any]:
    return {"kind": "reference", "table": "soda_invalid_referencing", "column": "country",
            "on_orphan": "report", "target": {"table": "soda_invalid_referenced",
                                              "column": "country_code"}, **keys}  # fmt: skip


def unique(columns: list[str], **keys: Any) -> dict[str, Any]:
    return {"kind": "unique", "table": "gx_unique", "columns": columns, **keys}


def compound(columns: list[str], **keys: Any) -> dict[str, Any]:
    return {"kind": "unique", "table": "gx_compound", "columns": columns, **keys}


# check id -> (the check, whether GX passes it, its unexpected_index_list, its element_count)
GX_UNIQUE: dict[str, tuple[dict[str, Any], bool, set[str], int | None]] = {
    "unique_basic_positive": (unique(["unique"]), True, set(), None),
    "unique_all_non_unique_character_values": (unique(["a"]), False, {"0", "1", "2"}, None),
    "unique_positive_case_using_mostly": (unique(["c"], where={"column": "c", "is_null": False},
                                                 threshold={"max_rate": 0.7}), True,
                                          {"0", "1"}, 3),
    # GX counts every row of a duplicate group (`keep: none`): 2 of the 3 non-NULL rows
    "unique_positive_case_using_mostly_every_row": (unique(["c"], keep="none", where={
        "column": "c", "is_null": False}, threshold={"max_rate": 0.7}), True, {"0", "1"}, 3),
    "unique_negative_case_using_mostly": (unique(["c"], keep="none", where={
        "column": "c", "is_null": False}, threshold={"max_rate": 0.6}), False, {"0", "1"}, 3),
    "unique_multiple_duplicate_values_every_row": (unique(["mult_dup"], keep="none"), False,
                                                   {"0", "1", "2", "3"}, None),
    "unique_multiple_null_values": (unique(["n"]), True, set(), None),
    "unique_non_unique_numeric_values": (unique(["c"]), False, {"0", "1"}, None),
    "unique_all_null_values": (unique(["null"]), True, set(), None),
    "unique_multiple_duplicate_values": (unique(["mult_dup"]), False, {"0", "1", "2", "3"},
                                         None),
    "compound_ignore_if_all_missing": (compound(["w", "x"]), True, set(), None),
    "compound_ignore_if_any_missing": (compound(["w", "x"]), True, set(), None),
    "compound_row_condition": (compound(["w", "x"], where={"all": [
        {"column": "x", "ne": 1},
        {"any": [{"column": "w", "is_null": True}, {"column": "w", "ne": 6}]}]}),
        True, set(), 8),
    "compound_unexpected_values": (compound(["a", "b"]), False,
                                   {str(i) for i in range(9)}, 10),
    # GX's unexpected_count 9 of element_count 10: the same rows
    "compound_unexpected_values_exact_match_out": (compound(["a", "b"]), False,
                                                   {str(i) for i in range(9)}, 10),
}  # fmt: skip

def invalid(kind: str, column: str = "id", **keys: Any) -> dict[str, Any]:
    check: dict[str, Any] = {"kind": kind, "table": "soda_invalid", **keys}
    return check if kind in ("expression", "row_rule") else check | {"column": column}


VALID = ["1", "2", "3"]

EXACTLY_2 = {"min_count": 2, "max_count": 2}
DC, DD = "soda_duplicate_column", "soda_duplicate_dataset"
# check id -> (the check, Soda's outcome, its count, its rows tested (None: not asserted))
SODA: dict[str, tuple[dict[str, Any], str, int, int | None]] = {
    "duplicate_str_pass": (duplicate(DC, ["id"]), "passed", 0, 10),
    "duplicate_int_fail": (duplicate(DC, ["age"]), "failed", 5, None),
    "duplicate_int_warn": (duplicate(DC, ["age"], severity="warn"), "warned", 5, None),
    "duplicate_threshold": (duplicate(DC, ["age"], threshold={"max_count": 5}), "passed", 5,
                            None),
    "duplicate_with_check_filter": (duplicate(DC, ["age"], where={"column": "country",
                                                                  "eq": "USA"}), "passed", 0,
                                    None),
    "duplicate_with_column_missing_and_validity": (duplicate(DC, ["age"], where={
        "column": "age", "ne": 2}), "failed", 4, None),
    "duplicate_with_check_missing_and_validity_and_filter": (duplicate(DC, ["age"], where={
        "column": "country", "eq": "BE"}), "failed", 2, None),
    "dataset_duplicate": (duplicate(DD, ["rep", "country", "zip"]), "failed", 2, 13),
    "dataset_duplicate_with_filter": (duplicate(DD, ["rep", "country", "zip"], where={
        "column": "rep", "eq": "Jack"}), "passed", 0, 5),
    # Soda asserts the outcome only; 10 is rows minus distinct values of `rep` (12 - 2)
    "dataset_duplicate_warn": (duplicate(DD, ["rep"], severity="warn"), "warned", 10, None),
    "missing_count": (missing("id"), "failed", 1, 4),
    "missing_count_warn": (missing("id", severity="warn"), "warned", 1, 4),
    "missing_count_custom_missing_values": (missing("id", ["X", "Y"], threshold=EXACTLY_2),
                                            "passed", 2, None),
    "missing_count_custom_missing_values_int_on_column": (missing("age", [-1, -2],
                                                                  threshold=EXACTLY_2),
                                                          "passed", 2, None),
    "missing_count_missing_values_on_check": (missing("id", ["X", "Y"], threshold=EXACTLY_2),
                                              "passed", 2, None),
    "missing_count_overwrite_missing_values_on_check": (missing("id", ["X", "Y"],
                                                                threshold=EXACTLY_2),
                                                        "passed", 2, None),
    "valid_count_on_column": (invalid("in_set", values=VALID), "failed", 1, 4),
    "valid_count_on_check": (invalid("in_set", values=VALID), "failed", 1, 4),
    "valid_values_with_null": (invalid("in_set", values=VALID), "failed", 1, None),
    "valid_values_with_null_warn": (invalid("in_set", values=VALID, severity="warn"), "warned",
                                    1, None),
    "invalid_values": (invalid("row_rule", require={"column": "id", "not_in": ["X"]}),
                       "failed", 1, None),
    "invalid_count_valid_regex_sql": (invalid("pattern", regex="^[123]$"), "failed", 1, None),
    "invalid_count_valid_min_max": (invalid("range", "age", min=1, max=2), "failed", 1, None),
    "invalid_count_invalid_regex_sql": (invalid("expression", expression="id !~ '^[X]$'"),
                                        "failed", 1, None),
    "invalid_count_valid_format": (invalid("pattern", regex="^[0-9]$"), "failed", 1, None),
    "valid_values_with_check_filter": (invalid("in_set", values=VALID, where={
        "column": "age", "lt": 2}), "passed", 0, None),
    "invalid_check_with_variables_typing": (invalid("expression",
                                                    expression="length(id) <= 100"),
                                            "passed", 0, None),
    "invalid_count": (invalid_reference(), "failed", 3, None),
    "invalid_count_warn": (invalid_reference(severity="warn"), "warned", 3, None),
    "invalid_count_with_check_filter": (invalid_reference(where={"column": "zip",
                                                                 "eq": "NL4775"}),
                                        "failed", 1, 3),
    "invalid_count_with_check_filter_on_shared_column": (invalid_reference(where={
        "column": "id", "gt": 1}), "failed", 3, 7),
    "invalid_count_with_check_and_dataset_filter": (invalid_reference(where={"all": [
        {"column": "id", "gt": 1}, {"column": "zip", "eq": "NL4775"}]}), "failed", 1, 2),
    "invalid_low_ids": (invalid_reference(where={"column": "id", "le": 4}), "failed", 1, None),
    "invalid_high_ids": (invalid_reference(where={"column": "id", "gt": 4}), "failed", 2, None),
    "invalid_count_excl_missing": (invalid_reference(where={"column": "country", "ne": "XX"}),
                                   "passed", 0, None),
    # `metric: percent`: Soda's percent is refaudit's rate (a column's duplicates of its
    # non-NULL values, a dataset's of all rows); `must_be_greater_than: 10` is `min_rate`
    # (inclusive, where Soda's is strict: no count of these rows lands on 10% exactly)
    "duplicate_percent_threshold": (duplicate(DC, ["age"], where={"column": "age",
                                                                  "is_null": False},
                                              threshold={"min_rate": 0.10}), "passed", 5, 9),
    "dataset_duplicate_percent": (duplicate(DD, ["rep", "country", "zip"],
                                            threshold={"min_rate": 0.10}), "passed", 2, 13),
    "missing_percent": (missing("id", threshold={"min_rate": 0.24, "max_rate": 0.26}),
                        "passed", 1, 4),
}  # fmt: skip
# check id -> the bounds Soda's test asserts its percent within
SODA_PERCENT = {"duplicate_percent_threshold": (55, 56), "dataset_duplicate_percent": (15, 16),
                "missing_percent": (24, 26)}  # fmt: skip


DBT_TABLES = ("seed", "seed_failure", "table_copy", "table_failure_copy",
              "table_failure_null_relation", "table_failure_summary", "table_summary")  # fmt: skip


def dbt(kind: str, table: str, column: str, **keys: Any) -> dict[str, Any]:
    check: dict[str, Any] = {"kind": kind, "table": table}
    if kind in ("not_null", "unique"):
        return check | {"columns": [column], **keys}
    if kind == "reference":
        return check | {"column": column, "on_orphan": "report", **keys}
    return check | {"column": column, **keys}


def colors(table: str, column: str, values: list[str]) -> dict[str, Any]:
    return dbt("in_set", table, column, values=values)


def relationship(table: str, column: str, to: str, field: str) -> dict[str, Any]:
    return dbt("reference", table, column, target={"table": to, "column": field})


# check id -> (the check, whether dbt passes it, the count dbt reports)
DBT_CORE: dict[str, tuple[dict[str, Any], bool, int]] = {
    "table_copy.not_null_id": (dbt("not_null", "table_copy", "id"), True, 0),
    "table_copy.unique_id": (dbt("unique", "table_copy", "id"), True, 0),
    "table_copy.not_null_first_name": (dbt("not_null", "table_copy", "first_name"), True, 0),
    "table_copy.not_null_ip_address": (dbt("not_null", "table_copy", "ip_address"), True, 0),
    "table_copy.not_null_updated_at": (dbt("not_null", "table_copy", "updated_at"), True, 0),
    "table_copy.unique_email": (dbt("unique", "table_copy", "email"), True, 0),
    "table_copy.accepted_values_favorite_color": (colors("table_copy", "favorite_color",
                                                         ["blue", "green"]), True, 0),
    "table_copy.accepted_values_fav_number": (dbt("in_set", "table_copy", "fav_number",
                                                  values=[3.14159265]), True, 0),
    "table_summary.not_null_favorite_color_copy": (dbt("not_null", "table_summary",
                                                       "favorite_color_copy"), True, 0),
    "table_summary.unique_favorite_color_copy": (dbt("unique", "table_summary",
                                                     "favorite_color_copy"), True, 0),
    "table_summary.accepted_values_favorite_color_copy": (colors(
        "table_summary", "favorite_color_copy", ["blue", "green"]), True, 0),
    "table_summary.relationships_favorite_color_copy": (relationship(
        "table_summary", "favorite_color_copy", "table_copy", "favorite_color"), True, 0),
    "table_summary.not_null_count": (dbt("not_null", "table_summary", "count"), True, 0),
    "table_failure_copy.not_null_id": (dbt("not_null", "table_failure_copy", "id"), False, 1),
    "table_failure_copy.unique_id": (dbt("unique", "table_failure_copy", "id"), False, 1),
    "table_failure_copy.accepted_values_favorite_color": (colors(
        "table_failure_copy", "favorite_color", ["blue", "green"]), False, 1),
    "table_failure_summary.accepted_values_favorite_color": (colors(
        "table_failure_summary", "favorite_color", ["red"]), False, 1),
    "table_failure_summary.relationships_favorite_color": (relationship(
        "table_failure_summary", "favorite_color", "table_copy", "favorite_color"), False, 1),
    "table_failure_null_relation.relationships_id": (relationship(
        "table_failure_null_relation", "id", "table_failure_copy", "id"), False, 1),
}  # fmt: skip


def dbt_count(kind: str, findings: list[dict[str, str]]) -> int:
    """What dbt's test query returns for these findings (see the module's docstring)."""
    if kind in ("unique", "in_set"):
        return len({f["value"] for f in findings})
    return len(findings)


@pytest.fixture(scope="module")
def peer_fixtures(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("peer_fixtures")
    execute(uri, FIXTURES)
    execute(uri, (Path(__file__).parent / "fixtures" / "peer_dbt_core.sql").read_text())
    return uri


def test_the_peers_cases_give_the_peers_answers(peer_fixtures: str, tmp_path: Path) -> None:
    suite = Suite.model_validate({
        "suite": "peers",
        "tables": {t: {"key": k} for t, k in TABLES.items()}
        | {t: {"key": "_rid"} for t in DBT_TABLES},
        "checks": [c | {"id": i} for i, (c, _, _) in CASES.items()]
        + [c | {"id": i} for i, (c, _, _, _) in SODA.items()]
        + [c | {"id": i} for i, (c, _, _, _) in GX_UNIQUE.items()]
        + [c | {"id": i} for i, (c, _, _) in DBT_CORE.items()],
    })  # fmt: skip
    result = run_audit(as_url(peer_fixtures), suite, tmp_path / "run",
                       options=AuditOptions(record_history=False))  # fmt: skip
    with (tmp_path / "run" / "violations.csv").open(encoding="utf-8", newline="") as f:
        keys: dict[str, set[str]] = {}
        group_members: dict[str, set[str]] = {}  # a duplicate, and the row it duplicates
        findings: dict[str, list[dict[str, str]]] = {}
        for r in csv.DictReader(f):
            findings.setdefault(r["check"], []).append(r)
            keys.setdefault(r["check"], set()).add(r["key"])
            kept = r["evidence"].rsplit(" ", 1)[-1]
            group_members.setdefault(r["check"], set()).update({r["key"], kept})
    by_id = {c.id: c for c in result.checks}
    got = {i: (by_id[i].status == "passed", keys.get(i, set())) for i in CASES}
    assert got == {i: (passes, found) for i, (_, passes, found) in CASES.items()}
    soda = {i: (by_id[i].status, by_id[i].violations) for i in SODA}
    assert soda == {i: (status, count) for i, (_, status, count, _) in SODA.items()}
    gx = {i: (by_id[i].status == "passed", group_members.get(i, set())) for i in GX_UNIQUE}
    assert gx == {i: (passes, found) for i, (_, passes, found, _) in GX_UNIQUE.items()}
    for i, (check, _, found, rows) in GX_UNIQUE.items():
        assert rows is None or by_id[i].rows_checked == rows, i
        if check.get("keep") == "none":  # GX's unexpected_count, and its rows
            assert (by_id[i].violations, keys.get(i, set())) == (len(found), found), i
    dbt_core = {i: (by_id[i].status == "passed", dbt_count(by_id[i].family, findings.get(i, [])))
                for i in DBT_CORE}  # fmt: skip
    assert dbt_core == {i: (passes, count) for i, (_, passes, count) in DBT_CORE.items()}
    for i, (low, high) in SODA_PERCENT.items():
        assert low <= 100 * by_id[i].rate <= high, i
    tested = {i: by_id[i].rows_checked for i, (_, _, _, rows) in SODA.items() if rows is not None}
    assert tested == {i: rows for i, (_, _, _, rows) in SODA.items() if rows is not None}


def test_what_gx_refuses_refaudit_refuses(peer_fixtures: str, tmp_path: Path) -> None:
    """GX's `allow_cross_type_comparisons` cases, without the option GX's SQL backends do not
    have, and its `value_set: null`: refused as the suite's mistake, with the check named."""
    from pydantic import ValidationError
    from refaudit.errors import ExitCode, SuiteError

    with pytest.raises(ValidationError, match="values"):
        Suite.model_validate({"suite": "gx", "tables": {"gx_in_set": {"key": "pk_index"}},
                              "checks": [{"id": "vacuous", "kind": "in_set", "table": "gx_in_set",
                                          "column": "x", "values": None}]})  # fmt: skip
    for column in ("y", "numeric"):
        suite = Suite.model_validate({
            "suite": "gx", "tables": {"gx_between_text": {"key": "pk_index"}},
            "checks": [{"id": f"cross_type_{column}", "kind": "range", "table": "gx_between_text",
                        "column": column, "min": 0, "max": 10}],
        })  # fmt: skip
        with pytest.raises(SuiteError) as raised:
            run_audit(as_url(peer_fixtures), suite, tmp_path / column,
                      options=AuditOptions(record_history=False))  # fmt: skip
        assert raised.value.exit_code == ExitCode.USAGE
        assert f"cross_type_{column}" in str(raised.value)


# dbt-core's custom generic tests: check id -> (the check, whether dbt passes it, the macro's
# query as dbt compiles it for this model, whose row count is dbt's failure count)
COPY = "table_copy"
SEED = ["favorite_color", "id", "first_name", "email", "net_worth", "fav_number", "ip_address",
        "updated_at"]  # fmt: skip
EVERY_ROW = {"kind": "expression", "expression": "false"}
DBT_CUSTOM: dict[str, tuple[dict[str, Any], bool, str]] = {
    "not_null_table_copy_email": (dbt("not_null", COPY, "email"), False,
                                  "SELECT * FROM table_copy WHERE email IS NULL"),
    "unique_table_copy_id": (dbt("unique", COPY, "id"), True,
                             "SELECT id FROM table_copy WHERE id IS NOT NULL GROUP BY id "
                             "HAVING count(*) > 1"),
    "every_value_is_blue_table_copy_favorite_color": (
        {"kind": "expression", "table": COPY, "expression": "favorite_color = 'blue'"}, False,
        "SELECT * FROM table_copy WHERE favorite_color != 'blue'"),
    "rejected_values_table_copy_favorite_color": (
        {"kind": "expression", "table": COPY,
         "expression": "favorite_color NOT IN ('orange', 'purple')"}, True,
        "SELECT * FROM table_copy WHERE favorite_color IN ('orange', 'purple')"),
    # the macro compares every column of the model (the seed's, refaudit's `_rid` aside)
    "local_dep_equality_table_copy": ({"kind": "equality", "table": COPY, "columns": SEED,
                                       "to": {"table": COPY}}, True,
                                      "(SELECT * FROM table_copy EXCEPT SELECT * FROM table_copy)"
                                      " UNION ALL (SELECT * FROM table_copy EXCEPT "
                                      "SELECT * FROM table_copy)"),
    # custom_configs: a test of every row, configured to pass
    "where_table_copy": (EVERY_ROW | {"table": COPY, "expression": "NOT (1 = 0)"}, True,
                         "SELECT * FROM (SELECT * FROM table_copy WHERE 1 = 0) t"),
    "error_if_table_copy": (EVERY_ROW | {"table": COPY, "threshold": {"min_count": 1}}, True,
                            "SELECT * FROM table_copy"),
    "warn_if_table_copy": (EVERY_ROW | {"table": COPY, "severity": "warn",
                                        "threshold": {"min_count": 1}}, True,
                           "SELECT * FROM table_copy"),
    "relationships_table_copy_id__id__ref_table_copy_": (
        dbt("reference", COPY, "id", target={"table": COPY, "column": "id"}), True,
        "SELECT * FROM (SELECT id FROM table_copy WHERE 1=1 AND id IS NOT NULL) child "
        "LEFT JOIN table_copy parent ON child.id = parent.id WHERE parent.id IS NULL"),
    "where_table_copy_another_one": (EVERY_ROW | {"table": "table_copy_another_one", "where": {
        "column": "favorite_color", "eq": "red"}}, True,
        'SELECT * FROM (SELECT * FROM table_copy_another_one WHERE "favorite_color" = '
        "'red') t"),
    "where_table_copy_with_dots": (EVERY_ROW | {"table": '"table.copy.with.dots"',
                                                "expression": "NOT (1 = 0)"}, True,
                                   'SELECT * FROM (SELECT * FROM "table.copy.with.dots" '
                                   "WHERE 1 = 0) t"),
}  # fmt: skip


def test_dbt_core_custom_tests(peer_fixtures: str, tmp_path: Path) -> None:
    """dbt-core's custom generic tests on its seed: dbt's verdict, and dbt's failure count
    (the rows of the macro's own query, run here) as refaudit's count of findings."""
    import psycopg2

    execute(peer_fixtures, """
        CREATE TABLE IF NOT EXISTS table_copy_another_one AS SELECT * FROM table_copy;
        CREATE TABLE IF NOT EXISTS "table.copy.with.dots" AS SELECT * FROM table_copy;
    """)  # fmt: skip
    tables = {COPY: "_rid", "table_copy_another_one": "_rid", '"table.copy.with.dots"': "_rid"}
    suite = Suite.model_validate({
        "suite": "dbt_custom",
        "tables": {t: {"key": k} for t, k in tables.items()},
        "checks": [c | {"id": i} for i, (c, _, _) in DBT_CUSTOM.items()],
    })  # fmt: skip
    result = run_audit(as_url(peer_fixtures), suite, tmp_path / "run",
                       options=AuditOptions(record_history=False))  # fmt: skip
    by_id = {c.id: c for c in result.checks}
    with psycopg2.connect(peer_fixtures) as conn, conn.cursor() as cur:
        counts = {}
        for i, (_, _, sql) in DBT_CUSTOM.items():
            cur.execute(f"SELECT count(*) FROM ({sql}) q")
            counts[i] = cur.fetchone()[0]  # type: ignore[index]
    conn.close()
    configured = {"error_if_table_copy", "warn_if_table_copy"}  # a count dbt's config accepts
    assert {i: by_id[i].status == "passed" for i in DBT_CUSTOM} == {
        i: passes for i, (_, passes, _) in DBT_CUSTOM.items()
    }
    assert {i: by_id[i].violations for i in DBT_CUSTOM} == counts
    assert all(counts[i] > 0 for i in configured)
    assert counts["not_null_table_copy_email"] > 0
