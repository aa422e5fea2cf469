"""The base install has no numpy, pandas or pyarrow (they are the `dataframes` and `snapshot`
extras): every command starts without them, `demo` runs from the recorded sample, and what
needs an extra says which, in one line, with the usage exit code.

Each test runs refaudit in a subprocess whose `sys.modules` blocks the modules, as if they
were not installed (an import of a blocked module raises ModuleNotFoundError)."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.demo import build_sample
from refaudit.errors import ExitCode
from refaudit.suite import Suite

from tests.conftest import SAMPLE_SUITE, as_url

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("numpy", "pandas", "pyarrow")

# blocks the modules named in argv[1] (comma-separated), then runs the rest as Python code
# (`-c CODE`) or as the command line (`refaudit ARGS`)
LAUNCHER = """
import sys
for name in sys.argv[1].split(","):
    sys.modules[name] = None
if sys.argv[2] == "-c":
    code = sys.argv[3]
    del sys.argv[1:4]
    exec(code)
else:
    from refaudit.cli import main
    sys.argv = ["refaudit", *sys.argv[3:]]
    main()
"""


def without(
    blocked: tuple[str, ...], *args: str, cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    """`refaudit ARGS` (or `-c CODE`) in a Python where `blocked` cannot be imported."""
    mode = "-c" if args[0] == "-c" else "cli"
    rest = args[1:] if mode == "-c" else args
    return subprocess.run(
        [sys.executable, "-c", LAUNCHER, ",".join(blocked), mode, *rest],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=300,
    )


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == ExitCode.USAGE, proc.stderr
    assert "Traceback" not in proc.stderr
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    return lines[0]


def test_the_launcher_blocks_the_modules() -> None:
    proc = without(("pyarrow",), "-c", "import pyarrow")
    assert proc.returncode == 1 and "ModuleNotFoundError" in proc.stderr


def test_every_module_imports_without_numpy_pandas_and_pyarrow() -> None:
    code = (
        "import importlib, pkgutil, refaudit\n"
        "names = [m.name for m in pkgutil.walk_packages(refaudit.__path__, 'refaudit.')\n"
        "         if m.name != 'refaudit.__main__']  # which would run the command line\n"
        "for name in names:\n"
        "    importlib.import_module(name)\n"
        "print(len(names))\n"
    )
    proc = without(HEAVY, "-c", code)
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout) > 30  # every module of the package, not an empty walk


@pytest.mark.parametrize("args", [("-h",), ("run", "-h"), ("suite", "check", SAMPLE_SUITE)])
def test_commands_start_without_the_extras(args: tuple[str, ...]) -> None:
    proc = without(HEAVY, *args)
    assert proc.returncode == 0, proc.stderr


def test_extract_without_pyarrow_names_the_snapshot_extra(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    proc = without(
        ("pyarrow",),
        "extract", "--db", "postgresql://nobody@127.0.0.1:9/none", "--suite", SAMPLE_SUITE,
        "--out", str(out),
    )  # fmt: skip
    assert one_line_error(proc).endswith(
        ": refaudit extract needs pyarrow; install it with: pip install 'refaudit[snapshot]'"
    )
    assert not out.exists()  # refused before anything was written


def test_run_snapshot_without_pyarrow_names_the_snapshot_extra(tmp_path: Path) -> None:
    snap = tmp_path / "snap"
    snap.mkdir()
    proc = without(
        ("pyarrow",),
        "run", "--snapshot", str(snap), "--suite", SAMPLE_SUITE, "--out", str(tmp_path / "out"),
    )  # fmt: skip
    assert one_line_error(proc).endswith(
        ": refaudit run --snapshot needs pyarrow; install it with: pip install 'refaudit[snapshot]'"
    )


@pytest.mark.parametrize("blocked", [("pandas",), ("numpy", "pandas")])
def test_the_dataframe_api_without_pandas_names_the_dataframes_extra(
    blocked: tuple[str, ...], tmp_path: Path
) -> None:
    code = (
        "import sys\n"
        "from refaudit import frames\n"
        "from refaudit.errors import RefauditError\n"
        "try:\n"
        "    frames.violations(sys.argv[1])\n"
        "except RefauditError as exc:\n"
        "    print(int(exc.exit_code), exc)\n"
    )
    proc = without(blocked, "-c", code, str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        f"{int(ExitCode.USAGE)} refaudit.frames needs pandas; "
        "install it with: pip install 'refaudit[dataframes]'"
    )


def test_demo_at_another_size_without_numpy_names_the_dataframes_extra(
    suite: Suite, tmp_path: Path
) -> None:
    proc = without(HEAVY, "demo", "--requests", "300", "--out", str(tmp_path / "demo"))
    line = one_line_error(proc)
    assert f"demo generator {suite.demo_path} needs numpy; " in line
    assert "install it with: pip install 'refaudit[dataframes]'" in line
    assert "--requests 3000 --seed 7" in line  # the recorded sample it could use instead
    assert "starting an embedded PostgreSQL" not in proc.stderr  # refused before any server


def sorted_rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        header, *rows = csv.reader(handle)
    return [header, *sorted(rows)]


def test_default_demo_runs_without_numpy_pandas_and_pyarrow_and_finds_what_the_generator_builds(
    new_database, suite: Suite, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    proc = without(HEAVY, "demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr  # demo shows violations, it does not gate on them
    assert "Traceback" not in proc.stderr
    # the demo's database is gone: it says what to do next on one's own database
    assert "refaudit discover --db URL --out suite.yml" in proc.stdout
    uri = new_database("gendemo")
    build_sample(uri, suite, requests=3000, seed=7)  # the generator itself, with numpy
    options = AuditOptions(repair=True, record_history=False)
    direct = run_audit(as_url(uri), suite, tmp_path / "direct", options=options)
    assert direct.total_violations > 200
    assert sorted_rows(tmp_path / "demo" / "violations.csv") == sorted_rows(
        tmp_path / "direct" / "violations.csv"
    )
    demo = json.loads((tmp_path / "demo" / "results.json").read_text())
    assert demo["summary"]["violations"] == direct.total_violations
    assert demo["diagnoses"] == direct.diagnoses
    plan = {k: demo["repair"][k] for k in ("updates", "set_null", "quarantined", "ambiguous")}
    assert plan == {k: direct.repair[k] for k in plan}  # type: ignore[index]
