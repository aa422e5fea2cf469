"""What the run history says changed since the last run, against a plain set computation:
for any two runs' violation keys (duplicates, empty checks, checks that come and go, the same
keys again), `new` and `fixed` are the set differences, the sample keys are the first of them
by (key length, key, column), and the keys stored for the next comparison are the run's own
distinct pairs."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from refaudit.history import SAMPLE_KEYS, HistoryStore, _unpack, pair
from refaudit.results import AuditResult, CheckResult, RunInfo

CHECKS = ("a.ref", "b.unique", "c.not_null")
Found = dict[str, list[tuple[str, str]]]
keys = st.text(alphabet="0123456789,ab", min_size=1, max_size=4)
columns = st.sampled_from(["x", "y"])
run_keys = st.dictionaries(
    st.sampled_from(CHECKS), st.lists(st.tuples(keys, columns), max_size=12), max_size=3
)


def result(run_id: str, found: Found) -> AuditResult:
    checks = [
        CheckResult(
            id=check,
            family="reference",
            table="t",
            columns=["x"],
            severity="error",
            description="",
            rows_checked=100,
            violations=len(found.get(check, [])),
        )
        for check in CHECKS
    ]
    run = RunInfo(
        run_id=run_id,
        database="db",
        suite="s",
        suite_path="s.yml",
        refaudit_version="0",
        started_at="2026-01-01T00:00:00Z",
    )
    return AuditResult(run=run, checks=checks, out_dir=Path("out"))


def expected(ours: set[tuple[str, str]], theirs: set[tuple[str, str]]) -> tuple[int, list[str]]:
    missing = sorted(ours - theirs, key=lambda kc: (len(kc[0]), kc[0], kc[1]))
    return len(missing), list(dict.fromkeys(k for k, _ in missing[:SAMPLE_KEYS]))


@settings(max_examples=150, deadline=None)
@given(first=run_keys, second=run_keys, third_same=st.booleans())
def test_changes_are_set_differences(
    tmp_path_factory: pytest.TempPathFactory, first: Found, second: Found, third_same: bool
) -> None:
    path = tmp_path_factory.mktemp("history") / "history.db"
    store = HistoryStore(path)
    try:
        runs = [first, second] + ([second] if third_same else [])
        for n, found in enumerate(runs):
            doc = store.record(
                result(f"r{n}", found),
                {c: [pair(k, col) for k, col in found.get(c, [])] for c in CHECKS if c in found},
            )
            store.commit()
            if n == 0:
                assert doc["previous"] is None
                continue
            before = runs[n - 1]
            for check in CHECKS:
                ours, theirs = set(found.get(check, [])), set(before.get(check, []))
                got = doc["checks"][check]
                assert (got["new"], got["new_keys"]) == expected(ours, theirs)
                assert (got["fixed"], got["fixed_keys"]) == expected(theirs, ours)
        stored = dict(sqlite3.connect(path).execute("SELECT check_id, keys FROM last_keys"))
        last = runs[-1]
        assert {c: _unpack(b) for c, b in stored.items()} == {
            c: sorted({pair(k, col) for k, col in last[c]}) for c in last
        }
    finally:
        store.close()
