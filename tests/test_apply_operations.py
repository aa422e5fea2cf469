"""`run --repair` and `apply` as an operator meets them: a repair schema refaudit cannot own is
refused before the audit, a missing privilege is named, a connection lost mid-apply is one
line, and one huge value does not cost memory in proportion to the rows around it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.errors import ExitCode
from tests.test_cli import assert_one_line_error
from tests.test_repair import refaudit


@pytest.mark.parametrize(
    ("schema", "says"),
    [
        ("pg_temp", 'reserved for PostgreSQL\'s own schemas'),
        ("pg_catalog", 'reserved for PostgreSQL\'s own schemas'),
        ("pg_toast", 'reserved for PostgreSQL\'s own schemas'),
        ("pg_refaudit", 'reserved for PostgreSQL\'s own schemas'),
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
        "run", "--db", world, "--out", str(out), "--repair", "--repair-schema", schema,
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
        "run", "--db", world, "--out", str(out), "--repair", "--repair-schema", schema,
        "--no-history", "--quiet",
    )  # fmt: skip
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    applied = refaudit("apply", str(out / "repair.sql"), "--db", world, "--dry-run")
    assert applied.returncode == ExitCode.PASSED, applied.stderr
