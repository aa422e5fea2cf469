"""export-gx, and Great Expectations as an oracle: the exported suites, run by GX against a
real database, must find exactly as many failing rows per check as refaudit does."""

from __future__ import annotations

import json
import string
import subprocess
import sys
from pathlib import Path

import pytest
from refaudit.audit import run_audit
from refaudit.gx_export import MANIFEST, GxOutcome, export_suite, run_with_gx, write_export
from refaudit.suite import CATALOG_KINDS, Suite

from tests.conftest import FIXTURES, SAMPLE_SUITE, as_url, execute

ROOT = Path(__file__).resolve().parent.parent

# Rows that break every exported check at least once, NULLs and unknown values included.
HAND_ROWS = """
INSERT INTO users (id, email, phone) VALUES (1, 'a@b.c', '+251911111111'), (2, 'x@y.z', NULL);
INSERT INTO tutor_profiles VALUES (1, 1), (2, 1), (3, 99), (4, NULL), (5, NULL);
INSERT INTO student_profiles VALUES (1, 1), (2, 2), (3, 2), (4, 42);
INSERT INTO parent_profiles VALUES (1, 2), (2, 2), (3, 43);
INSERT INTO tutor_packages VALUES (1, 1, 'p1'), (2, 2, 'p2'), (3, 77, 'p3'), (4, NULL, 'p4');
INSERT INTO session_requests (id, tutor_id, requester_id, requester_type, package_id,
    package_name, status, message, contact_phone, contact_email, created_at, updated_at,
    responded_at) VALUES
 (1, 1, 1, 'student', 1, 'p1', 'pending', 'x{1}', '+251911111111', 'a@b.c',
  now(), now(), NULL),
 (2, 5, 1, 'student', 2, 'p1', 'pending', ':y', '+25191111111', 'a@b', now(),
  now() - interval '1 day', now()),
 (3, 1, 9, 'parent', 9, 'a:b {x}', 'accepted', NULL, NULL, NULL, now(), now(), NULL),
 (4, 1, 1, 'teacher', 1, '50% off', 'weird', 'it''s', '0911', 'no at', NULL, now(), NULL),
 (5, 1, 1, NULL, 1, 'p1', 'pending', NULL, NULL, NULL, now(), now(), NULL),
 (6, 1, 1, 'student', 1, 'p1', 'pending', ':z {2}', '+251911111111', 'a@b.c',
  now(), now(), NULL),
 (7, 1, 1, 'student', NULL, 'p1', 'pending', NULL, NULL, NULL, now(), now(), NULL),
 (8, 1, 1, 'student', NULL, 'p1', 'pending', NULL, NULL, NULL, now(), now(), NULL),
 (9, NULL, NULL, 'student', NULL, NULL, NULL, NULL, NULL, NULL, now(), now(), NULL),
 (10, 2, 3, 'parent', 4, 'p4', 'rejected', NULL, NULL, NULL, now(), now(), now()),
 (11, 2, 2, 'student', 2, 'p2', 'accepted', NULL, NULL, NULL, now(), now(), NULL);
"""

# Literals that GX's query handling could mangle: braces (str.format), colons (bind
# parameters of sqlalchemy.text), percent signs and quotes.
TRICKY_CHECKS = [
    {
        "id": "tricky.row_rule",
        "kind": "row_rule",
        "table": "session_requests",
        "where": {"column": "package_name", "in": ["a:b {x}", "50% off", "it's", "p1"]},
        "require": {"column": "status", "eq": "pending"},
    },
    {
        "id": "tricky.in_set",
        "kind": "in_set",
        "table": "session_requests",
        "column": "message",
        "values": ["x{1}", ":y", "it's"],
    },
    {
        "id": "tricky.unique",
        "kind": "unique",
        "table": "session_requests",
        "columns": ["tutor_id", "requester_type"],
        "where": {"column": "message", "ne": ":z {2}"},
    },
]


def _with_tricky(suite: Suite) -> Suite:
    data = suite.model_dump(by_alias=True, exclude_none=True)
    data["checks"] = [*data["checks"], *TRICKY_CHECKS]
    return Suite.model_validate(data)


def refaudit_counts(uri: str, suite: Suite, out: Path) -> dict[str, int]:
    result = run_audit(as_url(uri), suite, out)
    return {c.id: c.violations for c in result.checks if c.family not in CATALOG_KINDS}


def gx_outcome(uri: str, suite: Suite, out: Path) -> GxOutcome:
    write_export(export_suite(suite), out)
    url = as_url(uri).render_as_string(hide_password=False)
    return run_with_gx(url, out, result_format="COMPLETE")


def exported_ids(directory: Path) -> set[str]:
    manifest = json.loads((directory / MANIFEST).read_text())
    ids = set()
    for entry in manifest["suites"]:
        for e in json.loads((directory / entry["file"]).read_text())["expectations"]:
            ids.add(e["meta"]["refaudit_check"])
    return ids


def assert_gx_agrees(uri: str, suite: Suite, tmp_path: Path) -> dict[str, int]:
    ours = refaudit_counts(uri, suite, tmp_path / "run")
    gx = gx_outcome(uri, suite, tmp_path / "gx")
    assert gx.broken == {}, f"GX could not run some exported checks: {gx.broken}"
    # every row and set check is exported, sub-checks (`<id>.discriminator`) included
    assert exported_ids(tmp_path / "gx") == set(ours)
    assert set(gx.counts) == set(ours)
    mismatches = {k: (ours[k], gx.counts[k]) for k in ours if gx.counts[k] != ours[k]}
    assert mismatches == {}, "refaudit vs GX counts differ: {check: (refaudit, gx)}"
    return ours


@pytest.fixture(scope="module")
def hand_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("gx")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text() + HAND_ROWS)
    return uri


def test_export_gx_command_writes_one_suite_per_table(tmp_path: Path, suite: Suite) -> None:
    out = tmp_path / "gx"
    proc = subprocess.run(
        [sys.executable, "-m", "refaudit", "export-gx", "--suite", SAMPLE_SUITE, "--out", str(out)],
        capture_output=True, text=True, cwd=ROOT, timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    catalog = [c.id for c in suite.checks if c.kind in CATALOG_KINDS]
    assert f"not exported: {len(catalog)} catalog checks" in proc.stdout
    manifest = json.loads((out / MANIFEST).read_text())
    assert {s["table"] for s in manifest["suites"]} == {
        "session_requests", "tutor_packages", "tutor_profiles", "student_profiles",
        "parent_profiles",
    }
    assert [n["check"] for n in manifest["not_exported"]] == catalog
    types = set()
    for entry in manifest["suites"]:
        doc = json.loads((out / entry["file"]).read_text())
        assert doc["name"] == entry["name"]
        for e in doc["expectations"]:
            types.add(e["type"])
            assert e["meta"]["refaudit_check"]
            query = e["kwargs"].get("unexpected_rows_query")
            if query is not None:
                fields = [f[1] for f in string.Formatter().parse(query) if f[1] is not None]
                assert fields == ["batch"], query
    assert types == {
        "unexpected_rows_expectation", "expect_column_values_to_not_be_null",
        "expect_column_values_to_be_in_set", "expect_column_values_to_match_regex",
    }


def test_gx_counts_equal_refaudit_on_hand_rows(
    hand_db: str, suite: Suite, tmp_path: Path
) -> None:
    ours = assert_gx_agrees(hand_db, _with_tricky(suite), tmp_path)
    # the rows above break nearly everything: equal counts are not equal zeros
    assert sum(1 for n in ours.values() if n) >= len(ours) - 3, ours
    assert ours["session_requests.requester_id.reference.discriminator"] == 2
    assert ours["session_requests.not_null"] == 5


def test_a_broken_exported_check_is_reported(
    new_database, suite: Suite, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    uri = new_database("gxbroken")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text())
    only = suite.model_copy(
        update={"checks": [suite.check("session_requests.package_name.matches_package")]}
    )
    write_export(export_suite(only), tmp_path)
    execute(uri, "ALTER TABLE session_requests DROP COLUMN package_name")
    gx = run_with_gx(as_url(uri).render_as_string(hide_password=False), tmp_path)
    assert set(gx.broken) == {"session_requests.package_name.matches_package"}


def test_gx_counts_equal_refaudit_on_the_generated_dirty_database(
    dirty_db, suite: Suite, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    uri, truth = dirty_db
    ours = assert_gx_agrees(uri, suite, tmp_path)
    # and both agree with the generator's ground truth
    assert {k: ours[k] for k in truth.counts} == truth.counts
