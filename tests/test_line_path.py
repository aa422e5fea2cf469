"""The two ways violations reach violations.csv write the same bytes: lines written by
PostgreSQL (COPY ... csv, used when nothing needs a Python object per violation) and lines
built in Python from each row (used with a baseline). (One known difference: PostgreSQL
quotes a value holding a lone carriage return, which Python's csv module leaves bare.)"""

from __future__ import annotations

import io

import pytest

from pipeline.db import create_engine, read_only_snapshot
from pipeline.engine import ViolationSink, run_checks
from pipeline.suite import Suite
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


def violations_csv(uri: str, suite: Suite, *, lines: bool, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setattr(ViolationSink, "takes_lines", property(lambda self: lines))
    engine = create_engine(as_url(uri))
    buf = io.StringIO(newline="")
    try:
        with read_only_snapshot(engine) as (conn, _):
            sink = ViolationSink(buf)
            run_checks(conn, suite, sink)
    finally:
        engine.dispose()
    return buf.getvalue()


def test_postgres_lines_equal_python_lines(
    new_database, suite: Suite, monkeypatch: pytest.MonkeyPatch  # type: ignore[no-untyped-def]
) -> None:
    uri = new_database("lines")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text() + HAND_ROWS + AWKWARD_ROWS)
    full = _with_tricky(suite)
    python = violations_csv(uri, full, lines=False, monkeypatch=monkeypatch)
    postgres = violations_csv(uri, full, lines=True, monkeypatch=monkeypatch)
    assert python.count("\n") > 60  # the rows above break many checks
    assert postgres == python
