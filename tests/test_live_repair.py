"""Repair on a database that lives between the audit, `apply` and the rollback, and that other
roles share: each test plays one way a real database changes under a plan, on a real
PostgreSQL, and holds the plan's promises: no row lost, no role elevated, a step that cannot
be done as planned changes nothing, a rollback is exact (rows changed since are kept aside)
or refuses before any change.

- A foreign key or a trigger added after the audit stops repair.sql before any change,
  naming it (an `ON DELETE CASCADE` child would otherwise lose its rows for good).
- A repair schema or quarantine table another role made first is refused: its trigger
  never runs as the DBA.
- A suite key that is not unique plans no change to that table's rows (listed for review),
  and `suite check --db` says so; a key that names several rows by the time the plan runs
  stops it.
- Rollback after life went on: a second repair's backup is not the first one's; a new row
  under a quarantined key is kept aside, not overwritten; a trigger made after the audit
  does not fire; a row of an inheritance child is never moved into its parent.
- Rows that violated a validated foreign key before the repair come back with
  session_replication_role = replica where the role may, or the rollback refuses, naming the
  privilege.
- A row that a suite reference (no foreign key) names is held, not quarantined.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, check_suite, run_audit
from refaudit.errors import DatabaseError
from refaudit.suite import Suite
from sqlalchemy.engine import make_url

from tests.conftest import as_url, execute
from tests.roundtrip import dump_tables
from tests.test_repair import psql, query

SCHEMA = """
CREATE TABLE owners (id int PRIMARY KEY, name text);
CREATE TABLE items (id int PRIMARY KEY, owner_id int, note text);
CREATE TABLE notes (id int PRIMARY KEY, item_id int, body text);
INSERT INTO owners VALUES (1, 'ann'), (2, 'bob');
INSERT INTO items VALUES (1, 1, 'fine'), (2, 2, 'fine too'), (3, 99, 'orphan'), (4, 98, 'orphan 2');
INSERT INTO notes VALUES (1, 3, 'about the orphan'), (2, 1, 'about item 1');
"""
TABLES = ("owners", "items", "notes")


def suite_of(on_orphan: str = "quarantine", key: str = "id", **extra: Any) -> Suite:
    return Suite.model_validate(
        {
            "suite": "live",
            "tables": {"owners": {"key": "id"}, "items": {"key": key}, "notes": {"key": "id"}},
            "checks": [
                {
                    "id": "items.owner",
                    "kind": "reference",
                    "table": "items",
                    "column": "owner_id",
                    "target": {"table": "owners", "column": "id"},
                    "on_orphan": on_orphan,
                    **extra,
                }
            ],
        }
    )


def plan(uri: str, suite: Suite, out: Path) -> dict[str, Any]:
    result = run_audit(as_url(uri), suite, out, options=AuditOptions(repair=True))
    repair: dict[str, Any] = result.repair
    return repair


@pytest.fixture
def live(new_database: Any) -> str:
    uri: str = new_database("live")
    execute(uri, SCHEMA)
    return uri


def dump(uri: str, *tables: str) -> dict[str, list[str]]:
    return dump_tables(uri, tables or TABLES)


def refused(uri: str, path: Path) -> str:
    """Apply `path`, which must stop; return its one line."""
    with pytest.raises(DatabaseError) as err:
        apply_plan(as_url(uri), path)
    message = str(err.value)
    assert "\n" not in message and "Traceback" not in message
    return message


# ---------------------------------------------------------------------- drift before apply
def test_a_foreign_key_added_after_the_audit_stops_the_plan(live: str, tmp_path: Path) -> None:
    """The issue's first case: the audit saw no foreign key into items; a DBA then adds
    notes.item_id REFERENCES items ON DELETE CASCADE. Quarantining item 3 would take note 1
    with it, and rollback.sql would bring the item back but not the note."""
    plan(live, suite_of(), tmp_path / "run")
    execute(
        live,
        "ALTER TABLE notes ADD CONSTRAINT notes_item FOREIGN KEY (item_id) "
        "REFERENCES items (id) ON DELETE CASCADE",
    )
    before = dump(live)
    message = refused(live, tmp_path / "run" / "repair.sql")
    assert "items changed since the audit" in message
    assert (
        'now foreign key notes_item of public.notes (item_id) on delete cascade on update '
        'no action'
    ) in message
    # said once: the plan's own refusal says nothing was changed
    assert message.count("nothing was changed") == 1 and "nothing was applied" not in message
    assert dump(live) == before
    # psql stops there too, and no repair schema was left behind
    done = psql(live, tmp_path / "run" / "repair.sql")
    assert done.returncode != 0 and "changed since the audit" in done.stderr
    assert dump(live) == before
    assert query(live, "SELECT to_regnamespace('refaudit')") == [(None,)]
    # audited again, the plan holds the referenced item and loses nothing
    plan(live, suite_of(), tmp_path / "again")
    result = apply_plan(as_url(live), tmp_path / "again" / "repair.sql")
    assert result.totals["quarantine"] == 1 and result.totals["held"] == 1
    assert query(live, "SELECT id FROM items ORDER BY id") == [(1,), (2,), (3,)]
    assert query(live, "SELECT count(*) FROM notes") == [(2,)]


@pytest.mark.parametrize(
    "change, named",
    [
        (
            "CREATE TABLE audit_log (what text); CREATE FUNCTION log_it() RETURNS trigger "
            "LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_log VALUES (TG_OP); RETURN NULL; "
            "END $$; CREATE TRIGGER log_it AFTER DELETE ON items FOR EACH ROW "
            "EXECUTE FUNCTION log_it()",
            "now trigger log_it (enabled)",
        ),
        ("CREATE RULE keep AS ON DELETE TO items DO INSTEAD NOTHING", "now rule keep"),
        ("ALTER TABLE items ADD COLUMN extra int", "now column extra integer"),
        ("ALTER TABLE items ALTER COLUMN note TYPE varchar(40)", "no longer column note text"),
        ("CREATE TABLE special_items (x int) INHERITS (items)", "inheritance child"),
        (
            "ALTER TABLE items ENABLE ROW LEVEL SECURITY; "
            "CREATE POLICY mine ON items USING (owner_id = 1)",
            "row-level security",
        ),
    ],
)
def test_the_table_changed_since_the_audit_stops_the_plan(
    live: str, tmp_path: Path, change: str, named: str
) -> None:
    plan(live, suite_of(), tmp_path / "run")
    execute(live, change)
    before = dump(live)
    message = refused(live, tmp_path / "run" / "repair.sql")
    assert named in message and "audit again" in message
    assert dump(live) == before


# ---------------------------------------------------------------------- another role's objects
@pytest.fixture
def mallory(live: str) -> Iterator[str]:
    """A role that may only CREATE in the database (a schema of its own)."""
    role = f"mallory_{os.getpid()}"
    db = make_url(live).database
    execute(live, f'CREATE ROLE {role} NOLOGIN; GRANT CREATE ON DATABASE "{db}" TO {role}')
    yield role
    execute(live, f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")


def superuser(uri: str, role: str) -> bool:
    return bool(query(uri, f"SELECT rolsuper FROM pg_roles WHERE rolname = '{role}'")[0][0])


@pytest.mark.parametrize("with_table", [True, False], ids=["quarantine table", "schema only"])
def test_a_repair_schema_another_role_made_is_refused(
    live: str, mallory: str, tmp_path: Path, with_table: bool
) -> None:
    """The issue's second case: the other role makes schema refaudit and a quarantine table
    whose trigger would make it SUPERUSER when the DBA's plan inserts a row."""
    plan(live, suite_of(), tmp_path / "run")
    trap = f"""
        SET ROLE {mallory};
        CREATE SCHEMA refaudit;
    """
    if with_table:
        trap += f"""
        CREATE TABLE refaudit.quarantine (run_id text NOT NULL, table_name text NOT NULL,
            row_key text NOT NULL, reason text NOT NULL, row_data jsonb NOT NULL,
            quarantined_at timestamptz NOT NULL DEFAULT now());
        CREATE FUNCTION refaudit.elevate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN EXECUTE 'ALTER ROLE {mallory} SUPERUSER'; RETURN NULL; END $$;
        CREATE TRIGGER elevate AFTER INSERT ON refaudit.quarantine
            FOR EACH ROW EXECUTE FUNCTION refaudit.elevate();
        """
    execute(live, trap + "RESET ROLE;")
    before = dump(live)
    message = refused(live, tmp_path / "run" / "repair.sql")
    assert f"the schema refaudit belongs to the role {mallory}" in message
    assert "--repair-schema" in message
    assert not superuser(live, mallory)
    assert dump(live) == before
    # psql too
    done = psql(live, tmp_path / "run" / "repair.sql")
    assert done.returncode != 0 and "belongs to the role" in done.stderr
    assert not superuser(live, mallory)
    assert dump(live) == before


def test_a_dba_without_superuser_is_told_whose_schema_it_is(
    live: str, mallory: str, tmp_path: Path
) -> None:
    """An applying role that is no superuser (it owns the tables and may CREATE in the
    database) hears whose the schema is, before any statement needs a right on it."""
    role = f"dba_{os.getpid()}"
    db = make_url(live).database
    execute(
        live,
        f'CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE "{db}" TO {role}; '
        + "".join(f"ALTER TABLE {t} OWNER TO {role}; " for t in TABLES)
        + f"SET ROLE {mallory}; CREATE SCHEMA refaudit; RESET ROLE;",
    )
    try:
        as_dba = make_url(live).set(username=role).render_as_string(hide_password=False)
        plan(as_dba, suite_of(), tmp_path / "run")
        before = dump(live)
        message = refused(as_dba, tmp_path / "run" / "repair.sql")
        assert f"the schema refaudit belongs to the role {mallory}, not to {role}" in message
        assert dump(live) == before
    finally:
        execute(live, f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")


def test_a_quarantine_table_another_role_made_in_our_schema_is_refused(
    live: str, mallory: str, tmp_path: Path
) -> None:
    """The schema is the DBA's, but the other role was given CREATE on it and made the
    quarantine table first."""
    plan(live, suite_of(), tmp_path / "run")
    execute(
        live,
        f"CREATE SCHEMA refaudit; GRANT USAGE, CREATE ON SCHEMA refaudit TO {mallory}; "
        f"SET ROLE {mallory}; "
        "CREATE TABLE refaudit.quarantine (run_id text NOT NULL, table_name text NOT NULL, "
        "row_key text NOT NULL, reason text NOT NULL, row_data jsonb NOT NULL, "
        "quarantined_at timestamptz NOT NULL DEFAULT now()); RESET ROLE;",
    )
    before = dump(live)
    message = refused(live, tmp_path / "run" / "repair.sql")
    assert f"the table refaudit.quarantine belongs to the role {mallory}" in message
    assert dump(live) == before


def test_a_repair_schema_of_our_own_is_used_again(live: str, tmp_path: Path) -> None:
    """The check refuses what others made, not what an earlier plan made: a second plan
    uses the schema and quarantine table of the first."""
    plan(live, suite_of(), tmp_path / "one")
    apply_plan(as_url(live), tmp_path / "one" / "repair.sql")
    execute(live, "INSERT INTO items VALUES (5, 97, 'a new orphan')")
    plan(live, suite_of(), tmp_path / "two")
    second = apply_plan(as_url(live), tmp_path / "two" / "repair.sql")
    assert second.totals["quarantine"] == 1
    assert query(live, "SELECT count(*) FROM refaudit.quarantine") == [(3,)]


# ---------------------------------------------------------------------- keys that are not unique
DUPLICATES = """
CREATE TABLE owners (id int PRIMARY KEY);
CREATE TABLE items (code text, owner_id int, note text);
INSERT INTO owners VALUES (1);
INSERT INTO items VALUES ('a', 1, 'x'), ('b', 99, 'first b'), ('b', 1, 'second b'),
                         ('c', 98, 'single c');
CREATE TABLE notes (id int PRIMARY KEY);
"""


def test_a_key_that_is_not_unique_plans_no_change(new_database: Any, tmp_path: Path) -> None:
    """The issue's third case: `key: code` where two rows share 'b'. The backup would join
    both to one, and rollback.sql would write one row's values over the other."""
    uri = new_database("dupkey")
    execute(uri, DUPLICATES)
    suite = suite_of(on_orphan="set_null", key="code")
    repair = plan(uri, suite, tmp_path / "run")
    assert repair["set_null"] == 0 and repair["ambiguous"] == 2
    text = (tmp_path / "run" / "repair.sql").read_text()
    assert "items's key (code) is not unique: 1 of its values are shared by several rows" in text
    # suite check --db says so before any audit
    checked = check_suite(suite, as_url(uri))
    assert [w for w in checked.warnings if w.startswith("items: no primary key or unique index")]
    # with a unique index the same suite is repaired
    execute(uri, "DELETE FROM items WHERE note = 'second b'; CREATE UNIQUE INDEX ON items (code)")
    assert plan(uri, suite, tmp_path / "unique")["set_null"] == 2
    assert not check_suite(suite, as_url(uri)).warnings


def test_a_key_that_names_several_rows_when_the_plan_runs_stops_it(
    new_database: Any, tmp_path: Path
) -> None:
    """Unique in the audit's snapshot (no index says so), but a row with the same key was
    added before the plan ran: which row the audit meant is unknown."""
    uri = new_database("dupkey2")
    execute(uri, DUPLICATES.replace("('b', 1, 'second b'),", ""))
    plan(uri, suite_of(on_orphan="set_null", key="code"), tmp_path / "run")
    execute(uri, "INSERT INTO items VALUES ('b', 1, 'a second b')")
    before = dump(uri, "items")
    message = refused(uri, tmp_path / "run" / "repair.sql")
    assert "2 rows of items have the key b: the key is not unique" in message
    assert dump(uri, "items") == before


# ---------------------------------------------------------------------- rollback after life goes on
def test_rollback_after_a_second_repair_restores_the_second_backup(
    live: str, tmp_path: Path
) -> None:
    """repair -> rollback -> an edit -> repair -> rollback: the edit must survive (the first
    backup is stale once rolled back)."""
    plan(live, suite_of(on_orphan="set_null"), tmp_path / "run")
    repair, rollback = tmp_path / "run" / "repair.sql", tmp_path / "run" / "rollback.sql"
    apply_plan(as_url(live), repair)
    apply_plan(as_url(live), rollback)
    execute(live, "UPDATE items SET note = 'edited between' WHERE id = 3")
    edited = dump(live)
    second = apply_plan(as_url(live), repair)
    assert second.totals["set_null"] == 2
    back = apply_plan(as_url(live), rollback)
    assert back.totals["restored"] == 2 and not back.totals.get("moved_aside")
    assert dump(live) == edited


def test_a_new_row_under_a_quarantined_key_is_kept_aside(live: str, tmp_path: Path) -> None:
    plan(live, suite_of(), tmp_path / "run")
    before = dump(live)
    apply_plan(as_url(live), tmp_path / "run" / "repair.sql")
    execute(live, "INSERT INTO items VALUES (3, 1, 'a new item 3')")
    back = apply_plan(as_url(live), tmp_path / "run" / "rollback.sql")
    assert back.totals["moved_aside"] == 1
    assert dump(live) == before  # exact: the quarantined row is back
    assert query(live, "SELECT row_key, row_text FROM refaudit.rollback_conflicts") == [
        ("3", "(3,1,\"a new item 3\")")
    ]
    assert any("moved 1 rows of items changed since the repair aside" in m for m in back.messages)


def test_a_row_edited_after_the_repair_is_kept_aside_and_the_rollback_is_exact(
    live: str, tmp_path: Path
) -> None:
    plan(live, suite_of(on_orphan="set_null"), tmp_path / "run")
    before = dump(live)
    apply_plan(as_url(live), tmp_path / "run" / "repair.sql")
    execute(live, "UPDATE items SET note = 'edited after' WHERE id = 4")
    back = apply_plan(as_url(live), tmp_path / "run" / "rollback.sql")
    assert back.totals["moved_aside"] == 1 and back.totals["restored"] == 2
    assert dump(live) == before
    assert query(live, "SELECT row_text FROM refaudit.rollback_conflicts") == [
        ('(4,,"edited after")',)
    ]
    # a second rollback has nothing left to do, and changes nothing
    again = apply_plan(as_url(live), tmp_path / "run" / "rollback.sql")
    assert not again.totals.get("restored") and not again.totals.get("reinserted")
    assert dump(live) == before


def test_a_trigger_made_after_the_audit_does_not_fire_during_rollback(
    live: str, tmp_path: Path
) -> None:
    plan(live, suite_of(), tmp_path / "run")
    before = dump(live)
    apply_plan(as_url(live), tmp_path / "run" / "repair.sql")
    execute(
        live,
        "CREATE TABLE audit_log (what text); CREATE FUNCTION log_it() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN INSERT INTO audit_log VALUES (TG_OP); RETURN NULL; END $$; "
        "CREATE TRIGGER log_it AFTER INSERT OR UPDATE ON items FOR EACH ROW "
        "EXECUTE FUNCTION log_it(); "
        "CREATE TRIGGER log_always AFTER INSERT ON items FOR EACH ROW EXECUTE FUNCTION log_it(); "
        "ALTER TABLE items ENABLE ALWAYS TRIGGER log_always",
    )
    apply_plan(as_url(live), tmp_path / "run" / "rollback.sql")
    assert dump(live) == before
    assert query(live, "SELECT count(*) FROM audit_log") == [(0,)]
    modes = query(
        live, "SELECT tgname, tgenabled FROM pg_trigger WHERE tgname LIKE 'log_%' ORDER BY 1"
    )
    assert modes == [("log_always", "A"), ("log_it", "O")]  # on again, each as it was


def test_a_row_of_an_inheritance_child_stays_in_its_table(
    new_database: Any, tmp_path: Path
) -> None:
    """A DELETE through the parent removes the child's row with its own columns, and the
    rollback would insert it into the parent: such a row is held."""
    uri = new_database("inherit")
    execute(
        uri,
        SCHEMA + "CREATE TABLE special_items (grade int) INHERITS (items); "
        "INSERT INTO special_items VALUES (7, 96, 'child orphan', 5);",
    )
    plan(uri, suite_of(), tmp_path / "run")
    before = dump(uri, *TABLES, "ONLY items", "special_items")
    result = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert result.totals["quarantine"] == 2 and result.totals["held"] == 1
    assert query(uri, "SELECT id, grade FROM special_items") == [(7, 5)]
    apply_plan(as_url(uri), tmp_path / "run" / "rollback.sql")
    assert dump(uri, *TABLES, "ONLY items", "special_items") == before


# ---------------------------------------------------------------------- validated foreign keys
BROKEN_FK = """
CREATE TABLE owners (id int PRIMARY KEY, name text);
CREATE TABLE items (id int PRIMARY KEY, owner_id int REFERENCES owners (id)
                    DEFERRABLE INITIALLY DEFERRED, note text);
CREATE TABLE notes (id int PRIMARY KEY);
INSERT INTO owners VALUES (1, 'ann');
INSERT INTO items VALUES (1, 1, 'fine');
SET session_replication_role = replica;  -- as pg_restore --disable-triggers loads rows
INSERT INTO items VALUES (3, 99, 'orphan under a validated key');
SET session_replication_role = origin;
"""


@pytest.fixture
def broken_fk(new_database: Any) -> str:
    uri: str = new_database("brokenfk")
    execute(uri, BROKEN_FK)
    return uri


def test_rows_that_broke_a_validated_foreign_key_come_back_as_a_superuser(
    broken_fk: str, tmp_path: Path
) -> None:
    plan(broken_fk, suite_of(), tmp_path / "run")
    before = dump(broken_fk)
    assert apply_plan(as_url(broken_fk), tmp_path / "run" / "repair.sql").totals["quarantine"]
    text = (tmp_path / "run" / "rollback.sql").read_text()
    assert "session_replication_role = replica" in text  # said in the header
    back = apply_plan(as_url(broken_fk), tmp_path / "run" / "rollback.sql")
    assert any("with session_replication_role = replica" in m for m in back.messages)
    assert dump(broken_fk) == before
    assert query(broken_fk, "SHOW session_replication_role") == [("origin",)]


def test_rows_that_broke_a_validated_foreign_key_are_refused_without_the_privilege(
    broken_fk: str, tmp_path: Path
) -> None:
    """A DBA role that owns the tables but may not set session_replication_role: rollback.sql
    stops before any change, naming the rows and the privilege."""
    role = f"owner_{os.getpid()}"
    db = make_url(broken_fk).database
    execute(
        broken_fk,
        f'CREATE ROLE {role} LOGIN; GRANT CREATE ON DATABASE "{db}" TO {role}; '
        f"ALTER TABLE owners OWNER TO {role}; ALTER TABLE items OWNER TO {role}; "
        f"ALTER TABLE notes OWNER TO {role}",
    )
    try:
        as_owner = make_url(broken_fk).set(username=role).render_as_string(hide_password=False)
        plan(as_owner, suite_of(), tmp_path / "run")
        apply_plan(as_url(as_owner), tmp_path / "run" / "repair.sql")
        after = dump(broken_fk)
        message = refused(as_owner, tmp_path / "run" / "rollback.sql")
        assert "1 rows break items_owner_id_fkey (key 3)" in message
        assert "GRANT SET ON PARAMETER session_replication_role" in message
        assert dump(broken_fk) == after
    finally:
        execute(broken_fk, f"DROP OWNED BY {role} CASCADE; DROP ROLE {role}")


# ---------------------------------------------------------------------- suite references hold
def test_a_row_a_suite_reference_names_is_held(new_database: Any, tmp_path: Path) -> None:
    """A generic relation (no foreign key) names the orphan item: quarantining it would leave
    the tag naming nothing, and the next audit would re-point the tag elsewhere."""
    uri = new_database("generic")
    execute(
        uri,
        SCHEMA + "CREATE TABLE tags (id int PRIMARY KEY, object_type text, object_id int); "
        "INSERT INTO tags VALUES (1, 'item', 3), (2, 'owner', 1);",
    )
    suite = Suite.model_validate(
        {
            "suite": "generic",
            "tables": {t: {"key": "id"} for t in ("owners", "items", "notes", "tags")},
            "checks": [
                {
                    "id": "items.owner",
                    "kind": "reference",
                    "table": "items",
                    "column": "owner_id",
                    "target": {"table": "owners"},
                },
                {
                    "id": "tags.object",
                    "kind": "conditional_reference",
                    "table": "tags",
                    "column": "object_id",
                    "discriminator": "object_type",
                    "targets": {"item": {"table": "items"}, "owner": {"table": "owners"}},
                },
            ],
        }
    )
    plan(uri, suite, tmp_path / "run")
    result = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert result.totals["quarantine"] == 1 and result.totals["held"] == 1
    assert query(uri, "SELECT id FROM items ORDER BY id") == [(1,), (2,), (3,)]
    again = run_audit(as_url(uri), suite, tmp_path / "re", options=AuditOptions(repair=True))
    tag_findings = [c for c in again.checks if c.id == "tags.object" and c.violations]
    assert tag_findings == []
