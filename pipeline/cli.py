"""The `refaudit` command line: parse, call the library, map the outcome to an exit code.

Every error a user can cause or meet ends here as one line on stderr and a documented exit
code (see `ExitCode`); tracebacks only with `--debug`.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer

from pipeline.errors import ExitCode, RefauditError

T = TypeVar("T")

app = typer.Typer(
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    no_args_is_help=True,
    help="Audit the referential and domain integrity of a PostgreSQL database.",
)


class FailOnChoice(StrEnum):
    error = "error"
    warn = "warn"


def _fail(message: str, code: ExitCode) -> None:
    typer.echo(f"refaudit: error: {message}", err=True)
    raise typer.Exit(int(code))


def _guarded(debug: bool, fn: Callable[[], T]) -> T:
    """Run `fn`; turn every failure into one line and an exit code."""
    try:
        return fn()
    except typer.Exit:
        raise
    except RefauditError as exc:
        if debug:
            raise
        _fail(str(exc), exc.exit_code)
    except KeyboardInterrupt:
        _fail("interrupted; nothing was concluded", ExitCode.RUNTIME)
    except Exception as exc:  # a bug or an unforeseen environment problem
        if debug:
            raise
        from pipeline.db import scrub

        _fail(
            scrub(
                f"unexpected {type(exc).__name__}: {exc} (run with --debug for details)", None
            ).splitlines()[0],
            ExitCode.RUNTIME,
        )
    raise AssertionError("unreachable")


DbOption = Annotated[
    str | None,
    typer.Option(
        "--db",
        help="Database URL; default $DATABASE_URL, then libpq PG* variables.",
        show_default=False,
    ),
]
SuiteOption = Annotated[
    Path | None, typer.Option("--suite", help="Suite YAML (default: the Astegni suite).")
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
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="Print only the verdict.")]


def _print_summary(result: Any, fail_on: str, quiet: bool) -> None:
    failing = result.failing(fail_on)
    if not quiet:
        for c in result.checks:
            if c.violations:
                mark = {"failed": "FAIL", "warned": "warn", "passed": "ok  "}[c.status]
                typer.echo(f"  {mark} {c.id}: {c.violations} of {c.rows_checked} rows")
    typer.echo(
        f"{result.verdict(fail_on)}: {result.total_violations} violations, "
        f"{len(failing)} failing checks; report {result.out_dir / 'report.html'}"
    )


@app.command()
def run(
    db: DbOption = None,
    suite: SuiteOption = None,
    out: Annotated[
        Path | None,
        typer.Option("--out", help="Output directory (default reports/<UTC timestamp>/)."),
    ] = None,
    fail_on: Annotated[
        FailOnChoice, typer.Option("--fail-on", help="Lowest severity that fails the run.")
    ] = FailOnChoice.error,
    statement_timeout: Annotated[
        float, typer.Option("--statement-timeout", help="Seconds one statement may run.", min=0.001)
    ] = 600.0,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="Seconds to wait for a lock.", min=0.001)
    ] = 5.0,
    snapshot: SnapshotOption = None,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Audit a database (or a snapshot of one) against a suite and write the report into --out."""
    from pipeline.audit import AuditOptions, run_audit
    from pipeline.db import resolve_url
    from pipeline.errors import UsageError
    from pipeline.suite import load_suite

    def go() -> Any:
        if snapshot is not None and db is not None:
            raise UsageError("--db and --snapshot exclude each other; audit one or the other")
        loaded = load_suite(suite)
        opts = AuditOptions(
            fail_on=fail_on.value,
            statement_timeout_s=statement_timeout,
            lock_timeout_s=lock_timeout,
        )
        if snapshot is not None:
            from pipeline.replay import audit_snapshot

            say = None if quiet else (lambda msg: typer.echo(msg, err=True))
            return audit_snapshot(snapshot, loaded, out, options=opts, progress=say)
        return run_audit(resolve_url(db), loaded, out, options=opts)

    result = _guarded(debug, go)
    _print_summary(result, fail_on.value, quiet)
    raise typer.Exit(int(result.exit_code(fail_on.value)))


@app.command()
def extract(
    out: Annotated[Path, typer.Option("--out", help="New or empty directory for the snapshot.")],
    db: DbOption = None,
    suite: SuiteOption = None,
    statement_timeout: Annotated[
        float, typer.Option("--statement-timeout", help="Seconds one statement may run.", min=0.001)
    ] = 600.0,
    lock_timeout: Annotated[
        float, typer.Option("--lock-timeout", help="Seconds to wait for a lock.", min=0.001)
    ] = 5.0,
    quiet: QuietOption = False,
    debug: DebugOption = False,
) -> None:
    """Snapshot what the suite reads (Parquet per table + manifest.json) from one consistent
    read-only transaction; audit it later with `refaudit run --snapshot DIR`."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from pipeline.db import resolve_url
    from pipeline.extract import ExtractOptions, extract_snapshot
    from pipeline.suite import load_suite

    def go() -> Any:
        loaded = load_suite(suite)
        url = resolve_url(db)
        opts = ExtractOptions(statement_timeout_s=statement_timeout, lock_timeout_s=lock_timeout)
        bars = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("rows"),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            disable=quiet,
        )
        tasks: dict[str, Any] = {}

        def on_progress(table: str, done: int, total: int) -> None:
            if table not in tasks:
                tasks[table] = bars.add_task(table, total=total)
            bars.update(tasks[table], completed=done, total=total)

        with bars:
            return extract_snapshot(url, loaded, out, options=opts, progress=on_progress)

    manifest = _guarded(debug, go)
    typer.echo(
        f"snapshot of {manifest.database} taken at {manifest.snapshot_taken_at}: "
        f"{len(manifest.tables)} tables, {manifest.total_rows} rows in {out} "
        f"(audit it with: refaudit run --snapshot {out})"
    )


@app.command()
def demo(
    out: Annotated[Path | None, typer.Option("--out", help="Output directory.")] = None,
    requests: Annotated[
        int, typer.Option("--requests", help="Synthetic session requests to generate.", min=0)
    ] = 3000,
    seed: Annotated[int, typer.Option("--seed", help="Generator seed.")] = 7,
    suite: SuiteOption = None,
    debug: DebugOption = False,
) -> None:
    """Start an embedded PostgreSQL, build a sample database with defects, and audit it."""
    from sqlalchemy.engine import make_url

    from pipeline.audit import run_audit
    from pipeline.db import DRIVER
    from pipeline.demo import build_sample
    from pipeline.embedded import create_database, embedded_server
    from pipeline.suite import load_suite

    def go() -> Any:
        loaded = load_suite(suite)
        typer.echo("starting an embedded PostgreSQL ...", err=True)
        with embedded_server() as server:
            uri = create_database(server, "refaudit_demo")
            typer.echo(
                f"building the sample database ({requests} requests, seed {seed}) ...", err=True
            )
            build_sample(uri, loaded, requests=requests, seed=seed)
            typer.echo("auditing ...", err=True)
            return run_audit(make_url(uri).set(drivername=DRIVER), loaded, out)

    result = _guarded(debug, go)
    _print_summary(result, "error", False)
    typer.echo(
        f"open {result.out_dir / 'report.html'} to read the audit; "
        f"every violating row is in {result.out_dir / 'violations.csv'}"
    )


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except SystemExit as exc:
        code = exc.code
        # click reports usage errors with exit 2 already; anything else passes through
        sys.exit(code)
