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
CREATE TABLE gx_match_regex (pk_index int PRIMARY KEY, a text, b text, c text);
INSERT INTO gx_match_regex VALUES (0, 'aaa', 'aaa', NULL), (1, 'abb', 'abb', NULL),
    (2, 'acc', 'acc', NULL), (3, 'add', 'bdd', NULL), (4, 'bee', NULL, NULL);
"""

TABLES = {"data_test_accepted_range": "_rid", "data_test_not_accepted_values": "_rid",
          "test_not_empty_string_failing": "id", "test_not_empty_string_passing": "id",
          "gx_match_regex": "pk_index"}  # fmt: skip


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


@pytest.fixture(scope="module")
def peer_fixtures(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("peer_fixtures")
    execute(uri, FIXTURES)
    return uri


def test_the_peers_cases_give_the_peers_answers(peer_fixtures: str, tmp_path: Path) -> None:
    suite = Suite.model_validate({
        "suite": "peers", "tables": {t: {"key": k} for t, k in TABLES.items()},
        "checks": [c | {"id": i} for i, (c, _, _) in CASES.items()],
    })  # fmt: skip
    result = run_audit(as_url(peer_fixtures), suite, tmp_path / "run",
                       options=AuditOptions(record_history=False))  # fmt: skip
    with (tmp_path / "run" / "violations.csv").open(encoding="utf-8", newline="") as f:
        keys: dict[str, set[str]] = {}
        for r in csv.DictReader(f):
            keys.setdefault(r["check"], set()).add(r["key"])
    got = {c.id: (c.status == "passed", keys.get(c.id, set())) for c in result.checks}
    assert got == {i: (passes, found) for i, (_, passes, found) in CASES.items()}
