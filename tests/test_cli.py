"""The command line as a user meets it: exit codes, one-line errors, no secrets."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from refaudit.errors import ExitCode

from tests.conftest import FIXTURES, SAMPLE_SUITE, execute

ROOT = Path(__file__).resolve().parent.parent


def refaudit(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    import os

    full_env = {**os.environ, **(env or {})}
    full_env.pop("DATABASE_URL", None) if env is None or "DATABASE_URL" not in env else None
    return subprocess.run(
        [sys.executable, "-m", "refaudit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=120,
    )


def assert_one_line_error(proc: subprocess.CompletedProcess[str], code: ExitCode) -> str:
    assert proc.returncode == code, proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert "Traceback" not in proc.stderr
    return lines[0]


@pytest.fixture(scope="module")
def clean_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("cli")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text())
    return uri


def test_unreachable_database_is_exit_3_without_password(tmp_path: Path) -> None:
    proc = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        "postgresql://auditor:s3cret-pw@127.0.0.1:1/x",
        "--out",
        str(tmp_path / "o"),
    )
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "s3cret-pw" not in proc.stderr + proc.stdout
    assert "127.0.0.1" in line and "is the server running" in line


def test_not_a_postgres_url_is_usage_error(tmp_path: Path) -> None:
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", "mysql://u:p@h/d", "--out", str(tmp_path / "o")
    )
    assert "refaudit audits PostgreSQL" in assert_one_line_error(proc, ExitCode.USAGE)


def test_broken_suite_is_exit_2(tmp_path: Path, clean_db: str) -> None:
    bad = tmp_path / "s.yml"
    bad.write_text("suite: x\ntables: {}\nchecks: []\n")
    proc = refaudit("run", "--db", clean_db, "--suite", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == ExitCode.USAGE and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()  # one line per mistake
    assert [ln.split(": ")[2] for ln in lines] == [f"{bad}:2", f"{bad}:3"], proc.stderr


def test_version_and_short_help() -> None:
    from refaudit import __version__

    proc = refaudit("--version")
    assert (proc.returncode, proc.stdout) == (0, f"refaudit {__version__}\n"), proc.stderr
    for args in (["-h"], ["run", "-h"], ["demo", "-h"]):
        short, long = refaudit(*args), refaudit(*args[:-1], "--help")
        assert short.returncode == 0 and "Usage: " in short.stdout, short.stderr
        assert short.stdout == long.stdout


@pytest.mark.parametrize("command", ["run", "extract", "apply", "demo", "export-gx"])
def test_every_command_help_has_examples(command: str) -> None:
    proc = refaudit(command, "-h")
    assert proc.returncode == 0, proc.stderr
    examples = [ln.strip() for ln in proc.stdout.split("Examples:\n", 1)[1].splitlines()]
    assert examples and all(
        f"{ln} ".startswith((f"refaudit {command} ", "refaudit run ")) for ln in examples if ln
    )


def test_bad_option_is_exit_2() -> None:
    proc = refaudit("run", "--fail-on", "sometimes")
    assert proc.returncode == ExitCode.USAGE
    assert "Traceback" not in proc.stderr
    assert "Invalid value for '--fail-on': 'sometimes' is not one of 'error', 'warn'." in (
        proc.stderr
    )
    assert "Value error" not in proc.stderr
    for args in (["run", "--nope"], []):
        proc = refaudit(*args)
        assert proc.returncode == ExitCode.USAGE and "Usage: refaudit" in proc.stderr, args


@pytest.mark.parametrize("command", ["run", "extract", "apply"])
def test_no_database_given_says_what_to_pass(tmp_path: Path, command: str) -> None:
    unset = dict.fromkeys(("PGHOST", "PGHOSTADDR", "PGPORT", "PGDATABASE", "PGUSER", "PGSERVICE"),
                          "")
    args = {"run": ["--suite", SAMPLE_SUITE, "--out", str(tmp_path / "o")],
            "extract": ["--suite", SAMPLE_SUITE, "--out", str(tmp_path / "s")],
            "apply": [str(tmp_path / "repair.sql")]}[command]
    (tmp_path / "repair.sql").write_text("BEGIN;\nCOMMIT;\n")
    line = assert_one_line_error(refaudit(command, *args, env=unset), ExitCode.USAGE)
    assert "no database given: pass --db postgresql://" in line and "DATABASE_URL" in line


def test_database_url_from_environment(tmp_path: Path, clean_db: str) -> None:
    out = tmp_path / "o"
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--out", str(out), "--quiet", env={"DATABASE_URL": clean_db}
    )
    # an empty Astegni database without constraints: only catalog findings, which fail
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    doc = json.loads((out / "results.json").read_text())
    failed = {c["id"] for c in doc["checks"] if c["status"] == "failed"}
    assert failed == {
        "catalog.fk_session_requests_tutor",
        "catalog.fk_session_requests_package",
        "catalog.idx_session_requests_tutor",
        "catalog.idx_session_requests_requester",
    }


def test_missing_table_is_exit_3(tmp_path: Path, new_database) -> None:  # type: ignore[no-untyped-def]
    empty = new_database("empty")
    proc = refaudit("run", "--suite", SAMPLE_SUITE, "--db", empty, "--out", str(tmp_path / "o"))
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "does not exist" in line


def test_missing_column_is_exit_3(tmp_path: Path, new_database) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("nocol")
    execute(
        uri,
        (FIXTURES / "astegni_bare.sql").read_text()
        + "ALTER TABLE session_requests DROP COLUMN contact_phone;",
    )
    proc = refaudit("run", "--suite", SAMPLE_SUITE, "--db", uri, "--out", str(tmp_path / "o"))
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "session_requests.contact_phone" in line


def test_shell_completion_completes_commands_and_options() -> None:
    import os
    import subprocess
    import sys

    script = Path(sys.executable).parent / "refaudit"
    env = {**os.environ, "_REFAUDIT_COMPLETE": "complete_bash"}
    for words, cword, expected in (
        ("refaudit ap", "1", ["apply"]),
        ("refaudit run --rep", "2", ["--repair", "--repair-schema"]),
        ("refaudit suite ch", "2", ["check"]),
    ):
        done = subprocess.run(
            [str(script)],
            env={**env, "COMP_WORDS": words, "COMP_CWORD": cword},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == expected, (words, done.stdout)
    # the shell named, not detected from the processes above the test (which need not be one)
    shown = subprocess.run(
        [str(script), "--show-completion", "bash"],
        env={**os.environ, "_TYPER_COMPLETE_TEST_DISABLE_SHELL_DETECTION": "1"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "_refaudit_completion" in shown.stdout


def test_top_level_help_has_examples_and_no_help_shows_a_python_type() -> None:
    import typer.main
    from refaudit.cli import app

    top = refaudit("-h")
    assert top.returncode == 0, top.stderr
    examples = top.stdout.split("Examples:\n", 1)[1]
    for command in ("discover", "suite check", "run", "apply"):
        assert f"\n    refaudit {command} " in f"\n{examples}", top.stdout
    assert "refaudit.toml" in examples

    def paths(group: Any, prefix: tuple[str, ...]) -> list[tuple[str, ...]]:
        found = []
        for name, command in group.commands.items():
            found.append((*prefix, name))
            if hasattr(command, "commands"):  # a group (of typer's own click)
                found.extend(paths(command, (*prefix, name)))
        return found

    commands = paths(typer.main.get_group(app), ())
    assert ("suite", "check") in commands and ("discover",) in commands
    for path in commands:
        shown = refaudit(*path, "-h")
        assert shown.returncode == 0 and "Usage: " in shown.stdout, (path, shown.stderr)
        assert "<list[" not in shown.stdout and "list[str]" not in shown.stdout, path
    assert "--schema SCHEMA " in refaudit("discover", "-h").stdout
