"""What the repair round trips compare: every table's rows as text, and the findings of a run
by (check, key)."""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url
from tests.test_repair import query

CHANGES = ("updated", "set_null", "quarantine")  # what `refaudit apply` counts as changed rows


def dump_tables(uri: str, tables: Iterable[str]) -> dict[str, list[str]]:
    """Every table as text, row by row, in a fixed order (the rows' own text, byte order):
    equal dumps mean equal tables, whatever their keys. `tables` are SQL names."""
    return {
        t: [r[0] for r in query(uri, f'SELECT x::text FROM {t} x ORDER BY x::text COLLATE "C"')]
        for t in tables
    }


def changed_rows(before: dict[str, list[str]], after: dict[str, list[str]]) -> dict[str, Any]:
    """Per table that differs: (rows gone, rows new), each sorted."""
    return {
        t: (sorted(set(before[t]) - set(after[t])), sorted(set(after[t]) - set(before[t])))
        for t in before
        if before[t] != after[t]
    }


def findings(run: Path) -> dict[tuple[str, str], dict[str, str]]:
    """violations.csv of a run, by (check, key)."""
    with (run / "violations.csv").open(encoding="utf-8", newline="") as f:
        return {(r["check"], r["key"]): r for r in csv.DictReader(f)}


def audits_alike_from_a_snapshot(uri: str, suite: Suite, tmp_path: Path, server: str) -> list[str]:
    """Audit `uri` directly and from a snapshot of it (extracted, then replayed on `server`);
    assert both give the same violations.csv lines and the same check results, and return
    those lines, sorted."""
    from refaudit.extract import extract_snapshot
    from refaudit.replay import audit_snapshot

    options = AuditOptions(record_history=False)
    direct = run_audit(as_url(uri), suite, tmp_path / "direct", options=options)
    extract_snapshot(as_url(uri), suite, tmp_path / "snap")
    replay = audit_snapshot(
        tmp_path / "snap", suite, tmp_path / "re", options=options, server=server
    )
    lines = {
        n: sorted((tmp_path / n / "violations.csv").read_text().splitlines())
        for n in ("direct", "re")
    }
    assert lines["re"] == lines["direct"]
    assert [c.to_dict() for c in replay.checks] == [c.to_dict() for c in direct.checks]
    return lines["re"]


def assert_reapplied_then_rolled_back(
    uri: str,
    run: Path,
    dump: Callable[[], dict[str, list[str]]],
    before: dict[str, list[str]],
    after: dict[str, list[str]],
) -> None:
    """The plan of `run`, applied again, changes nothing (every table as `after`); then its
    rollback.sql, through psql, restores every table as `before`."""
    from refaudit.apply import apply_plan

    from tests.test_repair import psql

    second = apply_plan(as_url(uri), run / "repair.sql")
    assert not any(second.totals.get(k) for k in CHANGES), second.totals
    assert dump() == after
    back = psql(uri, run / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump() == before
