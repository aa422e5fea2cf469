"""A table with a thousand checks: the engine splits the table's rules over several
statements (PostgreSQL allows at most 1664 columns in a select list), and every check still
counts exactly its violations."""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import pytest
import yaml
from refaudit.errors import ExitCode

from tests.conftest import execute
from tests.test_cli import refaudit

CHECKS = 1000
COLUMNS = 10
ROWS = 40


def _value(row: int, col: int) -> str | None:
    return None if (row + col) % 9 == 0 else str((row * 7 + col * 3) % 11)


def _suite() -> dict[str, object]:
    checks: list[dict[str, object]] = []
    for i in range(CHECKS):
        col = f"c{i % COLUMNS}"
        kind = ("in_set", "pattern", "not_null")[i % 3]
        check: dict[str, object] = {"id": f"wide.{col}.{kind}.{i}", "kind": kind, "table": "wide"}
        if kind == "in_set":
            check |= {"column": col, "values": [str(v) for v in range(1 + i % 11)]}
        elif kind == "pattern":
            check |= {"column": col, "regex": f"^[0-{i % 10}]$"}
        else:
            check |= {"columns": [col]}
        checks.append(check)
    return {"suite": "wide", "tables": {"wide": {"key": "id"}}, "checks": checks}


def _expected(check: dict[str, object]) -> int:
    n = 0
    for row in range(ROWS):
        if check["kind"] == "not_null":
            col = int(str(check["columns"][0])[1:])  # type: ignore[index]
        else:
            col = int(str(check["column"])[1:])
        v = _value(row, col)
        if check["kind"] == "not_null":
            n += v is None
        elif v is None:
            continue
        elif check["kind"] == "in_set":
            n += v not in check["values"]  # type: ignore[operator]
        else:
            top = int(str(check["regex"])[4])
            n += not (len(v) == 1 and int(v) <= top)
    return n


@pytest.fixture(scope="module")
def wide_db(new_database, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:  # type: ignore[no-untyped-def]
    uri = new_database("wide")
    cols = ", ".join(f"c{j} text" for j in range(COLUMNS))
    rows = ", ".join(
        "(" + ", ".join([str(r)] + [_sql(_value(r, j)) for j in range(COLUMNS)]) + ")"
        for r in range(ROWS)
    )
    execute(uri, f"CREATE TABLE wide (id int PRIMARY KEY, {cols}); INSERT INTO wide VALUES {rows}")
    path = tmp_path_factory.mktemp("suite") / "wide.yml"
    path.write_text(yaml.safe_dump(_suite(), sort_keys=False))
    return uri, path


def _sql(v: str | None) -> str:
    return "NULL" if v is None else f"'{v}'"


@pytest.mark.parametrize("with_baseline", [False, True])
def test_a_thousand_checks_on_one_table(
    tmp_path: Path, wide_db: tuple[str, Path], with_baseline: bool
) -> None:
    uri, suite = wide_db
    args = ["run", "--db", uri, "--suite", str(suite), "--out", str(tmp_path / "o"), "--quiet"]
    if with_baseline:  # violations built in Python rather than written by PostgreSQL
        (tmp_path / "b.csv").write_text("check,table,key,column,value\n")
        args += ["--baseline", str(tmp_path / "b.csv")]
    proc = refaudit(*args, "--no-history")
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    doc = json.loads((tmp_path / "o" / "results.json").read_text())
    got = {c["id"]: c["violations"] for c in doc["checks"]}
    want = {str(c["id"]): _expected(c) for c in _suite()["checks"]}  # type: ignore[union-attr]
    assert len(got) == CHECKS
    assert got == want
    assert all(c["rows_checked"] == ROWS for c in doc["checks"])
    with (tmp_path / "o" / "violations.csv").open(newline="") as f:
        lines = Counter(row["check"] for row in csv.DictReader(f))
    assert dict(lines) == {k: v for k, v in want.items() if v}
