"""Repair against what is known to be true: the seed's "before" database repaired into its
"after" table, and a generated dirty database repaired to the generator's ground truth."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.demo import build_sample
from refaudit.suite import Suite

from tests.conftest import as_url, build_state
from tests.test_repair import dump, psql, query

REPAIR = AuditOptions(repair=True, record_history=False)
REFERENCES = (
    "session_requests.tutor_id.reference",
    "session_requests.requester_id.reference",
    "session_requests.package_id.reference",
)
REPAIRABLE = ("mis_keyed", "mis_keyed_hidden", "wrong_type")


def constraints(uri: str) -> set[tuple[Any, ...]]:
    return set(
        query(
            uri,
            "SELECT conname, pg_get_constraintdef(oid), convalidated FROM pg_constraint "
            "WHERE conrelid = 'session_requests'::regclass",
        )
    )


def rows(uri: str) -> dict[int, dict[str, Any]]:
    return {k: v for k, v in query(uri, "SELECT id, to_jsonb(t) FROM session_requests t")}


def test_seed_before_is_repaired_into_the_seed_after(
    new_database,
    generator,
    seed_after_db,
    suite: Suite,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    uri = new_database("seedfix")
    build_state(uri, generator, "before")
    before, before_constraints = dump(uri), constraints(uri)
    result = run_audit(as_url(uri), suite, tmp_path / "run", options=REPAIR)
    plan = result.repair
    assert plan["updates"] == 12 and plan["ambiguous"] == 0
    assert set(plan["dropped_constraints"]) == {
        "fk_session_requests_tutor",
        "fk_session_requests_requester",
    }

    first = psql(uri, tmp_path / "run" / "repair.sql")
    assert first.returncode == 0, first.stderr
    after_uri, _ = seed_after_db
    assert dump(uri) == dump(after_uri)  # the table the seed's migration produced

    again = psql(uri, tmp_path / "run" / "repair.sql")
    assert "refaudit: total changed=0 already=12 skipped=0" in again.stderr
    assert dump(uri) == dump(after_uri)

    done = psql(uri, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    expected = {(n, d, True) for n, d, _ in constraints(after_uri) if d.startswith("FOREIGN")}
    assert expected <= constraints(uri)  # the after state's foreign keys, validated
    assert all(valid for _, _, valid in constraints(uri))

    second = run_audit(as_url(uri), suite, tmp_path / "run2", options=REPAIR)
    assert second.total_violations == 0 and int(second.exit_code()) == 0

    back = psql(uri, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump(uri) == before
    assert constraints(uri) == before_constraints


@pytest.fixture(params=[(3000, 7), (5000, 2026)], ids=["3000-seed7", "5000-seed2026"])
def dirty(request, new_database, suite):  # type: ignore[no-untyped-def]
    requests, seed = request.param
    uri = new_database("dirtyfix")
    return uri, build_sample(uri, suite, requests=requests, seed=seed, truth=True)


def test_dirty_database_repairs_follow_the_ground_truth(
    dirty: tuple[str, Any], suite: Suite, tmp_path: Path
) -> None:
    uri, truth = dirty
    before_rows, before = rows(uri), dump(uri)
    run_audit(as_url(uri), suite, tmp_path / "run", options=REPAIR)
    with (tmp_path / "run" / "violations.csv").open(newline="") as f:
        got = pd.DataFrame(list(csv.DictReader(f)))
    got = got[got["check"].isin(REFERENCES)]
    want = truth.violations[truth.violations["check"].isin(REFERENCES)].copy()
    want["key"] = want["key"].astype(str)
    both = want.merge(got, on=["check", "key"], how="outer", suffixes=("", "_got"))
    assert both["diagnosis_got"].notna().all() and both["diagnosis"].notna().all()
    agree = (both["diagnosis"] == both["diagnosis_got"]).mean()
    assert agree >= 0.98, both[both["diagnosis"] != both["diagnosis_got"]]
    repairable = both[both["diagnosis"].isin(REPAIRABLE)]
    proposed = repairable[repairable["proposed_value"] != ""]
    assert (proposed["proposed_value"] == proposed["true_value"]).all()  # never a wrong value
    assert len(proposed) >= 0.95 * len(repairable)
    assert {"mis_keyed", "mis_keyed_hidden", "wrong_type", "ambiguous", "orphan"} <= set(
        both["diagnosis_got"]
    )

    first = psql(uri, tmp_path / "run" / "repair.sql")
    assert first.returncode == 0, first.stderr
    after_rows = rows(uri)
    # the true value of every repairable mis-key is back
    column_of = {"session_requests.tutor_id.reference": "tutor_id"}
    restored = 0
    for r in repairable.itertuples():
        column = (
            "requester_type"
            if r.diagnosis == "wrong_type"
            else column_of.get(r.check, "requester_id")
        )
        if str(after_rows[int(r.key)][column]) == r.true_value:
            restored += 1
    assert restored >= 0.95 * len(repairable)
    # nothing else changed: only the planned cells of the diagnosed rows, orphans aside
    orphans = both[both["diagnosis_got"] == "orphan"]
    quarantined = {int(k) for c, k in zip(orphans["check"], orphans["key"], strict=True)
                   if c != "session_requests.package_id.reference"}  # fmt: skip
    nulled = {int(k) for k in orphans[orphans["check"] == REFERENCES[2]]["key"]}
    planned: dict[int, set[str]] = {}
    for r in both[both["proposed_value"].fillna("") != ""].itertuples():
        cols = planned.setdefault(int(r.key), set())
        cols.add("requester_type" if r.diagnosis_got == "wrong_type" else r.column_got)
    assert set(before_rows) - set(after_rows) == quarantined
    for key, old in before_rows.items():
        if key in quarantined:
            continue
        new = after_rows[key]
        changed = {c for c in old if old[c] != new[c]}
        assert changed <= planned.get(key, set()), (key, changed)
        if key in nulled:
            assert new["package_id"] is None
    # no row lost: every removed row is whole in the quarantine
    kept = query(uri, "SELECT row_key, row_data FROM refaudit.quarantine")
    assert {int(k): v for k, v in kept} == {k: before_rows[k] for k in quarantined}

    second = psql(uri, tmp_path / "run" / "repair.sql")
    assert second.returncode == 0 and "changed=0" in second.stderr.splitlines()[-1]
    assert rows(uri) == after_rows

    back = psql(uri, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump(uri) == before
