"""Schema shapes of real applications, through every stage: a Rails-style polymorphic
association whose ids are text while the keys are bigint and uuid, single-table inheritance
(`User` and `AdminUser` both rows of `users`), an enum discriminator, foreign keys present
(a child table that would lose rows to a cascade). Every injected fault is flagged, no clean
row is, repair.sql changes only the faulty rows, rollback.sql restores every table exactly,
constraints.sql enforces the references it derives."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.errors import SuiteError
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import psql, query

PHOTO = "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"

SCHEMA = f"""
CREATE TYPE subject_kind AS ENUM ('Post', 'Photo', 'User', 'AdminUser');
CREATE TABLE users (id bigint PRIMARY KEY, type text NOT NULL, email text);
CREATE TABLE posts (id bigint PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id),
                    title text);
CREATE TABLE photos (uuid uuid PRIMARY KEY, caption text);
-- PaperTrail-style versions: item_id is text, whatever the item's key type
CREATE TABLE versions (id bigint PRIMARY KEY, item_type text NOT NULL, item_id text,
                       event text);
-- acts-as-taggable: an enum discriminator, bigint ids
CREATE TABLE taggings (id bigint PRIMARY KEY, taggable_type subject_kind, taggable_id bigint,
                       tag text);
CREATE TABLE tagging_notes (id bigint PRIMARY KEY,
                            tagging_id bigint NOT NULL REFERENCES taggings (id)
                                ON DELETE CASCADE,
                            body text);

INSERT INTO users VALUES (1, 'User', 'ann@x'), (2, 'AdminUser', 'root@x'), (3, 'User', 'bob@x');
INSERT INTO posts VALUES (10, 1, 'hello'), (11, 2, 'rules');
INSERT INTO photos VALUES ('{PHOTO}', 'sunset');
INSERT INTO versions VALUES
    (1, 'Post', '10', 'create'),          -- clean
    (2, 'Photo', '{PHOTO}', 'create'),    -- clean: a uuid key, a text id
    (3, 'User', '1', 'update'),           -- clean
    (4, 'AdminUser', '2', 'update'),      -- clean: single-table inheritance
    (5, 'Post', '99', 'destroy'),         -- orphan: nothing has 99
    (6, 'User', '11', 'update'),          -- posts.id 11 exists, but posts holds every id
                                          -- around it: chance, so ambiguous
    (7, 'Photo', 'not-a-uuid', 'create'), -- orphan, and no cast error
    (8, 'AdminUser', '3', 'update'),      -- clean: users.id 3 exists
    (9, 'Post', NULL, 'create'),          -- clean: no reference
    (10, 'Comment', '1', 'create');       -- no target for Comment
INSERT INTO taggings VALUES
    (1, 'Post', 10, 'a'),                 -- clean
    (2, 'AdminUser', 2, 'b'),             -- clean: single-table inheritance
    (3, 'User', 2, 'c'),                  -- clean
    (4, 'User', 10, 'd'),                 -- posts.id 10: chance again, ambiguous
    (5, 'Photo', 5, 'e'),                 -- Photo is no target of this check
    (6, 'User', 404, 'f'),                -- orphan, but a note references it: held
    (7, 'Post', 11, 'g');                 -- clean
INSERT INTO tagging_notes VALUES (1, 6, 'keep me'), (2, 1, 'clean');
"""

TABLES = {"users": "id", "posts": "id", "photos": "uuid", "versions": "id", "taggings": "id",
          "tagging_notes": "id"}  # fmt: skip

SUITE: dict[str, Any] = {
    "suite": "rails",
    "tables": {t: {"key": k} for t, k in TABLES.items()},
    "checks": [
        {
            "id": "versions.item",
            "kind": "conditional_reference",
            "table": "versions",
            "column": "item_id",
            "discriminator": "item_type",
            "targets": {
                "Post": {"table": "posts"},
                "Photo": {"table": "photos", "column": "uuid"},
                "User": {"table": "users"},
                "AdminUser": {"table": "users"},
            },
        },
        {
            "id": "taggings.taggable",
            "kind": "conditional_reference",
            "table": "taggings",
            "column": "taggable_id",
            "discriminator": "taggable_type",
            "targets": {
                "Post": {"table": "posts"},
                "User": {"table": "users"},
                "AdminUser": {"table": "users"},
            },
        },
        {
            "id": "posts.user",
            "kind": "reference",
            "table": "posts",
            "column": "user_id",
            "target": {"table": "users"},
        },
        {
            "id": "versions.item.trigger",
            "kind": "trigger",
            "table": "versions",
            "name": "versions_item_ref",
            "for_check": "versions.item",
        },
        {
            "id": "taggings.taggable.trigger",
            "kind": "trigger",
            "table": "taggings",
            "name": "taggings_taggable_ref",
            "for_check": "taggings.taggable",
        },
    ],
}

EXPECTED = {
    ("versions.item", "5"): ("orphan", ""),
    # posts.id 11 and 10 exist, but posts holds every id 10..11: a user's id there is chance
    ("versions.item", "6"): ("ambiguous", ""),
    ("versions.item", "7"): ("orphan", ""),
    ("versions.item.discriminator", "10"): ("ambiguous", ""),
    ("taggings.taggable", "4"): ("ambiguous", ""),
    ("taggings.taggable", "6"): ("orphan", ""),
    ("taggings.taggable.discriminator", "5"): ("", ""),
}


def dump_all(uri: str) -> dict[str, list[Any]]:
    return {
        t: [r[0] for r in query(uri, f'SELECT x::text FROM {t} x ORDER BY {k}::text COLLATE "C"')]
        for t, k in TABLES.items()
    }


def findings(out: Path) -> dict[tuple[str, str], tuple[str, str]]:
    import csv

    with (out / "violations.csv").open(encoding="utf-8", newline="") as f:
        return {
            (r["check"], r["key"]): (r["diagnosis"], r["proposed_value"])
            for r in csv.DictReader(f)
        }


def audit(uri: str, out: Path) -> Any:
    return run_audit(
        as_url(uri), Suite.model_validate(SUITE), out, options=AuditOptions(repair=True)
    )


@pytest.fixture
def rails(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("rails")
    execute(uri, SCHEMA)
    return uri


def test_polymorphic_sti_and_enum_round_trip(rails: str, tmp_path: Path) -> None:
    before = dump_all(rails)
    audit(rails, tmp_path / "run")
    got = findings(tmp_path / "run")
    triggers = {k: v for k, v in got.items() if k[0].endswith(".trigger")}
    assert set(triggers) == {
        ("versions.item.trigger", "versions_item_ref"),
        ("taggings.taggable.trigger", "taggings_taggable_ref"),
    }
    assert {k: v for k, v in got.items() if k not in triggers} == EXPECTED

    evidence = (tmp_path / "run" / "violations.csv").read_text()
    assert (
        "no users.id 11, but posts.id 11 exists; posts holds 100% of the ids 10..11 around it: "
        "chance, not evidence of the type; listed for review"
    ) in evidence
    assert "no photos.uuid not-a-uuid" in evidence  # each target's own key column

    applied = apply_plan(as_url(rails), tmp_path / "run" / "repair.sql")
    assert applied.totals.get("updated", 0) == 0 and applied.totals["quarantine"] == 2
    after = dump_all(rails)
    changed = {
        t: sorted(set(before[t]) ^ set(after[t])) for t in TABLES if before[t] != after[t]
    }
    assert changed == {
        "versions": sorted(
            {
                "(5,Post,99,destroy)",
                "(7,Photo,not-a-uuid,create)",
            }
        ),
    }
    assert query(rails, "SELECT body FROM tagging_notes ORDER BY id") == [("keep me",), ("clean",)]

    # a new audit finds only what the repair could not do; applying the plan again changes
    # nothing
    audit(rails, tmp_path / "again")
    left = {k: v for k, v in findings(tmp_path / "again").items() if "trigger" not in k[0]}
    assert set(left) == {
        ("versions.item", "6"),
        ("taggings.taggable", "4"),
        ("versions.item.discriminator", "10"),
        ("taggings.taggable", "6"),
        ("taggings.taggable.discriminator", "5"),
    }
    second = apply_plan(as_url(rails), tmp_path / "run" / "repair.sql")
    assert second.totals.get("updated", 0) == 0 and second.totals["quarantine"] == 0
    assert dump_all(rails) == after

    back = psql(rails, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump_all(rails) == before


def test_constraints_enforce_sti_and_text_ids(rails: str, tmp_path: Path) -> None:
    audit(rails, tmp_path / "run")
    assert apply_plan(as_url(rails), tmp_path / "run" / "repair.sql").totals.get("updated", 0) == 0
    # the ambiguous rows are a person's to decide: here, by hand
    execute(rails, "UPDATE versions SET item_type = 'Post' WHERE id = 6")
    execute(rails, "UPDATE taggings SET taggable_type = 'Post' WHERE id = 4")
    execute(rails, "DELETE FROM versions WHERE id = 10; DELETE FROM taggings WHERE id IN (5, 6)")
    done = psql(rails, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    # one trigger per target table, whatever the number of values naming it
    names = [r[0] for r in query(rails, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")]
    assert sorted(names) == sorted(
        [
            "versions_item_ref", "versions_item_ref_posts", "versions_item_ref_photos",
            "versions_item_ref_users", "taggings_taggable_ref", "taggings_taggable_ref_posts",
            "taggings_taggable_ref_users",
        ]
    )  # fmt: skip
    ok = [
        "INSERT INTO versions VALUES (20, 'AdminUser', '2', 'update')",
        "INSERT INTO versions VALUES (21, 'User', '2', 'update')",
        f"INSERT INTO versions VALUES (22, 'Photo', '{PHOTO}', 'update')",
        "INSERT INTO taggings VALUES (20, 'AdminUser', 1, 'x')",
        "INSERT INTO users VALUES (5, 'User', 'new@x')",
        "DELETE FROM users WHERE id = 5",  # nothing references it
        "INSERT INTO users VALUES (6, 'User', 'eve@x')",
        "INSERT INTO versions VALUES (23, 'User', '6', 'create')",
    ]
    for sql in ok:
        execute(rails, sql)
    refused = [
        "INSERT INTO versions VALUES (30, 'AdminUser', '999', 'update')",
        "INSERT INTO versions VALUES (31, 'Photo', 'nope', 'update')",
        "INSERT INTO taggings VALUES (30, 'User', 999, 'x')",
        "DELETE FROM users WHERE id = 3",  # an AdminUser version points at it
        "DELETE FROM users WHERE id = 6",  # only a User version points at it
        "DELETE FROM photos",
    ]
    for sql in refused:
        with pytest.raises(psycopg2.Error):
            execute(rails, sql)


def test_an_enum_discriminator_value_outside_its_labels_is_a_suite_error(
    rails: str, tmp_path: Path
) -> None:
    suite = {**SUITE, "checks": [dict(SUITE["checks"][1])]}
    suite["checks"][0]["targets"] = {**suite["checks"][0]["targets"], "Admin": {"table": "users"}}
    with pytest.raises(SuiteError) as err:
        run_audit(as_url(rails), Suite.model_validate(suite), tmp_path / "run")
    assert "taggings.taggable" in str(err.value)
    assert 'invalid input value for enum subject_kind: "Admin"' in str(err.value)


def test_gx_export_with_the_database_types_agrees(rails: str, tmp_path: Path) -> None:
    from refaudit.audit import check_suite
    from refaudit.gx_export import export_suite, run_with_gx, write_export

    suite = Suite.model_validate(SUITE)
    result = audit(rails, tmp_path / "run")
    ours = {c.id: c.violations for c in result.checks if not c.id.endswith(".trigger")}
    schema = check_suite(suite, as_url(rails))
    assert schema.types[("versions", "item_id")].name == "text"
    write_export(export_suite(suite, schema.types, schema.unique), tmp_path / "gx")
    gx = run_with_gx(as_url(rails).render_as_string(hide_password=False), tmp_path / "gx")
    assert gx.broken == {}
    assert gx.counts == ours


def sti_suite() -> dict[str, Any]:
    """SUITE with each inheritance value naming only its own rows of `users`."""
    import copy

    suite = copy.deepcopy(SUITE)
    for check in suite["checks"][:2]:
        for value in ("User", "AdminUser"):
            check["targets"][value] = {
                "table": "users",
                "where": {"column": "type", "eq": value},
            }
    return suite


def test_a_target_filter_tells_inheritance_types_apart(rails: str, tmp_path: Path) -> None:
    before = dump_all(rails)
    suite = Suite.model_validate(sti_suite())
    run_audit(as_url(rails), suite, tmp_path / "run", options=AuditOptions(repair=True))
    got = {k: v for k, v in findings(tmp_path / "run").items() if "trigger" not in k[0]}
    assert got == {
        **EXPECTED,
        # users 3 is a User, users 2 an AdminUser: each value counts only its own rows
        ("versions.item", "8"): ("wrong_type", "User"),
        ("taggings.taggable", "3"): ("wrong_type", "AdminUser"),
        # users 1 is a User: the only target that has it
        ("versions.item.discriminator", "10"): ("wrong_type", "User"),
    }
    applied = apply_plan(as_url(rails), tmp_path / "run" / "repair.sql")
    # an unknown discriminator's proposal is for review; so are the chance hits 6 and 4
    assert applied.totals["updated"] == 2
    assert query(rails, "SELECT item_type FROM versions WHERE id = 8") == [("User",)]
    assert query(rails, "SELECT taggable_type::text FROM taggings WHERE id = 3") == [
        ("AdminUser",)
    ]
    done = psql(rails, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    execute(rails, "INSERT INTO versions VALUES (20, 'AdminUser', '2', 'update')")
    for sql in (
        "INSERT INTO versions VALUES (21, 'AdminUser', '1', 'update')",  # a User
        "UPDATE users SET type = 'User' WHERE id = 2",  # AdminUser rows point at it
    ):
        with pytest.raises(psycopg2.Error):
            execute(rails, sql)
    execute(rails, "DELETE FROM versions WHERE id = 20")
    # rollback.sql undoes constraints.sql too (its triggers first), then the rows
    back = psql(rails, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump_all(rails) == before
