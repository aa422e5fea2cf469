"""The result -> exit-code mapping as a table: status x severity x --fail-on x threshold x
baseline. One row per case; `pytest -k exit_codes` runs them all."""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import pytest
from refaudit.errors import DatabaseError, ExitCode, RefauditError, SuiteError, UsageError
from refaudit.results import AuditResult, CheckResult, RunInfo


class Row(NamedTuple):
    name: str
    severity: str
    violations: int
    rows: int
    max_count: int | None
    max_rate: float | None
    new: int | None  # None: no baseline; else the new ones (the rest are known)
    fail_on: str
    status: str
    code: ExitCode
    min_count: int | None = None
    min_rate: float | None = None


P, V = ExitCode.PASSED, ExitCode.VIOLATIONS
TABLE = [
    # name                         sev      viol rows  max_c max_r  new   fail_on  status    code
    Row("clean", "error", 0, 100, None, None, None, "error", "passed", P),
    Row("error_any_violation", "error", 3, 100, None, None, None, "error", "failed", V),
    Row("warn_not_failing", "warn", 3, 100, None, None, None, "error", "warned", P),
    Row("warn_fails_on_warn", "warn", 3, 100, None, None, None, "warn", "warned", V),
    Row("error_fails_on_warn", "error", 3, 100, None, None, None, "warn", "failed", V),
    Row("clean_on_warn", "warn", 0, 100, None, None, None, "warn", "passed", P),
    Row("count_at_limit", "error", 3, 100, 3, None, None, "error", "passed", P),
    Row("count_over_limit", "error", 4, 100, 3, None, None, "error", "failed", V),
    Row("count_zero_limit", "error", 1, 100, 0, None, None, "error", "failed", V),
    Row("rate_at_limit", "error", 10, 1000, None, 0.01, None, "error", "passed", P),
    Row("rate_over_limit", "error", 11, 1000, None, 0.01, None, "error", "failed", V),
    Row("rate_empty_table", "error", 0, 0, None, 0.01, None, "error", "passed", P),
    Row("both_count_over", "error", 6, 1000, 5, 0.5, None, "error", "failed", V),
    Row("both_rate_over", "error", 5, 10, 5, 0.4, None, "error", "failed", V),
    Row("both_within", "error", 4, 10, 5, 0.4, None, "error", "passed", P),
    Row("warn_over_count_error", "warn", 9, 100, 5, None, None, "error", "warned", P),
    Row("warn_over_count_warn", "warn", 9, 100, 5, None, None, "warn", "warned", V),
    Row("warn_within_count_warn", "warn", 5, 100, 5, None, None, "warn", "passed", P),
    Row("baseline_all_known", "error", 5, 100, None, None, 0, "error", "passed", P),
    Row("baseline_one_new", "error", 5, 100, None, None, 1, "error", "failed", V),
    Row("baseline_clean", "error", 0, 100, None, None, 0, "error", "passed", P),
    Row("baseline_new_within", "error", 9, 100, 1, None, 1, "error", "passed", P),
    Row("baseline_new_over", "error", 9, 100, 1, None, 2, "error", "failed", V),
    Row("baseline_rate_on_new", "error", 100, 1000, None, 0.05, 40, "error", "passed", P),
    Row("baseline_rate_new_over", "error", 100, 1000, None, 0.05, 51, "error", "failed", V),
    Row("baseline_warn_new", "warn", 5, 100, None, None, 1, "error", "warned", P),
    Row("baseline_warn_new_warn", "warn", 5, 100, None, None, 1, "warn", "warned", V),
    Row("baseline_warn_known", "warn", 5, 100, None, None, 0, "warn", "passed", P),
    # minimums (dbt's error_if "<1", Soda's percent thresholds): too few findings fail
    Row("min_count_met", "error", 1, 100, None, None, None, "error", "passed", P, 1),
    Row("min_count_short", "error", 0, 100, None, None, None, "error", "failed", V, 1),
    Row("min_rate_met", "error", 25, 100, None, None, None, "error", "passed", P, None, 0.25),
    Row("min_rate_short", "error", 24, 100, None, None, None, "error", "failed", V, None, 0.25),
    Row("min_rate_within_max", "error", 1, 4, None, 0.26, None, "error", "passed", P, None, 0.24),
    Row("min_rate_over_max", "error", 2, 4, None, 0.26, None, "error", "failed", V, None, 0.24),
    Row("min_rate_on_new", "error", 50, 100, None, None, 10, "error", "failed", V, None, 0.2),
    Row("min_rate_empty", "error", 0, 0, None, None, None, "error", "failed", V, None, 0.1),
]


def check(row: Row) -> CheckResult:
    c = CheckResult(
        id=f"t.{row.name}",
        family="in_set",
        table="t",
        columns=["c"],
        severity=row.severity,
        description="",
        rows_checked=row.rows,
        violations=row.violations,
        max_count=row.max_count,
        max_rate=row.max_rate,
        min_count=row.min_count,
        min_rate=row.min_rate,
    )
    if row.new is not None:
        c.new, c.known = row.new, row.violations - row.new
    c.settle()
    return c


def audit(*checks: CheckResult) -> AuditResult:
    run = RunInfo("r", "postgresql://u:***@h/d", "s", "", "0", "2026-01-01T00:00:00+00:00")
    return AuditResult(run=run, checks=list(checks), out_dir=Path("."))


@pytest.mark.parametrize("row", TABLE, ids=[r.name for r in TABLE])
def test_exit_codes(row: Row) -> None:
    c = check(row)
    assert c.status == row.status
    result = audit(c)
    assert result.exit_code(row.fail_on) == row.code  # type: ignore[arg-type]
    assert result.verdict(row.fail_on).startswith(  # type: ignore[arg-type]
        "FAILED" if row.code else "PASSED"
    )


def by_name(name: str) -> Row:
    return next(r for r in TABLE if r.name == name)


@pytest.mark.parametrize(
    ("names", "fail_on", "code"),
    [
        (("clean", "warn_not_failing"), "error", P),
        (("clean", "warn_not_failing"), "warn", V),
        (("baseline_all_known", "error_any_violation"), "error", V),
        (("baseline_all_known", "baseline_warn_new"), "error", P),
        (("baseline_all_known", "baseline_warn_new"), "warn", V),
        (("count_at_limit", "rate_at_limit", "both_within"), "warn", P),
    ],
)
def test_exit_codes_of_several_checks(names: tuple[str, ...], fail_on: Any, code: int) -> None:
    assert audit(*(check(by_name(n)) for n in names)).exit_code(fail_on) == code


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (UsageError, ExitCode.USAGE),
        (SuiteError, ExitCode.USAGE),
        (DatabaseError, ExitCode.RUNTIME),
        (RefauditError, ExitCode.RUNTIME),
    ],
)
def test_exit_codes_of_errors(error: type[RefauditError], code: ExitCode) -> None:
    assert error("x").exit_code == code


def test_exit_code_values_are_the_documented_ones() -> None:
    assert [(c.name, int(c)) for c in ExitCode] == [
        ("PASSED", 0),
        ("VIOLATIONS", 1),
        ("USAGE", 2),
        ("RUNTIME", 3),
    ]
