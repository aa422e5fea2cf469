"""Issue #19's round trip on a Rails-style database (tests/frameworks/rails_structure.sql:
bigint ids, polymorphic `*_type`/`*_id` columns holding class names, STI, `t.references`
with and without a foreign key, fk_rails_* keys with every `on_delete:`, timestamps) filled
as its models would, faults planted as a restore with `--disable-triggers` or a logical-
replication subscriber loads them, every foreign key in place (Rails' are not deferrable).
`run --repair` -> `apply` -> re-audit -> `apply` -> `rollback` must leave every table byte
for byte as before; where that fails today (#19 items 6 and 7) the test says so and fails
strictly once fixed."""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import Any

import pytest
from refaudit.suite import Suite

from tests.frameworks.harness import (
    Trip,
    assert_reapplies_nothing,
    assert_rolls_back,
    assert_round_trip,
    foreign_keys,
    new_findings,
    plant,
    schema_tables,
    violating_foreign_keys,
)
from tests.frameworks.rails_app import ARTICLES, ORDERED_FROM, build
from tests.test_repair import query
from tests.test_repair_safety import copy_of

_copies = itertools.count()
KEYS = {"schema_migrations": "version", "ar_internal_metadata": "key"}


@pytest.fixture(scope="session")
def rails_template(new_database: Any) -> str:
    """The application's database, built once (no fault yet)."""
    uri: str = new_database("rails")
    build(uri)
    return uri


@pytest.fixture
def app(pg_server: str, rails_template: str) -> str:
    """A copy of the application's database for one test."""
    return copy_of(pg_server, rails_template, f"refaudit_rails_copy_{os.getpid()}_{next(_copies)}")


def suite_for(uri: str) -> Suite:
    def ref(table: str, column: str, target: str, on_orphan: str) -> dict[str, Any]:
        return {
            "id": f"{table}.{column}",
            "kind": "reference",
            "table": table,
            "column": column,
            "target": {"table": target},
            "on_orphan": on_orphan,
        }

    def polymorphic(table: str, name: str, *classes: str, **policy: str) -> dict[str, Any]:
        tables = {"Article": "articles", "Product": "products", "User": "users"}
        return {
            "id": f"{table}.{name}",
            "kind": "conditional_reference",
            "table": table,
            "column": f"{name}_id",
            "discriminator": f"{name}_type",
            "targets": {c: {"table": tables[c]} for c in classes},
            **policy,
        }

    tables = [t.removeprefix("public.") for t in schema_tables(uri)]
    return Suite.model_validate(
        {
            "suite": "rails-shop",
            "tables": {t: {"key": KEYS.get(t, "id")} for t in tables},
            "checks": [
                ref("articles", "user_id", "users", "quarantine"),
                ref("products", "supplier_id", "suppliers", "quarantine"),
                ref("orders", "user_id", "users", "set_null"),
                ref("orders", "coupon_id", "coupons", "set_null"),
                ref("line_items", "product_id", "products", "quarantine"),
                ref("line_items", "order_id", "orders", "quarantine"),
                ref("comments", "user_id", "users", "set_null"),
                polymorphic("taggings", "taggable", "Article", "Product", on_orphan="quarantine"),
                polymorphic("taggings", "tagger", "User", on_orphan="report"),
                polymorphic(
                    "comments", "commentable", "Article", "Product", on_orphan="quarantine"
                ),
                polymorphic(
                    "active_storage_attachments",
                    "record",
                    "Article",
                    "Product",
                    "User",
                    on_orphan="quarantine",
                ),
                # PaperTrail keeps the versions of destroyed items, by design
                polymorphic(
                    "versions",
                    "item",
                    "Article",
                    "Product",
                    "User",
                    on_orphan="report",
                    severity="warn",
                ),
            ],
        }
    )


# Faults no repair of today trips over: an orphan tagging and attachment (quarantined), an
# order whose coupon is gone (no FK: set to NULL), a product whose supplier is gone but that
# line items reference through their FK (held)
PLAIN_FAULTS = """
INSERT INTO taggings (tag_id, taggable_type, taggable_id, tagger_type, tagger_id, context,
                      created_at)
    VALUES (1, 'Article', 90001, 'User', 3, 'tags', '2024-05-01 10:00');
INSERT INTO active_storage_attachments (name, record_type, record_id, blob_id, created_at)
    VALUES ('image', 'Product', 90002, 1, '2024-05-01 10:00');
UPDATE orders SET coupon_id = 90003 WHERE id = 7;
UPDATE products SET supplier_id = 90004 WHERE id = (SELECT min(product_id) FROM line_items);
"""

# #19 item 6: rows that violate a validated FK (not deferrable, as Rails makes them): a line
# item of no product (quarantined), a comment by no user (its user set to NULL)
FK_VIOLATIONS = """
INSERT INTO line_items (order_id, product_id, quantity, created_at, updated_at)
    VALUES (1, 90005, 1, '2024-05-01 10:00', '2024-05-01 10:00');
UPDATE comments SET user_id = 90006 WHERE id = (SELECT min(id) FROM comments);
"""

# #19 item 7: a product whose supplier is gone, that no line item references but polymorphic
# rows do (taggings, versions, maybe comments and attachments), and an article holds its id
PARENT_OF_GENERIC = f"""
UPDATE products SET supplier_id = 90007 WHERE id = (
    SELECT min(p.id) FROM products p
    WHERE p.id < {ORDERED_FROM} AND p.id <= {ARTICLES}
      AND EXISTS (SELECT 1 FROM taggings t
                  WHERE t.taggable_type = 'Product' AND t.taggable_id = p.id)
      AND EXISTS (SELECT 1 FROM comments c
                  WHERE c.commentable_type = 'Product' AND c.commentable_id = p.id));
"""

# #19 item 7: a tagging of a destroyed product, whose id an article holds (ids are dense:
# that is chance, not evidence that the tagging was meant for the article)
TAG_OF_A_DESTROYED_PRODUCT = """
INSERT INTO taggings (tag_id, taggable_type, taggable_id, tagger_type, tagger_id, context,
                      created_at)
    SELECT 1, 'Product', min(a.id), 'User', 3, 'tags', '2024-05-01 10:00' FROM articles a
    WHERE NOT EXISTS (SELECT 1 FROM products p WHERE p.id = a.id);
"""



def trip(uri: str, tmp_path: Path, *faults: str) -> Trip:
    for sql in faults:
        plant(uri, sql)
    return Trip(uri, suite_for(uri), tmp_path)


def last_key(uri: str, table: str) -> str:
    return str(query(uri, f"SELECT max(id) FROM {table}")[0][0])


def test_the_application_is_rails_shaped(app: str) -> None:
    """Every FK an fk_rails_* key, validated, immediate, with each ON DELETE action; the data
    holds none of the planted faults yet, but the versions of destroyed products."""
    fks = foreign_keys(app)
    assert all(n.startswith("fk_rails_") and ok and "DEFERRABLE" not in d for _, n, d, ok in fks)
    actions = {d.split(")", 1)[1].split("(", 1)[1].split(")", 1)[1].strip() for _, _, d, _ in fks}
    assert actions == {"", "ON DELETE CASCADE", "ON DELETE SET NULL", "ON DELETE RESTRICT"}
    assert violating_foreign_keys(app) == []
    gone = query(
        app,
        "SELECT count(*), count(a.id) FROM versions v "
        "LEFT JOIN products p ON p.id = v.item_id LEFT JOIN articles a ON a.id = v.item_id "
        "WHERE v.item_type = 'Product' AND p.id IS NULL",
    )[0]
    assert gone[0] >= 20 and gone[1] == gone[0]  # a create and a destroy version each


def test_plain_faults_round_trip(app: str, tmp_path: Path) -> None:
    """Faults whose repair touches no row that a FK-violating value or a polymorphic row
    depends on: the whole round trip holds, every table byte for byte."""
    t = trip(app, tmp_path, PLAIN_FAULTS)
    held = query(app, "SELECT id FROM products WHERE supplier_id = 90004")[0][0]
    assert_round_trip(t)
    got = {k: (f["diagnosis"], f["proposed_value"]) for k, f in t.first.items()}
    assert got[("taggings.taggable", last_key(app, "taggings"))] == ("orphan", "")
    assert got[
        ("active_storage_attachments.record", last_key(app, "active_storage_attachments"))
    ] == (
        "orphan",
        "",
    )
    assert got[("orders.coupon_id", "7")] == ("orphan", "NULL")
    assert got[("products.supplier_id", str(held))] == ("orphan", "")
    assert t.applied is not None
    assert (t.applied.totals["quarantine"], t.applied.totals["set_null"]) == (2, 1)
    assert t.applied.totals["held"] == 1  # its line items reference it through their FK


def test_rows_violating_validated_fks_are_repaired(app: str, tmp_path: Path) -> None:
    """Rows that violate the validated fk_rails_* keys are found, and the repair leaves no
    violation; the re-audit finds nothing the repair created; a second apply changes nothing."""
    t = trip(app, tmp_path, FK_VIOLATIONS)
    assert sorted(table for table, _ in violating_foreign_keys(app)) == ["comments", "line_items"]
    t.audit_and_repair()
    assert t.first[("line_items.product_id", last_key(app, "line_items"))]["diagnosis"] == "orphan"
    assert t.first[("comments.user_id", "1")]["proposed_value"] == "NULL"
    applied = t.apply()
    assert (applied.totals["quarantine"], applied.totals["set_null"]) == (1, 1)
    assert violating_foreign_keys(app) == []
    assert new_findings(t.first, t.reaudit()) == {}
    assert_reapplies_nothing(t)


@pytest.mark.parametrize("rollback", ["psql", "apply"])
def test_rollback_restores_rows_violating_validated_fks(
    app: str, tmp_path: Path, rollback: str
) -> None:
    """The repair of rows that violated a validated FK before it can be undone exactly."""
    t = trip(app, tmp_path, FK_VIOLATIONS)
    t.audit_and_repair()
    t.apply()
    assert_rolls_back(t, rollback=rollback)


def test_quarantined_parent_of_polymorphic_rows_rolls_back(app: str, tmp_path: Path) -> None:
    """A product quarantined while polymorphic rows name it: applying again changes nothing,
    and the rollback puts every table back byte for byte."""
    t = trip(app, tmp_path, PARENT_OF_GENERIC)
    parent = query(app, "SELECT id FROM products WHERE supplier_id = 90007")
    assert len(parent) == 1
    t.audit_and_repair()
    assert t.first[("products.supplier_id", str(parent[0][0]))]["diagnosis"] == "orphan"
    t.apply()  # quarantined today; held, or its dependents handled, once #19 item 7 is done
    assert_reapplies_nothing(t)
    assert_rolls_back(t)


def test_repair_leaves_no_polymorphic_row_dangling(app: str, tmp_path: Path) -> None:
    t = trip(app, tmp_path, PARENT_OF_GENERIC)
    t.audit_and_repair()
    t.apply()
    assert new_findings(t.first, t.reaudit()) == {}


def test_report_only_checks_plan_no_change(app: str, tmp_path: Path) -> None:
    t = trip(app, tmp_path)
    t.audit_and_repair()
    report_only = {"versions.item", "taggings.tagger"}
    assert [s for s in t.repair["steps"] if s["check"] in report_only] == []
    t.apply()
    for table in ("public.versions", "public.taggings"):
        assert t.after[table] == t.before[table]


def test_an_id_another_class_holds_by_chance_is_no_evidence(app: str, tmp_path: Path) -> None:
    t = trip(app, tmp_path, TAG_OF_A_DESTROYED_PRODUCT)
    t.audit_and_repair()
    tagging = t.first[("taggings.taggable", last_key(app, "taggings"))]
    assert (tagging["diagnosis"], tagging["proposed_value"]) == ("ambiguous", "")


def test_rails_round_trip(app: str, tmp_path: Path) -> None:
    """Issue #19's Done-when on the Rails-style database, every fault at once, every FK
    present."""
    assert_round_trip(
        trip(
            app,
            tmp_path,
            PLAIN_FAULTS,
            FK_VIOLATIONS,
            PARENT_OF_GENERIC,
            TAG_OF_A_DESTROYED_PRODUCT,
        )
    )
