"""The library API: `run_audit(...) -> AuditResult`.

Stages, in order: resolve the connection and the suite; open one read-only snapshot; verify
that the suite's tables and columns exist; run the checks (engine); write the run's files.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from pipeline import __version__
from pipeline.checks.catalog import CatalogFacts
from pipeline.constraints import plan_catalog, render_constraints
from pipeline.db import (
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    create_engine,
    database_error,
    describe,
    read_only_snapshot,
)
from pipeline.engine import Progress, ViolationSink, run_checks, verify_schema
from pipeline.errors import UsageError
from pipeline.outputs import write_junit, write_report, write_results_json
from pipeline.repair import (
    RepairContext,
    RepairPlan,
    read_repair_context,
    write_repair_sql,
    write_rollback_sql,
)
from pipeline.results import AuditResult, FailOn, RunInfo
from pipeline.suite import Suite

DEFAULT_REPORTS = Path("reports")


@dataclass(frozen=True)
class AuditOptions:
    fail_on: FailOn = "error"
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    repair: bool = False  # also write repair.sql, rollback.sql and constraints.sql


def utc_stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def default_out_dir(now: datetime) -> Path:
    return DEFAULT_REPORTS / utc_stamp(now)


def prepare_out_dir(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot create output directory {out}: {exc.strerror}; "
            "pass --out to a writable directory"
        ) from None
    return out


def run_audit(
    url: URL,
    suite: Suite,
    out: Path | None = None,
    *,
    options: AuditOptions | None = None,
    progress: Progress | None = None,
) -> AuditResult:
    """Audit the database at `url` against `suite` and write the run's files into `out`."""
    opts = options or AuditOptions()
    now = datetime.now(UTC)
    out_dir = prepare_out_dir(out or default_out_dir(now))
    run = RunInfo(
        run_id=f"{utc_stamp(now)}-{uuid.uuid4().hex[:6]}",
        database=describe(url),
        suite=suite.suite,
        suite_path=str(suite.path or ""),
        refaudit_version=__version__,
        started_at=now.isoformat(timespec="seconds"),
    )
    started = time.perf_counter()
    engine = create_engine(
        url, statement_timeout_s=opts.statement_timeout_s, lock_timeout_s=opts.lock_timeout_s
    )
    violations_path = out_dir / "violations.csv"
    plan = RepairPlan(suite, run.run_id, out_dir) if opts.repair else None
    doing = "connecting"
    try:
        with violations_path.open("w", encoding="utf-8", newline="") as handle:
            sink = ViolationSink(handle, tap=plan.add if plan is not None else None)
            with read_only_snapshot(engine) as (conn, snap):
                run.snapshot_taken_at = snap.taken_at
                run.server_version = snap.server_version
                doing = "checking the schema"
                verify_schema(conn, suite)
                doing = "auditing"
                catalog: dict[str, CatalogFacts] = {}
                checks = run_checks(conn, suite, sink, progress=progress, catalog=catalog)
                if plan is not None:
                    doing = "reading what the repair needs"
                    context = read_repair_context(conn, suite, plan, catalog)
    except sa_exc.SQLAlchemyError as exc:
        violations_path.unlink(missing_ok=True)
        if plan is not None:
            plan.cleanup()
        raise database_error(exc, url, doing=doing) from None
    except BaseException:
        violations_path.unlink(missing_ok=True)
        if plan is not None:
            plan.cleanup()
        raise
    finally:
        engine.dispose()
    result = AuditResult(run=run, checks=checks, out_dir=out_dir)
    result.extra["diagnoses"] = sink.diagnosis_summary()
    if plan is not None:
        try:
            result.extra["repair"] = write_repair_files(plan, context, opts, result)
        finally:
            plan.cleanup()
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    run.duration_s = round(time.perf_counter() - started, 3)
    write_outputs(result, opts.fail_on)
    return result


def write_repair_files(
    plan: RepairPlan, context: RepairContext, opts: AuditOptions, result: AuditResult
) -> dict[str, Any]:
    """repair.sql, rollback.sql and constraints.sql into the run's directory."""
    out, run = result.out_dir, result.run
    catalog = plan_catalog(plan.suite, context.facts)
    timeouts = {
        "lock_timeout_s": opts.lock_timeout_s,
        "statement_timeout_s": opts.statement_timeout_s,
    }
    summary = write_repair_sql(
        plan,
        context,
        catalog,
        out / "repair.sql",
        database=run.database,
        snapshot=run.snapshot_taken_at,
        **timeouts,
    )
    write_rollback_sql(
        plan, context, catalog, out / "rollback.sql", database=run.database, **timeouts
    )
    (out / "constraints.sql").write_text(
        render_constraints(catalog, run_id=run.run_id, database=run.database, **timeouts),
        encoding="utf-8",
    )
    result.files.update(summary.to_dict()["files"])
    return summary.to_dict()


def write_outputs(result: AuditResult, fail_on: FailOn) -> None:
    out = result.out_dir
    result.files.update(
        {
            "violations": "violations.csv",
            "results": "results.json",
            "junit": "junit.xml",
            "report": "report.html",
        }
    )
    write_results_json(result, out / "results.json", fail_on)
    write_junit(result, out / "junit.xml", fail_on)
    write_report(result, out / "report.html", fail_on)
