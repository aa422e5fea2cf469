"""Whatever a violating value holds, the run's files stay whole and readable: a value of any
length goes whole into violations.csv and back in through --baseline; junit.xml is
well-formed XML with control characters in the values; report.html shortens long values
visibly and stays small."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from junitparser import Failure, JUnitXml
from refaudit.errors import ExitCode

from tests.conftest import execute
from tests.test_cli import refaudit

LONG = 300_000  # over the csv module's default field limit (131,072)
CONTROL = "bad\x01tag\x1b[31m\x7f\x0b"

SUITE = """
suite: notes
tables:
  notes: {key: id}
checks:
  - id: notes.body.pattern
    kind: pattern
    table: notes
    column: body
    regex: '^short$'
  - id: notes.tag.in_set
    kind: in_set
    table: notes
    column: tag
    values: [good]
"""


@pytest.fixture(scope="module")
def notes_db(new_database, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path, str]:  # type: ignore[no-untyped-def]
    uri = new_database("values")
    execute(
        uri,
        "CREATE TABLE notes (id int PRIMARY KEY, body text, tag text);"
        "INSERT INTO notes VALUES (1, 'short', 'good'),"
        # a long value with everything CSV quotes: commas, quotes, newlines
        f" (2, repeat('a,\"b\"' || chr(10), {LONG // 7}) || 'end', 'good'),"
        f" (3, 'short', {_sql(CONTROL)}),"
        f" (4, {_sql('x' + CONTROL)}, 'good')",
    )
    suite = tmp_path_factory.mktemp("suite") / "notes.yml"
    suite.write_text(SUITE)
    body = "".join(['a,"b"\n'] * (LONG // 7)) + "end"
    return uri, suite, body


def _sql(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _violations(out: Path) -> list[dict[str, str]]:
    csv.field_size_limit(2**31 - 1)  # the reader of this test, not refaudit's
    with (out / "violations.csv").open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


@pytest.mark.parametrize("baseline_first", [False, True])
def test_long_and_control_values_survive_every_output(
    tmp_path: Path, notes_db: tuple[str, Path, str], baseline_first: bool
) -> None:
    uri, suite, body = notes_db
    args = ("run", "--db", uri, "--suite", str(suite), "--no-history", "--quiet")
    first = tmp_path / "first"
    if baseline_first:  # violations as Python objects (with a baseline), not PostgreSQL's lines
        empty = tmp_path / "empty.csv"
        empty.write_text("check,table,key,column,value\n")
        proc = refaudit(*args, "--out", str(first), "--baseline", str(empty))
    else:
        proc = refaudit(*args, "--out", str(first))
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr

    # violations.csv: every value whole
    values = {(v["check"], v["key"]): v["value"] for v in _violations(first)}
    assert values[("notes.body.pattern", "2")] == body
    assert values[("notes.tag.in_set", "3")] == CONTROL
    assert values[("notes.body.pattern", "4")] == "x" + CONTROL

    # junit.xml: well-formed, the control characters visible as escapes
    ET.parse(first / "junit.xml")
    cases = {c.name: c for s in JUnitXml.fromfile(str(first / "junit.xml")) for c in s}
    failure = cases["notes.tag.in_set"].result[0]
    assert isinstance(failure, Failure)
    assert "bad\\x01tag\\x1b[31m\x7f\\x0b" in (failure.text or "")  # DEL is allowed
    assert (first / "junit.xml").stat().st_size < 20_000

    # report.html: small, the long value shortened with a visible note
    report = (first / "report.html").read_text(encoding="utf-8")
    assert len(report) < 200_000
    assert f"[{len(body):,} characters; whole in violations.csv]" in report
    assert body not in report and body[:5000] not in report

    # the baseline reads the long value back: every violation is known, nothing new
    again = tmp_path / "again"
    proc = refaudit(*args, "--out", str(again), "--baseline", str(first / "violations.csv"))
    assert proc.returncode == ExitCode.PASSED, proc.stderr
    doc = json.loads((again / "results.json").read_text())
    assert (doc["baseline"]["known"], doc["baseline"]["new"]) == (3, 0)
    assert {v["baseline"] for v in _violations(again)} == {"known"}
