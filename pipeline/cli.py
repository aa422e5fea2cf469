"""The `refaudit` command line: parse, call the library, map the outcome to an exit code.

Every error a user can cause or meet ends here as one line on stderr and a documented exit
code (see `ExitCode`); tracebacks only with `--debug`.
"""

from __future__ import annotations

import atexit
import gc
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar, cast

import typer

from . import early
from .errors import ExitCode, RefauditError, Terminated
from .limits import (
    DEFAULT_LOCK_TIMEOUT_S,
    DEFAULT_STATEMENT_TIMEOUT_S,
    MAX_TIMEOUT_S,
)
from .words import plural

if TYPE_CHECKING:
    from .project import Project
    from .results import FailOn

T = TypeVar("T")

app = typer.Typer(
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Audit the referential and domain integrity of a PostgreSQL database.",
)
TOP_EPILOG = (
    "\b\nExamples:\n"
    '  refaudit discover --db "$DATABASE_URL" --out suite.yml    # write a suite\n'
    '  refaudit suite check suite.yml --db "$DATABASE_URL"       # validate it\n'
    '  refaudit run --db "$DATABASE_URL" --suite suite.yml --out audit/ --repair\n'
    '  refaudit apply audit/repair.sql --db "$DATABASE_URL" --dry-run\n'
    "\nA refaudit.toml (or [tool.refaudit] in pyproject.toml) names the suite and more, so that "
    "`refaudit run` needs no option."
)


def _print_version(value: bool) -> None:
    if value:
        from . import __version__

        typer.echo(f"refaudit {__version__}")
        raise typer.Exit()


@app.callback(epilog=TOP_EPILOG)
def _options(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print refaudit's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Audit the referential and domain integrity of a PostgreSQL database."""
    _JsonErrors.command = None  # until a command's --format json says otherwise


class FailOnChoice(StrEnum):
    error = "error"
    warn = "warn"


class OutputFormat(StrEnum):
    text = "text"
    json = "json"


class _JsonErrors:
    """The command whose errors are also a JSON object on stdout (`--format json`), if any."""

    command: str | None = None


def _fail(message: str, code: ExitCode) -> None:
    """Print the error (one line each, when it lists several: a suite's mistakes) and exit."""
    for line in message.splitlines() or [""]:
        typer.echo(f"refaudit: error: {line}", err=True)
    if _JsonErrors.command is not None:
        from .summary import ErrorSummary

        error = ErrorSummary(
            command=_JsonErrors.command,
            error=message,
            errors=message.splitlines(),
            exit_code=int(code),
        )
        typer.echo(error.model_dump_json(indent=2))
    raise typer.Exit(int(code))


def _output(fmt: OutputFormat, command: str) -> bool:
    """Whether the command prints JSON: then its errors do too, and its text goes to stderr."""
    as_json = fmt is OutputFormat.json
    _JsonErrors.command = command if as_json else None
    return as_json


def _verbosity(quiet: bool, verbose: int) -> None:
    """Check -q against -v; with -vv, show every statement's SQL on stderr."""
    if quiet and verbose:
        _fail("--quiet and --verbose exclude each other; pass one of them", ExitCode.USAGE)
    from .console import show_sql  # (it loads no rich)

    show_sql(verbose > 1)


class _StartUp:
    """While the process starts (the command's imports), the cyclic garbage collector is
    off: the imports make hundreds of thousands of objects, none of them garbage, and each
    collection of the oldest generation walks them all (~50 ms of a run's start-up). `main`
    turns it off; `_started` turns it on again when the command begins its work, with what
    exists by then frozen (never walked again)."""

    gc_off = False


def _started() -> None:
    if _StartUp.gc_off:
        _StartUp.gc_off = False
        gc.freeze()
        gc.enable()


def _guarded(debug: bool, fn: Callable[[], T], secrets: Callable[[], list[str]]) -> T:
    """Run `fn`; turn every failure into one line and an exit code (after a traceback with
    --debug; the exit code stays the documented one). SIGTERM stops `fn` as Ctrl-C does."""
    _started()
    try:
        with _terminate_as_interrupt():
            return fn()
    except typer.Exit:
        raise
    except RefauditError as exc:
        _traceback(debug, secrets())
        _fail(str(exc), exc.exit_code)
    except Terminated as exc:
        _traceback(debug, secrets())
        _fail(str(exc), ExitCode.RUNTIME)
    except KeyboardInterrupt:
        _traceback(debug, secrets())
        _fail("interrupted; nothing was concluded", ExitCode.RUNTIME)
    except Exception as exc:  # a bug or an unforeseen environment problem
        _traceback(debug, secrets())
        message = _scrub(f"unexpected {type(exc).__name__}: {exc}", secrets()).splitlines()
        _fail(f"{message[0] if message else ''} (run with --debug for details)", ExitCode.RUNTIME)
    raise AssertionError("unreachable")


def plan_summary(plan: dict[str, int], others: int) -> str:
    """What a repair plan does, in one line: `plan` its counts (results.json `repair`),
    `others` the violations of checks no plan repairs."""
    left = (
        f"; {plural(others, 'violation')} of other checks left to you (the report)"
        if others
        else ""
    )
    return (
        f"repair plan: {plural(plan['updates'], 'update')}, {plan['set_null']:,} set to NULL, "
        f"{plan['quarantined']:,} to quarantine, {plan['ambiguous']:,} for review{left}"
    )


def _scrub(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _traceback(debug: bool, secrets: list[str]) -> None:
    if debug:
        import traceback

        typer.echo(_scrub(traceback.format_exc(), secrets).rstrip(), err=True)


def _secrets(db: str | None) -> Callable[[], list[str]]:
    """The passwords a message must never show (from --db, DATABASE_URL and PGPASSWORD)."""

    def find() -> list[str]:
        from .db import secrets

        return secrets(db)

    return find


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL; default $DATABASE_URL (or the variable refaudit.toml names in "
        "database_env), then libpq PG* variables.",
        metavar="URL",
        show_default=False,
    ),
]
SuiteOption = Annotated[
    Path | None,
    typer.Option(
        "--suite",
        help="Suite YAML (required unless refaudit.toml or pyproject.toml's [tool.refaudit] "
        "names one).",
        show_default=False,
    ),
]
DemoSuiteOption = Annotated[
    Path | None, typer.Option("--suite", help="Suite YAML (default: the Astegni sample suite).")
]
SnapshotOption = Annotated[
    Path | None,
    typer.Option(
        "--snapshot",
        help="Audit this snapshot directory (from refaudit extract) instead of a database.",
        show_default=False,
    ),
]
DebugOption = Annotated[bool, typer.Option("--debug", help="Show tracebacks.")]
StatementTimeoutOption = Annotated[
    float,
    typer.Option(
        "--statement-timeout",
        help="Seconds one statement may run before refaudit stops with exit 3.",
        metavar="SECONDS",
        min=0.001,
        max=MAX_TIMEOUT_S,
    ),
]
LockTimeoutOption = Annotated[
    float,
    typer.Option(
        "--lock-timeout",
        help="Seconds to wait for a table lock held by another session before exit 3.",
        metavar="SECONDS",
        min=0.001,
        max=MAX_TIMEOUT_S,
    ),
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the verdict; no progress display.")
]
VerboseOption = Annotated[
    int,
    typer.Option(
        "--verbose",
        "-v",
        count=True,
        help="More detail on stderr: each stage and step with its time, as lines (-v); also "
        "the SQL of every statement (-vv).",
        show_default=False,
    ),
]
FormatOption = Annotated[
    OutputFormat,
    typer.Option(
        "--format",
        help="text: the summary for people; json: one JSON object on stdout (everything else, "
        "errors included, on stderr).",
    ),
]
HistoryOption = Annotated[
    Path | None,
    typer.Option(
        "--history",
        help="Run-history file (default: history.db beside the run directories, i.e. "
        "reports/history.db, or in the parent of --out).",
        show_default=False,
    ),
]
NoHistoryOption = Annotated[
    bool, typer.Option("--no-history", help="Do not read or append the run history.")
]


# libpq's variables that say which server or database to connect to (see `resolve_url`)
_LIBPQ_TARGET = ("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE")


def _database_url(db: str | None) -> Any:
    """The URL to connect to; a usage error naming what to pass when nothing says which."""
    import os

    from .db import resolve_url
    from .errors import UsageError

    if not db and not os.environ.get("DATABASE_URL") and not any(
        os.environ.get(v) for v in _LIBPQ_TARGET
    ):
        raise UsageError(
            "no database given: pass --db postgresql://USER@HOST:PORT/DBNAME, or set "
            "DATABASE_URL, or libpq's PGHOST, PGPORT, PGUSER and PGDATABASE "
            "(`refaudit demo` needs none: it starts its own server)"
        )
    return resolve_url(db)


def _project() -> Project | None:
    """The project file for the current directory (`refaudit.project`), or None; a broken one
    is a usage error."""
    from .project import find_project

    try:
        return find_project()
    except RefauditError as exc:
        _fail(str(exc), exc.exit_code)
    raise AssertionError("unreachable")


NO_SUITE = (
    "no suite: pass --suite suite.yml, or write one with `refaudit discover --db URL --out "
    "suite.yml` (or name it in refaudit.toml: suite = \"suite.yml\")"
)

NO_SUITE_TO_CHECK = (
    "no suite: pass its path (refaudit suite check suite.yml), or write one with `refaudit "
    "discover --db URL --out suite.yml` (or name it in refaudit.toml: suite = \"suite.yml\")"
)


def _suite_path(given: Path | None, project: Project | None, missing: str = NO_SUITE) -> Path:
    """The suite a command reads: the one given, else the project file's; never a silent
    sample (only `refaudit demo` audits with the shipped Astegni suite by default)."""
    if given is not None:
        return given
    if project is not None and project.settings.suite is not None:
        return project.settings.suite
    _fail(missing, ExitCode.USAGE)
    raise AssertionError("unreachable")


def _project_db(db: str | None, project: Project | None) -> str | None:
    """--db, else the URL in the environment variable the project file names (`database_env`),
    else None (then `resolve_url` falls back to DATABASE_URL and libpq's variables)."""
    if db or project is None or project.settings.database_env is None:
        return db
    name = project.settings.database_env
    value = os.environ.get(name)
    if not value:
        _fail(
            f"{project.where} says the database URL is in ${name}, but ${name} is not set: "
            f"set it, or pass --db",
            ExitCode.USAGE,
        )
    return value


def _examples(*lines: str) -> str:
    """A command's --help epilog: example invocations, kept as written (click's \\b)."""
    return "\b\nExamples:\n" + "\n".join(f"  {line}" for line in lines)


def _derived(checks: int, results: int) -> str:
    """What a run will count beyond the suite's checks (a conditional reference's
    discriminator, a lookup's type table), so that "6 checks" there is no surprise."""
    if results <= checks:
        return ""
    return f" (a run reports {results}: {plural(results - checks, 'derived check')} too)"


def _print_summary(result: Any, fail_on: str, quiet: bool, err: bool = False) -> None:
    """The run's summary for people: on stdout, or on stderr (`err`) when stdout holds JSON."""
    failing = result.failing(fail_on)
    if not quiet:
        for c in result.checks:
            if c.violations or c.status != "passed":
                mark = {"failed": "FAIL", "warned": "warn", "passed": "ok  "}[c.status]
                known = f" ({c.new} new, {c.known} known)" if c.new is not None else ""
                typer.echo(f"  {mark} {c.id}: {c.found()}{known}", err=err)
    baseline = result.baseline
    known = (
        f" ({baseline['new']} new, {baseline['known']} known in the baseline)" if baseline else ""
    )
    history = result.history or {}
    change = ""
    if history.get("previous"):
        change = f" ({history['new']} new, {history['fixed']} fixed since the last run)"
    for note in result.notes:
        typer.echo(f"note: {note}", err=True)
    typer.echo(
        f"{result.verdict(fail_on)}: {plural(result.total_violations, 'violation')}{known}"
        f"{change}, {plural(len(failing), 'failing check')}; "
        f"report {result.out_dir / 'report.html'}",
        err=err,
    )


def _with_progress(quiet: bool, fn: Callable[[Any], T], verbose: int = 0) -> T:
    """Run `fn(progress)` with a progress display on stderr: bars when it is a terminal,
    lines with --verbose."""
    from .console import stderr_progress

    bars = stderr_progress(quiet, verbose=verbose)
    try:
        return fn(bars)
    finally:
        if bars is not None:
            bars.done()


@app.command(
    epilog=_examples(
        "refaudit run --db postgresql://auditor@db.example/shop --suite suite.yml",
        "refaudit run --db \"$DATABASE_URL\" --suite suite.yml --out audit/ --repair",
        "refaudit run --suite suite.yml --baseline audit-baseline.csv --fail-on warn",
        "refaudit run --snapshot snap/ --suite suite.yml --out audit/",
        "refaudit run          # the suite and more named in refaudit.toml",
    )
)
def run(
    db: DbOption = None,
    suite: SuiteOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default reports/<UTC timestamp>/)."),
    ] = None,
    fail_on: Annotated[
        FailOnChoice | None,
        typer.Option(
            "--fail-on", help="Lowest severity that fails the run (default: error).",
            show_default=False,
        ),
    ] = None,
    statement_timeout: StatementTimeoutOption = DEFAULT_STATEMENT_TIMEOUT_S,
    lock_timeout: LockTimeoutOption = DEFAULT_LOCK_TIMEOUT_S,
    baseline: Annotated[
        Path | None,
        typer.Option(
            "--baseline",
            help="An earlier run's violations.csv (or its directory): violations already in it "
            "do not fail the run; thresholds apply to new ones.",
        ),
    ] = None,
    history: HistoryOption = None,
    no_history: NoHistoryOption = False,
    keep: Annotated[
        int | None,
        typer.Option(
            "--keep",
            metavar="N",
            help="After the run, keep only the N newest run directories beside its --out "
            "(those named reports/<UTC timestamp>); older ones are removed.",
        ),
    ] = None,
    snapshot: SnapshotOption = None,
    repair: Annotated[
        bool,
        typer.Option(
            "--repair",
            help="Also write repair.sql, rollback.sql and constraints.sql into --out.",
        ),
    ] = False,
    repair_schema: Annotated[
        str,
        typer.Option(
            "--repair-schema",
            help="The schema the repair plan keeps its backup and quarantine tables in.",
        ),
    ] = "refaudit",
    one_connection: Annotated[
        bool,
        typer.Option(
            "--one-connection",
            help="Run every statement on one connection (by default a second connection in "
            "the same snapshot runs the other tables meanwhile, and half of a big table).",
        ),
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    output_format: FormatOption = OutputFormat.text,
    debug: DebugOption = False,
) -> None:
    """Audit a database (or a snapshot of one) against a suite and write the report into --out."""
    from .audit import AuditOptions, run_audit
    from .errors import UsageError
    from .suite import load_suite

    as_json = _output(output_format, "run")
    _verbosity(quiet, verbose)
    project = _project()
    suite_path = _suite_path(suite, project)
    if project is not None:  # the command line wins over the project file
        if snapshot is None:
            db = _project_db(db, project)
        out = out or project.settings.out
        history = history or project.settings.history
        keep = keep if keep is not None else project.settings.keep
    fails: FailOn = (
        cast("FailOn", fail_on.value)
        if fail_on
        else (project.settings.fail_on if project else None) or "error"
    )

    def go() -> Any:
        if snapshot is not None and db is not None:
            raise UsageError("--db and --snapshot exclude each other; audit one or the other")
        loaded = load_suite(suite_path)
        opts = AuditOptions(
            fail_on=fails,
            statement_timeout_s=statement_timeout,
            lock_timeout_s=lock_timeout,
            baseline=baseline,
            repair=repair,
            repair_schema=repair_schema,
            history=history,
            record_history=not no_history,
            second_connection=not one_connection,
        )
        if snapshot is not None:
            from .replay import audit_snapshot

            result = _with_progress(
                quiet,
                lambda bars: audit_snapshot(snapshot, loaded, out, options=opts, progress=bars),
                verbose,
            )
            for note in (result.source or {})["notes"]:
                typer.echo(f"refaudit: note: {note}", err=True)
            return result
        url = _database_url(db)
        return _with_progress(
            quiet, lambda bars: run_audit(url, loaded, out, options=opts, progress=bars), verbose
        )

    result = _guarded(debug, go, _secrets(db))
    _print_summary(result, fails, quiet, err=as_json)
    if keep is not None and result.out_dir is not None:
        from .audit import prune_runs

        gone = _guarded(debug, lambda: prune_runs(result.out_dir, keep), _secrets(db))
        if gone and not quiet:
            removed = plural(len(gone), "older run directory", "older run directories")
            typer.echo(f"removed {removed} (--keep {keep})", err=as_json)
    plan = result.repair
    if plan is not None:
        from .checks import REPAIRED_KINDS

        others = sum(
            c.violations
            for c in result.checks
            if c.family not in REPAIRED_KINDS and c.reads_rows
        )
        typer.echo(
            f"{plan_summary(plan, others)}; review {result.out_dir / 'repair.sql'}", err=as_json
        )
    if as_json:
        from .summary import RunSummary

        typer.echo(RunSummary.of(result, fails).model_dump_json(indent=2))
    raise typer.Exit(int(result.exit_code(fails)))


@app.command(
    epilog=_examples(
        "refaudit extract --db \"$DATABASE_URL\" --suite suite.yml --out snap/",
        "refaudit run --snapshot snap/ --suite suite.yml --out audit/   # later, anywhere",
    )
)
def extract(
    out: Annotated[Path, typer.Option("--out", help="New or empty directory for the snapshot.")],
    db: DbOption = None,
    suite: SuiteOption = None,
    statement_timeout: StatementTimeoutOption = DEFAULT_STATEMENT_TIMEOUT_S,
    lock_timeout: LockTimeoutOption = DEFAULT_LOCK_TIMEOUT_S,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Snapshot what the suite reads (one Parquet file per table and manifest.json) from one
    consistent read-only transaction; audit it later with `refaudit run --snapshot DIR`."""
    from .extract import ExtractOptions, extract_snapshot
    from .suite import load_suite

    project = _project()
    suite_path = _suite_path(suite, project)
    db = _project_db(db, project)

    def go() -> Any:
        loaded = load_suite(suite_path)
        url = _database_url(db)
        opts = ExtractOptions(statement_timeout_s=statement_timeout, lock_timeout_s=lock_timeout)
        with _table_bars(quiet) as on_progress:
            return extract_snapshot(url, loaded, out, options=opts, progress=on_progress)

    manifest = _guarded(debug, go, _secrets(db))
    typer.echo(
        f"snapshot of {manifest.database} taken at {manifest.snapshot_taken_at}: "
        f"{plural(len(manifest.tables), 'table')}, {plural(manifest.total_rows, 'row')} in "
        f"{out} (audit it with: refaudit run --snapshot {out} --suite {suite_path})"
    )


@contextmanager
def _table_bars(quiet: bool) -> Iterator[Callable[[str, int, int], None] | None]:
    """One rich progress bar per table (rows done of rows in the snapshot) on stderr, when it
    is a terminal and not --quiet."""
    if quiet or not sys.stderr.isatty():
        yield None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bars = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    )
    tasks: dict[str, Any] = {}

    def on_progress(table: str, done: int, total: int) -> None:
        if table not in tasks:
            tasks[table] = bars.add_task(table, total=total)
        bars.update(tasks[table], completed=done, total=total)

    with bars:
        yield on_progress


@app.command(
    epilog=_examples(
        "refaudit apply audit/repair.sql --db \"$DATABASE_URL\" --dry-run",
        "refaudit apply audit/repair.sql --db \"$DATABASE_URL\"",
        "refaudit apply audit/rollback.sql --db \"$DATABASE_URL\"   # undo it",
    )
)
def apply(
    plan: Annotated[
        Path, typer.Argument(help="A plan file: repair.sql, rollback.sql or constraints.sql.")
    ],
    db: DbOption = None,
    dry_run: Annotated[
        bool,
        typer.Option("--dry-run", help="Run the plan, report, then roll everything back."),
    ] = False,
    allow_other_database: Annotated[
        bool,
        typer.Option(
            "--allow-other-database",
            help="Run the plan on a database other than the one it was made for (a rehearsal "
            "on a copy); without it such a plan refuses to run and changes nothing.",
        ),
    ] = False,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    output_format: FormatOption = OutputFormat.text,
    debug: DebugOption = False,
) -> None:
    """Run a plan written by `refaudit run --repair` and report what it changed."""
    from .apply import apply_plan
    from .db import describe

    as_json = _output(output_format, "apply")
    _verbosity(quiet, verbose)
    db = _project_db(db, _project())

    def go() -> Any:
        url = _database_url(db)
        done = apply_plan(
            url,
            plan,
            dry_run=dry_run,
            allow_other_database=allow_other_database,
            echo=None if quiet else (lambda line: typer.echo(line, err=as_json)),
        )
        return done, describe(url)

    result, database = _guarded(debug, go, _secrets(db))
    typer.echo(result.summary(), err=as_json)
    if as_json:
        from .summary import ApplySummary

        typer.echo(ApplySummary.of(result, database).model_dump_json(indent=2))


@app.command(
    epilog=_examples(
        "refaudit demo",
        "refaudit demo --out demo/ --requests 100000 --seed 3",
    )
)
def demo(
    out: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    requests: Annotated[
        int, typer.Option(
            "--requests",
            help="Synthetic session requests to generate (the default size ships with"
            " refaudit; other sizes need refaudit[dataframes]).",
            min=0,
        )
    ] = 3000,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 7,
    suite: DemoSuiteOption = None,
    debug: DebugOption = False,
) -> None:
    """Start an embedded PostgreSQL, build a sample database with defects, and audit it."""
    from sqlalchemy.engine import make_url

    from .audit import AuditOptions, run_audit
    from .db import DRIVER
    from .demo import sample_builder
    from .embedded import create_database, embedded_server
    from .suite import load_suite

    def go() -> Any:
        loaded = load_suite(suite)
        build_sample = sample_builder(loaded, requests=requests, seed=seed)
        typer.echo("starting an embedded PostgreSQL ...", err=True)
        with embedded_server() as server:
            uri = create_database(server, "refaudit_demo")
            typer.echo(
                f"building the sample database ({requests} requests, seed {seed}) ...", err=True
            )
            build_sample(uri)
            typer.echo("auditing ...", err=True)
            url = make_url(uri).set(drivername=DRIVER)
            # the demo shows the repair plan too; its runs share one history scope (the
            # server's socket directory differs every time)
            opts = AuditOptions(
                repair=True, database_label=f"refaudit demo ({requests} requests, seed {seed})"
            )
            return _with_progress(
                False, lambda bars: run_audit(url, loaded, out, options=opts, progress=bars)
            )

    result = _guarded(debug, go, _secrets(None))
    _print_summary(result, "error", False)
    typer.echo(
        f"open {result.out_dir / 'report.html'} to read the audit; "
        f"every violating row is in {result.out_dir / 'violations.csv'}, "
        f"the proposed repair in {result.out_dir / 'repair.sql'}"
    )
    typer.echo(
        "the demo's database went with its server, so its plan cannot be applied; on your "
        "own database: refaudit discover --db URL --out suite.yml, then refaudit run "
        "--suite suite.yml (README: On your own database)"
    )


@app.command(
    epilog=_examples(
        "refaudit discover --db \"$DATABASE_URL\" --out suite.yml",
        "refaudit discover --db \"$DATABASE_URL\" --schema sales --schema crm --out suite.yml",
        "refaudit run --db \"$DATABASE_URL\" --suite suite.yml     # run it as it is",
    )
)
def discover(
    db: DbOption = None,
    schema: Annotated[
        list[str] | None,
        typer.Option(
            "--schema",
            help="A schema to read (repeat for several); default: those of the search path.",
            metavar="SCHEMA",
            show_default=False,
        ),
    ] = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Write the suite YAML here (default: standard output)."),
    ] = None,
    min_confidence: Annotated[
        float,
        typer.Option(
            "--min-confidence",
            help="Leave out proposals below this confidence (0 to 1; declared checks are 1).",
            min=0.0,
            max=1.0,
        ),
    ] = 0.5,
    statement_timeout: StatementTimeoutOption = DEFAULT_STATEMENT_TIMEOUT_S,
    lock_timeout: LockTimeoutOption = DEFAULT_LOCK_TIMEOUT_S,
    quiet: QuietOption = False,
    verbose: VerboseOption = 0,
    output_format: FormatOption = OutputFormat.text,
    debug: DebugOption = False,
) -> None:
    """Write a suite for a database from its catalog and its data (read-only, one snapshot):
    declared constraints, references found in the data (conditional ones and mis-keys
    included), each with its evidence and confidence as comments."""
    from .discover import DiscoverOptions, render_suite, summary, thin_result, write_suite
    from .discover import discover as discover_suite

    as_json = _output(output_format, "discover")
    _verbosity(quiet, verbose)
    if as_json and out is None:
        _fail(
            "--format json prints the summary on standard output, so the suite needs a file: "
            "pass --out suite.yml",
            ExitCode.USAGE,
        )
    db = _project_db(db, _project())

    def go() -> Any:
        url = _database_url(db)
        opts = DiscoverOptions(
            schemas=tuple(schema or ()),
            statement_timeout_s=statement_timeout,
            lock_timeout_s=lock_timeout,
        )
        found = _with_progress(
            quiet, lambda bars: discover_suite(url, opts, progress=bars), verbose
        )
        if out is None:
            return found, render_suite(found, min_confidence)
        return found, write_suite(found, out, min_confidence)

    found, text = _guarded(debug, go, _secrets(db))
    if out is None:
        typer.echo(text, nl=False)
        typer.echo(summary(found, min_confidence), err=True)
    else:
        typer.echo(f"{summary(found, min_confidence)}; wrote {out} (run it: refaudit run "
                   f"--suite {out})", err=as_json)
    thin = thin_result(found, min_confidence)
    for line in thin:  # why the suite holds no reference
        typer.echo(line, err=True)
    if as_json and out is not None:
        from .summary import DiscoverSummary

        done = DiscoverSummary.of(found, out, min_confidence, thin)
        typer.echo(done.model_dump_json(indent=2))


suite_app = typer.Typer(
    help="Work with suites without auditing.", no_args_is_help=True, rich_markup_mode=None
)
app.add_typer(suite_app, name="suite")


@suite_app.command(
    "check",
    epilog=_examples(
        "refaudit suite check my-suite.yml",
        "refaudit suite check          # the suite named in refaudit.toml",
        'refaudit suite check my-suite.yml --db "$DATABASE_URL"',
    ),
)
def suite_check(
    path: Annotated[
        Path | None,
        typer.Argument(
            help="Suite YAML (required unless refaudit.toml or pyproject.toml's "
            "[tool.refaudit] names one).",
            show_default=False,
        ),
    ] = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Also check the suite against this database's schema (read-only; no row is "
            "read).",
            metavar="URL",
        ),
    ] = None,
    verbose: VerboseOption = 0,
    output_format: FormatOption = OutputFormat.text,
    debug: DebugOption = False,
) -> None:
    """Validate a suite: its syntax and references, and with --db its tables, columns,
    regexes and values against the database."""
    from .audit import check_suite
    from .db import resolve_url
    from .suite import load_suite

    as_json = _output(output_format, "suite check")
    _verbosity(False, verbose)
    suite_path = _suite_path(path, _project(), NO_SUITE_TO_CHECK)

    def go() -> Any:
        return check_suite(load_suite(suite_path), resolve_url(db) if db else None)

    result = _guarded(debug, go, _secrets(db))
    against = f"; it matches {result.database}" if result.database else ""
    typer.echo(
        f"suite {result.suite} is valid: {plural(result.checks, 'check')} on "
        f"{plural(result.tables, 'table')}{_derived(result.checks, result.results)}{against}",
        err=as_json,
    )
    for warning in result.warnings:
        typer.echo(f"warning: {warning}", err=True)
    if as_json:
        from .summary import SuiteCheckSummary

        typer.echo(SuiteCheckSummary.of(result, suite_path).model_dump_json(indent=2))


@suite_app.command(
    "kinds",
    epilog=_examples(
        "refaudit suite kinds",
        "refaudit suite kinds conditional_reference",
        "refaudit suite kinds --markdown > kinds.md     # the Markdown source",
    ),
)
def suite_kinds(
    kind: Annotated[
        str | None, typer.Argument(help="One kind (default: all of them).", show_default=False)
    ] = None,
    markdown: Annotated[
        bool,
        typer.Option(
            "--markdown",
            help="Print the Markdown source (for documentation) rather than render it.",
        ),
    ] = False,
) -> None:
    """Print the suite reference: what each check kind checks and its keys (rendered on a
    terminal, plain text when piped)."""
    import difflib

    from .checks import KIND_NAMES, kind_doc, suite_reference
    from .console import print_markdown

    if kind is None:
        text = suite_reference()
    elif kind in KIND_NAMES:
        text = f"#### `{kind}` ({KIND_NAMES[kind].stage})\n\n{kind_doc(KIND_NAMES[kind])}\n"
    else:
        close = difflib.get_close_matches(kind, sorted(KIND_NAMES), n=1)
        hint = f"did you mean {close[0]!r}?" if close else "use one of: " + ", ".join(
            sorted(KIND_NAMES)
        )
        raise typer.BadParameter(f"unknown kind {kind!r}; {hint}", param_hint="KIND")
    if markdown:
        typer.echo(text, nl=False)
    else:
        print_markdown(text)


@app.command(
    "export-gx",
    epilog=_examples(
        "refaudit export-gx --suite suite.yml --out gx/",
        'refaudit export-gx --suite my-suite.yml --db "$DATABASE_URL" --out gx/',
    ),
)
def export_gx(
    out: Annotated[Path, typer.Option("--out", help="Directory for the GX suites.")],
    suite: SuiteOption = None,
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            metavar="URL",
            help="Read the tables' column types and unique keys from this database (read-only; "
            "no row is read): needed when a reference's column type differs from its "
            "target key's (text ids against bigint or uuid keys).",
        ),
    ] = None,
    debug: DebugOption = False,
) -> None:
    """Export the suite as Great Expectations 1.x expectation suites, one per table."""
    from .audit import check_suite
    from .db import resolve_url
    from .gx_export import export_suite, write_export
    from .suite import load_suite

    suite_path = _suite_path(suite, _project())

    def go() -> Any:
        loaded = load_suite(suite_path)
        schema = check_suite(loaded, resolve_url(db)) if db else None
        export = export_suite(
            loaded, schema.types if schema else None, schema.unique if schema else None
        )
        write_export(export, out)
        return export

    export = _guarded(debug, go, _secrets(db))
    for s in export.suites:
        typer.echo(f"  {out / s.file}: {plural(len(s.expectations), 'expectation')} on table "
                   f"{s.table}")
    typer.echo(f"  {out / 'manifest.json'}: which table each suite validates")
    if export.not_exported:
        ids = ", ".join(n["check"] for n in export.not_exported)
        typer.echo(
            f"not exported: {plural(len(export.not_exported), 'catalog check')} (GX has no "
            f"expectation on constraints, indexes or triggers; refaudit run answers them): {ids}"
        )
    total = sum(len(s.expectations) for s in export.suites)
    typer.echo(
        f"wrote {plural(len(export.suites), 'GX expectation suite')} "
        f"({plural(total, 'expectation')}) to {out}"
    )


def _raise_terminated(_signum: int, _frame: Any) -> None:
    raise Terminated()


def _exit_terminated(_signum: int, _frame: Any) -> None:
    """SIGTERM outside a command's work: nothing to clean up but the statement sent at
    start-up, if any; stop now."""
    early.cancel()
    sys.stderr.write(f"refaudit: error: {Terminated()}\n")
    sys.stderr.flush()
    os._exit(int(ExitCode.RUNTIME))


@contextmanager
def _terminate_as_interrupt() -> Iterator[None]:
    """Within: SIGTERM raises `Terminated` (a KeyboardInterrupt), so the work stops and
    cleans up as on Ctrl-C."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGTERM, _raise_terminated)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _cancel_on_signal(wakeup: int) -> None:
    """Runs in a thread of its own: when SIGTERM or SIGINT arrives, cancel the statements
    refaudit is running, so that a main thread blocked in libpq (waiting for a long
    statement or a lock) gets back to Python at once, where the signal's exception stops the
    run and cleans up. It imports nothing: an import here would race the main thread's
    (SQLAlchemy's circular imports fail when two threads run them at once); without
    `refaudit.db` loaded there is no connection to cancel."""
    wanted = {signal.SIGTERM, signal.SIGINT}
    while True:
        try:
            got = os.read(wakeup, 64)
        except OSError:
            return
        if not got:
            return
        db = sys.modules.get(f"{__package__}.db")
        if wanted & set(got) and db is not None:
            db.cancel_statements()


def _handle_signals() -> None:
    """SIGTERM (a scheduler stopping the job, `kill`) stops a run as Ctrl-C does: the
    statements are cancelled, nothing half-written stays, the outputs say the run failed."""
    signal.signal(signal.SIGTERM, _exit_terminated)
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end, warn_on_full_buffer=False)
    threading.Thread(
        target=_cancel_on_signal, args=(read_end,), name="refaudit-signals", daemon=True
    ).start()


def _leave(code: int) -> NoReturn:
    """`sys.exit(code)`, without the interpreter's teardown: freeing every module and object
    one by one takes ~0.1 s after a run (more after a big one), and nothing of it can be
    seen. What exiting does that can be seen is done first: other threads have finished
    (else this exits the ordinary way), the atexit handlers run, the output is flushed (if
    that fails, say on a closed pipe, Python reports it as usual)."""
    main_thread = threading.main_thread()
    if any(t is not main_thread and not t.daemon and t.is_alive() for t in threading.enumerate()):
        sys.exit(code)
    atexit._run_exitfuncs()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except BaseException:
        sys.exit(code)
    os._exit(code)


def main() -> None:
    """Console-script entry point."""
    gc.disable()  # until the command starts working (`_started`)
    _StartUp.gc_off = True
    _handle_signals()
    # typer's own classes (it vendors click): BadParameter -> UsageError -> ClickException
    click_exception = cast(
        type[Exception],
        next(c for c in typer.BadParameter.__mro__ if c.__name__ == "ClickException"),
    )
    try:
        code = app(prog_name="refaudit", standalone_mode=False)
    except click_exception as exc:  # a usage error: click's message, exit 2
        if isinstance(exc, typer.BadParameter):
            # typer checks option values with pydantic, whose messages start "Value error, "
            exc.message = exc.message.removeprefix("Value error, ")
        exc.show()  # type: ignore[attr-defined]
        sys.exit(exc.exit_code)  # type: ignore[attr-defined]
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    _leave(code if isinstance(code, int) else 0)
