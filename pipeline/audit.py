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

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from pipeline import __version__
from pipeline.db import (
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    create_engine,
    database_error,
    describe,
    read_only_snapshot,
)
from pipeline.engine import ViolationSink, run_checks, verify_schema
from pipeline.errors import UsageError
from pipeline.history import HistoryStore, default_history_path
from pipeline.outputs import write_junit, write_report, write_results_json
from pipeline.progress import ProgressLike, as_progress
from pipeline.results import AuditResult, FailOn, RunInfo
from pipeline.suite import Suite

DEFAULT_REPORTS = Path("reports")


@dataclass(frozen=True)
class AuditOptions:
    fail_on: FailOn = "error"
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    history: Path | None = None
    """The run-history file; None: `history.db` beside the run directories."""
    record_history: bool = True


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
    progress: ProgressLike = None,
) -> AuditResult:
    """Audit the database at `url` against `suite` and write the run's files into `out`."""
    opts = options or AuditOptions()
    prog = as_progress(progress)
    now = datetime.now(UTC)
    out_dir = prepare_out_dir(out or default_out_dir(now))
    history = None
    if opts.record_history:
        history = HistoryStore(opts.history or default_history_path(out, DEFAULT_REPORTS))
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
    doing = "connecting"
    try:
        with violations_path.open("w", encoding="utf-8", newline="") as handle:
            sink = ViolationSink(handle)
            prog.stage("snapshot", 2)
            prog.step(f"connecting to {run.database}")
            with read_only_snapshot(engine) as (conn, snap):
                run.snapshot_taken_at = snap.taken_at
                run.server_version = snap.server_version
                doing = "checking the schema"
                prog.step("checking the schema")
                verify_schema(conn, suite)
                doing = "auditing"
                checks = run_checks(conn, suite, sink, progress=prog)
        run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
        run.duration_s = round(time.perf_counter() - started, 3)
        result = AuditResult(run=run, checks=checks, out_dir=out_dir)
        if history is not None:
            prog.stage("history", 1)
            prog.step(f"comparing with the last run ({history.path})")
            result.extra["history"] = history.record(result, violations_path)
    except sa_exc.SQLAlchemyError as exc:
        violations_path.unlink(missing_ok=True)
        raise database_error(exc, url, doing=doing) from None
    except BaseException:
        violations_path.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
        if history is not None:
            history.close()
    prog.stage("writing files", 1)
    prog.step(f"writing {out_dir}")
    write_outputs(result, opts.fail_on)
    prog.done()
    return result


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
    if "history" in result.extra:
        result.files["history"] = result.extra["history"]["store"]
    write_results_json(result, out / "results.json", fail_on)
    write_junit(result, out / "junit.xml", fail_on)
    write_report(result, out / "report.html", fail_on)
