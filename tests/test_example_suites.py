"""The shipped example suite for a schema that is not Astegni's (expectations/shop/): it loads,
runs on its schema as it is, and flags exactly the faults put there."""

from __future__ import annotations

import csv
import importlib.resources
from pathlib import Path

from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import load_suite

from tests.conftest import as_url, execute

SHOP = Path(str(importlib.resources.files("refaudit.expectations") / "shop"))

ROWS = """
INSERT INTO accounts VALUES (1, 'Customer', 'ann@x'), (2, 'Staff', 'bob@x'),
                            (3, 'Customer', 'ann@x'), (4, 'Robot', NULL);
INSERT INTO products VALUES (1, 'TEE', 10, NULL), (1, 'MUG', 5, now()), (2, 'TEE', 12, NULL);
INSERT INTO orders VALUES
    (10, 1, 1, 'placed', now()),    -- clean
    (11, 1, 2, 'placed', now()),    -- a staff account is no customer
    (12, 2, NULL, 'cart', NULL),    -- an anonymous cart: not checked
    (13, 2, 99, 'shipped', NULL);   -- no account 99; shipped without placed_at
INSERT INTO order_lines VALUES
    (10, 1, 1, 'TEE', 2),           -- clean
    (10, 2, 1, 'MUG', 1),           -- the mug is deleted
    (11, 1, 2, 'MUG', 1),           -- shop 2 sells no mug
    (13, 1, 2, 'TEE', 0),           -- quantity 0
    (77, 1, 1, 'TEE', 1);           -- no order 77
INSERT INTO comments VALUES
    (1, 'Order', '10', 1, 'ok'),    -- clean
    (2, 'Staff', '2', 2, 'ok'),     -- clean
    (3, 'Customer', '2', 1, 'x'),   -- account 2 is staff: should be Staff
    (4, 'Order', '404', 5, 'x'),    -- no order 404; no author 5
    (5, 'Invoice', '10', 1, 'x');   -- no target for Invoice
"""

EXPECTED = {
    ("order_lines.product", "[10, 2]"),
    ("order_lines.product", "[11, 1]"),
    ("order_lines.order", "[77, 1]"),
    ("order_lines.quantity", "[13, 1]"),
    ("orders.customer", "11"),
    ("orders.customer", "13"),
    ("orders.placed_at", "13"),
    ("comments.commentable", "3"),
    ("comments.commentable", "4"),
    ("comments.commentable.discriminator", "5"),
    ("comments.author", "4"),
    ("accounts.email", "3"),
    ("accounts.type", "4"),
}


def test_the_shop_suite_runs_on_its_schema(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("shop")
    execute(uri, (SHOP / "schema.sql").read_text() + ROWS)
    suite = load_suite(SHOP / "suite.yml")
    run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions(repair=True))
    with (tmp_path / "run" / "violations.csv").open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert {(r["check"], r["key"]) for r in rows} == EXPECTED
    wrong = next(r for r in rows if (r["check"], r["key"]) == ("comments.commentable", "3"))
    assert (wrong["diagnosis"], wrong["proposed_value"]) == ("wrong_type", "Staff")


def test_discover_reads_the_shop_enum_and_all(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """discover on a schema with an enum beside text columns (compared as text), composite
    keys and text polymorphic ids; its suite runs as it is."""
    from refaudit.discover import discover, write_suite

    uri = new_database("shop_discover")
    execute(uri, (SHOP / "schema.sql").read_text() + ROWS)
    found = discover(as_url(uri))
    write_suite(found, tmp_path / "suite.yml", 0.5)
    suite = load_suite(tmp_path / "suite.yml")
    assert suite.tables["products"].key_columns() == ["shop_id", "sku"]
    result = run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions())
    assert result.checks
