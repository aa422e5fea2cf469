"""Progress of a run: the stages the library reports, the rich display on a terminal, and
silence when stderr is not a terminal or with --quiet."""

from __future__ import annotations

import io
import os
import pty
import re
import subprocess
import sys
from pathlib import Path

import pytest
from refaudit.audit import run_audit
from refaudit.console import RichProgress, stderr_progress
from refaudit.suite import CATALOG_KINDS, Suite, UniqueCheck
from rich.console import Console

from tests.conftest import SAMPLE_SUITE, as_url
from tests.reports import load_dirty_small
from tests.test_cli import ROOT, refaudit


class Recorder:
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []

    def stage(self, name: str, total: int) -> None:
        self.events.append(("stage", f"{name}/{total}"))

    def step(self, label: str) -> None:
        self.events.append(("step", label))

    def note(self, text: str) -> None:
        self.events.append(("note", text))

    def done(self) -> None:
        self.events.append(("done", ""))


@pytest.fixture(scope="module")
def progress_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("progress")
    load_dirty_small(uri)
    return uri


def test_library_reports_every_stage_with_its_steps(
    progress_db: str, suite: Suite, tmp_path: Path
) -> None:
    rec = Recorder()
    run_audit(as_url(progress_db), suite, tmp_path / "o", progress=rec)
    stages = [e[1] for e in rec.events if e[0] == "stage"]
    tables = {c.table for c in suite.checks if c.kind not in CATALOG_KINDS and c.kind != "unique"}
    uniques = sum(isinstance(c, UniqueCheck) for c in suite.checks)
    catalog_tables = {c.table for c in suite.checks if c.kind in CATALOG_KINDS}
    assert stages == [
        "snapshot/2",
        f"row checks/{len(tables)}",
        f"set checks/{uniques}",
        f"catalog/{len(catalog_tables)}",
        "history/1",
        "writing files/1",
    ]
    assert rec.events[-1] == ("done", "")
    # each stage gets exactly as many steps as it announced
    counts: list[int] = []
    for kind, _ in rec.events:
        if kind == "stage":
            counts.append(0)
        elif kind == "step":
            counts[-1] += 1
    assert counts == [int(s.rsplit("/", 1)[1]) for s in stages]
    scans = [e[1] for e in rec.events if e[0] == "step" and e[1].startswith("scanning ")]
    assert {s.split()[1] for s in scans} == tables


def test_a_plain_callable_still_receives_messages(
    progress_db: str, suite: Suite, tmp_path: Path
) -> None:
    lines: list[str] = []
    run_audit(as_url(progress_db), suite, tmp_path / "o", progress=lines.append)
    assert "row checks" in lines and "scanning session_requests (17 rules)" in lines


def test_rich_display_shows_stages_and_completes_them() -> None:
    buf = io.StringIO()
    bars = RichProgress(Console(file=buf, force_terminal=True, width=120, color_system=None))
    bars.stage("row checks", 2)
    bars.step("scanning a")
    bars.note("10,000 violating rows so far")
    bars.step("scanning b")
    bars.stage("catalog", 1)
    bars.step("reading catalog of a")
    bars.done()
    bars.done()  # idempotent: the CLI calls it again when a run fails
    screen = buf.getvalue()
    assert "row checks" in screen and "catalog" in screen
    final = screen[screen.rindex("row checks") :]
    assert "2/2" in final and "1/1" in final


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_only_on_a_terminal_and_not_when_quiet() -> None:
    assert stderr_progress(False, io.StringIO()) is None
    assert stderr_progress(True, _Tty()) is None
    assert isinstance(stderr_progress(False, _Tty()), RichProgress)


def test_cli_is_silent_on_stderr_when_it_is_not_a_terminal(
    progress_db: str, tmp_path: Path
) -> None:
    first = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", progress_db, "--out", str(tmp_path / "a")
    )
    assert first.returncode == 1 and first.stderr == ""
    second = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", progress_db, "--out", str(tmp_path / "b")
    )
    assert second.stderr == ""
    summary = second.stdout.strip().splitlines()[-1]
    assert summary.startswith("FAILED") and "(0 new, 0 fixed since the last run)" in summary
    quiet = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", progress_db, "--out", str(tmp_path / "c"), "--quiet"
    )
    assert quiet.stderr == "" and len(quiet.stdout.strip().splitlines()) == 1


def _run_on_a_terminal(*args: str) -> tuple[int, str]:
    """Run the CLI with stderr on a pseudo-terminal; return the exit code and what it showed."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env.update(COLUMNS="120", TERM="xterm")
    proc = subprocess.Popen(
        [sys.executable, "-m", "refaudit", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=slave,
        stdin=subprocess.DEVNULL,
    )
    os.close(slave)
    chunks = []
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(master)
    code = proc.wait(timeout=120)
    text = b"".join(chunks).decode("utf-8", "replace")
    return code, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text)


def test_cli_shows_progress_on_a_terminal(progress_db: str, tmp_path: Path) -> None:
    code, shown = _run_on_a_terminal(
        "run", "--suite", SAMPLE_SUITE, "--db", progress_db, "--out", str(tmp_path / "t")
    )
    assert code == 1, shown
    for stage in ("snapshot", "row checks", "set checks", "catalog", "history", "writing files"):
        assert stage in shown, stage
    code, shown = _run_on_a_terminal(
        "run", "--suite", SAMPLE_SUITE, "--db", progress_db, "--out", str(tmp_path / "q"), "--quiet"
    )
    assert code == 1 and "row checks" not in shown
