"""`refaudit discover` on a Django database finds its generic relations through the content
types table: each with `lookup: {table: django_content_type, key: id, name: [app_label,
model]}` and its targets by name (`shop.article`), with Django's foreign keys in place and
with every one dropped; the suite it writes finds a planted orphan tag and flags no clean row;
a second database of the project whose content types have other ids gives the same checks."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from refaudit.audit import AuditOptions, run_audit
from refaudit.discover import Discovery, Proposal, discover, render_suite
from refaudit.suite import load_suite

from tests.conftest import as_url, execute
from tests.roundtrip import findings
from tests.test_lookup_django import RENUMBER, gone_versions
from tests.test_repair import query
from tests.test_repair_django import TABLE_OF, _copies, copy_of

DROP_FOREIGN_KEYS = """
DO $$
DECLARE fk record;
BEGIN
  FOR fk IN SELECT conrelid::regclass AS tbl, conname FROM pg_constraint
            WHERE contype = 'f' AND connamespace = 'public'::regnamespace LOOP
    EXECUTE format('ALTER TABLE %s DROP CONSTRAINT %I', fk.tbl, fk.conname);
  END LOOP;
END $$;
"""

# the generic relations of the shop (tests/frameworks/django_project/shop/models.py) and of
# Django's admin log: (table, id column)
GENERIC = {
    ("shop_taggeditem", "object_id"),
    ("shop_comment", "object_pk"),
    ("shop_objectpermission", "object_pk"),
    ("shop_version", "object_id"),
    ("django_admin_log", "object_id"),
}
LOOKUP = {
    "table": "django_content_type",
    "key": "id",
    "name": ["app_label", "model"],
    "separator": ".",
}


def fresh(pg_server: str, template: str, name: str) -> str:
    return copy_of(pg_server, template, f"refaudit_{name}_{os.getpid()}_{next(_copies)}")


def used_types(uri: str, table: str) -> dict[str, dict[str, str]]:
    """The content types the rows of `table` use, by name, and the table of each model."""
    rows = query(
        uri,
        f"SELECT DISTINCT c.app_label || '.' || c.model FROM {table} t "
        "JOIN django_content_type c ON c.id = t.content_type_id",
    )
    return {r[0]: {"table": TABLE_OF.get(r[0], r[0].replace(".", "_"))} for r in rows}


def generic(found: Discovery) -> dict[tuple[str, str], Proposal]:
    return {
        (p.table, str(p.check["column"])): p
        for p in found.proposals
        if p.kind == "conditional_reference" and "lookup" in p.check
    }


def gone_log_entries(uri: str) -> set[str]:
    """The admin log's entries whose object is not in its model's table (products deleted
    in the admin: Django keeps their log), by SQL of the test's own."""
    rows = query(
        uri,
        "SELECT l.id::text FROM django_admin_log l JOIN django_content_type c "
        "ON c.id = l.content_type_id WHERE NOT EXISTS (SELECT 1 FROM shop_article a "
        "WHERE c.model = 'article' AND a.id::text = l.object_id) AND NOT EXISTS "
        "(SELECT 1 FROM shop_product p WHERE c.model = 'product' AND p.id::text = l.object_id) "
        "AND NOT EXISTS (SELECT 1 FROM auth_user u WHERE c.model = 'user' "
        "AND u.id::text = l.object_id)",
    )
    assert rows  # the products destroyed in the admin
    return {r[0] for r in rows}


@pytest.mark.parametrize("foreign_keys", ["kept", "dropped"])
def test_discover_finds_every_generic_relation_and_its_suite_finds_the_orphan(
    pg_server: str, django_template: str, tmp_path: Path, foreign_keys: str
) -> None:
    uri = fresh(pg_server, django_template, "dg")
    if foreign_keys == "dropped":
        execute(uri, DROP_FOREIGN_KEYS)
        assert query(uri, "SELECT count(*) FROM pg_constraint WHERE contype = 'f'") == [(0,)]
    found = discover(as_url(uri))
    relations = generic(found)
    assert set(relations) == GENERIC
    for (table, _column), p in relations.items():
        assert p.check["discriminator"] == "content_type_id"
        assert p.check["lookup"] == LOOKUP
        assert p.check["targets"] == used_types(uri, table), table
        assert p.confidence >= 0.5
    # the tables that keep rows of deleted objects (reversion's versions, the admin's log)
    # are warnings, reported and never repaired; the others are errors
    for key in [("shop_version", "object_id"), ("django_admin_log", "object_id")]:
        assert relations[key].check["severity"] == "warn"
        assert relations[key].check["on_orphan"] == "report"
    for key in GENERIC - {("shop_version", "object_id"), ("django_admin_log", "object_id")}:
        assert "severity" not in relations[key].check
        assert relations[key].violations == 0
    # the content type column still references the type table
    assert any(
        p.kind == "reference"
        and p.table == "shop_taggeditem"
        and p.check["column"] == "content_type_id"
        and p.check["target"]["table"] == "django_content_type"
        for p in found.proposals
    )

    path = tmp_path / "suite.yml"
    path.write_text(render_suite(found), encoding="utf-8")
    execute(
        uri,
        "INSERT INTO shop_taggeditem (id, tag, content_type_id, object_id) SELECT 900001, "
        "'ghost', id, 90001 FROM django_content_type WHERE app_label = 'shop' "
        "AND model = 'article'",
    )
    out = tmp_path / "run"
    run_audit(as_url(uri), load_suite(path), out, options=AuditOptions())
    got = findings(out)
    ids = {key: str(p.check["id"]) for key, p in relations.items()}
    # every reference the suite holds (plain, conditional, generic) flags the planted tag
    # and the rows of deleted objects the tables keep, and no other row (data rules, such
    # as a shape of user names, flag their own outliers: not references' business)
    references = {
        p.check["id"]
        for p in found.proposals
        if p.kind in ("reference", "conditional_reference")
    }
    flagged = {(check, key) for check, key in got if check in references}
    assert set(ids.values()) <= references
    assert flagged == (
        {(ids[("shop_taggeditem", "object_id")], "900001")}
        | {(ids[("shop_version", "object_id")], k) for k in gone_versions(uri)}
        | {(ids[("django_admin_log", "object_id")], k) for k in gone_log_entries(uri)}
    )
    assert got[(ids[("shop_taggeditem", "object_id")], "900001")]["diagnosis"] == "orphan"


def generic_text(found: Discovery) -> str:
    """The discovered generic relations as the suite writes them, with their evidence."""
    parts: list[Any] = []
    for key, p in sorted(generic(found).items()):
        parts.append([key, p.confidence, p.violations, p.evidence, p.check])
    return yaml.safe_dump(parts, sort_keys=False)


def test_the_same_checks_whatever_ids_the_content_types_have(
    pg_server: str, django_template: str
) -> None:
    first = fresh(pg_server, django_template, "dgA")
    second = fresh(pg_server, django_template, "dgB")
    execute(second, RENUMBER)
    for uri in (first, second):
        execute(uri, DROP_FOREIGN_KEYS)
    article = "SELECT id FROM django_content_type WHERE model = 'article'"
    assert query(first, article) != query(second, article)
    texts = [generic_text(discover(as_url(uri))) for uri in (first, second)]
    assert "shop.article" in texts[0]
    assert texts[0] == texts[1]


def test_a_candidate_postgresql_refuses_is_dropped_not_the_run(new_database: Any) -> None:
    """`money` is a number with no `=` against an integer: the candidate key (its name
    vouches for it, so it is tried though its type differs) is dropped with a note, and
    every other reference is still found."""
    uri = new_database("dgmoney")
    execute(
        uri,
        """
        CREATE TABLE prices (code money PRIMARY KEY, label text);
        INSERT INTO prices SELECT g::money, 'p' || g FROM generate_series(1, 50) g;
        CREATE TABLE customers (id integer PRIMARY KEY, name text);
        INSERT INTO customers SELECT g, 'c' || g FROM generate_series(1, 50) g;
        CREATE TABLE orders (id integer PRIMARY KEY, customer_id integer, price_code integer);
        INSERT INTO orders SELECT g, 1 + g % 50, 1 + g % 50 FROM generate_series(1, 200) g;
        """,
    )
    found = discover(as_url(uri))
    assert any("PostgreSQL refused its statement" in n for n in found.notes), found.notes
    ref = found.find("reference", "orders", "customer_id")
    assert ref is not None and ref.check["target"] == {"table": "customers", "column": "id"}
    render_suite(found)
