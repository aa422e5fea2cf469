"""The two ways violations reach violations.csv write the same lines: lines written by
PostgreSQL (COPY ... csv, used when nothing needs a Python object per violation) and lines
built in Python from each row (used with a baseline or a repair plan). Both come in key
order; within one key the PostgreSQL lines follow the rules' order, the Python ones the
statement's branches. (One known difference: PostgreSQL quotes a value holding a lone
carriage return, which Python's csv module leaves bare.)"""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refaudit.checks.base import VIOLATION_FIELDS, Violation
from refaudit.db import create_engine, read_only_snapshot
from refaudit.engine import run_checks
from refaudit.sink import ViolationSink
from refaudit.suite import ROW_KINDS, Suite

from tests.conftest import FIXTURES, as_url, execute
from tests.test_gx_export import HAND_ROWS, _with_tricky

# values CSV must quote or escape, and values that look like what they are not
AWKWARD_ROWS = """
INSERT INTO session_requests (id, tutor_id, requester_id, requester_type, package_id,
    package_name, status, contact_email, contact_phone, created_at, updated_at) VALUES
 (100, 1, 1, 'student', 1, 'comma, inside', 'pending', 'a,b@c', '"+2519"', now(), now()),
 (101, 1, 1, 'student', 1, 'new
line', 'pending', 'tab	here', 'back\\slash', now(), now()),
 (102, 1, 1, 'student', 1, '', 'pending', '', 'NULL', now(), now()),
 (103, 1, 1, 'student', 1, 'ünïcødé ✓', 'pending', '\\N', ' space ', now(), now()),
 (104, 1, 1, 'student', 1, 'quote " inside', 'pending', 'x', '\\.', now(), now());
"""


def audit(
    uri: str, suite: Suite, *, lines: bool, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, ViolationSink]:
    monkeypatch.setattr(ViolationSink, "takes_lines", property(lambda self: lines))
    engine = create_engine(as_url(uri))
    buf = io.StringIO(newline="")
    try:
        with read_only_snapshot(engine) as (conn, _):
            sink = ViolationSink(buf)
            run_checks(conn, suite, sink)
    finally:
        engine.dispose()
    return buf.getvalue(), sink


def violations_csv(uri: str, suite: Suite, *, lines: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    return audit(uri, suite, lines=lines, monkeypatch=monkeypatch)[0]


def test_postgres_lines_equal_python_lines(
    new_database, suite: Suite, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    uri = new_database("lines")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text() + HAND_ROWS + AWKWARD_ROWS)
    full = _with_tricky(suite)
    python = violations_csv(uri, full, lines=False, monkeypatch=monkeypatch)
    postgres = violations_csv(uri, full, lines=True, monkeypatch=monkeypatch)
    assert python.count("\n") > 60  # the rows above break many checks
    assert sorted(lines(postgres)) == sorted(lines(python))
    # the row checks' lines: table after table, each in key order
    row_checks = {c.id for c in full.checks if c.kind in ROW_KINDS}
    keys = [
        (r["table"], int(r["key"]))
        for r in csv.DictReader(io.StringIO(postgres))
        if r["check"].removesuffix(".discriminator") in row_checks
    ]
    tables = list(dict.fromkeys(t for t, _ in keys))
    assert keys == sorted(keys, key=lambda k: (tables.index(k[0]), k[1]))


def lines(text: str) -> list[str]:
    """The CSV records of `text` (a record may span lines when a value holds a newline)."""
    return [",".join(f'"{f}"' for f in row) for row in csv.reader(io.StringIO(text))]


def test_both_paths_on_the_generated_dirty_database(
    dirty_db, suite: Suite, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    uri, truth = dirty_db
    python, by_row = audit(uri, suite, lines=False, monkeypatch=monkeypatch)
    postgres, by_line = audit(uri, suite, lines=True, monkeypatch=monkeypatch)
    assert len(lines(python)) > sum(truth.counts.values())  # plus catalog findings and header
    assert sorted(lines(postgres)) == sorted(lines(python))
    assert by_line.counts == by_row.counts
    assert by_line.diagnoses == by_row.diagnoses and len(by_row.diagnoses) > 5
    assert by_line.samples == by_row.samples


# a field as violations.csv may hold it: what CSV must quote (commas, quotes, newlines)
# among plain text, empty included
_FIELD = st.text(st.sampled_from('ab,"\n\r 1é'), max_size=6)


def _postgres_csv(row: tuple[str, ...], empty: str = "") -> str:
    """`row` as COPY ... (FORMAT csv) writes it: a field quoted where it holds a comma, a
    quote, a newline or a carriage return (which Python's csv writer leaves bare); an empty
    field as `empty` (PostgreSQL writes an empty text as "", a NULL as nothing)."""
    def field(text: str) -> str:
        if not text:
            return empty
        quoted = any(c in text for c in ',"\n\r')
        return '"' + text.replace('"', '""') + '"' if quoted else text

    return ",".join(map(field, row)) + "\n"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(*[_FIELD] * len(VIOLATION_FIELDS)), min_size=1, max_size=30),
    st.sampled_from(["", '""']),
)
def test_a_line_counts_as_its_violation(rows: list[tuple[str, ...]], empty: str) -> None:
    """`add_line` (a line PostgreSQL wrote) writes it as it is and leaves what `add` of the
    same violation leaves: counts, keys, diagnoses and samples, wherever a field is quoted."""
    written = io.StringIO(newline="")
    line_sink = ViolationSink(written, keep_keys=True)
    row_sink = ViolationSink(io.StringIO(newline=""), keep_keys=True)
    lines = [_postgres_csv(row, empty) for row in rows]
    for row, line in zip(rows, lines, strict=True):
        line_sink.add_line(line)
        row_sink.add(Violation(*row))
    assert written.getvalue().split("\n", 1)[1] == "".join(lines)
    assert line_sink.counts == row_sink.counts
    assert line_sink.keys == row_sink.keys
    assert line_sink.diagnoses == row_sink.diagnoses
    assert line_sink.samples == row_sink.samples
