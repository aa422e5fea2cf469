"""`run --repair` and `apply` as an operator meets them: a repair schema refaudit cannot own is
refused before the audit, a missing privilege is named, a connection lost mid-apply is one
line, and one huge value does not cost memory in proportion to the rows around it."""

from __future__ import annotations

import csv
import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg2
import pytest
from refaudit.db import database_error
from refaudit.errors import ExitCode
from sqlalchemy.engine import make_url

from tests.conftest import SAMPLE_SUITE, as_url, execute
from tests.test_cli import ROOT, assert_one_line_error
from tests.test_operations import TcpServer, sql
from tests.test_operations import tcp as tcp  # a server of the module's own, to restart
from tests.test_repair import query, refaudit


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ("pg_temp", "reserved for PostgreSQL's own schemas"),
        ("pg_catalog", "reserved for PostgreSQL's own schemas"),
        ("pg_toast", "reserved for PostgreSQL's own schemas"),
        ("pg_refaudit", "reserved for PostgreSQL's own schemas"),
        ("information_schema", "PostgreSQL's own schema"),
        ("", "is empty"),
        ("x" * 64, "longer than 63 bytes"),
        ("é" * 32, "longer than 63 bytes"),
    ],
)
def test_a_repair_schema_refaudit_cannot_own_is_refused_before_the_audit(
    world: str, tmp_path: Path, schema: str, says: str
) -> None:
    out = tmp_path / "run"
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", world, "--out", str(out), "--repair",
        "--repair-schema", schema,
        "--no-history", "--quiet",
    )  # fmt: skip
    line = assert_one_line_error(proc, ExitCode.USAGE)
    assert "--repair-schema" in line and says in line, line
    assert not out.exists()  # refused before the audit wrote anything


def test_an_unusual_but_valid_repair_schema_is_used(world: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    schema = 'Repair "Zone" ' + "x" * 49  # 63 bytes, quoted wherever it is named
    assert len(schema.encode()) == 63
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", world, "--out", str(out), "--repair",
        "--repair-schema", schema,
        "--no-history", "--quiet",
    )  # fmt: skip
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    applied = refaudit("apply", str(out / "repair.sql"), "--db", world, "--dry-run")
    assert applied.returncode == ExitCode.PASSED, applied.stderr


# -- a missing privilege is named --------------------------------------------------------------

_roles = itertools.count()


def _role(uri: str, grants: str = "") -> str:
    """A new login role with `grants` (`{role}` stands for its name); its URL."""
    name = f"ops_role_{os.getpid()}_{next(_roles)}"
    execute(uri, f"CREATE ROLE {name} LOGIN; " + grants.format(role=name))
    return make_url(uri).set(username=name).render_as_string(hide_password=False)


@pytest.fixture
def plain(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("ops")
    execute(
        uri,
        "CREATE TABLE items (id int PRIMARY KEY, code text);"
        "INSERT INTO items VALUES (1, 'a');"
        "CREATE SCHEMA vault; CREATE TABLE vault.box (id int);",
    )
    return uri


def _hint(uri: str, role_uri: str, statement: str) -> str:
    try:
        conn = psycopg2.connect(role_uri)
    except psycopg2.Error as exc:
        return str(database_error(exc, as_url(role_uri), doing="connecting"))
    try:
        with conn.cursor() as cur:
            cur.execute(statement)
    except psycopg2.Error as exc:
        return str(database_error(exc, as_url(role_uri), doing="applying"))
    finally:
        conn.close()
    raise AssertionError(f"{statement} did not fail")


@pytest.mark.parametrize(
    ("grants", "statement", "hint"),
    [
        ("REVOKE CONNECT ON DATABASE {db} FROM PUBLIC", "SELECT 1",
         'grant CONNECT on database "{db}" to this role'),
        ("", "CREATE SCHEMA refaudit",
         'grant CREATE on database "{db}" to this role'),
        ("REVOKE TEMPORARY ON DATABASE {db} FROM PUBLIC", "CREATE TEMP TABLE w (x int)",
         'grant TEMPORARY on database "{db}" to this role'),
        ("GRANT USAGE ON SCHEMA vault TO {role}", "CREATE TABLE vault.t (x int)",
         'grant CREATE on schema "vault" to this role'),
        ("", "SELECT * FROM vault.box",
         'grant USAGE on schema "vault" to this role'),
        ("", "SELECT * FROM items",
         'grant SELECT on table "items" to this role'),
        ("GRANT SELECT ON items TO {role}", "UPDATE items SET code = 'b' WHERE id = 1",
         'grant UPDATE and SELECT on table "items" to this role'),
        ("GRANT SELECT ON items TO {role}", "DELETE FROM items WHERE id = 1",
         'grant DELETE and SELECT on table "items" to this role'),
        ("GRANT SELECT ON items TO {role}", "INSERT INTO items VALUES (2, 'b')",
         'grant INSERT on table "items" to this role'),
        # inside a plan's DO block: the statement PostgreSQL names in its context
        ("GRANT SELECT ON items TO {role}",
         "DO $$ BEGIN UPDATE public.items SET code = 'c'; END $$",
         'grant UPDATE and SELECT on table "items" to this role'),
        # a table the statement only reads
        ("GRANT SELECT, UPDATE ON items TO {role}",
         "UPDATE items SET code = v.code FROM vault.box b, items v WHERE b.id = v.id",
         'grant USAGE on schema "vault" to this role'),
        ("GRANT ALL ON items TO {role}; GRANT USAGE ON SCHEMA vault TO {role}",
         "UPDATE items SET code = 'x' FROM vault.box b WHERE b.id = items.id",
         'grant SELECT on table "box" to this role'),
        ("GRANT USAGE, CREATE ON SCHEMA vault TO {role}",
         "CREATE TABLE vault.copy AS SELECT * FROM items",
         'grant SELECT on table "items" to this role'),
        ("GRANT ALL ON items TO {role}", "ALTER TABLE items DISABLE TRIGGER ALL",
         'run it as the owner of table "items"'),
        ("", "SET session_replication_role = replica",
         'GRANT SET ON PARAMETER session_replication_role'),
    ],
)  # fmt: skip
def test_a_missing_privilege_is_named(plain: str, grants: str, statement: str, hint: str) -> None:
    db = make_url(plain).database
    role_uri = _role(plain, grants.replace("{db}", str(db)))
    message = _hint(plain, role_uri, statement)
    assert hint.format(db=db) in message, message
    assert "grant CONNECT" not in message or "CONNECT" in hint
    assert "\n" not in message


def test_apply_by_a_role_without_create_names_create(world: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    made = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        world,
        "--out",
        str(out),
        "--repair",
        "--no-history",
        "--quiet",
    )
    assert made.returncode == ExitCode.VIOLATIONS, made.stderr
    db = make_url(world).database
    fixer = _role(
        world, "GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO {role}"
    )
    proc = refaudit("apply", str(out / "repair.sql"), "--db", fixer)
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert f"permission denied for database {db}" in line, line
    assert f'grant CREATE on database "{db}" to this role' in line and "CONNECT" not in line
    # the usual cause is the audit's read-only role: the line says which role a plan wants
    assert "a plan runs as a role that may change its tables" in line
    assert line.endswith("nothing was applied")


# -- a connection lost mid-apply -----------------------------------------------------------------


def _wait_for_refaudit_statement(uri: str, marker: str, proc: subprocess.Popen[str]) -> int:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        rows = query(
            uri,
            "SELECT pid FROM pg_stat_activity WHERE application_name = 'refaudit' "
            f"AND query LIKE '%{marker}%' AND state = 'active'",
        )
        if rows:
            return int(rows[0][0])
        time.sleep(0.1)
    raise AssertionError("apply never ran its statement")


@pytest.mark.parametrize("transactional", [True, False])
def test_a_connection_lost_mid_apply_is_one_line(
    plain: str, tmp_path: Path, transactional: bool
) -> None:
    plan = tmp_path / "plan.sql"
    body = (
        "UPDATE items SET code = 'z';\n"
        "DO $$ BEGIN PERFORM pg_sleep(60); END $$;\n"
        "UPDATE items SET code = 'y';\n"
    )
    plan.write_text(f"BEGIN;\n{body}COMMIT;\n" if transactional else body)
    proc = subprocess.Popen(
        [sys.executable, "-m", "refaudit", "apply", str(plan), "--db", plain],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        pid = _wait_for_refaudit_statement(plain, "pg_sleep(60)", proc)
        query(plain, f"SELECT pg_terminate_backend({pid})")
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    line = assert_one_line_error(done, ExitCode.RUNTIME)
    assert "the connection was lost" in line, line
    assert "statement 2" in line, line
    expected = "a" if transactional else "z"  # a transaction is all or nothing
    assert query(plain, "SELECT code FROM items") == [(expected,)]


def test_a_server_restart_mid_apply_is_one_line(tmp_path: Path, tcp: TcpServer) -> None:
    plan = tmp_path / "plan.sql"
    plan.write_text("BEGIN;\nSELECT count(*) FROM tutor_packages;\nSELECT pg_sleep(60);\nCOMMIT;\n")
    proc = subprocess.Popen(
        [sys.executable, "-m", "refaudit", "apply", str(plan), "--db", tcp.url()],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT,
    )  # fmt: skip
    try:
        _wait_for_refaudit_statement(tcp.admin(), "pg_sleep(60)", proc)
        tcp.restart()
        stdout, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = subprocess.CompletedProcess(proc.args, proc.returncode, stdout, stderr)
    line = assert_one_line_error(done, ExitCode.RUNTIME)
    assert "the connection was lost" in line and "nothing was applied" in line, line
    assert sql(tcp.admin(), "SELECT 1") == [(1,)]  # the server is back for the next test


# -- one huge value ------------------------------------------------------------------------------

BIG = 40_000_000  # characters (and bytes: ASCII) of the one huge value

BIG_SUITE = """
suite: big
tables:
  items: {key: id}
  tags: {key: code}
checks:
  - id: items.tag
    kind: reference
    table: items
    column: tag
    target: {table: tags, column: code}
    on_orphan: quarantine
  - id: items.tag.pattern
    kind: pattern
    table: items
    column: tag
    regex: '^[a-z]$'
"""

_PEAK = (
    "import resource, subprocess, sys\n"
    "p = subprocess.run(sys.argv[1:], capture_output=True, text=True)\n"
    "sys.stderr.write(p.stderr)\n"
    "print(p.returncode, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def _peak_rss(*args: str) -> tuple[int, int, str]:
    """Exit code, peak RSS in bytes and stderr of `refaudit *args`, alone in a process of
    its own (so no other child's peak counts)."""
    proc = subprocess.run(
        [sys.executable, "-c", _PEAK, sys.executable, "-m", "refaudit", *args],
        capture_output=True, text=True, cwd=ROOT, timeout=600,
    )  # fmt: skip
    code, kb = proc.stdout.split()
    return int(code), int(kb) * 1024, proc.stderr


def _big_world(new_database, size: int) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("big")
    execute(
        uri,
        "CREATE TABLE tags (code text PRIMARY KEY); INSERT INTO tags VALUES ('a'), ('b');"
        "CREATE TABLE items (id int PRIMARY KEY, tag text);"
        "INSERT INTO items SELECT g, 'a' FROM generate_series(1, 1000) g;"
        f"INSERT INTO items VALUES (0, repeat('x', {size}))",
    )
    return uri


def test_one_huge_value_costs_at_most_three_times_its_size(
    new_database,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    from refaudit.checks.base import VALUE_CHARS

    suite = tmp_path / "big.yml"
    suite.write_text(BIG_SUITE)
    peaks = {}
    for size in (1, BIG):
        uri = _big_world(new_database, size)
        out = tmp_path / f"run{size}"
        code, peaks[size], stderr = _peak_rss(
            "run", "--db", uri, "--suite", str(suite), "--out", str(out), "--repair",
            "--no-history", "--quiet",
        )  # fmt: skip
        assert code == ExitCode.VIOLATIONS, stderr
    grown = peaks[BIG] - peaks[1]
    assert grown <= 3 * BIG, f"{grown / 1e6:.0f} MB more for one value of {BIG / 1e6:.0f} MB"

    # violations.csv has the value's first VALUE_CHARS characters and says it is cut
    csv.field_size_limit(2**31 - 1)
    with (out / "violations.csv").open(newline="", encoding="utf-8") as f:
        values = {(v["check"], v["key"]): v["value"] for v in csv.DictReader(f)}
    for check in ("items.tag", "items.tag.pattern"):
        assert values[(check, "0")] == "x" * VALUE_CHARS + f"… [cut: {BIG:,} characters in all]"
    report = (out / "report.html").read_text(encoding="utf-8")
    assert f"[{BIG:,} characters; the first {VALUE_CHARS:,} in violations.csv]" in report
    # the guard is a hash; the note (the evidence) holds the value as cut
    assert (out / "repair.sql").stat().st_size < 2 * VALUE_CHARS

    # the guard still compares the whole value: one character changed since the audit and
    # the row is skipped; as audited, it is quarantined
    execute(uri, "UPDATE items SET tag = repeat('x', 39999999) || 'y' WHERE id = 0")
    proc = refaudit("apply", str(out / "repair.sql"), "--db", uri, "--dry-run")
    assert proc.returncode == ExitCode.PASSED, proc.stderr
    assert "1 skipped (changed since the audit)" in proc.stdout, proc.stdout
    execute(uri, f"UPDATE items SET tag = repeat('x', {BIG}) WHERE id = 0")
    proc = refaudit("apply", str(out / "repair.sql"), "--db", uri)
    assert proc.returncode == ExitCode.PASSED, proc.stderr
    assert "1 quarantined, 0 already done, 0 skipped" in proc.stdout, proc.stdout
    assert query(uri, "SELECT count(*) FROM items WHERE id = 0") == [(0,)]
    assert query(uri, "SELECT length(row_data->>'tag') FROM refaudit.quarantine") == [(BIG,)]


def test_a_plans_own_refusal_gets_no_hint_of_ours(world: str) -> None:
    """A plan's RAISE already says what to do (`refaudit: ...`): no hint is added after it,
    least of all one that blames the suite, and the line says `refaudit:` once."""
    with psycopg2.connect(world) as conn, conn.cursor() as cur:
        try:
            cur.execute(
                "DO $$ BEGIN RAISE EXCEPTION 'refaudit: rollback.sql: backup table x does not "
                "exist: repair.sql of run r was not applied to this database'; END $$"
            )
        except psycopg2.Error as exc:
            line = str(database_error(exc, as_url(world), doing="applying rollback.sql"))
    assert line.endswith("was not applied to this database"), line
    assert "refaudit:" not in line and ": rollback.sql: backup table x" in line, line


def test_counts_are_written_with_thousands_marked() -> None:
    from refaudit.words import plural

    assert (plural(1, "row"), plural(2155, "row")) == ("1 row", "2,155 rows")
    from refaudit.cli import plan_summary

    counts = {"updates": 17012, "set_null": 2000, "quarantined": 4000, "ambiguous": 6676}
    assert plan_summary(counts, 36903) == (
        "repair plan: 17,012 updates, 2,000 set to NULL, 4,000 to quarantine, 6,676 for "
        "review; 36,903 violations of other checks left to you (the report)"
    )
