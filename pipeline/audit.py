"""The library API: `audit(...) -> CompletedAudit`, `write_audit(...) -> AuditResult`, and
`run_audit(...) -> AuditResult`, the two in one (what `refaudit run` does).

Stages, in order: resolve the connection and the suite; open one read-only snapshot; verify
that the suite's tables and columns exist; run the checks (engine), streaming the violations
to disk; then, a separate step, write the run's files and record it in the run history.
"""

from __future__ import annotations

import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg2
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from . import __version__, early
from .baseline import IDENTITY_FIELDS, Baseline, csv_reader, load_baseline
from .checks.base import ColumnTypes
from .checks.catalog import CatalogFacts, relation_unique_columns
from .checks.reference import ConditionalReferenceCheck
from .checks.relations import NO_DEFINITION, Relation, read_relations
from .constraints import plan_catalog, render_constraints
from .db import (
    create_engine,
    database_error,
    describe,
    read_only_snapshot,
    scrub,
)
from .engine import run_checks
from .errors import ExitCode, RefauditError, Terminated, UsageError
from .history import HistoryStore, Pairs, default_history_path
from .limits import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_REPAIR_SCHEMA, DEFAULT_STATEMENT_TIMEOUT_S
from .lookups import Resolution, resolve_lookups
from .progress import Progress, ProgressLike, as_progress
from .results import AuditResult, CheckResult, FailOn, RunInfo
from .sink import ViolationSink, history_keys
from .suite import Suite
from .verify import verify_schema, verify_values

if TYPE_CHECKING:
    from .repair import RepairContext, RepairPlan

# Imported when used, not before an audit's first statement: the repair plan's modules (with
# --repair only) and the outputs' (jinja2, the report; `_WarmUp` loads them meanwhile).

DEFAULT_REPORTS = Path("reports")
REPAIR_FILES = ("repair.sql", "rollback.sql", "constraints.sql")
"""Written with --repair; an earlier run's plan never survives next to a newer audit."""
RUN_FILES = ("results.json", "junit.xml", "report.html", "violations.csv", *REPAIR_FILES)
"""The files a run writes into its output directory; an earlier run's are removed first."""
PARTIAL_VIOLATIONS = "violations.csv.partial"
"""violations.csv while it is being streamed; renamed only when every check has run."""


@dataclass(frozen=True)
class AuditOptions:
    fail_on: FailOn = "error"
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S
    baseline: Path | None = None
    """An earlier run's violations.csv (or its directory): its violations do not fail the run."""
    repair: bool = False
    """Also write repair.sql, rollback.sql and constraints.sql (see pipeline/repair/)."""
    repair_schema: str = DEFAULT_REPAIR_SCHEMA
    """The schema that holds the repair's backup and quarantine tables."""
    history: Path | None = None
    """The run-history file; None: `history.db` beside the run directories."""
    record_history: bool = True
    second_connection: bool = True
    """Let a second connection in the same snapshot run statements meanwhile (see
    `refaudit.engine.run_jobs`); False: everything on one connection."""
    database_label: str | None = None
    """How the run names the database (results, report, run-history scope: then by this
    name, not by the database's identity); None: its URL without the password, and the
    history by identity. The demo's server lives in a new temporary directory each time."""

    def __post_init__(self) -> None:
        check_repair_schema(self.repair_schema)


_NAMEDATALEN = 63
"""The longest identifier PostgreSQL keeps, in bytes; a longer one is cut, silently."""


def check_repair_schema(name: str) -> None:
    """A UsageError unless `name` can be the repair schema: a schema the plan may create and
    own. PostgreSQL reserves names that start with `pg_` (`pg_temp` would even be each
    session's own temporary schema: backups gone at the end of the apply) and keeps its
    catalogs in pg_catalog and information_schema; an identifier is 1 to 63 bytes, without
    NUL (the plans quote it, so any other character will do)."""
    why = None
    if not name:
        why = "is empty"
    elif name.startswith("pg_"):
        why = "starts with pg_, which is reserved for PostgreSQL's own schemas"
    elif name == "information_schema":
        why = "is PostgreSQL's own schema of catalog views"
    elif "\0" in name:
        why = "holds a NUL character"
    elif len(name.encode()) > _NAMEDATALEN:
        why = (
            f"is longer than {_NAMEDATALEN} bytes ({len(name.encode())}), which PostgreSQL "
            "would cut"
        )
    if why is not None:
        raise UsageError(
            f"--repair-schema {name!r} {why}; name a schema refaudit may create and own "
            "(default refaudit)"
        )


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
    identity: str = ""
    """The original database's identity (`refaudit.db.database_identity`), if recorded."""


def utc_stamp(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ")


def default_out_dir(now: datetime) -> Path:
    return DEFAULT_REPORTS / utc_stamp(now)


RUN_DIR = re.compile(r"^\d{8}T\d{6}Z$")
"""The name of a run directory refaudit made (`reports/20261206T010000Z`, see
`default_out_dir`): the only directories `prune_runs` may remove."""


def prune_runs(current: Path, keep: int) -> list[Path]:
    """Remove the oldest run directories beside `current` so that `keep` remain, `current`
    included (`refaudit run --keep N`): only directories named as refaudit names a run and
    holding its results.json; anything else beside them stays. Returns those removed."""
    if keep < 1:
        raise UsageError(f"--keep {keep}: keep at least 1 run (the one just written)")
    here = current.resolve()
    runs = sorted(
        (
            d
            for d in here.parent.iterdir()
            if d.is_dir() and RUN_DIR.match(d.name) and (d / "results.json").is_file()
        ),
        key=lambda d: d.name,
    )
    gone = [d for d in runs[: max(0, len(runs) - keep)] if d != here]
    for d in gone:
        shutil.rmtree(d)
    return gone


def prepare_out_dir(out: Path) -> Path:
    try:
        out.mkdir(parents=True, exist_ok=True)
        for name in (*RUN_FILES, PARTIAL_VIOLATIONS):
            (out / name).unlink(missing_ok=True)
    except OSError as exc:
        raise UsageError(
            f"cannot write to output directory {out}: {exc.strerror}; "
            "pass --out to a writable directory"
        ) from None
    return out


def _check_baseline_location(baseline: Path, out_dir: Path) -> None:
    if baseline.resolve() == (out_dir / "violations.csv").resolve():
        raise UsageError(
            f"--baseline {baseline} is inside --out {out_dir}, which this run overwrites; "
            "keep the baseline in its own place (e.g. copy it to audit-baseline.csv)"
        )


class CompletedAudit:
    """An audit that has run, before (or after) its files are written: the typed result
    (`result`: checks, counts, verdict; `result.out_dir` is None until written), every
    violation in `violations` (a violations.csv the audit streamed, on disk: memory stays
    flat however many there are), and with `AuditOptions.repair` the `repair_plan`, collected
    on disk too (repair.sql and its summary are rendered when the files are written).

    It owns those files: `close()` (or leaving `with`) removes them. `write_audit` writes
    the run's files into a directory, as often as wanted, until then.
    """

    def __init__(
        self,
        result: AuditResult,
        violations: Path,
        *,
        options: AuditOptions,
        started: datetime,
        clock: float,
        url: URL,
        baseline: Path | None = None,
        plan: RepairPlan | None = None,
        keys: dict[str, Pairs] | None = None,
        workdir: tempfile.TemporaryDirectory[str] | None = None,
    ) -> None:
        self.result = result
        self.violations = violations
        self.options = options
        self.repair_plan = plan
        self._started = started
        self._clock = clock  # time.perf_counter() when the run started
        self._url = url  # for scrubbing the password out of an unexpected error
        self._baseline = baseline
        self._keys = keys  # the history's keys, when the audit kept them (run_audit)
        self._workdir = workdir
        self._recorded = False  # the history keeps a run once
        self.closed = False

    def read_violations(self) -> Iterator[dict[str, str]]:
        """The violations, one dict per violations.csv line, read from disk as they come."""
        self._open()
        with self.violations.open(encoding="utf-8", newline="") as handle:
            lines = csv_reader(handle)
            header = next(lines)
            for fields in lines:
                yield dict(zip(header, fields, strict=True))

    def close(self) -> None:
        """Remove the audit's files (the spilled violations and repair plan); the files
        already written into output directories stay."""
        if self.closed:
            return
        self.closed = True
        self._keys = None
        try:
            if self.repair_plan is not None:
                self.repair_plan.cleanup()
        finally:
            self.violations.unlink(missing_ok=True)
            if self._workdir is not None:
                self._workdir.cleanup()

    def __enter__(self) -> CompletedAudit:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _commit(self, history: HistoryStore) -> None:
        history.commit()
        self._recorded = True

    def _open(self) -> None:
        if self.closed:
            raise ValueError("the audit is closed: its violations and repair plan are removed")


def _new_run(
    url: URL, suite: Suite, opts: AuditOptions, source: AuditSource | None, now: datetime
) -> RunInfo:
    return RunInfo(
        run_id=f"{utc_stamp(now)}-{uuid.uuid4().hex[:6]}",
        database=source.database if source else opts.database_label or describe(url),
        suite=suite.suite,
        suite_path=str(suite.path or ""),
        refaudit_version=__version__,
        started_at=now.isoformat(timespec="seconds"),
    )


def audit(
    url: URL,
    suite: Suite,
    *,
    options: AuditOptions | None = None,
    progress: ProgressLike = None,
    source: AuditSource | None = None,
    workdir: Path | None = None,
) -> CompletedAudit:
    """Audit the database at `url` against `suite` and return what it found, without
    writing any run file (write them with `write_audit`); close the result when done with
    it. The violations and the repair plan are spilled into a new temporary directory in
    `workdir` (None: the system's), removed by `close()` or when the audit fails.
    With `source`, the rows at `url` stand for another database (see `AuditSource`).
    """
    opts = options or AuditOptions()
    prog = as_progress(progress)
    now = datetime.now(UTC)
    baseline = load_baseline(opts.baseline) if opts.baseline is not None else None
    run = _new_run(url, suite, opts, source, now)
    spill = tempfile.TemporaryDirectory(prefix="refaudit-audit-", dir=workdir)
    try:
        done = _audit(
            url,
            suite,
            run,
            Path(spill.name) / "violations.csv",
            opts=opts,
            progress=prog,
            source=source,
            baseline=baseline,
            started=now,
            workdir=spill,
        )
    except BaseException:
        spill.cleanup()
        raise
    prog.done()
    return done


def write_audit(
    done: CompletedAudit, out: Path | None = None, *, progress: ProgressLike = None
) -> AuditResult:
    """Write the files of `done` into `out` (None: reports/<run's start time>): what
    `run_audit` writes, the run history included (a run is recorded once, by its first
    write). The files of an earlier run in `out` are removed first; when writing fails,
    `out` holds only a results.json and a junit.xml that record the error, which is raised.
    Returns `done.result`, its `out_dir` now `out`.
    """
    done._open()
    opts = done.options
    prog = as_progress(progress)
    out_dir = out or default_out_dir(done._started)
    if done._baseline is not None:
        _check_baseline_location(done._baseline, out_dir)
    out_dir = prepare_out_dir(out_dir)
    history = None
    if opts.record_history and not done._recorded:
        history = HistoryStore(opts.history or default_history_path(out, DEFAULT_REPORTS))
    _write(done, out_dir, history, prog, move=False)
    prog.done()
    return done.result


def run_audit(
    url: URL,
    suite: Suite,
    out: Path | None = None,
    *,
    options: AuditOptions | None = None,
    progress: ProgressLike = None,
    source: AuditSource | None = None,
) -> AuditResult:
    """Audit the database at `url` against `suite` and write the run's files into `out`
    (`audit`, then `write_audit`). With `source`, the rows at `url` stand for another
    database (see `AuditSource`).

    When the run fails (database unreachable, a timeout, the connection lost), `out` holds
    only a results.json and a junit.xml that record the error; no violations.csv or report
    of a partial run is left behind, and the error is raised.
    """
    opts = options or AuditOptions()
    prog = as_progress(progress)
    now = datetime.now(UTC)
    baseline = load_baseline(opts.baseline) if opts.baseline is not None else None
    out_dir = out or default_out_dir(now)
    if baseline is not None:
        _check_baseline_location(baseline.path, out_dir)
    out_dir = prepare_out_dir(out_dir)
    history = None
    if opts.record_history:
        history = HistoryStore(opts.history or default_history_path(out, DEFAULT_REPORTS))
    run = _new_run(url, suite, opts, source, now)
    clock = time.perf_counter()
    warm_up = _WarmUp()
    try:
        # the violations stream into `out` and are renamed into place once every check ran
        done = _audit(
            url,
            suite,
            run,
            out_dir / PARTIAL_VIOLATIONS,
            opts=opts,
            progress=prog,
            source=source,
            baseline=baseline,
            started=now,
            keep_keys=history is not None,
            on_first_statement=warm_up.start,
        )
    except BaseException as exc:
        if history is not None:
            history.close()
        _record_failure(run, out_dir, exc, url, clock)
        raise
    warm_up.join()
    with done:
        _write(done, out_dir, history, prog, move=True)
    prog.done()
    return done.result


class _WarmUp:
    """Loads what writing the run's files needs (the outputs' modules, jinja2, the report's
    compiled template: ~0.1 s) in a thread of its own, started when the checks' first
    statement is on its way, so that it runs while the audit waits for the server's
    statements. What it imports imports no SQLAlchemy (whose circular imports fail when two
    threads run them at once); a failure here is left for the writing of the files to meet
    and report."""

    def __init__(self) -> None:
        self._thread = threading.Thread(target=self._load, name="refaudit-warm-up", daemon=True)

    def start(self) -> None:
        self._thread.start()

    @staticmethod
    def _load() -> None:
        try:
            from .outputs import load_templates

            load_templates()
        except Exception:  # met again, and reported, when the files are written
            pass

    def join(self) -> None:
        if self._thread.ident is not None:  # started
            self._thread.join()


def _audit(
    url: URL,
    suite: Suite,
    run: RunInfo,
    spill: Path,
    *,
    opts: AuditOptions,
    progress: Progress,
    source: AuditSource | None,
    baseline: Baseline | None,
    started: datetime,
    workdir: tempfile.TemporaryDirectory[str] | None = None,
    keep_keys: bool = False,
    on_first_statement: Callable[[], None] = lambda: None,
) -> CompletedAudit:
    """Run the audit of `run`, streaming its violations into `spill` (removed, like the
    repair plan, when the audit fails; a database error is raised as a `RefauditError`).
    `workdir`: the directory the result owns, which holds the spill and the repair plan.
    `on_first_statement` is called once the suite is verified and the first of the checks'
    statements is on its way."""
    prog = progress
    clock = time.perf_counter()
    plan = None
    lookups: list[Resolution] = []
    if opts.repair:
        from .repair import RepairPlan

        inside = Path(workdir.name) if workdir is not None else None
        plan = RepairPlan(suite, run.run_id, inside, schema=opts.repair_schema)
    doing = "connecting"
    try:
        engine = create_engine(
            url, statement_timeout_s=opts.statement_timeout_s, lock_timeout_s=opts.lock_timeout_s
        )
        try:
            with spill.open("w", encoding="utf-8", newline="") as handle:
                sink = ViolationSink(
                    handle, baseline, tap=plan.add if plan else None, keep_keys=keep_keys
                )
                prog.stage("snapshot", 2)
                where = run.database if source is None else f"the {source.kind} of {run.database}"
                prog.step(f"connecting to {where}")
                # the first statement may be on its way already, in a snapshot of its own (a
                # connection more: not where the run is to use one)
                takes_early = source is None and opts.second_connection
                sent_early = early.snapshot() if takes_early else None
                with read_only_snapshot(engine, sent_early) as (conn, snap):
                    early.imported(snap.imported)
                    # an imported snapshot is older than this transaction: its own time
                    imported_at = early.taken_at() if snap.imported else None
                    run.snapshot_taken_at = imported_at or snap.taken_at
                    run.server_version = snap.server_version
                    # a database the caller names (the demo's, a new cluster each time) is
                    # kept by that name
                    run.database_identity = "" if opts.database_label else snap.identity
                    if source is not None:
                        run.source = source.kind
                        run.snapshot_taken_at = source.snapshot_taken_at
                        run.server_version = source.server_version
                        run.database_identity = source.identity
                    doing = "checking the schema"
                    prog.step("checking the schema")
                    types = verify_schema(conn, suite)
                    doing = "reading the type tables of the suite's lookups"
                    # a snapshot holds the suite's tables only: no table tells a stale type
                    suite, lookups = resolve_lookups(conn, suite, stale=source is None)
                    if plan is not None:
                        plan.use_suite(suite)
                    doing = "checking the suite's values"
                    types = verify_values(conn, suite, types)
                    if plan is not None:
                        from .repair import read_repair_context

                        doing = "reading the catalog the repair plan needs"
                        plan.context = read_repair_context(conn, suite, types)
                    doing = "auditing"
                    catalog: dict[str, CatalogFacts] = dict(source.catalog) if source else {}
                    if takes_early:  # the checks' first statement: the early one?
                        early.arm(url.password)
                    checks = run_checks(
                        conn,
                        suite,
                        sink,
                        progress=prog,
                        catalog=catalog,
                        companion=opts.second_connection,
                        types=types,
                        as_of=source.snapshot_taken_at if source is not None else imported_at,
                        on_first_statement=on_first_statement,
                    )
                    if plan is not None and plan.context is not None:
                        from .repair import read_reference_facts

                        doing = "reading what the repair needs"
                        read_reference_facts(conn, suite, plan.context, catalog)
        finally:
            engine.dispose()
    except BaseException as exc:
        spill.unlink(missing_ok=True)
        if plan is not None:
            plan.cleanup()
        if isinstance(exc, (sa_exc.SQLAlchemyError, psycopg2.Error)):
            raise database_error(exc, url, doing=doing) from exc
        raise
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    run.duration_s = round(time.perf_counter() - clock, 3)
    result = AuditResult(run=run, checks=checks, out_dir=None, fail_on=opts.fail_on)
    result.diagnoses = sink.diagnosis_summary()
    if lookups:  # their problems are `<id>.lookup` findings, not notes
        result.lookups = [r.to_dict() for r in lookups]
    if source is not None:
        result.source = dict(source.details)
    if baseline is not None:
        result.baseline = baseline_summary(baseline, checks)
    return CompletedAudit(
        result,
        spill,
        options=opts,
        started=started,
        clock=clock,
        url=url,
        baseline=baseline.path if baseline is not None else None,
        plan=plan,
        keys=sink.keys,
        workdir=workdir,
    )


def _write(
    done: CompletedAudit,
    out_dir: Path,
    history: HistoryStore | None,
    prog: Progress,
    *,
    move: bool,
) -> None:
    """Write the files of `done` into the prepared `out_dir`, and record it in `history`;
    results.json last. `move`: the violations are moved into place (`done` is closed next)."""
    result, opts = done.result, done.options
    before = (result.out_dir, result.repair, result.history)
    result.out_dir = out_dir
    try:
        target = out_dir / "violations.csv"
        if move:
            done.violations.replace(target)
        else:
            tmp = out_dir / ".violations.csv.tmp"
            try:
                shutil.copyfile(done.violations, tmp)
                tmp.replace(target)
            finally:
                tmp.unlink(missing_ok=True)
        plan = done.repair_plan
        if plan is not None and plan.context is not None:
            prog.stage("repair plan", 1)
            prog.step("writing repair.sql, rollback.sql and constraints.sql")
            result.repair = write_repair_files(plan, plan.context, opts, result)
        commit = None
        if history is not None:
            prog.stage("history", 1)
            prog.step(f"comparing with the last run ({history.path})")
            keys = done._keys if done._keys is not None else history_keys(target)
            result.history = history.record(result, keys)
            del keys
            commit = partial(done._commit, history)
        prog.stage("writing files", 1)
        prog.step(f"writing {out_dir}")
        # the history keeps the run only once its files are written (results.json last)
        write_outputs(result, opts.fail_on, before_results=commit)
    except BaseException as exc:
        _record_failure(replace(result.run), out_dir, exc, done._url, done._clock)
        if not done._recorded:
            result.history = before[2]
        result.out_dir, result.repair = before[0], before[1]
        raise
    finally:
        if history is not None:
            history.close()


@dataclass(frozen=True)
class SuiteCheckResult:
    """What `check_suite` found: the suite is valid (it raised otherwise)."""

    suite: str
    tables: int
    checks: int
    database: str | None = None  # checked against this database, when one was given
    # what that database's catalog says of the suite's tables (empty without one)
    types: ColumnTypes = field(default_factory=dict)
    unique: set[tuple[str, str]] = field(default_factory=set)
    warnings: list[str] = field(default_factory=list)  # what holds, but limits the audit
    results: int = 0  # the results a run reports: the checks, and those derived from them


def key_warnings(found: Mapping[str, Relation], suite: Suite) -> list[str]:
    """A table whose rows a repair may change and whose suite key no primary key or unique
    index makes unique: the plan finds rows by key, so it repairs them only if the audit
    finds no two rows sharing one (it reads them then; checking the suite reads none).
    `found`: the suite's tables as read with their indexes (`read_relations`)."""
    from .repair import key_proof

    repaired = sorted({c.table for c in suite.checks if c.repairs})
    out = []
    for tbl in repaired:
        rel = found.get(tbl)
        key = suite.key_columns(tbl)
        if rel is not None and rel.kind in ("r", "p") and not key_proof(rel, key):
            out.append(
                f"{tbl}: no primary key or unique index makes its key ({', '.join(key)}) "
                "unique; repair.sql changes its rows only if the audit finds no two rows "
                "sharing a key (declare the table's real key under `tables:`, or add a "
                "unique index)"
            )
    return out


def check_suite(suite: Suite, url: URL | None = None) -> SuiteCheckResult:
    """Validate a loaded suite without auditing: with `url`, also against that database's
    schema (tables and columns exist; regexes and values are ones PostgreSQL can run and
    the columns' types can hold), in one read-only snapshot that reads no row."""
    database = None
    types: ColumnTypes = {}
    unique: set[tuple[str, str]] = set()
    warnings: list[str] = []
    if url is not None:
        database = describe(url)
        engine = create_engine(url)
        doing = "connecting"
        try:
            with read_only_snapshot(engine) as (conn, _snap):
                doing = "checking the schema"
                types = verify_schema(conn, suite)
                doing = "reading the type tables of the suite's lookups"
                suite, lookups = resolve_lookups(conn, suite, stale=False)
                warnings += [n for r in lookups for n in r.notes()]
                doing = "checking the suite's values"
                types = verify_values(conn, suite, types)
                doing = "reading the tables' keys"
                found = read_relations(conn, suite.tables, {"indexes"}, NO_DEFINITION)
                unique = relation_unique_columns(found)
                warnings += key_warnings(found, suite)
        except sa_exc.SQLAlchemyError as exc:
            raise database_error(exc, url, doing=doing) from None
        finally:
            engine.dispose()
    # a conditional reference also reports its discriminator, and a lookup its type table,
    # as results of their own: a run counts those too
    derived = sum(
        1 + (c.lookup is not None)
        for c in suite.checks
        if isinstance(c, ConditionalReferenceCheck)
    )
    return SuiteCheckResult(
        suite.suite, len(suite.tables), len(suite.checks), database, types, unique, warnings,
        results=len(suite.checks) + derived,
    )


def write_repair_files(
    plan: RepairPlan, context: RepairContext, opts: AuditOptions, result: AuditResult
) -> dict[str, Any]:
    """repair.sql, rollback.sql and constraints.sql into the run's directory."""
    from .repair import plan_preamble, write_repair_sql, write_rollback_sql

    out, run = result.out_dir, result.run
    assert out is not None  # the directory being written
    views = [t for t, info in context.tables.items() if not info.is_table]
    resolved = {t: (info.schema, info.relname) for t, info in context.tables.items()}
    catalog = plan_catalog(plan.suite, context.facts, views, context.types, resolved)
    timeouts = {
        "lock_timeout_s": opts.lock_timeout_s,
        "statement_timeout_s": opts.statement_timeout_s,
    }
    summary = write_repair_sql(plan, context, catalog, out / "repair.sql", **timeouts)
    write_rollback_sql(plan, context, catalog, out / "rollback.sql", **timeouts)
    preamble = plan_preamble(context.identity, "constraints.sql", local=False, **timeouts)
    (out / "constraints.sql").write_text(
        render_constraints(catalog, run_id=run.run_id, preamble=preamble), encoding="utf-8"
    )
    files = summary.to_dict()["files"]
    result.files.update(files)
    return summary.to_dict()


def baseline_summary(baseline: Baseline, checks: list[CheckResult]) -> dict[str, Any]:
    """What results.json, JUnit and the report say about the baseline."""
    per_check: dict[str, dict[str, int]] = {}
    for c in checks:
        known = c.known or 0
        per_check[c.id] = {
            "known": known,
            "new": c.new or 0,
            "resolved": max(baseline.count(c.id) - known, 0),
        }
    ran = {c.id for c in checks}
    return {
        "path": str(baseline.path),
        "matched_on": list(IDENTITY_FIELDS) + (["value"] if baseline.match_value else []),
        "baseline_violations": baseline.lines,
        "known": sum(v["known"] for v in per_check.values()),
        "new": sum(v["new"] for v in per_check.values()),
        "resolved": sum(v["resolved"] for v in per_check.values()),
        "checks_not_in_suite": sorted(baseline.checks() - ran),
        "per_check": per_check,
    }


def _record_failure(
    run: RunInfo, out_dir: Path, error: BaseException, url: URL, started: float
) -> None:
    """Leave a results.json and junit.xml that say the run failed (never a partial pass)."""
    if isinstance(error, Terminated):
        message = str(error)
    elif isinstance(error, KeyboardInterrupt):
        message = "interrupted; nothing was concluded"
    elif isinstance(error, RefauditError):
        message = str(error)
    else:
        message = scrub(f"unexpected {type(error).__name__}: {error}", url).splitlines()[0]
    run.finished_at = datetime.now(UTC).isoformat(timespec="seconds")
    run.duration_s = round(time.perf_counter() - started, 3)
    code = error.exit_code if isinstance(error, RefauditError) else ExitCode.RUNTIME
    from .outputs import write_error_outputs

    try:
        for name in RUN_FILES:
            (out_dir / name).unlink(missing_ok=True)
        write_error_outputs(run, out_dir, message, int(code), type(error).__name__)
    except OSError:
        pass  # the error itself is what the caller must see


def write_outputs(
    result: AuditResult, fail_on: FailOn, before_results: Callable[[], None] | None = None
) -> None:
    """Write the run's files; results.json last, so its presence means the run is complete.
    `before_results` runs when results.json is written but not yet in place."""
    from .outputs import write_junit, write_report, write_results_json

    out = result.out_dir
    assert out is not None  # the directory being written
    result.files.update(
        {
            "violations": "violations.csv",
            "results": "results.json",
            "junit": "junit.xml",
            "report": "report.html",
        }
    )
    if result.history is not None:
        result.files["history"] = result.history["store"]
    write_junit(result, out / "junit.xml", fail_on)
    write_report(result, out / "report.html", fail_on)
    write_results_json(result, out / "results.json", fail_on, before_results)
