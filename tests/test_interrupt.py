"""Ctrl-C at any moment of `refaudit demo` or `refaudit run --snapshot` (both start a
throw-away server) leaves no server running and no data directory behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import SAMPLE_SUITE
from tests.test_cli import ROOT


def servers_under(root: Path) -> list[str]:
    """Command lines of processes that run from a data directory under `root`."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        if str(root) in cmdline and "postgres" in cmdline:
            found.append(cmdline)
    return found


def interrupt(args: list[str], tmp: Path, after: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TMPDIR": str(tmp), "XDG_RUNTIME_DIR": str(tmp)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "refaudit", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(after)
    proc.send_signal(signal.SIGINT)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def assert_nothing_left(done: subprocess.CompletedProcess[str], tmp: Path, prefix: str) -> None:
    """The run ended well (finished, stopped cleanly, or killed by the signal before Python
    had started) and left no server running and no directory named `prefix*` in `tmp`."""
    if done.returncode in (3, 130):  # stopped by the interrupt: one clean line
        assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode in (0, 1, 3, 130, -signal.SIGINT), done.stderr
    deadline = time.monotonic() + 10
    while servers_under(tmp) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert servers_under(tmp) == []
    assert [p.name for p in tmp.iterdir() if p.name.startswith(prefix)] == []


@pytest.mark.parametrize("after", [0.3, 0.8, 1.5, 3.0])
def test_ctrl_c_during_the_demo_leaves_nothing_behind(tmp_path: Path, after: float) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    done = interrupt(["demo", "--out", str(tmp_path / "out"), "--requests", "3000"], tmp, after)
    assert_nothing_left(done, tmp, "refaudit-pg-")


@pytest.fixture(scope="module")
def snapshot(new_database, suite, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    from refaudit.extract import extract_snapshot

    from tests.conftest import as_url
    from tests.test_snapshot import hand_made

    out = tmp_path_factory.mktemp("snap") / "snapshot"
    extract_snapshot(as_url(hand_made(new_database, "intsnap")), suite, out)
    return out


@pytest.mark.parametrize("after", [0.3, 0.8, 1.5, 3.0])
def test_ctrl_c_during_a_snapshot_run_leaves_nothing_behind(
    tmp_path: Path, snapshot: Path, after: float
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    args = [
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--snapshot",
        str(snapshot),
        "--out",
        str(tmp_path / "out"),
        "--no-history",
    ]
    done = interrupt(args, tmp, after)
    assert_nothing_left(done, tmp, "refaudit-")
