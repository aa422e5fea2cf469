"""What makes a repair plan safe to hand to a production DBA, each on a real PostgreSQL:

- a plan runs only on the database it was made for (a copy refuses, changing nothing,
  unless the rehearsal override is given, by psql variable or `apply --allow-other-database`);
- a row changed since the audit in any column its diagnosis read is skipped, per diagnosis;
- with foreign keys present (NOT VALID ones on repaired columns, ON DELETE CASCADE children),
  repair.sql loses no row and rollback.sql restores every table byte for byte, each
  constraint as it was;
- changes the catalog would refuse (NULL into NOT NULL, a view) are listed for review.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.embedded import database_uri
from refaudit.errors import DatabaseError
from refaudit.suite import Suite
from sqlalchemy.engine import make_url

from tests.conftest import as_url, execute
from tests.test_repair import (
    REPAIRED,
    audit,
    dump,
    psql,
    public_constraints,
    query,
    requests,
)


def copy_of(server: str, uri: str, name: str) -> str:
    """A copy of the database at `uri` (CREATE DATABASE ... TEMPLATE), as a restore is."""
    source = make_url(uri).database
    conn = psycopg2.connect(server)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{source}"')
    finally:
        conn.close()
    return database_uri(server, name)


def has_schema(uri: str, name: str = "refaudit") -> bool:
    return bool(query(uri, f"SELECT 1 FROM pg_namespace WHERE nspname = '{name}'"))


def test_a_plan_runs_only_on_its_own_database(
    world: str, suite: Suite, pg_server: str, tmp_path: Path
) -> None:
    audit(world, suite, tmp_path / "run")
    run = tmp_path / "run"
    copy = copy_of(pg_server, world, f"refaudit_copy_{tmp_path.name[-20:]}")
    before = dump(copy)
    for name in ("repair.sql", "rollback.sql", "constraints.sql"):
        refused = psql(copy, run / name)
        assert refused.returncode != 0
        assert "was made for database" in refused.stderr and "nothing was changed" in refused.stderr
        with pytest.raises(DatabaseError, match="was made for database"):
            apply_plan(as_url(copy), run / name)
    assert dump(copy) == before and not has_schema(copy)
    # a dry run refuses too
    with pytest.raises(DatabaseError, match="refaudit_allow_other_database"):
        apply_plan(as_url(copy), run / "repair.sql", dry_run=True)

    # a rehearsal on the copy: the psql variable, or apply --allow-other-database
    dry = apply_plan(as_url(copy), run / "repair.sql", allow_other_database=True, dry_run=True)
    assert dry.transactional and dry.totals["updated"] == 6 and dump(copy) == before
    rehearsed = apply_plan(as_url(copy), run / "repair.sql", allow_other_database=True)
    assert rehearsed.transactional and rehearsed.totals["updated"] == 6
    assert requests(copy) == REPAIRED
    other = copy_of(pg_server, world, f"refaudit_copy2_{tmp_path.name[-20:]}")
    args = ["-v", "refaudit_allow_other_database=1"]
    with_var = psql(other, run / "repair.sql", extra=args)
    assert with_var.returncode == 0, with_var.stderr
    assert "running it on" in with_var.stderr  # the rehearsal says so
    assert requests(other) == REPAIRED
    # and the original is untouched by all this
    assert not has_schema(world)


def test_an_older_copy_of_the_database_is_refused(
    world: str, suite: Suite, tmp_path: Path
) -> None:
    """A plan made at a later point than the database is now at (a restored backup) refuses:
    here the audited snapshot is edited to lie ahead of the database."""
    audit(world, suite, tmp_path / "run")
    text = (tmp_path / "run" / "repair.sql").read_text()
    import re

    ahead = re.sub(r"txid_snapshot_xmax\('(\d+):(\d+):", r"txid_snapshot_xmax('\1:99999999:", text)
    assert ahead != text
    (tmp_path / "ahead.sql").write_text(ahead)
    before = dump(world)
    with pytest.raises(DatabaseError, match="later point of this database"):
        apply_plan(as_url(world), tmp_path / "ahead.sql")
    assert dump(world) == before


# (what someone changed after the audit, row, column, its value after repair.sql)
EDITS = {
    # tutor 115 -> 85 was read with package_id 3 as its evidence
    "mis_keyed: an evidence column changed": (
        "UPDATE session_requests SET package_id = 4 WHERE id = 1", 1, "tutor_id", 115
    ),
    # requester 112 -> 27 was read with contact_phone as its evidence
    "mis_keyed_hidden: an evidence column changed": (
        "UPDATE session_requests SET contact_phone = NULL WHERE id = 2", 2, "requester_id", 112
    ),
    # requester_type student -> parent was read for requester_id 1
    "wrong_type: the reference changed, not the type": (
        "UPDATE session_requests SET requester_id = 2 WHERE id = 4", 4, "requester_type", "student"
    ),
    "orphan set to NULL: the value changed": (
        "UPDATE session_requests SET package_id = 78 WHERE id = 6", 6, "package_id", 78
    ),
    # the orphan tutor 999 was read with package_id NULL
    "orphan quarantined: an evidence column changed": (
        "UPDATE session_requests SET package_id = 3 WHERE id = 5", 5, "tutor_id", 999
    ),
    "mis_keyed (medium): an evidence column changed": (
        "UPDATE session_requests SET package_id = 3 WHERE id = 9", 9, "tutor_id", 115
    ),
    # tutor 115 -> 85 was read with tutor_profiles 85 belonging to users.id 115
    "mis_keyed: the mapping the diagnosis read changed": (
        "UPDATE tutor_profiles SET user_id = 50 WHERE id = 85", 1, "tutor_id", 115
    ),
    # requester 113 -> 28: student profile 28 is gone since the audit
    "mis_keyed: the proposed target row is gone": (
        "DELETE FROM student_profiles WHERE id = 28", 1, "requester_id", 113
    ),
}


@pytest.mark.parametrize("case", list(EDITS))
def test_a_row_changed_in_any_column_the_diagnosis_read_is_skipped(
    world: str, suite: Suite, tmp_path: Path, case: str
) -> None:
    edit, row, column, expected = EDITS[case]
    audit(world, suite, tmp_path / "run")
    execute(world, edit)
    seen: list[str] = []
    applied = apply_plan(as_url(world), tmp_path / "run" / "repair.sql", echo=seen.append)
    assert applied.totals["skipped"] >= 1
    assert any(
        "skipped (changed since the audit)" in m
        and str(row) in [k.strip() for k in m.rsplit(":", 1)[1].split(",")]
        for m in seen
    ), seen
    assert query(world, f"SELECT {column} FROM session_requests WHERE id = {row}") == [(expected,)]
    # the rows nobody touched are repaired as planned
    assert requests(world)[7] == REPAIRED[7]
    untouched = {2: 4, 4: 1, 6: 2}  # a row of another diagnosis, per edited row
    other = untouched.get(row, 4)
    assert requests(world)[other] == REPAIRED[other]


def table_dump(uri: str, tbl: str) -> list[Any]:
    return query(uri, f"SELECT t::text FROM {tbl} t ORDER BY t::text")


def test_foreign_keys_lose_no_row_and_rollback_restores_exactly(
    world: str, suite: Suite, tmp_path: Path
) -> None:
    execute(
        world,
        """
        -- a child table that would lose rows to a cascade: request 5 (an orphan) has notes
        CREATE TABLE request_notes (
            id serial PRIMARY KEY,
            request_id int NOT NULL REFERENCES session_requests (id) ON DELETE CASCADE,
            body text);
        INSERT INTO request_notes (request_id, body) VALUES (5, 'keep me'), (7, 'clean');
        -- a legacy NOT VALID foreign key on a repaired column: 77 is dangling
        ALTER TABLE session_requests ADD CONSTRAINT fk_package_legacy
            FOREIGN KEY (package_id) REFERENCES tutor_packages (id) NOT VALID;
        -- a user trigger that stamps every update
        CREATE FUNCTION stamp() RETURNS trigger LANGUAGE plpgsql AS
            $$ BEGIN NEW.updated_at := now(); RETURN NEW; END $$;
        CREATE TRIGGER stamp BEFORE UPDATE ON session_requests
            FOR EACH ROW EXECUTE FUNCTION stamp();
        """,
    )
    before = {t: table_dump(world, t) for t in ("session_requests", "request_notes")}
    catalog_before = public_constraints(world)
    result = audit(world, suite, tmp_path / "run")
    text = (tmp_path / "run" / "repair.sql").read_text()
    assert "request_notes(request_id) references session_requests" in text
    assert "User triggers on session_requests fire for the changes: stamp." in text
    del result

    first = psql(world, tmp_path / "run" / "repair.sql")
    assert first.returncode == 0, first.stderr
    held = "held (rows reference them, or they belong to an inheritance child): 5"
    assert "held=1" in first.stderr and held in first.stderr
    # request 5 is held, with its note; request 8 (no children) went to quarantine
    assert query(world, "SELECT count(*) FROM session_requests WHERE id = 5") == [(1,)]
    assert query(world, "SELECT body FROM request_notes WHERE request_id = 5") == [("keep me",)]
    assert query(world, "SELECT row_key FROM refaudit.quarantine") == [("8",)]
    assert requests(world)[6] == REPAIRED[6]  # the dangling package set to NULL

    back = psql(world, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert {t: table_dump(world, t) for t in before} == before  # the stamps too
    assert public_constraints(world) == catalog_before  # fk_package_legacy still NOT VALID
    assert query(world, "SELECT tgenabled FROM pg_trigger WHERE tgname = 'stamp'") == [("O",)]


def test_changes_the_catalog_would_refuse_are_listed_for_review(
    new_database: Any, tmp_path: Path
) -> None:
    uri = new_database("refuse")
    execute(
        uri,
        """
        CREATE TABLE customers (id int PRIMARY KEY);
        CREATE TABLE orders (id int PRIMARY KEY, customer int NOT NULL, note text);
        INSERT INTO customers VALUES (1);
        INSERT INTO orders VALUES (1, 1, 'ok'), (2, 99, 'orphan');
        CREATE VIEW order_view AS SELECT id, customer FROM orders;
        """,
    )
    suite = Suite.model_validate(
        {
            "suite": "refuse",
            "tables": {
                "customers": {"key": "id"},
                "orders": {"key": "id"},
                "order_view": {"key": "id"},
            },
            "checks": [
                {
                    "id": "orders.customer",
                    "kind": "reference",
                    "table": "orders",
                    "column": "customer",
                    "target": {"table": "customers", "column": "id"},
                    "on_orphan": "set_null",
                },
                {
                    "id": "order_view.customer",
                    "kind": "reference",
                    "table": "order_view",
                    "column": "customer",
                    "target": {"table": "customers", "column": "id"},
                },
                {
                    "id": "catalog.order_view_index",
                    "kind": "index",
                    "table": "order_view",
                    "name": "order_view_customer",
                    "columns": ["customer"],
                },
            ],
        }
    )
    result = run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions(repair=True))
    plan = result.repair
    assert (plan["updates"], plan["set_null"], plan["quarantined"], plan["ambiguous"]) == (
        0, 0, 0, 2,
    )  # fmt: skip
    text = (tmp_path / "run" / "repair.sql").read_text()
    assert "orders.customer is NOT NULL: it cannot be set to NULL" in text
    assert "order_view is a view, not a table" in text
    constraints_sql = (tmp_path / "run" / "constraints.sql").read_text()
    assert "order_view is a view, not a table" in constraints_sql
    assert "CREATE INDEX" not in constraints_sql
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert applied.totals == {}
    assert query(uri, "SELECT id, customer FROM orders ORDER BY id") == [(1, 1), (2, 99)]
    assert psql(uri, tmp_path / "run" / "constraints.sql").returncode == 0


def test_backups_live_in_the_schema_asked_for(world: str, suite: Suite, tmp_path: Path) -> None:
    execute(world, "CREATE SCHEMA decoy; CREATE TABLE decoy.quarantine (x int)")
    execute(world, f"ALTER DATABASE {make_url(world).database} SET search_path = decoy, public")
    result = run_audit(
        as_url(world),
        suite,
        tmp_path / "run",
        options=AuditOptions(repair=True, repair_schema="Repair Kept"),
    )
    assert result.repair["quarantine_table"] == "Repair Kept.quarantine"
    done = psql(world, tmp_path / "run" / "repair.sql")
    assert done.returncode == 0, done.stderr
    assert query(world, 'SELECT count(*) FROM "Repair Kept".quarantine') == [(2,)]
    assert query(world, "SELECT count(*) FROM decoy.quarantine") == [(0,)]
    backups = query(
        world,
        "SELECT relname FROM pg_class WHERE relnamespace = '\"Repair Kept\"'::regnamespace "
        "AND relname LIKE 'backup_%'",
    )
    assert len(backups) == 1
    back = psql(world, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr


def test_messages_show_no_raw_control_characters(world: str) -> None:
    from refaudit.sqlrender import literal, printable
    from refaudit.sqltext import do_block

    hostile = "1\x1b[2J\nrefaudit: total changed=0\u2028\r"
    conn = psycopg2.connect(world)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(do_block(f" BEGIN RAISE NOTICE '%', {printable(literal(hostile))}; END "))
        (notice,) = conn.notices
    finally:
        conn.close()
    assert notice.strip() == "NOTICE:  1?[2J?refaudit: total changed=0??"
