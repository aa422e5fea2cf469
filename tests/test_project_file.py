"""No silent sample suite: outside `demo` the suite comes from --suite or from a project file
(refaudit.toml, or [tool.refaudit] in pyproject.toml), found as git finds its root; the
command line wins over the file. Counts in the CLI's output are singular when one."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from refaudit.errors import ExitCode
from refaudit.project import find_project

from tests.conftest import SAMPLE_SUITE, execute
from tests.test_cli import assert_one_line_error

ROOT = Path(__file__).resolve().parent.parent

# one table, two checks: an error that one row breaks, and a warning that one row breaks
SUITE = """
suite: shop
tables:
  orders: {key: id}
checks:
  - id: orders.status.in_set
    kind: in_set
    table: orders
    column: status
    values: [open, paid]
  - id: orders.note.pattern
    kind: pattern
    table: orders
    column: note
    regex: '^[a-z ]*$'
    severity: warn
"""
ROWS = """
CREATE TABLE orders (id int PRIMARY KEY, status text NOT NULL, note text);
INSERT INTO orders VALUES (1, 'open', 'ok'), (2, 'paid', 'Shouting'), (3, 'lost', 'fine');
"""
WARN_ONLY = (
    SUITE.split("  - id: orders.status.in_set")[0] + SUITE.split("values: [open, paid]\n")[1]
)


def refaudit(
    cwd: Path, *args: str, home: Path | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """The command as a user runs it in `cwd`, with HOME at `home` (default `cwd`), so that no
    project file above it (in the machine's /tmp or /) is found."""
    full = {k: v for k, v in os.environ.items() if k != "DATABASE_URL" and not k.startswith("PG")}
    full.update(PYTHONPATH=str(ROOT), HOME=str(home or cwd), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "refaudit", *args],
        capture_output=True, text=True, cwd=cwd, env=full, timeout=120,
    )  # fmt: skip


@pytest.fixture(scope="module")
def shop_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("project")
    execute(uri, ROWS)
    return uri


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A project directory with its suite in suites/ and a working directory `sub` below."""
    (tmp_path / "suites").mkdir()
    (tmp_path / "suites" / "shop.yml").write_text(SUITE)
    (tmp_path / "sub").mkdir()
    return tmp_path


@pytest.mark.parametrize(
    "args",
    [
        ["run", "--db", "postgresql://u@127.0.0.1:1/x"],
        ["extract", "--db", "postgresql://u@127.0.0.1:1/x", "--out", "snap"],
        ["export-gx", "--out", "gx"],
        ["suite", "check"],
    ],
    ids=lambda a: a[0] if a[0] != "suite" else "suite-check",
)
def test_without_suite_or_project_file_the_error_names_both_ways_out(
    tmp_path: Path, args: list[str]
) -> None:
    line = assert_one_line_error(refaudit(tmp_path, *args), ExitCode.USAGE)
    assert line.startswith("refaudit: error: no suite: pass ")
    assert "refaudit discover --db URL --out suite.yml" in line and "refaudit.toml" in line
    assert "astegni" not in line and "parent_profiles" not in line
    assert not (tmp_path / "reports").exists() and not (tmp_path / "gx").exists()


def test_refaudit_toml_in_a_parent_names_suite_database_and_out(
    project: Path, shop_db: str
) -> None:
    (project / "refaudit.toml").write_text(
        'suite = "suites/shop.yml"\ndatabase_env = "SHOP_URL"\nout = "audit"\n'
        'history = "state/history.db"\n'
    )
    proc = refaudit(project / "sub", "run", "--quiet", home=project, env={"SHOP_URL": shop_db})
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    # the suite, out and history are relative to the file, not to the working directory
    doc = json.loads((project / "audit" / "results.json").read_text())
    assert doc["run"]["suite_path"] == str((project / "suites" / "shop.yml").resolve())
    assert {c["id"]: c["violations"] for c in doc["checks"]} == {
        "orders.status.in_set": 1, "orders.note.pattern": 1,
    }  # fmt: skip
    assert (project / "state" / "history.db").is_file()
    assert not (project / "sub" / "audit").exists() and not (project / "sub" / "reports").exists()
    # one violation and one failing check, in the singular
    summary = proc.stdout.strip().splitlines()[-1]
    assert summary.startswith("FAILED: 1 of 2 checks over threshold: 2 violations"), summary
    assert ", 1 failing check; report " in summary, summary
    # the same directory's `suite check` uses the file's suite too
    checked = refaudit(project / "sub", "suite", "check", home=project)
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("suite shop is valid: 2 checks on 1 table\n"), checked.stdout


def test_command_line_options_win_over_the_file(project: Path, shop_db: str) -> None:
    (project / "warn.yml").write_text(WARN_ONLY)
    (project / "refaudit.toml").write_text(
        'suite = "suites/shop.yml"\ndatabase_env = "SHOP_URL"\nout = "audit"\nfail_on = "warn"\n'
    )
    env = {"SHOP_URL": "postgresql://nobody@127.0.0.1:1/none"}  # --db wins: never used
    proc = refaudit(
        project, "run", "--db", shop_db, "--suite", "warn.yml", "--out", "mine", "--no-history",
        "--fail-on", "error", env=env,
    )  # fmt: skip
    # only the warning check, which fails with the file's fail_on but not with --fail-on error
    assert proc.returncode == ExitCode.PASSED, proc.stderr
    assert proc.stdout.strip().splitlines()[-1].startswith("PASSED with 1 warning: 1 violation, ")
    doc = json.loads((project / "mine" / "results.json").read_text())
    assert [c["id"] for c in doc["checks"]] == ["orders.note.pattern"]
    assert not (project / "audit").exists()
    # without --fail-on, the file's fail_on = "warn" decides
    proc = refaudit(project, "run", "--db", shop_db, "--suite", "warn.yml", "--no-history", env=env)
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr


def test_pyproject_tool_refaudit_is_a_project_file(project: Path, shop_db: str) -> None:
    (project / "pyproject.toml").write_text(
        '[project]\nname = "shop"\n\n[tool.refaudit]\nsuite = "suites/shop.yml"\n'
        'database_env = "SHOP_URL"\nout = "audit"\n'
    )
    # a pyproject.toml without [tool.refaudit] nearer to the working directory is not one
    (project / "sub" / "pyproject.toml").write_text('[project]\nname = "other"\n')
    proc = refaudit(project / "sub", "run", "--no-history", home=project, env={"SHOP_URL": shop_db})
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    assert json.loads((project / "audit" / "results.json").read_text())["run"]["suite"] == "shop"


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        (
            "refaudit.toml",
            'suit = "s.yml"\n',
            "refaudit.toml: unknown key suit (did you mean suite?)",
        ),
        (
            "pyproject.toml",
            '[tool.refaudit]\nfail-on = "warn"\n',
            "pyproject.toml: unknown key [tool.refaudit] fail-on (did you mean fail_on?)",
        ),
        ("refaudit.toml", 'fail_on = "sometimes"\n', "refaudit.toml: fail_on: Input should be"),
        ("refaudit.toml", 'suite = "s.yml\n', "refaudit.toml: "),
    ],
    ids=["unknown-key", "pyproject-unknown-key", "bad-value", "bad-toml"],
)
def test_a_broken_project_file_is_one_line_naming_file_and_key(
    tmp_path: Path, name: str, text: str, expected: str
) -> None:
    (tmp_path / name).write_text(text)
    line = assert_one_line_error(refaudit(tmp_path, "run", "--db", "x"), ExitCode.USAGE)
    assert f"refaudit: error: {tmp_path}/" in line and expected in line, line


def test_database_env_that_is_not_set_is_a_usage_error(project: Path) -> None:
    (project / "refaudit.toml").write_text('suite = "suites/shop.yml"\ndatabase_env = "SHOP_URL"\n')
    line = assert_one_line_error(refaudit(project, "run"), ExitCode.USAGE)
    assert "$SHOP_URL is not set" in line and "--db" in line


def test_demo_needs_no_suite(tmp_path: Path) -> None:
    """`demo` alone keeps the shipped sample suite (its help says so; running it takes a
    server, which tests/test_install.py does)."""
    proc = refaudit(tmp_path, "demo", "-h")
    assert proc.returncode == 0 and "default: the Astegni sample suite" in proc.stdout


def test_the_search_stops_at_home(tmp_path: Path) -> None:
    (tmp_path / "refaudit.toml").write_text(f'suite = "{SAMPLE_SUITE}"\n')
    home = tmp_path / "home"
    work = home / "work" / "deep"
    work.mkdir(parents=True)
    assert find_project(work, home=home) is None  # above home: not the user's project
    found = find_project(work, home=tmp_path)
    assert found is not None and found.file == tmp_path / "refaudit.toml"
    assert found.settings.suite == Path(SAMPLE_SUITE)  # an absolute path stays as it is
    (home / "refaudit.toml").write_text("")
    nearest = find_project(work, home=home)
    assert nearest is not None and nearest.file == home / "refaudit.toml"
    assert nearest.settings.suite is None
