"""The machine-readable summary a command prints with `--format json`: one JSON object on
standard output, for scripts and CI. Its fields are pydantic models, so the schema is one
place (`RunSummary.model_json_schema()`) and changes to it are deliberate.

Only what may be shown anywhere goes in: the database as `refaudit.db.describe` shows it
(every password and secret parameter masked), never a URL as given.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict

from . import __version__

if TYPE_CHECKING:
    from .apply import ApplyResult
    from .audit import SuiteCheckResult
    from .discover.model import Discovery
    from .results import AuditResult, FailOn

SUMMARY_VERSION = 1
"""Bumped when a field changes meaning or goes away (new fields do not bump it)."""


class _Summary(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Printed(_Summary):
    """A summary a command prints: what wrote it comes first."""

    summary_version: int = SUMMARY_VERSION
    refaudit_version: str = __version__


class Counts(_Summary):
    checks: int
    """Checks run."""
    failing: int
    """Checks over their threshold at a severity that fails the run (see `fail_on`)."""
    warned: int
    """Checks over their threshold at severity warn."""
    violations: int
    """Violating rows (or table-level findings) over all checks."""
    violations_by_severity: dict[str, int]
    """`error` and `warn`: the violations of the checks of that severity."""


class FailingCheck(_Summary):
    id: str
    kind: str
    table: str
    severity: str
    violations: int
    new: int | None = None
    """Violations not in the baseline (null without --baseline)."""


class HistoryChange(_Summary):
    previous_run: str
    """The run id of the last run of this suite on this database."""
    new: int
    """Violations not in the last run."""
    fixed: int
    """Violations of the last run that are gone."""


class BaselineChange(_Summary):
    new: int
    known: int


class RunSummary(_Printed):
    """`refaudit run --format json`."""

    command: Literal["run"] = "run"
    run_id: str
    suite: str
    suite_path: str
    database: str
    """The database as refaudit shows it (password masked); for a snapshot, the database
    it was taken of."""
    source: str
    """`database`, or `snapshot` for `run --snapshot`."""
    out_dir: str
    files: dict[str, str]
    """The run's output files by role (report, results, violations, junit, and with --repair
    repair, rollback, constraints; history when it was kept)."""
    fail_on: str
    counts: Counts
    history: HistoryChange | None = None
    """What changed since the last run; null without history or on the first run."""
    baseline: BaselineChange | None = None
    repair: dict[str, int] | None = None
    """With --repair: the plan's counts (updates, set_null, quarantined, ambiguous)."""
    verdict: Literal["passed", "failed"]
    verdict_text: str
    exit_code: int
    failing: list[FailingCheck]
    notes: list[str]

    @classmethod
    def of(cls, result: AuditResult, fail_on: FailOn) -> RunSummary:
        out = result.out_dir or Path()
        failing = result.failing(fail_on)
        by_severity = {"error": 0, "warn": 0}
        for c in result.checks:
            by_severity[c.severity] = by_severity.get(c.severity, 0) + c.violations
        history = result.history or {}
        previous = history.get("previous")
        baseline = result.baseline
        return cls(
            run_id=result.run.run_id,
            suite=result.run.suite,
            suite_path=result.run.suite_path,
            database=result.run.database,
            source=result.run.source,
            out_dir=str(out),
            files={role: str(out / name) for role, name in result.files.items()},
            fail_on=fail_on,
            counts=Counts(
                checks=len(result.checks),
                failing=len(failing),
                warned=sum(1 for c in result.checks if c.status == "warned"),
                violations=result.total_violations,
                violations_by_severity=by_severity,
            ),
            history=HistoryChange(
                previous_run=previous["run_id"], new=history["new"], fixed=history["fixed"]
            )
            if previous
            else None,
            baseline=BaselineChange(new=baseline["new"], known=baseline["known"])
            if baseline
            else None,
            repair={k: int(v) for k, v in result.repair.items() if isinstance(v, int)}
            if result.repair is not None
            else None,
            verdict="failed" if failing else "passed",
            verdict_text=result.verdict(fail_on),
            exit_code=int(result.exit_code(fail_on)),
            failing=[
                FailingCheck(
                    id=c.id,
                    kind=c.family,
                    table=c.table,
                    severity=c.severity,
                    violations=c.violations,
                    new=c.new,
                )
                for c in failing
            ],
            notes=list(result.notes),
        )


class SuiteCheckSummary(_Printed):
    """`refaudit suite check --format json`."""

    command: Literal["suite check"] = "suite check"
    suite: str
    suite_path: str
    valid: Literal[True] = True
    checks: int
    tables: int
    database: str | None = None
    """The database it was checked against (password masked), or null without --db."""
    warnings: list[str]
    exit_code: int = 0

    @classmethod
    def of(cls, result: SuiteCheckResult, path: Path) -> SuiteCheckSummary:
        return cls(
            suite=result.suite,
            suite_path=str(path),
            checks=result.checks,
            tables=result.tables,
            database=result.database,
            warnings=list(result.warnings),
        )


class ApplySummary(_Printed):
    """`refaudit apply --format json`."""

    command: Literal["apply"] = "apply"
    plan: str
    database: str
    """The database the plan ran on (password masked)."""
    dry_run: bool
    """True: everything was rolled back; the counts say what the plan would do."""
    statements: int
    totals: dict[str, int]
    """Rows by what happened to them: updated, set_null, quarantine, already, skipped,
    held (repair.sql); restored, reinserted, unquarantined, moved_aside (rollback.sql)."""
    messages: list[str]
    """The plan's own notices, in order."""
    summary: str
    exit_code: int = 0

    @classmethod
    def of(cls, result: ApplyResult, database: str) -> ApplySummary:
        return cls(
            plan=str(result.path),
            database=database,
            dry_run=result.dry_run,
            statements=result.statements,
            totals=dict(result.totals),
            messages=list(result.messages),
            summary=result.summary(),
        )


class Proposed(_Summary):
    id: str
    kind: str
    table: str
    source: str
    """`catalog` (a declared constraint) or `data` (inferred from the rows)."""
    confidence: float
    violations: int | None = None
    """Rows it flags in the data read (null where not measured: catalog checks)."""


class DiscoverSummary(_Printed):
    """`refaudit discover --out suite.yml --format json`."""

    command: Literal["discover"] = "discover"
    database: str
    """The database read (password masked)."""
    suite_path: str
    tables: int
    min_confidence: float
    checks: list[Proposed]
    """The checks written (those at `min_confidence` or above)."""
    left_out: int
    """Proposals below `min_confidence`, not written."""
    notes: list[str]
    """Why the suite holds no reference inferred from the data, when it holds none."""
    exit_code: int = 0

    @classmethod
    def of(
        cls, found: Discovery, path: Path, min_confidence: float, notes: list[str]
    ) -> DiscoverSummary:
        kept = [p for p in found.proposals if p.confidence >= min_confidence]
        return cls(
            database=found.database,
            suite_path=str(path),
            tables=len(found.tables),
            min_confidence=min_confidence,
            checks=[
                Proposed(
                    id=p.model.id,
                    kind=p.kind,
                    table=p.table,
                    source=p.source,
                    confidence=p.confidence,
                    violations=p.violations,
                )
                for p in kept
            ],
            left_out=len(found.proposals) - len(kept),
            notes=notes,
        )


class ErrorSummary(_Printed):
    """Any command's `--format json` output when it fails: the one-line error (also on
    stderr) and the exit code."""

    command: str
    error: str
    """The error as stderr shows it (without `refaudit: error: `); several lines when it
    lists several mistakes (a suite's)."""
    errors: list[str]
    """`error`, one item per line."""
    exit_code: int
