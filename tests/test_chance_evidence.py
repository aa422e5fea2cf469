"""A proposed type needs evidence chance cannot explain (issue 19, item 7).

With dense integer ids (Django's and Rails' generic relations), the id of a deleted product is
usually some article's id too: that is no evidence that the row was an article's. The
diagnosis weighs the chance of such a hit and repair.sql plans only what the suite lets it."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import query

REPAIR = AuditOptions(repair=True, record_history=False)


def schema(article_ids: str, key: str = "bigint") -> str:
    """products 1..500 with 491..500 deleted; articles with `article_ids`; versions (a
    django-reversion table: `object_id` is text) of products and articles."""
    return f"""
CREATE TABLE users (id bigint PRIMARY KEY, email text);
CREATE TABLE products (id bigint PRIMARY KEY, name text, owner_id bigint);
CREATE TABLE articles (id {key} PRIMARY KEY, title text, owner_id bigint);
CREATE TABLE versions (id int PRIMARY KEY, content_type text, object_id text, email text);
INSERT INTO users SELECT g, 'u' || g || '@x' FROM generate_series(1, 1000) g;
INSERT INTO products SELECT g, 'p' || g, g FROM generate_series(1, 490) g;
INSERT INTO articles SELECT a, 'a', 700 FROM ({article_ids}) s(a);
"""


def suite(**extra: Any) -> Suite:
    check = {
        "id": "versions.object",
        "kind": "conditional_reference",
        "table": "versions",
        "column": "object_id",
        "discriminator": "content_type",
        "targets": {"product": {"table": "products"}, "article": {"table": "articles"}},
        **extra,
    }
    return Suite.model_validate(
        {
            "suite": "generic_relations",
            "tables": {t: {"key": "id"} for t in ("users", "products", "articles", "versions")},
            "key_spaces": {"users": {"table": "users", "attributes": ["email"]}},
            "checks": [check],
        }
    )


MIS_KEY = {
    "mis_key": {
        "key_space": "users",
        "through": "owner_id",
        "evidence": [{"attribute": {"column": "email", "key_space_column": "email"}}],
    }
}


def audit(uri: str, s: Suite, out: Path) -> tuple[dict[str, dict[str, str]], Any]:
    result = run_audit(as_url(uri), s, out, options=REPAIR)
    with (out / "violations.csv").open(newline="", encoding="utf-8") as f:
        rows = {r["key"]: r for r in csv.DictReader(f)}
    return rows, result


def test_a_deleted_products_id_in_dense_articles_is_chance(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("chance")
    execute(
        uri,
        schema("SELECT generate_series(1, 600)")
        + "INSERT INTO versions SELECT g, 'product', (490 + g)::text, NULL "
        "FROM generate_series(1, 10) g;",
    )
    rows, result = audit(uri, suite(), tmp_path / "run")
    assert set(rows) == {str(k) for k in range(1, 11)}
    for r in rows.values():
        assert (r["diagnosis"], r["proposed_value"], r["confidence"]) == ("ambiguous", "", "low")
    assert rows["2"]["evidence"] == (
        "no products.id 492, but articles.id 492 exists; articles holds 100% of the ids "
        "1..600 around it: chance, not evidence of the type; listed for review"
    )
    assert result.repair["updates"] == 0 and result.repair["ambiguous"] == 10
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert applied.totals.get("updated", 0) == 0
    assert query(uri, "SELECT count(*) FROM versions WHERE content_type = 'product'") == [(10,)]


@pytest.mark.parametrize(
    ("article_ids", "key", "value"),
    [
        ("SELECT g * 1000003 FROM generate_series(1, 600) g", "bigint", "5000015"),  # sparse
        ("SELECT 7000000 + g FROM generate_series(1, 600) g", "bigint", "7000042"),  # far off
        ("SELECT gen_random_uuid() UNION ALL SELECT '0a7e2c1d-8e3b-4f5a-9c6d-1e2f3a4b5c6d'",
         "uuid", "0a7e2c1d-8e3b-4f5a-9c6d-1e2f3a4b5c6d"),
    ],
    ids=["sparse", "another-range", "uuid"],
)  # fmt: skip
def test_an_id_only_the_other_table_could_hold_is_wrong_type(
    new_database, tmp_path: Path, article_ids: str, key: str, value: str  # type: ignore[no-untyped-def]
) -> None:
    """Where the other target's keys are sparse around the value (or uuids), a hit is no
    chance: the type is proposed, planned and applied."""
    uri = new_database("nochance")
    execute(
        uri,
        schema(article_ids.replace("g * 1000003", "g::bigint * 1000003"), key)
        + f"INSERT INTO versions VALUES (1, 'product', '{value}', NULL), "
        "(2, 'product', '495', NULL);",
    )
    rows, result = audit(uri, suite(), tmp_path / "run")
    assert (rows["1"]["diagnosis"], rows["1"]["proposed_value"], rows["1"]["confidence"]) == (
        "wrong_type", "article", "medium",
    )  # fmt: skip
    assert rows["2"]["diagnosis"] == "orphan"  # no article 495 either: quarantined
    assert result.repair["updates"] == 1
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert applied.totals["updated"] == 1
    assert query(uri, "SELECT content_type FROM versions WHERE id = 1") == [("article",)]


def test_the_rows_own_evidence_still_picks_the_type(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A chance hit whose row carries evidence for the other target (its e-mail is that of
    the article's owner) is `wrong_type`, high, and planned; without it, `ambiguous`."""
    uri = new_database("evidence")
    execute(
        uri,
        schema("SELECT generate_series(1, 600)")
        + "INSERT INTO versions VALUES (1, 'product', '495', 'u700@x'), "
        "(2, 'product', '496', NULL), (3, 'product', '497', 'u3@x');",
    )
    rows, result = audit(uri, suite(**MIS_KEY), tmp_path / "run")
    got = {k: (r["diagnosis"], r["proposed_value"], r["confidence"]) for k, r in rows.items()}
    assert got == {
        "1": ("wrong_type", "article", "high"),
        "2": ("ambiguous", "", "low"),
        "3": ("ambiguous", "", "low"),  # the e-mail is nobody's of either reading
    }
    assert rows["1"]["evidence"] == (
        "no products.id 495, but articles.id 495 exists: content_type should be article; "
        "email matches users.email of that articles row's owner_id"
    )
    assert rows["2"]["evidence"] == (
        "no products.id 496; articles.id 496 exists; articles holds 100% of the ids 1..600 "
        "around it: chance, not evidence of the type; listed for review"
    )
    assert result.repair["updates"] == 1
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert applied.totals["updated"] == 1
    assert query(uri, "SELECT id, content_type FROM versions ORDER BY id") == [
        (1, "article"), (2, "product"), (3, "product"),
    ]  # fmt: skip


FINDINGS = (
    "INSERT INTO versions VALUES (1, 'product', '5000015', NULL), "  # an article's: wrong_type
    "(2, 'product', '495', NULL), "  # nothing has it: orphan
    "(3, 'product', '1', NULL);"  # clean
)
SPARSE = "SELECT g::bigint * 1000003 FROM generate_series(1, 600) g"


@pytest.mark.parametrize(
    ("extra", "why"),
    [
        ({"severity": "warn"}, "versions.object is `severity: warn`: repair.sql changes its "
         "rows only with `repair: propose`"),
        ({"on_orphan": "report"}, "versions.object is `on_orphan: report`: repair.sql changes "
         "its rows only with `repair: propose`"),
        ({"repair": "review"}, "versions.object says `repair: review`"),
    ],
    ids=["warn", "report", "review"],
)  # fmt: skip
def test_a_check_that_only_warns_plans_nothing(
    new_database, tmp_path: Path, extra: dict[str, str], why: str  # type: ignore[no-untyped-def]
) -> None:
    uri = new_database("warn")
    execute(uri, schema(SPARSE) + FINDINGS)
    rows, result = audit(uri, suite(**extra), tmp_path / "run")
    assert {k: r["diagnosis"] for k, r in rows.items()} == {"1": "wrong_type", "2": "orphan"}
    assert rows["1"]["proposed_value"] == "article"  # proposed, for a person to decide
    plan = result.repair
    assert (plan["updates"], plan["quarantined"], plan["ambiguous"]) == (0, 0, 2)
    text = (tmp_path / "run" / "repair.sql").read_text()
    assert text.count(why) == 2  # both findings listed, each with the reason
    before = query(uri, "SELECT * FROM versions ORDER BY id")
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert not any(applied.totals.values())
    assert query(uri, "SELECT * FROM versions ORDER BY id") == before


@pytest.mark.parametrize(
    ("extra", "quarantined"),
    [
        ({"severity": "warn", "repair": "propose"}, 1),
        ({"on_orphan": "report", "repair": "propose"}, 0),  # its orphans stay listed
    ],
    ids=["warn", "report"],
)
def test_repair_propose_plans_what_the_check_proposes(
    new_database, tmp_path: Path, extra: dict[str, str], quarantined: int  # type: ignore[no-untyped-def]
) -> None:
    uri = new_database("propose")
    execute(uri, schema(SPARSE) + FINDINGS)
    _, result = audit(uri, suite(**extra), tmp_path / "run")
    plan = result.repair
    assert (plan["updates"], plan["quarantined"], plan["ambiguous"]) == (
        1, quarantined, 1 - quarantined,
    )  # fmt: skip
    applied = apply_plan(as_url(uri), tmp_path / "run" / "repair.sql")
    assert applied.totals["updated"] == 1
    assert query(uri, "SELECT content_type FROM versions WHERE id = 1") == [("article",)]
    assert query(uri, "SELECT count(*) FROM versions WHERE id = 2") == [(1 - quarantined,)]


def test_repair_is_validated() -> None:
    with pytest.raises(ValueError, match="repair"):
        suite(repair="always")
    composite = {
        "suite": "s",
        "tables": {"a": {"key": "id"}, "b": {"key": ["x", "y"]}},
        "checks": [{"id": "a.b", "kind": "reference", "table": "a", "columns": ["x", "y"],
                    "target": {"table": "b", "columns": ["x", "y"]}, "repair": "propose"}],
    }  # fmt: skip
    with pytest.raises(ValueError, match="`repair: propose` is for single-column references"):
        Suite.model_validate(composite)
