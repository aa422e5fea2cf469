"""dbt-utils' tests that compare rows with other rows, on dbt-utils' own seeds, give dbt-utils'
answers under refaudit: `equal_rowcount`, `fewer_rows_than`, `equality`,
`mutually_exclusive_ranges`, `sequential_values`.

The cases are dbt-utils' (github.com/dbt-labs/dbt-utils, `integration_tests/models/
generic_tests/schema.yml` and `integration_tests/data/schema_tests/schema.yml`, on the seeds
in `integration_tests/data/schema_tests/` and the models over them), plus the same macros on
the same seeds where they fail (`*_fails`). dbt's `error_if: "<1"` (a test whose failures are
expected) is `threshold.min_count: 1`. Each case says whether dbt passes it and the count dbt
reports (its `fail_calc`), which refaudit's findings reproduce.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path
from typing import Any

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.gx_export import export_suite, run_with_gx, write_export
from refaudit.suite import Suite

from tests.conftest import as_url, execute

SEEDS = """
CREATE TABLE data_test_equal_rowcount (_rid int PRIMARY KEY, field int);
INSERT INTO data_test_equal_rowcount VALUES (1, 1), (2, 1), (3, 2);
CREATE VIEW test_equal_rowcount AS SELECT field FROM data_test_equal_rowcount;
CREATE TABLE data_test_fewer_rows_than_table_1 (_rid int PRIMARY KEY, col_a int, field int);
INSERT INTO data_test_fewer_rows_than_table_1 VALUES (1, 1, 1), (2, 1, 2), (3, 1, 3);
CREATE TABLE data_test_fewer_rows_than_table_2 (_rid int PRIMARY KEY, col_a int, field int);
INSERT INTO data_test_fewer_rows_than_table_2 VALUES (1, 1, 1), (2, 1, 2), (3, 1, 3), (4, 1, 4);
CREATE VIEW test_fewer_rows_than AS SELECT col_a, field FROM data_test_fewer_rows_than_table_1;
CREATE TABLE data_test_equality_a (_rid int PRIMARY KEY, col_a int, col_b int, col_c int);
INSERT INTO data_test_equality_a VALUES (1, 1, 1, 3), (2, 1, 2, 1), (3, 2, 3, 3);
CREATE TABLE data_test_equality_b (_rid int PRIMARY KEY, col_a int, col_b int, col_c int);
INSERT INTO data_test_equality_b VALUES (1, 1, 1, 2), (2, 1, 2, 2), (3, 2, 3, 2);
CREATE VIEW equality_less_columns AS SELECT col_a, col_b FROM data_test_equality_b;
CREATE TABLE data_test_equality_floats_a (_rid int PRIMARY KEY, id text, float_number float8);
CREATE TABLE data_test_equality_floats_b (_rid int PRIMARY KEY, id text, float_number float8);
CREATE TABLE data_test_equality_floats_columns_a (_rid int PRIMARY KEY, id text,
    float_number float8, to_ignore text);
CREATE TABLE data_test_equality_floats_columns_b (_rid int PRIMARY KEY, id text,
    float_number float8, to_ignore text);
CREATE TABLE data_test_mutually_exclusive_ranges_no_gaps (_rid int PRIMARY KEY,
    lower_bound int, upper_bound int);
INSERT INTO data_test_mutually_exclusive_ranges_no_gaps VALUES (1, 0, 1), (2, 1, 2), (3, 2, 4);
CREATE TABLE data_test_mutually_exclusive_ranges_with_gaps (_rid int PRIMARY KEY,
    subscription_id int, valid_from date, valid_to date);
INSERT INTO data_test_mutually_exclusive_ranges_with_gaps VALUES
    (1, 1, '2019-01-01', '2019-02-01'), (2, 1, '2019-03-03', '2019-04-01'),
    (3, 2, '2019-05-06', '2019-07-02'), (4, 2, '2019-07-03', NULL);
CREATE TABLE data_test_mutually_exclusive_ranges_with_gaps_zero_length (_rid int PRIMARY KEY,
    subscription_id int, valid_from date, valid_to date);
INSERT INTO data_test_mutually_exclusive_ranges_with_gaps_zero_length VALUES
    (1, 3, '2020-05-06', '2020-05-07'), (2, 3, '2020-05-08', '2020-05-10'),
    (3, 3, '2020-05-08', '2020-05-08'), (4, 3, '2020-05-12', '2020-05-15'),
    (5, 4, '2020-06-06', '2020-06-07'), (6, 4, '2020-06-08', '2020-06-08'),
    (7, 4, '2020-06-09', '2020-06-10');
CREATE TABLE data_test_sequential_timestamps (_rid int PRIMARY KEY, my_timestamp timestamp);
INSERT INTO data_test_sequential_timestamps VALUES (1, '2021-01-01 00:00:00'),
    (2, '2021-01-01 01:00:00'), (3, '2021-01-01 02:00:00'), (4, '2021-01-01 03:00:00');
CREATE TABLE data_test_sequential_values (_rid int PRIMARY KEY, col_a int,
    my_even_sequence int);
INSERT INTO data_test_sequential_values VALUES (1, 1, 2), (2, 1, 4), (3, 1, 6), (4, 2, 8),
    (5, 2, 10);
"""

FLOATS = [
    ("05ac09c4-f947-45a8-8c14-88f430f8b294", "62.3888186"),
    ("cfae9054-940b-42a1-84d4-052daae6194f", "81.2511656"),
    ("6029501d-c274-49f2-a69d-4c75a3d9931d", "23.3959675"),
    ("c653e520-df81-4a5f-b44b-bb1b4c1b7846", "72.2100841"),
    ("59caed0d-53d6-473c-a88c-3726c7693f05", "68.6029434"),
    ("b441f6a0-ce7f-4ad9-b96b-b41d73a94ae7", "72.7861425"),
    ("26491840-bfd4-4496-9ca9-ad9220a2de47", "35.3662223"),
    ("b4f233ce-a494-4bb6-9cf2-73bb6854e58a", "89.152468"),
    ("11c979b7-2661-4375-8143-7c9b54b90627", "19.5755431"),
    ("a8057f73-312e-48e6-b344-f4a510a2c4a8", "22.9237047"),
]
"""The float seeds: `_b` holds each number plus 1e-7, the `columns` seeds the same numbers
with `to_ignore` 'a' on one side and 'b' on the other."""


def float_rows(table: str, shift: str, extra: str = "") -> str:
    rows = ", ".join(
        f"({i}, '{id_}', {number}{shift}{extra})" for i, (id_, number) in enumerate(FLOATS, 1)
    )
    return f"INSERT INTO {table} VALUES {rows};"


FIXTURES = "\n".join([
    SEEDS,
    float_rows("data_test_equality_floats_a", ""),
    float_rows("data_test_equality_floats_b", " + 0.0000001"),
    float_rows("data_test_equality_floats_columns_a", "", ", 'a'"),
    float_rows("data_test_equality_floats_columns_b", "", ", 'b'"),
])  # fmt: skip

EQ_A, EQ_B = "data_test_equality_a", "data_test_equality_b"
FL_A, FL_B = "data_test_equality_floats_a", "data_test_equality_floats_b"
FC_A, FC_B = "data_test_equality_floats_columns_a", "data_test_equality_floats_columns_b"
FEWER_1, FEWER_2 = "data_test_fewer_rows_than_table_1", "data_test_fewer_rows_than_table_2"
EXPECTED_FAILURES = {"min_count": 1}  # error_if: "<1", warn_if: "<0"


def check(check_id: str, kind: str, table: str, **keys: Any) -> dict[str, Any]:
    return {"id": check_id, "kind": kind, "table": table, **keys}


def ranges(check_id: str, table: str, **keys: Any) -> dict[str, Any]:
    return check(check_id, "mutually_exclusive_ranges", table, **(
        {"lower": "valid_from", "upper": "valid_to", "partition_by": ["subscription_id"]}
        | keys))  # fmt: skip


NO_GAPS = "data_test_mutually_exclusive_ranges_no_gaps"
WITH_GAPS = "data_test_mutually_exclusive_ranges_with_gaps"
ZERO_LENGTH = "data_test_mutually_exclusive_ranges_with_gaps_zero_length"

CASES: dict[str, tuple[dict[str, Any], bool, int]] = {
    # check id -> (the check, whether dbt passes it, the count dbt reports)
    # equal_rowcount: the model test_equal_rowcount against itself
    "equal_rowcount": (check("", "equal_rowcount", "test_equal_rowcount",
                             to={"table": "test_equal_rowcount"}), True, 0),
    "equal_rowcount_by_field": (check("", "equal_rowcount", "test_equal_rowcount",
                                      to={"table": "test_equal_rowcount"}, group_by=["field"]),
                                True, 0),
    "equal_rowcount_fails": (check("", "equal_rowcount", FEWER_1, to={"table": FEWER_2}),
                             False, 1),
    "equal_rowcount_by_col_a_fails": (check("", "equal_rowcount", FEWER_1,
                                            to={"table": FEWER_2}, group_by=["col_a"]), False, 1),
    "equal_rowcount_where": (check("", "equal_rowcount", FEWER_1, to={
        "table": FEWER_2, "where": {"column": "field", "lt": 4}}), True, 0),
    # fewer_rows_than: the model test_fewer_rows_than (table 1's rows) against table 2
    "fewer_rows_than": (check("", "fewer_rows_than", "test_fewer_rows_than",
                              than={"table": FEWER_2}), True, 0),
    "fewer_rows_than_by_col_a": (check("", "fewer_rows_than", "test_fewer_rows_than",
                                       than={"table": FEWER_2}, group_by=["col_a"]), True, 0),
    "fewer_rows_than_more_fails": (check("", "fewer_rows_than", FEWER_2,
                                         than={"table": FEWER_1}), False, 1),
    "fewer_rows_than_as_many_fails": (check("", "fewer_rows_than", FEWER_1,
                                            than={"table": "test_fewer_rows_than"}), False, 1),
    # equality (every column of the seeds is named: `_rid` is not the seeds')
    "equality_self": (check("", "equality", EQ_A, to={"table": EQ_A},
                            columns=["col_a", "col_b", "col_c"]), True, 0),
    "equality_all_columns": (check("", "equality", EQ_A, to={"table": EQ_B},
                                   columns=["col_a", "col_b", "col_c"],
                                   threshold=EXPECTED_FAILURES), True, 6),
    "equality_compare_columns": (check("", "equality", EQ_A, to={"table": EQ_B},
                                       columns=["col_a", "col_b"]), True, 0),
    "equality_exclude_col_c": (check("", "equality", EQ_A, to={"table": EQ_B},
                                     columns=["col_a", "col_b"]), True, 0),
    "equality_less_columns": (check("", "equality", "equality_less_columns",
                                    to={"table": EQ_A}, columns=["col_a", "col_b"]), True, 0),
    "equality_precision_4": (check("", "equality", FL_A, to={"table": FL_B},
                                   columns=["id", "float_number"], precision=4), True, 0),
    "equality_precision_8": (check("", "equality", FL_A, to={"table": FL_B},
                                   columns=["id", "float_number"], precision=8,
                                   threshold=EXPECTED_FAILURES), True, 20),
    "equality_columns_precision_4": (check("", "equality", FC_A, to={"table": FC_B},
                                           columns=["id", "float_number"], precision=4),
                                     True, 0),
    "equality_exclude_to_ignore_precision_4": (check("", "equality", FC_A, to={"table": FC_B},
                                                     columns=["id", "float_number"],
                                                     precision=4), True, 0),
    "equality_all_precision_4": (check("", "equality", FC_A, to={"table": FC_B},
                                       columns=["id", "float_number", "to_ignore"],
                                       precision=4, threshold=EXPECTED_FAILURES), True, 20),
    "equality_no_precision_fails": (check("", "equality", FL_A, to={"table": FL_B},
                                          columns=["id", "float_number"]), False, 20),
    # mutually_exclusive_ranges
    "ranges_no_gaps": (check("", "mutually_exclusive_ranges", NO_GAPS, lower="lower_bound",
                             upper="upper_bound", gaps="not_allowed"), True, 0),
    "ranges_with_gaps_allowed": (ranges("", WITH_GAPS, unbounded_upper=True), True, 0),
    "ranges_with_gaps_required": (ranges("", WITH_GAPS, unbounded_upper=True,
                                         gaps="required"), True, 0),
    "ranges_zero_length_allowed": (ranges("", ZERO_LENGTH, zero_length_allowed=True), True, 0),
    "ranges_gaps_required_fails": (check("", "mutually_exclusive_ranges", NO_GAPS,
                                         lower="lower_bound", upper="upper_bound",
                                         gaps="required"), False, 2),
    "ranges_zero_length_fails": (ranges("", ZERO_LENGTH), False, 2),
    "ranges_open_end_fails": (ranges("", WITH_GAPS), False, 1),  # no coalesce: NULL fails
    "ranges_no_gaps_fails": (ranges("", WITH_GAPS, unbounded_upper=True, gaps="not_allowed"),
                             False, 2),
    # sequential_values
    "sequential_values": (check("", "sequential_values", "data_test_sequential_values",
                                column="my_even_sequence", interval=2), True, 0),
    "sequential_values_by_col_a": (check("", "sequential_values",
                                         "data_test_sequential_values",
                                         column="my_even_sequence", interval=2,
                                         group_by=["col_a"]), True, 0),
    "sequential_timestamps": (check("", "sequential_values", "data_test_sequential_timestamps",
                                    column="my_timestamp", interval=1, datepart="hour"), True, 0),
    "sequential_values_step_1_fails": (check("", "sequential_values",
                                             "data_test_sequential_values",
                                             column="my_even_sequence"), False, 4),
    "sequential_timestamps_minutes_fails": (check("", "sequential_values",
                                                  "data_test_sequential_timestamps",
                                                  column="my_timestamp", interval=60,
                                                  datepart="second"), False, 3),
}  # fmt: skip

VIEWS = {"test_equal_rowcount": "field", "test_fewer_rows_than": "field",
         "equality_less_columns": "col_a"}  # fmt: skip
"""dbt-utils' models over the seeds, and a key for each (no check here reads it)."""


def suite() -> dict[str, Any]:
    checks = [c | {"id": i} for i, (c, _, _) in CASES.items()]
    tables = {t for c in checks for t in (c["table"], *(
        c[k]["table"] for k in ("to", "than") if k in c))}  # fmt: skip
    return {"suite": "dbt_utils", "checks": checks,
            "tables": {t: {"key": VIEWS.get(t, "_rid")} for t in sorted(tables)}}  # fmt: skip


def dbt_count(kind: str, findings: list[dict[str, str]]) -> int:
    """The count dbt-utils reports for these findings (its `fail_calc`): rows returned for the
    row tests; for `equality`, `count(*) + abs(a_minus_b - b_minus_a)` over its sets of values;
    for the row counts, the differences (an equal count failing `fewer_rows_than`: 1)."""
    if kind in ("mutually_exclusive_ranges", "sequential_values"):
        return len(findings)
    if kind == "equality":
        a_minus_b = sum(f["value"] == f"only in {f['table']}" for f in findings)
        return len(findings) + abs(a_minus_b - (len(findings) - a_minus_b))
    total = 0
    for f in findings:
        there = int(re.match(r"(\d+) rows? in ", f["evidence"]).group(1))  # type: ignore[union-attr]
        here = int(f["value"])
        total += abs(here - there) if kind == "equal_rowcount" else max(here - there, 1)
    return total


@pytest.fixture(scope="module")
def dbt_utils_seeds(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("dbt_utils_seeds")
    execute(uri, FIXTURES)
    return uri


def test_dbt_utils_cases_give_dbt_utils_answers(dbt_utils_seeds: str, tmp_path: Path) -> None:
    result = run_audit(as_url(dbt_utils_seeds), Suite.model_validate(suite()), tmp_path / "run",
                       options=AuditOptions(record_history=False))  # fmt: skip
    with (tmp_path / "run" / "violations.csv").open(encoding="utf-8", newline="") as f:
        found: dict[str, list[dict[str, str]]] = {}
        for r in csv.DictReader(f):
            found.setdefault(r["check"], []).append(r)
    got = {c.id: (c.status == "passed", dbt_count(c.family, found.get(c.id, [])))
           for c in result.checks}  # fmt: skip
    assert got == {i: (passes, count) for i, (_, passes, count) in CASES.items()}


def test_great_expectations_agrees_on_the_exported_cases(
    dbt_utils_seeds: str, tmp_path: Path
) -> None:
    """Each kind exports (`equal_rowcount` as GX's own expectation, the others as the
    engine's SQL) and GX fails exactly the checks refaudit finds something in."""
    export = export_suite(Suite.model_validate(suite()))
    types = {e["meta"]["refaudit_check"]: e["type"] for s in export.suites for e in s.expectations}
    assert types["equal_rowcount"] == "expect_table_row_count_to_equal_other_table"
    assert types["equal_rowcount_by_field"] == "unexpected_rows_expectation"
    assert export.not_exported == []
    write_export(export, tmp_path)
    gx = run_with_gx(as_url(dbt_utils_seeds).render_as_string(hide_password=False), tmp_path)
    assert gx.broken == {}
    assert gx.failed == {i for i, (_, _, count) in CASES.items() if count}
