"""What the commands print for machines and for a closer look: `--format json` (one JSON
object on stdout, everything else on stderr) and `-v` / `-vv` (steps with their times, then
the SQL of every statement)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from refaudit import __version__
from refaudit.errors import ExitCode
from refaudit.summary import ErrorSummary, RunSummary, SuiteCheckSummary

from tests.conftest import FIXTURES, SAMPLE_SUITE, as_url, execute
from tests.test_cli import assert_one_line_error, refaudit


@pytest.fixture(scope="module")
def dirty(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("cli_output")
    execute(
        uri,
        (FIXTURES / "astegni_bare.sql").read_text()
        + (FIXTURES / "astegni_dirty_small.sql").read_text(),
    )
    return uri


def _run_json(uri: str, out: Path, *more: str) -> tuple[dict, str]:  # type: ignore[type-arg]
    proc = refaudit(
        "run", "--db", uri, "--suite", SAMPLE_SUITE, "--out", str(out),
        "--history", str(out.parent / "history.db"), "--format", "json", *more,
    )  # fmt: skip
    doc = json.loads(proc.stdout)  # stdout holds the JSON object and nothing else
    assert doc["exit_code"] == proc.returncode, proc.stderr
    return doc, proc.stderr


def test_run_json_summary_agrees_with_results_json(tmp_path: Path, dirty: str) -> None:
    doc, stderr = _run_json(dirty, tmp_path / "first")
    RunSummary.model_validate(doc)  # the documented schema
    results = json.loads((tmp_path / "first" / "results.json").read_text())
    checks = results["checks"]
    assert doc["refaudit_version"] == __version__
    assert doc["suite"] == results["run"]["suite"] == "astegni"
    assert doc["database"] == results["run"]["database"]
    assert doc["run_id"] == results["run"]["run_id"]
    assert doc["exit_code"] == ExitCode.VIOLATIONS and doc["verdict"] == "failed"
    assert doc["counts"]["checks"] == len(checks)
    assert doc["counts"]["violations"] == sum(c["violations"] for c in checks) > 0
    for severity in ("error", "warn"):
        assert doc["counts"]["violations_by_severity"][severity] == sum(
            c["violations"] for c in checks if c["severity"] == severity
        )
    failed = [c for c in checks if c["status"] == "failed"]
    assert doc["counts"]["failing"] == len(failed) == len(doc["failing"])
    assert {(f["id"], f["kind"], f["table"], f["violations"]) for f in doc["failing"]} == {
        (c["id"], c["kind"], c["table"], c["violations"]) for c in failed
    }
    for role in ("report", "results", "violations", "junit", "history"):
        assert Path(doc["files"][role]).is_file(), role
    assert doc["history"] is None  # the first run of this suite on this database
    # the people's summary went to stderr, with the verdict
    assert "FAILED" in stderr and "report.html" in stderr

    again, _ = _run_json(dirty, tmp_path / "second")
    assert again["history"] == {"previous_run": doc["run_id"], "new": 0, "fixed": 0}


def test_run_json_error_is_one_line_on_stderr_and_an_object_on_stdout(tmp_path: Path) -> None:
    proc = refaudit(
        "run", "--suite", str(tmp_path / "missing.yml"), "--db", "postgresql://u@127.0.0.1:1/x",
        "--format", "json",
    )  # fmt: skip
    line = assert_one_line_error(proc, ExitCode.USAGE)
    doc = ErrorSummary.model_validate_json(proc.stdout)
    assert doc.exit_code == ExitCode.USAGE and doc.command == "run"
    assert line == f"refaudit: error: {doc.error}" and "missing.yml" in doc.error


def test_suite_check_json(tmp_path: Path, dirty: str) -> None:
    proc = refaudit("suite", "check", SAMPLE_SUITE, "--db", dirty, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    doc = SuiteCheckSummary.model_validate_json(proc.stdout)
    assert doc.valid and doc.suite == "astegni" and doc.checks > 0 and doc.tables > 0
    assert doc.database is not None and as_url(dirty).database in doc.database
    assert "is valid" in proc.stderr


def test_verbose_shows_steps_then_sql(tmp_path: Path, dirty: str) -> None:
    common = ("run", "--db", dirty, "--suite", SAMPLE_SUITE, "--no-history")
    quiet = refaudit(*common, "--out", str(tmp_path / "q"))
    one = refaudit(*common, "--out", str(tmp_path / "v"), "-v")
    two = refaudit(*common, "--out", str(tmp_path / "vv"), "-vv")
    for proc in (quiet, one, two):
        assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
        assert proc.stdout.splitlines()[-1].startswith("FAILED")  # the summary stays on stdout
    # stderr is not a terminal here: no progress at all without -v
    assert "row checks" not in quiet.stderr and "SQL:" not in quiet.stderr
    # -v: the stages, and each step with its time
    assert "row checks (" in one.stderr and "writing files (" in one.stderr
    timed = [ln for ln in one.stderr.splitlines() if ln.startswith("  row checks: ")]
    assert timed and all(ln.split(": ")[-1].split()[1] == "s" for ln in timed), one.stderr
    assert "SQL:" not in one.stderr
    # -vv: also the statements as sent, the audit's COPY among them
    assert "SQL: COPY (" in two.stderr and "session_requests" in two.stderr
    assert "row checks (" in two.stderr


def test_quiet_and_verbose_exclude_each_other(tmp_path: Path) -> None:
    proc = refaudit("run", "--suite", SAMPLE_SUITE, "-q", "-v", "--out", str(tmp_path / "o"))
    assert "--quiet and --verbose" in assert_one_line_error(proc, ExitCode.USAGE)


def test_suite_kinds_piped_is_plain_text() -> None:
    from refaudit.checks import KIND_NAMES, suite_reference

    proc = refaudit("suite", "kinds")
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    # no Markdown marks (but an empty code span, which Markdown cannot render: "default ``")
    assert "`" not in text.replace("``", "") and "####" not in text
    assert "\x1b[" not in text  # nor a terminal's colours
    assert all(line == line.rstrip() for line in text.splitlines())
    for name, model in KIND_NAMES.items():
        assert f"{name} ({model.stage})" in text.splitlines()
    # --markdown: the source, as documentation takes it
    assert refaudit("suite", "kinds", "--markdown").stdout == suite_reference()
    one = refaudit("suite", "kinds", "pattern").stdout
    assert one.startswith("pattern (row)\n") and "unique (set)" not in one


def test_suite_kinds_on_a_terminal_is_rendered() -> None:
    import io

    from refaudit.checks import suite_reference
    from refaudit.console import print_markdown

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    screen = Tty()
    print_markdown(suite_reference(), screen)
    shown = screen.getvalue()
    assert "\x1b[" in shown and "####" not in shown and "`conditional_reference`" not in shown
    assert "conditional_reference" in shown


def test_suite_kinds_suggests_a_kind() -> None:
    proc = refaudit("suite", "kinds", "refrence")
    assert proc.returncode == ExitCode.USAGE
    assert "unknown kind 'refrence'; did you mean 'reference'?" in proc.stderr
    shown = refaudit("suite", "kinds", "zzz").stderr
    assert "use one of: " in shown and "conditional_reference, consistency," in shown


def test_step_lines_time_each_step() -> None:
    import io

    from refaudit.console import StepLines

    out = io.StringIO()
    lines = StepLines(out)
    lines.stage("row checks", 2)
    lines.step("a")
    lines.note("3 violations so far")
    lines.step("b")
    lines.stage("catalog", 1)
    lines.step("reading catalog of a")
    lines.done()
    lines.done()  # idempotent
    shown = out.getvalue().splitlines()
    assert [ln.rsplit(": ", 1)[0] for ln in shown] == [
        "row checks (2)", "  row checks: a", "  row checks: b", "catalog (1)",
        "  catalog: reading catalog of a",
    ]  # fmt: skip
    assert shown[1].endswith(" s (3 violations so far)") and shown[2].endswith(" s")


def test_apply_dry_run_json_and_its_sql(tmp_path: Path, dirty: str) -> None:
    out = tmp_path / "o"
    made = refaudit("run", "--db", dirty, "--suite", SAMPLE_SUITE, "--out", str(out),
                    "--no-history", "--repair", "--format", "json")  # fmt: skip
    planned = RunSummary.model_validate_json(made.stdout)
    assert planned.repair is not None and planned.files["repair"] == str(out / "repair.sql")
    proc = refaudit("apply", planned.files["repair"], "--db", dirty, "--dry-run",
                    "--format", "json", "-vv")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    assert doc["command"] == "apply" and doc["dry_run"] is True
    assert doc["database"] == planned.database
    assert doc["totals"]["updated"] == planned.repair["updates"]
    assert doc["totals"]["quarantine"] == planned.repair["quarantined"]
    assert doc["summary"].startswith("dry run of repair.sql: ") and doc["summary"] in proc.stderr
    assert doc["statements"] > 0 and "SQL: " in proc.stderr  # -vv: the plan's statements


def test_discover_json_lists_the_checks_it_wrote(tmp_path: Path, dirty: str) -> None:
    import yaml

    out = tmp_path / "suite.yml"
    proc = refaudit("discover", "--db", dirty, "--out", str(out), "--format", "json", "-v")
    assert proc.returncode == 0, proc.stderr
    doc = json.loads(proc.stdout)
    written = yaml.safe_load(out.read_text())["checks"]
    assert [c["id"] for c in doc["checks"]] == [c["id"] for c in written]
    assert "reference" in {c["kind"] for c in doc["checks"]}
    assert all(c["confidence"] >= doc["min_confidence"] for c in doc["checks"])
    assert doc["suite_path"] == str(out) and doc["tables"] == 6
    assert "references (" in proc.stderr  # -v: the stages, on stderr
    # the suite cannot share standard output with the JSON
    no_out = refaudit("discover", "--db", dirty, "--format", "json")
    assert "pass --out suite.yml" in assert_one_line_error(no_out, ExitCode.USAGE)
    assert json.loads(no_out.stdout)["exit_code"] == ExitCode.USAGE


def test_sql_is_shown_only_while_asked() -> None:
    import io
    import logging

    from refaudit.console import show_sql
    from refaudit.db import SQL_LOG, log_statement

    screen = io.StringIO()
    show_sql(True, screen)
    show_sql(True, screen)  # again (an in-process caller): still once per statement
    log_statement("SELECT 1\nFROM t")
    assert screen.getvalue() == "    SQL: SELECT 1\n         FROM t\n"
    show_sql(False)
    log_statement("SELECT 2")
    assert "SELECT 2" not in screen.getvalue()
    assert not SQL_LOG.isEnabledFor(logging.DEBUG)  # the library's default: silent
