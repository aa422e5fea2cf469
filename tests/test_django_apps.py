"""A Django project with real generic-relation apps from PyPI (tests/frameworks/django_apps):
the admin's log (text `object_id`), django-taggit (integer `object_id`),
django-contrib-comments (varchar `object_pk`) and django-reversion (varchar `object_id`) over a
small library (bigint keys and a uuid key), built by Django's own `migrate` and filled through
the ORM and the apps' own APIs; twice, the second with its apps migrated in the reverse order,
so that its content types have other ids.

The shipped example suite (expectations/django/suite.yml) finds every planted generic-relation
fault on both databases and flags no clean row; the repair round trip is exact with Django's
foreign keys in place; `refaudit discover` writes the same generic relations, and recovers
them and every foreign key that has rows once the foreign keys are dropped."""

from __future__ import annotations

import importlib.resources
import json
import os
from pathlib import Path

import pytest
import yaml
from refaudit.audit import AuditOptions, run_audit
from refaudit.discover import DEFAULT_MIN_CONFIDENCE, Discovery, discover
from refaudit.suite import load_suite

from tests.conftest import as_url, execute
from tests.frameworks.harness import (
    Trip,
    assert_round_trip,
    foreign_keys,
    plant,
    violating_foreign_keys,
)
from tests.roundtrip import findings
from tests.test_discover_generic import DROP_FOREIGN_KEYS
from tests.test_repair import query
from tests.test_repair_django import _copies, copy_of, ct

SUITE = Path(str(importlib.resources.files("refaudit.expectations") / "django" / "suite.yml"))

# the generic relations of the project: (table, id column) -> the models its rows name
GENERIC = {
    ("taggit_taggeditem", "object_id"): ["library.author", "library.book"],
    ("django_comments", "object_pk"): ["library.book", "library.film"],
    ("reversion_version", "object_id"): ["library.author", "library.book", "library.film"],
    ("django_admin_log", "object_id"): [
        "auth.user",
        "library.author",
        "library.book",
        "library.film",
    ],
}
KEEP_DELETED = {("reversion_version", "object_id"), ("django_admin_log", "object_id")}
CHECK_OF = {
    ("taggit_taggeditem", "object_id"): "tags",
    ("django_comments", "object_pk"): "comments",
    ("reversion_version", "object_id"): "versions",
    ("django_admin_log", "object_id"): "admin_log",
}

COMMENT = (
    "INSERT INTO django_comments (id, content_type_id, object_pk, site_id, user_id, user_name,"
    " user_email, user_url, comment, submit_date, ip_address, is_public, is_removed) "
)
LOG = (
    "INSERT INTO django_admin_log (id, action_time, object_id, object_repr, action_flag, "
    "change_message, content_type_id, user_id) "
)

# The same faults in both databases, written by content type *name*: orphans (ids naming no
# row of their type), wrong types (a film's uuid under another model's type), content type
# ids that name no content type, and a stale content type (its model is gone).
FAULTS = f"""
INSERT INTO taggit_taggeditem (id, tag_id, content_type_id, object_id)
    SELECT 900001, min(id), {ct("library.book")}, 90001 FROM taggit_tag;
INSERT INTO taggit_taggeditem (id, tag_id, content_type_id, object_id)
    SELECT 900002, min(id), 77777, 1 FROM taggit_tag;
INSERT INTO django_content_type (app_label, model) VALUES ('library', 'oldmodel');
INSERT INTO taggit_taggeditem (id, tag_id, content_type_id, object_id)
    SELECT 900003, min(id), {ct("library.oldmodel")}, 1 FROM taggit_tag;
{COMMENT} SELECT 900004, {ct("library.book")}, f.id::text, 1, NULL, 'guest', '', '',
    'on the wrong model', '2024-05-01Z', NULL, true, false
    FROM library_film f ORDER BY f.id LIMIT 1;
{COMMENT} VALUES (900005, {ct("library.book")}, '90005', 1, NULL, 'guest', '', '',
    'on no book', '2024-05-01Z', NULL, true, false);
{COMMENT} VALUES (900006, 77778, '1', 1, NULL, 'guest', '', '', 'of no type', '2024-05-01Z',
    NULL, true, false);
INSERT INTO reversion_version (id, object_id, format, serialized_data, object_repr,
    content_type_id, revision_id, db)
    SELECT 900007, f.id::text, 'json', '[]', f.title, {ct("library.author")},
    (SELECT min(id) FROM reversion_revision), 'default'
    FROM library_film f ORDER BY f.id OFFSET 1 LIMIT 1;
{LOG} VALUES (900008, '2024-06-01Z', '00000000-0000-4000-8000-000000900008', 'a film', 2, '[]',
    {ct("library.film")}, 1);
{LOG} VALUES (900009, '2024-06-01Z', '1', 'no type', 2, '[]', 77779, 1);
"""
PLANTED = {
    ("tags", "900001"): "orphan",
    ("tags.discriminator", "900002"): "",
    ("tags.discriminator", "900003"): "",
    ("comments", "900004"): "wrong_type",
    ("comments", "900005"): "orphan",
    ("comments.discriminator", "900006"): "",
    ("versions", "900007"): "wrong_type",
    ("admin_log", "900008"): "orphan",
    ("admin_log.discriminator", "900009"): "",
}


def fresh(pg_server: str, template: str, name: str) -> str:
    return copy_of(pg_server, template, f"refaudit_{name}_{os.getpid()}_{next(_copies)}")


@pytest.fixture
def two_databases(pg_server: str, django_apps_templates: tuple[str, str]) -> tuple[str, str]:
    """Copies of the project's two databases, the same faults planted in both as a restore
    with `--disable-triggers` loads them (Django's foreign keys in place)."""
    first, second = (fresh(pg_server, t, "djapps") for t in django_apps_templates)
    for uri in (first, second):
        plant(uri, FAULTS)
    return first, second


def type_id(uri: str, model: str) -> str:
    return str(query(uri, f"SELECT {ct(model)}")[0][0])


def table_of(model: str) -> str:
    return model.replace(".", "_")


def gone(uri: str, table: str, column: str) -> set[str]:
    """The rows of a generic relation whose object is not in its model's table (objects the
    ORM deleted), by SQL of the test's own; only rows of the types the relation names."""
    models = GENERIC[(table, column)]
    missing = " AND ".join(
        f"NOT EXISTS (SELECT 1 FROM {table_of(m)} o WHERE c.app_label || '.' || c.model = "
        f"'{m}' AND o.id::text = g.{column}::text)"
        for m in models
    )
    known = ", ".join(f"'{m}'" for m in models)
    rows = query(
        uri,
        f"SELECT g.id::text FROM {table} g JOIN django_content_type c "
        f"ON c.id = g.content_type_id WHERE c.app_label || '.' || c.model IN ({known}) "
        f"AND {missing}",
    )
    return {r[0] for r in rows}


def kept_rows(uri: str) -> set[tuple[str, str]]:
    """The versions and log entries of the books deleted through the ORM (Django and
    django-reversion keep them by design), as (check, key)."""
    return {(CHECK_OF[rel], k) for rel in KEEP_DELETED for k in gone(uri, *rel)}


def generic_rows(uri: str) -> list[tuple[str, ...]]:
    """Every generic relation's rows with their content type by name, not id."""
    out: list[tuple[str, ...]] = []
    for table, column in sorted(GENERIC):
        out += query(
            uri,
            f"SELECT '{table}', g.id::text, g.{column}::text, c.app_label || '.' || c.model "
            f"FROM {table} g JOIN django_content_type c ON c.id = g.content_type_id "
            "ORDER BY g.id",
        )
    return out


def test_the_project_is_django_s_own_twice_with_other_ids(
    django_apps_templates: tuple[str, str],
) -> None:
    """Both databases are what Django and the apps made: every FK DEFERRABLE and validated,
    none violated; the same rows in every generic relation, each naming the same models by
    name, under other content type ids."""
    first, second = django_apps_templates
    for uri in (first, second):
        fks = foreign_keys(uri)
        assert len(fks) == 20
        assert all("DEFERRABLE INITIALLY DEFERRED" in d and ok for _, _, d, ok in fks)
        assert violating_foreign_keys(uri) == []
        # the apps' ORM deleted the deleted books' tags and comments, not their versions or log
        for rel in GENERIC:
            assert bool(gone(uri, *rel)) == (rel in KEEP_DELETED), rel
    for model in ("library.book", "library.film", "library.author", "auth.user"):
        assert type_id(first, model) != type_id(second, model)
    rows = generic_rows(first)
    assert len(rows) > 400
    assert rows == generic_rows(second)


def test_the_shipped_suite_finds_every_fault_on_both_databases(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    suite = load_suite(SUITE)
    seen: list[dict[tuple[str, str], dict[str, str]]] = []
    for n, uri in enumerate(two_databases):
        out = tmp_path / f"run{n}"
        run_audit(as_url(uri), suite, out, options=AuditOptions(record_history=False))
        found = findings(out)
        kept = kept_rows(uri)
        assert kept  # the deleted books' versions and log entries
        # every planted fault, the rows Django keeps of deleted objects, no other row; and
        # the stale content type itself, a finding of the type table (by its id here)
        stale = ("tags.lookup", type_id(uri, "library.oldmodel"))
        assert set(found) == set(PLANTED) | kept | {stale}
        assert "library.oldmodel" in found[stale]["evidence"]
        for key, diagnosis in PLANTED.items():
            if diagnosis:
                assert found[key]["diagnosis"] == diagnosis, key
        film = type_id(uri, "library.film")
        for key in [("comments", "900004"), ("versions", "900007")]:
            assert found[key]["proposed_value"] == film
            assert f"content_type_id should be {film} (library.film)" in found[key]["evidence"]
        assert "names no row of django_content_type" in found[
            ("admin_log.discriminator", "900009")
        ]["evidence"]
        assert "library.oldmodel" in found[("tags.discriminator", "900003")]["evidence"]
        doc = json.loads((out / "results.json").read_text(encoding="utf-8"))
        status = {c["id"]: (c["severity"], c["status"]) for c in doc["checks"]}
        assert status["versions"] == status["admin_log"] == ("warn", "warned")
        assert status["tags"] == status["comments"] == ("error", "failed")
        seen.append(found)
    # the same findings on both, each database's own id proposed
    assert set(seen[0]) == set(seen[1])
    assert seen[0][("comments", "900004")]["proposed_value"] != seen[1][
        ("comments", "900004")
    ]["proposed_value"]


@pytest.mark.parametrize("which", [0, 1])
def test_the_repair_round_trip_is_exact_with_django_s_foreign_keys(
    two_databases: tuple[str, str], tmp_path: Path, which: int
) -> None:
    """`run --repair` -> `apply` -> re-audit -> `apply` again -> `rollback`, every table byte
    for byte, on each database: the orphan tag and comment quarantined, the comment on the
    wrong model re-pointed at library.film by that database's id; versions and the log only
    reported."""
    uri = two_databases[which]
    trip = Trip(uri, load_suite(SUITE), tmp_path)
    assert_round_trip(trip)
    assert trip.applied is not None
    assert (trip.applied.totals["quarantine"], trip.applied.totals["updated"]) == (2, 1)
    for table in ("public.reversion_version", "public.django_admin_log"):
        assert trip.after[table] == trip.before[table]


def generic_found(found: Discovery) -> dict[tuple[str, str], dict[str, object]]:
    return {
        (p.table, str(p.check["column"])): p.check
        for p in found.proposals
        if p.kind == "conditional_reference" and "lookup" in p.check
    }


def test_discover_writes_the_shipped_suite_s_generic_relations(
    pg_server: str, django_apps_templates: tuple[str, str]
) -> None:
    """What docs/suite.md says: `refaudit discover` on the project's database writes the generic
    relations of the shipped suite (the same lookup, targets and policy), on both databases
    alike."""
    shipped = {
        (c["table"], c["column"]): c
        for c in yaml.safe_load(SUITE.read_text(encoding="utf-8"))["checks"]
    }
    for template in django_apps_templates:
        uri = fresh(pg_server, template, "djapps_discover")
        got = generic_found(discover(as_url(uri)))
        assert set(got) == set(shipped) == set(GENERIC)
        for key, check in got.items():
            want = shipped[key]
            assert check["discriminator"] == want["discriminator"]
            assert {k: v for k, v in dict(check["lookup"]).items() if k != "separator"} == (
                want["lookup"]
            )
            assert check["targets"] == want["targets"], key
            assert check.get("severity") == want.get("severity"), key
            assert check.get("on_orphan") == want.get("on_orphan"), key


def fk_columns(uri: str) -> set[tuple[str, str, str, str]]:
    """(table, column, target table, target column) of every single-column FK whose column
    holds a value in some row."""
    out = set()
    for table, _, definition, _ in foreign_keys(uri):
        cols, rest = definition.removeprefix("FOREIGN KEY (").split(") REFERENCES ", 1)
        target, tcol = rest.split("(", 1)
        tcol = tcol.split(")", 1)[0]
        if query(uri, f"SELECT count({cols}) FROM {table}")[0][0]:
            out.add((table, cols, target, tcol))
    return out


@pytest.fixture
def without_foreign_keys(
    pg_server: str, django_apps_templates: tuple[str, str]
) -> tuple[set[tuple[str, str, str, str]], Discovery]:
    """The first database with every FK dropped, the FKs it had (those with rows), and what
    discover proposes on it."""
    uri = fresh(pg_server, django_apps_templates[0], "djapps_nofk")
    had = fk_columns(uri)
    execute(uri, DROP_FOREIGN_KEYS)
    assert foreign_keys(uri) == []
    return had, discover(as_url(uri))


def references(found: Discovery) -> set[tuple[str, str, str, str]]:
    out = set()
    for p in found.proposals:
        if p.kind == "reference" and p.confidence >= DEFAULT_MIN_CONFIDENCE:  # in the suite
            target = p.check["target"]
            assert isinstance(target, dict)
            out.add((p.table, str(p.check["column"]), target["table"], target["column"]))
    return out


def test_discover_without_foreign_keys_recovers_them_and_every_generic_relation(
    without_foreign_keys: tuple[set[tuple[str, str, str, str]], Discovery],
) -> None:
    had, found = without_foreign_keys
    assert len(had) == 20  # every FK of the project holds values (groups, flags included)
    assert had <= references(found)
    got = generic_found(found)
    assert set(got) == set(GENERIC)
    for key, check in got.items():
        assert sorted(dict(check["targets"])) == GENERIC[key], key
        assert (check.get("on_orphan") == "report") == (key in KEEP_DELETED), key


def test_discover_without_foreign_keys_proposes_no_other_reference(
    without_foreign_keys: tuple[set[tuple[str, str, str, str]], Discovery],
) -> None:
    had, found = without_foreign_keys
    assert references(found) == had


def test_the_suite_discover_writes_flags_no_clean_row(
    pg_server: str, django_apps_templates: tuple[str, str], tmp_path: Path
) -> None:
    """The suite `refaudit discover` writes, run as it is on the database it came from (no
    fault planted), flags only the versions and log entries Django keeps of deleted books."""
    from refaudit.discover import write_suite

    uri = fresh(pg_server, django_apps_templates[0], "djapps_rediscover")
    found = discover(as_url(uri))
    write_suite(found, tmp_path / "suite.yml", 0.5)
    ids = {key: str(check["id"]) for key, check in generic_found(found).items()}
    run_audit(
        as_url(uri),
        load_suite(tmp_path / "suite.yml"),
        tmp_path / "run",
        options=AuditOptions(record_history=False),
    )
    assert set(findings(tmp_path / "run")) == {
        (ids[rel], k) for rel in KEEP_DELETED for k in gone(uri, *rel)
    }
