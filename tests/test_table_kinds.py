"""Table-level kinds on the engine's stages: what a kind declares (stage, scope) is what the
engine runs and every output says; an aggregate check costs no scan of its own (one
statement per table and grouping); expressions are refused before a row is read; the GX
export maps each kind to GX's own expectation, and GX agrees on the peers' fixtures."""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from pydantic import ValidationError
from refaudit.audit import check_suite
from refaudit.checks import KINDS
from refaudit.checks.base import Violation
from refaudit.checks.stage import STAGES
from refaudit.db import create_engine, read_only_snapshot
from refaudit.engine import run_checks
from refaudit.errors import SuiteError
from refaudit.gx_export import export_suite, run_with_gx, write_export
from refaudit.outputs import junit_message, render_report
from refaudit.plan import plan_aggregates
from refaudit.results import CheckResult
from refaudit.sink import ViolationSink
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.reports import fabricated_result
from tests.test_peer_semantics import FIXTURES
from tests.test_peer_semantics import SUITE as PEERS


def suite_of(*checks: dict[str, Any], tables: tuple[str, ...] = ("t",)) -> Suite:
    return Suite.model_validate(
        {"suite": "s", "tables": {t: {"key": "id"} for t in tables}, "checks": list(checks)}
    )


def test_every_kind_declares_one_of_the_stages() -> None:
    for kind in KINDS:
        assert kind.stage in STAGES, kind


def test_aggregates_of_a_table_are_one_statement_per_grouping() -> None:
    suite = suite_of(
        {"id": "a", "kind": "row_count", "table": "t", "min": 1},
        {"id": "b", "kind": "not_constant", "table": "t", "column": "x"},
        {"id": "c", "kind": "not_null_proportion", "table": "t", "column": "y",
         "at_least": 0.5, "where": {"column": "z", "eq": 1}},
        {"id": "d", "kind": "at_least_one", "table": "t", "column": "x", "group_by": ["g"]},
        {"id": "e", "kind": "freshness", "table": "t", "column": "ts", "max_age": "2 days",
         "group_by": ["g"]},
    )  # fmt: skip
    plans = plan_aggregates(suite)
    assert [(p.table, p.grouping, [c.id for c in p.checks]) for p in plans] == [
        ("t", (), ["a", "b", "c"]),
        ("t", ("g",), ["d", "e"]),
    ]
    sql = str(plans[0].statement())
    assert sql.count("FROM") == 1 and "FILTER (WHERE t.z = " in sql
    assert "GROUP BY t.g" in str(plans[1].statement())


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({"kind": "expression", "expression": "x = (SELECT 1)"}, "subquer"),
        ({"kind": "expression", "expression": "other.x = 1"}, "other"),
        ({"kind": "expression", "expression": "x = 1; DROP TABLE t"}, "one expression"),
        ({"kind": "row_count", "min": 5, "max": 2}, "min 5 is above max 2"),
        ({"kind": "row_count"}, "needs `min:` or `max:`"),
        ({"kind": "freshness", "column": "ts", "max_age": "soon"}, "not an age"),
        ({"kind": "not_null_proportion", "column": "x", "at_least": 0.9, "at_most": 0.1},
         "at_least 0.9 is above at_most 0.1"),
        ({"kind": "not_constant", "column": "x", "threshold": {"max_rate": 0.1}},
         "findings are about the table; use `max_count`"),
        ({"kind": "not_null", "columns": ["x"], "threshold": {"min_count": 3, "max_count": 1}},
         "min_count 3 is above max_count 1"),
        ({"kind": "not_null", "columns": ["x"], "threshold": {"min_rate": 0.3, "max_rate": 0.1}},
         "min_rate 0.3 is above max_rate 0.1"),
        ({"kind": "not_constant", "column": "x", "threshold": {"min_rate": 0.1}},
         "findings are about the table; use `min_count`"),
    ],
)  # fmt: skip
def test_a_check_that_cannot_be_run_is_refused_on_load(check: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError) as info:
        suite_of({"id": "c", "table": "t", **check})
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("violations", "min_count", "max_count", "over"),
    [(0, 1, None, True), (1, 1, None, False), (5, 1, None, False), (3, 1, 2, True),
     (2, 1, 2, False), (0, None, None, False), (1, None, None, True), (0, 0, None, False)],
)  # fmt: skip
def test_min_count_fails_too_few_findings(
    violations: int, min_count: int | None, max_count: int | None, over: bool
) -> None:
    r = CheckResult("c", "k", "t", [], "error", "", 10, violations, max_count=max_count,
                    min_count=min_count)  # fmt: skip
    assert r.over_threshold is over


def test_a_finding_about_the_table_reads_as_one() -> None:
    r = CheckResult("c", "row_count", "t", [], "error", "", 4, 1, scope="table",
                    stage="aggregate", sample=[{"key": "", "table": "t"}])  # fmt: skip
    r.settle()
    assert r.rate == 0 and r.status == "failed"
    assert junit_message(r) == "c: 1 finding about the table (4 rows); threshold 0"
    rows = CheckResult("c", "not_null", "t", [], "error", "", 4, 1, sample=[{"key": "7"}])
    assert junit_message(rows) == "c: 1 violation in 4 rows (25.00%); threshold 0; keys 7"


def test_volatile_and_unknown_functions_are_refused_before_a_row_is_read(
    new_database: Any,
) -> None:
    uri = new_database("expressions")
    execute(uri, "CREATE TABLE t (id int PRIMARY KEY, x int, ts timestamptz)")
    url = as_url(uri)
    ok = suite_of({"id": "c", "kind": "expression", "table": "t", "expression": "ts <= now()"})
    assert check_suite(ok, url).database is not None  # stable: accepted
    for text, said in [("x > random() * 10", "volatile"), ("no_such_fn(x) = 1", "no_such_fn")]:
        bad = suite_of({"id": "c", "kind": "expression", "table": "t", "expression": text})
        with pytest.raises(SuiteError) as info:
            check_suite(bad, url)
        assert "check c: expression" in str(info.value) and said in str(info.value)
        assert "\n" not in str(info.value)


def test_the_gx_export_maps_each_table_kind_to_gx_and_gx_agrees(
    new_database: Any, tmp_path: Path
) -> None:
    kinds = {"not_constant", "at_least_one", "not_null_proportion", "cardinality_equality",
             "expression", "freshness"}  # fmt: skip
    checks = [c for c in PEERS["checks"] if c["kind"] in kinds]
    checks.append({"id": "rows_of_a", "kind": "row_count", "table": "data_cardinality_equality_a",
                   "min": 4})  # fmt: skip
    checks.append({"id": "rows_of_b", "kind": "row_count", "table": "data_cardinality_equality_b",
                   "min": 1, "max": 3})  # fmt: skip
    suite = Suite.model_validate({**PEERS, "checks": checks})
    export = export_suite(suite)
    types = {e["meta"]["refaudit_check"]: e["type"] for s in export.suites for e in s.expectations}
    assert types["not_constant"] == "expect_column_unique_value_count_to_be_between"
    assert types["at_least_one"] == "expect_column_unique_value_count_to_be_between"
    assert types["rows_of_a"] == "expect_table_row_count_to_be_between"
    assert types["not_null_proportion_point_9"] == "expect_column_values_to_not_be_null"
    assert types["cardinality_equality_same_name"] == "unexpected_rows_expectation"
    assert types["expression_is_true"] == "unexpected_rows_expectation"
    skipped = {s["check"]: s["reason"] for s in export.not_exported}
    assert set(skipped) == {
        "recency", "recency_by_col1", "recency_by_col1_col2", "at_least_one_by_field",
        "not_null_proportion_point_5_by_point_9",
    }
    assert "fixed bounds" in skipped["recency"] and "groups" in skipped["at_least_one_by_field"]

    uri = new_database("gxtable")
    execute(uri, FIXTURES)
    write_export(export, tmp_path)
    gx = run_with_gx(as_url(uri).render_as_string(hide_password=False), tmp_path)
    assert gx.broken == {}
    exported = {c.id for c in suite.checks} - set(skipped)
    assert gx.failed == {
        "not_constant_col_a", "expression_is_false", "not_null_proportion_point_5_above",
        "rows_of_a",
    } and gx.failed <= exported  # fmt: skip


@pytest.fixture(scope="module")
def raising_db(new_database: Any) -> str:
    uri: str = new_database("raises")
    execute(uri, """
        CREATE TABLE t (org int, id int, a int, b int, PRIMARY KEY (org, id));
        INSERT INTO t SELECT i % 3, i, i, (i % 50) FROM generate_series(1, 2000) i;
        CREATE TABLE u (id int PRIMARY KEY, x int);
        INSERT INTO u VALUES (1, NULL), (2, 0);
        CREATE TABLE v (id int PRIMARY KEY, ts timestamp);
        INSERT INTO v VALUES (1, now() - interval '1 hour'), (2, '2001-01-01');
    """)  # fmt: skip
    return uri


@pytest.mark.parametrize("lines", [True, False])
@pytest.mark.parametrize("companion", [True, False])
def test_rows_on_which_an_expression_raises_are_its_findings(
    raising_db: str, lines: bool, companion: bool
) -> None:
    """Whether PostgreSQL writes the lines or Python builds each violation, on the snapshot's
    connection or its companion: the same findings, the audit's snapshot kept."""
    uri = raising_db
    suite = Suite.model_validate(
        {
            "suite": "s",
            "tables": {"t": {"key": ["org", "id"]}, "u": {"key": "id"}},
            "checks": [
                {"id": "ratio", "kind": "expression", "table": "t", "expression": "a / b < 60"},
                {"id": "small", "kind": "expression", "table": "t", "expression": "a < 1990"},
                {"id": "x_set", "kind": "not_null", "table": "u", "columns": ["x"]},
                {"id": "few", "kind": "row_count", "table": "t", "max": 10},
            ],
        }
    )
    seen: list[Violation] = []
    buf = io.StringIO()
    sink = ViolationSink(buf, tap=None if lines else seen.append)
    engine = create_engine(as_url(uri))
    try:
        with read_only_snapshot(engine) as (conn, _):
            results = {r.id: r for r in run_checks(conn, suite, sink, companion=companion)}
            assert conn.execute(sa.text("SELECT count(*) FROM u")).scalar_one() == 2
    finally:
        engine.dispose()
    buf.seek(0)
    found = list(csv.DictReader(buf))
    errors = [(f["key"], f["evidence"]) for f in found if f["diagnosis"] == "error"]
    # b = 0 for every 50th row: 40 rows raise, each a finding of `ratio` only
    assert errors == [(f"[{i % 3}, {i}]", "division by zero") for i in sorted(
        range(50, 2001, 50), key=lambda i: (i % 3, i))]  # fmt: skip
    assert {f["check"] for f in found if f["diagnosis"] == "error"} == {"ratio"}
    ratio = {f["key"] for f in found if f["check"] == "ratio" and not f["diagnosis"]}
    assert ratio == {f"[{i % 3}, {i}]" for i in range(1, 2001) if i % 50 and i // (i % 50) >= 60}
    assert results["ratio"].violations == 40 + len(ratio)
    assert results["small"].violations == 11 and results["x_set"].violations == 1
    assert results["few"].violations == 1 and results["few"].scope == "table"


def test_freshness_is_judged_at_the_time_the_rows_stand_for(raising_db: str) -> None:
    """The snapshot's own now() (one value for every connection), or for a saved snapshot
    audited later, the time it was taken."""
    suite = Suite.model_validate({
        "suite": "s", "tables": {"v": {"key": "id"}},
        "checks": [{"id": "fresh", "kind": "freshness", "table": "v", "column": "ts",
                    "max_age": "2 hours"}],
    })  # fmt: skip

    def run(as_of: str | None) -> list[dict[str, str]]:
        buf = io.StringIO()
        engine = create_engine(as_url(raising_db))
        try:
            with read_only_snapshot(engine) as (conn, _):
                run_checks(conn, suite, ViolationSink(buf), as_of=as_of)
        finally:
            engine.dispose()
        buf.seek(0)
        return list(csv.DictReader(buf))

    assert run(None) == []
    assert run("2001-01-01T01:30:00Z") == []  # then, the newest value was not yet old
    [stale] = run("2999-01-01T00:00:00Z")
    assert stale["key"] == "" and "old at the snapshot; at most 2 hours expected" in stale[
        "evidence"]  # fmt: skip


def test_the_report_says_a_finding_is_about_the_table(tmp_path: Path) -> None:
    result = fabricated_result(tmp_path)
    sample = {"check": "few_rows", "table": "users", "key": "", "column": "", "value": "0",
              "diagnosis": "", "proposed_value": "", "confidence": "",
              "evidence": "0 rows; at least 1 expected"}  # fmt: skip
    table = CheckResult("few_rows", "row_count", "users", [], "error", "", 0, 1, scope="table",
                        stage="aggregate", sample=[sample])  # fmt: skip
    table.settle()
    result.checks.append(table)
    html = render_report(result, "error")
    card = html[html.index('id="c-few_rows"') :]
    assert "1 finding</b> about the table (0 rows)" in card[: card.index("</article>")]
    assert "violating rows of" not in card[: card.index("</article>")]
    assert "1 about whole tables" in html
