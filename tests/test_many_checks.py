"""The many-checks benchmark (bench/many_checks.py) at test size: a generated suite mixing
every common kind on one table runs end to end, and each check counts exactly what plain SQL
written for it counts."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from bench.many_checks import (
    disagreement,
    expected_counts,
    fill_database,
    run_suite,
    write_suite,
)

CHECKS = 300
ROWS = 3000


def test_generated_suite_counts_what_sql_counts(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    uri = new_database("many")
    fill_database(uri, ROWS, seed=7)
    suite_path, count_sql = write_suite(tmp_path, CHECKS)
    run = run_suite(uri, suite_path, tmp_path / "out")
    expected = expected_counts(uri, count_sql)
    assert disagreement(expected, run.counts) == {}
    assert len(run.counts) == CHECKS
    # the suite plants violations for most kinds, so the comparison is not of zeros
    assert sum(1 for n in expected.values() if n) > CHECKS // 4
    assert run.exit_code == 1  # violations fail the run
