"""Data-driven check cases: each file in tests/cases/ holds checks, optional `setup` rows
shared by its cases, and named cases (rows in, violations expected, with their diagnosis;
optionally `rows_checked` and `status` per check).
`pytest -k reference` runs one family."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from refaudit.db import create_engine, read_only_snapshot
from refaudit.engine import run_checks
from refaudit.results import CheckResult
from refaudit.sink import ViolationSink
from refaudit.suite import Suite

from tests.conftest import FIXTURES, as_url, execute

CASES_DIR = Path(__file__).parent / "cases"
TABLES = [
    "session_requests",
    "tutor_packages",
    "parent_profiles",
    "student_profiles",
    "tutor_profiles",
    "users",
]


def _load() -> list[Any]:
    params = []
    for path in sorted(CASES_DIR.glob("*.yml")):
        doc = yaml.safe_load(path.read_text())
        for case in doc["cases"]:
            params.append(pytest.param(path.stem, doc, case, id=f"{path.stem}-{case['name']}"))
    return params


@pytest.fixture(scope="module")
def case_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("cases")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text())
    return uri


def run_case(
    uri: str, doc: dict[str, Any], case: dict[str, Any]
) -> tuple[list[dict[str, str]], dict[str, CheckResult]]:
    """violations.csv's lines and each check's result."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY")
            for stmt in case.get("ddl", []):
                cur.execute(stmt)
            if doc.get("setup"):
                cur.execute(doc["setup"])  # rows every case of the file shares
            cur.execute(case["rows"])
        conn.commit()
    finally:
        conn.close()
    suite = Suite.model_validate(
        {
            "suite": "cases",
            "tables": {t: {"key": "id"} for t in TABLES},
            "key_spaces": {
                "users": {"table": "users", "key": "id", "attributes": ["email", "phone"]}
            },
            "checks": doc["checks"],
        }
    )
    engine = create_engine(as_url(uri))
    buf = io.StringIO()
    try:
        with read_only_snapshot(engine) as (conn2, _):
            results = run_checks(conn2, suite, ViolationSink(buf))
    finally:
        engine.dispose()
        if case.get("teardown"):
            execute(uri, case["teardown"])
    import csv

    buf.seek(0)
    return list(csv.DictReader(buf)), {r.id: r for r in results}


@pytest.mark.parametrize(("family", "doc", "case"), _load())
def test_case(case_db: str, family: str, doc: dict[str, Any], case: dict[str, Any]) -> None:
    got, results = run_case(case_db, doc, case)
    for check_id, n in (case.get("rows_checked") or {}).items():
        assert results[check_id].rows_checked == n, f"{case['name']}: rows_checked of {check_id}"
    for check_id, status in (case.get("status") or {}).items():
        assert results[check_id].status == status, f"{case['name']}: status of {check_id}"
    expected = case.get("expect") or []
    assert sorted((g["check"], g["key"]) for g in got) == sorted(
        (e["check"], str(e["key"])) for e in expected
    ), f"{family}/{case['name']}: {got}"
    for e in expected:
        line = next(
            g
            for g in got
            if g["check"] == e["check"]
            and g["key"] == str(e["key"])
            and g["column"] == str(e.get("column", g["column"]))
        )
        for field in ("column", "value", "diagnosis", "proposed_value", "confidence"):
            if field in e:
                assert line[field] == str(e[field]), f"{case['name']}: {field} of {line}"
        if "evidence" in e:
            assert e["evidence"] in line["evidence"], f"{case['name']}: evidence of {line}"
