"""`refaudit run --keep N`: a nightly job's run directories do not pile up. Only directories
named as refaudit names a run (`reports/<UTC timestamp>`) and holding its results.json are
ever removed, the oldest first; the run just written always stays."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from refaudit.audit import prune_runs
from refaudit.errors import UsageError

from tests.conftest import SAMPLE_SUITE
from tests.test_cli import refaudit


def old_run(root: Path, name: str) -> Path:
    d = root / name
    d.mkdir(parents=True)
    (d / "results.json").write_text("{}", encoding="utf-8")
    return d


def test_prune_keeps_the_newest_and_nothing_else_is_touched(tmp_path: Path) -> None:
    root = tmp_path / "reports"
    runs = [old_run(root, f"2026120{d}T010000Z") for d in range(1, 6)]
    mine = old_run(root, "nightly-notes")  # a user's directory: not a run of refaudit
    half = root / "20261130T010000Z"  # named as a run, but no results.json: not ours to judge
    half.mkdir()
    (root / "history.db").write_text("", encoding="utf-8")
    gone = prune_runs(runs[-1], 2)
    assert sorted(gone) == sorted(runs[:3])
    assert {p.name for p in root.iterdir()} == {
        runs[3].name,
        runs[4].name,
        mine.name,
        half.name,
        "history.db",
    }
    with pytest.raises(UsageError, match="keep at least 1"):
        prune_runs(runs[-1], 0)


def test_run_keep_removes_older_runs(new_database: Callable[[str], str], tmp_path: Path) -> None:
    from refaudit.demo import build_sample
    from refaudit.suite import load_suite

    uri = new_database("keep")
    build_sample(uri, load_suite(), requests=20, seed=3)
    root = tmp_path / "reports"
    older = [old_run(root, f"2020010{d}T000000Z") for d in range(1, 4)]
    out = root / "20991231T235959Z"
    proc = refaudit(
        "run",
        "--db",
        uri,
        "--suite",
        SAMPLE_SUITE,
        "--out",
        str(out),
        "--keep",
        "2",
        "--no-history",
    )
    assert proc.returncode in (0, 1), proc.stderr
    assert "removed 2 older run directories (--keep 2)" in proc.stdout
    assert sorted(p.name for p in root.iterdir()) == [older[-1].name, out.name]
