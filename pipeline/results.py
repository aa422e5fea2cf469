"""What an audit produced: per-check results, the run's metadata, and the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from .errors import ExitCode
from .words import plural

Status = Literal["passed", "failed", "warned"]
Scope = Literal["rows", "table"]
"""What a check's findings are about (`refaudit.checks.stage.Scope`): rows of its table, or
the table as a whole (no rate then)."""
FailOn = Literal["error", "warn"]


@dataclass
class CheckResult:
    id: str
    family: str
    table: str
    columns: list[str]
    severity: str
    description: str
    rows_checked: int
    violations: int
    max_count: int | None = None
    max_rate: float | None = None
    min_count: int | None = None
    """At least this many findings are expected (dbt's `error_if: "<1"`)."""
    min_rate: float | None = None
    """At least this share of the rows checked is expected to be found (Soda's percents)."""
    scope: Scope = "rows"
    stage: str = "row"
    """The stage that ran it (`refaudit.checks.stage`): `catalog` reads no row."""
    status: Status = "passed"
    sample: list[dict[str, str]] = field(default_factory=list)
    known: int | None = None
    """Violations also in the baseline (None: the run had no baseline)."""
    new: int | None = None
    """Violations not in the baseline (None: the run had no baseline)."""
    proven_by: str | None = None
    """What in the catalog proves every row passes (`unique index users_pkey`): the check
    read no row. None: its rows were read."""

    @property
    def rate(self) -> float:
        """Findings per row checked; 0 for findings about the table, which have no rate."""
        if self.scope == "table":
            return 0.0
        return self.violations / self.rows_checked if self.rows_checked else 0.0

    @property
    def reads_rows(self) -> bool:
        return self.stage != "catalog"

    def found(self) -> str:
        """What the check found, in words: `1 violation in 4 rows (25.00%)` for findings
        about rows, `1 finding about the table (4 rows)` for the table's."""
        if self.scope == "rows":
            return (
                f"{plural(self.violations, 'violation')} in {plural(self.rows_checked, 'row')} "
                f"({self.rate:.2%})"
            )
        rows = f" ({plural(self.rows_checked, 'row')})" if self.reads_rows else ""
        return f"{plural(self.violations, 'finding')} about the table{rows}"

    @property
    def gated(self) -> int:
        """The violations the threshold is applied to: the new ones when there is a baseline."""
        return self.violations if self.new is None else self.new

    @property
    def over_threshold(self) -> bool:
        """Outside the threshold: more findings than it allows, or fewer than `min_count` or
        `min_rate`."""
        gated = self.gated
        gated_rate = gated / self.rows_checked if self.rows_checked else 0.0
        if self.min_count is not None and gated < self.min_count:
            return True
        if self.min_rate is not None and gated_rate < self.min_rate:
            return True
        if self.max_count is None and self.max_rate is None:
            return gated > 0 and self.min_count is None and self.min_rate is None
        over_count = self.max_count is not None and gated > self.max_count
        over_rate = self.max_rate is not None and gated_rate > self.max_rate
        return over_count or over_rate

    @property
    def threshold(self) -> str:
        parts = []
        if self.min_count is not None:
            parts.append(f">= {self.min_count}")
        if self.min_rate is not None:
            parts.append(f">= {self.min_rate:.2%}")
        if self.max_count is not None:
            parts.append(f"<= {self.max_count}")
        if self.max_rate is not None:
            parts.append(f"<= {self.max_rate:.2%}")
        return " and ".join(parts) or "0"

    def settle(self) -> None:
        if not self.over_threshold:
            self.status = "passed"
        else:
            self.status = "failed" if self.severity == "error" else "warned"

    def to_dict(self) -> dict[str, Any]:
        # not asdict: it would deep-copy the sample, only to drop it
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "sample"}
        d["columns"] = list(self.columns)
        d["kind"] = d.pop("family")
        d["rate"] = round(self.rate, 6)
        d["threshold"] = {"max_count": self.max_count, "max_rate": self.max_rate}
        for least in ("min_count", "min_rate"):
            if getattr(self, least) is not None:
                d["threshold"][least] = getattr(self, least)
        for name in ("max_count", "max_rate", "min_count", "min_rate"):
            d.pop(name)
        return d


@dataclass
class RunInfo:
    run_id: str
    database: str
    suite: str
    suite_path: str
    refaudit_version: str
    started_at: str
    finished_at: str = ""
    duration_s: float = 0.0
    snapshot_taken_at: str = ""
    server_version: str = ""
    source: str = "database"
    database_identity: str = ""
    """The database however its URL is spelled (`refaudit.db.database_identity`): what the
    run history is kept by; "" where it cannot be read (then by `database`)."""


@dataclass
class AuditResult:
    run: RunInfo
    checks: list[CheckResult]
    out_dir: Path | None = None  # where its files are written (None: not yet)
    files: dict[str, str] = field(default_factory=dict)
    fail_on: FailOn = "error"  # the lowest severity that fails the run
    diagnoses: list[dict[str, Any]] = field(default_factory=list)  # per check and diagnosis
    baseline: dict[str, Any] | None = None  # known / new / resolved against a baseline
    repair: dict[str, Any] | None = None  # the repair plan's summary (run --repair)
    history: dict[str, Any] | None = None  # what changed since the last run
    source: dict[str, Any] | None = None  # the snapshot audited (run.source says which)
    lookups: list[dict[str, Any]] | None = None  # what each `lookup`'s type table said
    notes: list[str] = field(default_factory=list)  # what the run could not do as asked

    def sections(self) -> dict[str, Any]:
        """The optional parts of results.json, under the keys it has always used."""
        out: dict[str, Any] = {"diagnoses": self.diagnoses}
        for name in ("baseline", "repair", "history", "lookups"):
            if getattr(self, name) is not None:
                out[name] = getattr(self, name)
        if self.source is not None:
            out[self.run.source] = self.source
        if self.notes:
            out["notes"] = self.notes
        return out

    def failing(self, fail_on: FailOn | None = None) -> list[CheckResult]:
        fail_on = fail_on or self.fail_on
        severities = {"error"} if fail_on == "error" else {"error", "warn"}
        return [c for c in self.checks if c.over_threshold and c.severity in severities]

    def exit_code(self, fail_on: FailOn | None = None) -> ExitCode:
        return ExitCode.VIOLATIONS if self.failing(fail_on) else ExitCode.PASSED

    @property
    def total_violations(self) -> int:
        return sum(c.violations for c in self.checks)

    def verdict(self, fail_on: FailOn | None = None) -> str:
        failing = self.failing(fail_on)
        if failing:
            return f"FAILED: {len(failing)} of {plural(len(self.checks), 'check')} over threshold"
        warned = sum(1 for c in self.checks if c.status == "warned")
        return "PASSED" + (f" with {plural(warned, 'warning')}" if warned else "")
