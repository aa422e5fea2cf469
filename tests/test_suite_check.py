"""`refaudit suite check [PATH] [--db URL]`: a suite validated without auditing, alone or
against a database's schema; mistakes are one line with the documented exit code."""

from __future__ import annotations

from pathlib import Path

from refaudit.errors import ExitCode

from tests.conftest import SAMPLE_SUITE
from tests.test_cli import assert_one_line_error, refaudit

SUITE = """
suite: shop
tables:
  orders: {{key: id}}
checks:
  - id: orders.status.pattern
    kind: pattern
    table: orders
    column: {column}
    regex: '{regex}'
"""


def write(tmp_path: Path, column: str = "status", regex: str = "^[a-z]+$") -> Path:
    path = tmp_path / "suite.yml"
    path.write_text(SUITE.format(column=column, regex=regex))
    return path


def test_the_shipped_suite_is_valid() -> None:
    done = refaudit("suite", "check", SAMPLE_SUITE)
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("suite astegni is valid: ")


def test_a_suite_is_checked_against_a_database(tmp_path: Path, new_database) -> None:  # type: ignore[no-untyped-def]
    from tests.conftest import execute

    uri = new_database("suitecheck")
    execute(uri, "CREATE TABLE orders (id int PRIMARY KEY, status text)")
    done = refaudit("suite", "check", str(write(tmp_path)), "--db", uri)
    assert done.returncode == 0, done.stderr
    assert "suite shop is valid: 1 check on 1 table; it matches" in done.stdout

    missing = refaudit("suite", "check", str(write(tmp_path, column="state")), "--db", uri)
    line = assert_one_line_error(missing, ExitCode.RUNTIME)
    assert "state" in line

    # a misspelt column or table: the one meant is named
    typo = refaudit("suite", "check", str(write(tmp_path, column="stauts")), "--db", uri)
    line = assert_one_line_error(typo, ExitCode.RUNTIME)
    assert "column orders.stauts" in line and "did you mean 'status'?" in line, line
    execute(uri, "CREATE SCHEMA archive; CREATE TABLE archive.orderz (id int PRIMARY KEY)")
    execute(uri, "ALTER TABLE orders RENAME TO order_lines")
    gone = refaudit("suite", "check", str(write(tmp_path)), "--db", uri)
    line = assert_one_line_error(gone, ExitCode.RUNTIME)
    assert "table orders named by suite shop" in line, line
    assert "did you mean 'order_lines'?" in line, line
    execute(uri, "ALTER TABLE order_lines RENAME TO orders")

    bad_regex = refaudit("suite", "check", str(write(tmp_path, regex="(")), "--db", uri)
    line = assert_one_line_error(bad_regex, ExitCode.USAGE)
    assert "orders.status.pattern" in line


def test_a_broken_suite_is_one_line_per_mistake_and_exit_2(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("suite: x\ntables: {}\nchecks: []\n")
    done = refaudit("suite", "check", str(path))
    assert done.returncode == ExitCode.USAGE and "Traceback" not in done.stderr
    assert done.stderr.splitlines() == [
        f"refaudit: error: {path}:2: tables: Dictionary should have at least 1 item after "
        "validation, not 0",
        f"refaudit: error: {path}:3: checks: List should have at least 1 item after "
        "validation, not 0",
    ]
    one = tmp_path / "one.yml"
    one.write_text("suite: x\ntables: {a: {key: id}}\nchecks: []\n")
    assert f"{one}:3: checks: " in assert_one_line_error(
        refaudit("suite", "check", str(one)), ExitCode.USAGE
    )

