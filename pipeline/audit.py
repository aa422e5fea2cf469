"""The library API: `run_audit(...) -> AuditResult`.

Stages, in order: resolve the connection and the suite; open one read-only snapshot; verify
that the suite's tables and columns exist; run the checks (engine); write the run's files.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from pipeline import __version__
from pipeline.checks.catalog import CatalogFacts
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
from pipeline.results import AuditResult, FailOn, RunInfo
from pipeline.suite import Suite

DEFAULT_REPORTS = Path("reports")


@dataclass(frozen=True)
class AuditOptions:
    fail_on: FailOn = "error"
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S


@dataclass(frozen=True)
class AuditSource:
    """Where the rows come from when the database at `url` is not the original one (a
    snapshot loaded into a scratch server): the run reports the original database and
    snapshot time, and the catalog checks are answered from `catalog`."""

    kind: str
    database: str
    snapshot_taken_at: str
    server_version: str
    catalog: Mapping[str, CatalogFacts]
    details: Mapping[str, Any] = field(default_factory=dict)
    """Written to results.json under the key `kind`."""


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
    source: AuditSource | None = None,
) -> AuditResult:
    """Audit the database at `url` against `suite` and write the run's files into `out`.

    With `source`, the rows at `url` stand for another database (see `AuditSource`)."""
    opts = options or AuditOptions()
    now = datetime.now(UTC)
    out_dir = prepare_out_dir(out or default_out_dir(now))
    run = RunInfo(
        run_id=f"{utc_stamp(now)}-{uuid.uuid4().hex[:6]}",
        database=source.database if source else describe(url),
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
            with read_only_snapshot(engine) as (conn, snap):
                run.snapshot_taken_at = snap.taken_at
                run.server_version = snap.server_version
                if source is not None:
                    run.source = source.kind
                    run.snapshot_taken_at = source.snapshot_taken_at
                    run.server_version = source.server_version
                doing = "checking the schema"
                verify_schema(conn, suite)
                doing = "auditing"
                catalog = dict(source.catalog) if source is not None else None
                checks = run_checks(conn, suite, sink, progress=progress, catalog=catalog)
    except sa_exc.SQLAlchemyError as exc:
        violations_path.unlink(missing_ok=True)
        raise database_error(exc, url, doing=doing) from None
    except BaseException:
        violations_path.unlink(missing_ok=True)
        raise
    finally:
        engine.dispose()
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    run.duration_s = round(time.perf_counter() - started, 3)
    result = AuditResult(run=run, checks=checks, out_dir=out_dir)
    if source is not None:
        result.extra[source.kind] = dict(source.details)
    write_outputs(result, opts.fail_on)
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
    write_results_json(result, out / "results.json", fail_on)
    write_junit(result, out / "junit.xml", fail_on)
    write_report(result, out / "report.html", fail_on)
