"""One suite file for every database of a Django project: generic relations name their
targets by content type (`shop.article`), and the audit reads `django_content_type` in its
snapshot to learn each database's ids. The shop's database (Django's own `migrate`, data from
the ORM: see tests/test_repair_django.py) is audited twice, once as built and once with its
content types numbered as another database of the project numbers them (the order in which
migrations ran), with the same faults planted in both and the same suite file: each fault is
found in both, and no clean row is flagged."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, check_suite, run_audit
from refaudit.suite import load_suite

from tests.conftest import as_url, execute
from tests.frameworks.harness import dump_schema, plant
from tests.roundtrip import findings
from tests.test_repair import query
from tests.test_repair_django import _copies, copy_of, ct

SUITE = textwrap.dedent(
    """\
    suite: django-shop
    tables:
      django_content_type: {key: id}
      shop_article: {key: id}
      shop_product: {key: id}
      shop_photo: {key: id}
      shop_taggeditem: {key: id}
      shop_comment: {key: id}
      shop_version: {key: id}
    checks:
      - id: tags
        kind: conditional_reference
        table: shop_taggeditem
        column: object_id
        discriminator: content_type_id
        lookup: {table: django_content_type, key: id, name: [app_label, model]}
        targets:
          shop.article: {table: shop_article}
          shop.product: {table: shop_product}
      - id: comments
        kind: conditional_reference
        table: shop_comment
        column: object_pk
        discriminator: content_type_id
        lookup: {table: django_content_type, key: id, name: [app_label, model]}
        targets:
          shop.article: {table: shop_article}
          shop.product: {table: shop_product}
          shop.photo: {table: shop_photo}
      - id: versions
        kind: conditional_reference
        table: shop_version
        column: object_id
        discriminator: content_type_id
        lookup: {table: django_content_type, key: id, name: [app_label, model]}
        severity: warn
        on_orphan: report
        targets:
          shop.article: {table: shop_article}
          shop.product: {table: shop_product}
    """
)

# The same faults in every database, written by content type *name*: a tag of no article, a
# comment on an article whose key is a photo's uuid, a tag of a type whose model is gone (a
# stale content type, which Django leaves behind), a tag whose content type id names no row;
# and tags that no target holds, of a stale type, of no type row, of a type no target maps.
FAULTS = f"""
INSERT INTO shop_taggeditem (id, tag, content_type_id, object_id)
    VALUES (900001, 'ghost', {ct("shop.article")}, 90001);
INSERT INTO shop_comment (id, content_type_id, object_pk, user_id, comment, submit_date)
    SELECT 900002, {ct("shop.article")}, ph.id::text, NULL, 'on the wrong model', '2024-05-01Z'
    FROM shop_photo ph ORDER BY ph.id LIMIT 1;
INSERT INTO django_content_type (app_label, model) VALUES ('shop', 'oldmodel');
INSERT INTO shop_taggeditem (id, tag, content_type_id, object_id)
    VALUES (900003, 'stale', {ct("shop.oldmodel")}, 1);
INSERT INTO shop_taggeditem (id, tag, content_type_id, object_id)
    VALUES (900004, 'no type', 77777, 1);
INSERT INTO shop_taggeditem (id, tag, content_type_id, object_id)
    VALUES (900005, 'stale, no object', {ct("shop.oldmodel")}, 90005),
           (900006, 'no type, no object', 77777, 90006),
           (900007, 'a user', {ct("auth.user")}, 90007);
"""
PLANTED = {
    ("tags", "900001"),
    ("comments", "900002"),
    ("tags.discriminator", "900003"),
    ("tags.discriminator", "900004"),
    ("tags.discriminator", "900005"),
    ("tags.discriminator", "900006"),
    ("tags.discriminator", "900007"),
}

# Another database of the project: the same content types under other ids (every reference
# to them follows; Django's keys are DEFERRABLE, checked at commit).
RENUMBER = """
SET CONSTRAINTS ALL DEFERRED;
UPDATE django_content_type SET id = 1000 - id;
DO $$
DECLARE fk record;
BEGIN
  FOR fk IN SELECT c.conrelid::regclass AS tbl, a.attname
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = 'django_content_type'::regclass LOOP
    EXECUTE format('UPDATE %s SET %I = 1000 - %I', fk.tbl, fk.attname, fk.attname);
  END LOOP;
END $$;
SELECT setval(pg_get_serial_sequence('django_content_type', 'id'), 1000);
"""


@pytest.fixture
def two_databases(pg_server: str, django_template: str) -> tuple[str, str]:
    first = copy_of(pg_server, django_template, f"refaudit_ctA_{os.getpid()}_{next(_copies)}")
    second = copy_of(pg_server, django_template, f"refaudit_ctB_{os.getpid()}_{next(_copies)}")
    execute(second, RENUMBER)
    for uri in (first, second):
        plant(uri, FAULTS)
    return first, second


def gone_versions(uri: str) -> set[str]:
    """The versions whose object is not in its model's table, by SQL of the test's own."""
    rows = query(
        uri,
        "SELECT v.id::text FROM shop_version v JOIN django_content_type c "
        "ON c.id = v.content_type_id WHERE NOT EXISTS (SELECT 1 FROM shop_article a "
        "WHERE c.model = 'article' AND a.id::text = v.object_id) AND NOT EXISTS "
        "(SELECT 1 FROM shop_product p WHERE c.model = 'product' AND p.id::text = v.object_id)",
    )
    assert rows  # the ORM destroyed some products
    return {r[0] for r in rows}


def ids_of(uri: str, model: str) -> int:
    return int(query(uri, ct(model).strip("()"))[0][0])


def test_one_suite_file_holds_on_two_databases_with_other_ids(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    first, second = two_databases
    assert ids_of(first, "shop.article") != ids_of(second, "shop.article")
    path = tmp_path / "suite.yml"
    path.write_text(SUITE, encoding="utf-8")
    suite = load_suite(path)
    seen = []
    for n, uri in enumerate(two_databases):
        out = tmp_path / f"run{n}"
        run_audit(as_url(uri), suite, out, options=AuditOptions(repair=True))
        found = findings(out)
        # every fault, no clean row; and the versions of the products the ORM destroyed
        # (django-reversion keeps them by design: the check is a warning)
        article, photo = ids_of(uri, "shop.article"), ids_of(uri, "shop.photo")
        oldmodel = ids_of(uri, "shop.oldmodel")
        assert set(found) == PLANTED | {("versions", k) for k in gone_versions(uri)} | {
            ("tags.lookup", str(oldmodel))  # the stale type itself, its rows counted
        }
        # evidence speaks in the type table's names
        wrong = found[("comments", "900002")]
        assert wrong["diagnosis"] == "wrong_type"
        assert wrong["proposed_value"] == str(photo)
        assert f"content_type_id should be {photo} (shop.photo)" in wrong["evidence"]
        assert found[("tags", "900001")]["diagnosis"] == "orphan"
        assert found[("tags", "900001")]["value"] == "90001"
        stale = found[("tags.discriminator", "900003")]["evidence"]
        assert f"content_type_id {oldmodel} is shop.oldmodel in django_content_type" in stale
        assert "after which no table is named: a stale type" in stale
        lost = found[("tags.discriminator", "900004")]["evidence"]
        assert "content_type_id 77777 names no row of django_content_type" in lost
        # rows no target holds, each by what its type is
        labels = {k: found[("tags.discriminator", k)]["diagnosis"] for k in ("900005",
                  "900006", "900007")}  # fmt: skip
        assert labels == {
            "900005": "stale_type",
            "900006": "unknown_type",
            "900007": "unmapped_type",
        }
        assert f"content_type_id {oldmodel} is shop.oldmodel in django_content_type, after " \
            "which no table is named: a stale type" in found[("tags.discriminator", "900005")][
            "evidence"]  # fmt: skip
        assert "is auth.user in django_content_type, which no target maps" in found[
            ("tags.discriminator", "900007")]["evidence"]  # fmt: skip
        gone = found[("tags.lookup", str(oldmodel))]
        assert (gone["diagnosis"], gone["value"]) == ("stale_type", "shop.oldmodel")
        assert gone["evidence"] == (
            f"content_type_id {oldmodel} is shop.oldmodel in django_content_type, after "
            "which no table is named: a stale type; 2 rows of shop_taggeditem name it"
        )
        doc = json.loads((out / "results.json").read_text())
        ids = {r["check"]: r["ids"] for r in doc["lookups"]}
        assert doc["lookups"][0]["stale"] == {"shop.oldmodel": 2}
        statuses = {c["id"]: c["status"] for c in doc["checks"]}
        assert (statuses["tags.lookup"], statuses["comments.lookup"]) == ("failed", "passed")
        assert ids["tags"] == {"shop.article": [str(article)], "shop.product": [
            str(ids_of(uri, "shop.product"))
        ]}
        seen.append(found[("comments", "900002")]["proposed_value"])
    assert seen[0] != seen[1]  # each database's own id for shop.photo


def test_the_plan_uses_each_database_s_ids_and_rolls_back(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    """The wrong-type comment is re-pointed at shop.photo by that database's id; the orphan
    tag is quarantined; the rollback puts every table back byte for byte."""
    path = tmp_path / "suite.yml"
    path.write_text(SUITE, encoding="utf-8")
    suite = load_suite(path)
    for n, uri in enumerate(two_databases):
        out = tmp_path / f"run{n}"
        before = dump_schema(uri)
        run_audit(as_url(uri), suite, out, options=AuditOptions(repair=True))
        applied = apply_plan(as_url(uri), out / "repair.sql")
        assert applied.totals["updated"] == 1 and applied.totals["quarantine"] == 1
        photo = ids_of(uri, "shop.photo")
        assert query(uri, "SELECT content_type_id FROM shop_comment WHERE id = 900002") == [
            (photo,)
        ]
        again = run_audit(as_url(uri), suite, tmp_path / f"re{n}", options=AuditOptions())
        assert set(findings(tmp_path / f"re{n}")) == {
            p for p in PLANTED if p[0] == "tags.discriminator"
        } | {("versions", k) for k in gone_versions(uri)} | {
            ("tags.lookup", str(ids_of(uri, "shop.oldmodel")))
        }
        del again
        apply_plan(as_url(uri), out / "rollback.sql")
        assert dump_schema(uri) == before


def test_a_name_no_type_row_says_is_a_failing_finding(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    """A target name no type row says fails the run, whatever the check's severity (it is a
    mistake of the suite), in every output: results.json, violations.csv, the report and
    the exit code of `refaudit run`."""
    first, _ = two_databases
    path = tmp_path / "suite.yml"
    path.write_text(SUITE.replace("shop.product: {table: shop_product}", "shop.prodcut: "
                                  "{table: shop_product}", 3), encoding="utf-8")  # fmt: skip
    suite = load_suite(path)
    checked = check_suite(suite, as_url(first))
    assert any(
        "tags: no row of django_content_type is shop.prodcut" in w and "shop.product?" in w
        for w in checked.warnings
    )
    result = run_audit(as_url(first), suite, tmp_path / "run", options=AuditOptions())
    assert result.notes == []  # a finding, not a note
    by_id = {c.id: c for c in result.checks}
    unknown = by_id["versions.lookup"]  # a `severity: warn` check: its type table still fails
    assert (unknown.status, unknown.severity, unknown.violations) == ("failed", "error", 1)
    assert unknown.table == "django_content_type"
    assert int(result.exit_code()) == 1
    found = findings(tmp_path / "run")
    line = found[("versions.lookup", "shop.prodcut")]
    assert line["diagnosis"] == "unknown_name"
    assert "did you mean shop.product?" in line["evidence"]
    doc: dict[str, Any] = json.loads((tmp_path / "run" / "results.json").read_text())
    assert doc["lookups"][0]["unknown"] == ["shop.prodcut"]
    assert {c["id"]: c["status"] for c in doc["checks"]}["versions.lookup"] == "failed"
    report = (tmp_path / "run" / "report.html").read_text(encoding="utf-8")
    assert "versions.lookup" in report and "unknown_name" in report


def test_refaudit_run_exits_1_on_a_lookup_finding_alone(
    two_databases: tuple[str, str], tmp_path: Path
) -> None:
    """The CLI's verdict and exit code read the `<id>.lookup` result like any other."""
    from refaudit.cli import app
    from typer.testing import CliRunner

    first, _ = two_databases
    execute(first, "DELETE FROM shop_taggeditem WHERE id >= 900000; "
                   "DELETE FROM shop_comment WHERE id >= 900000")  # fmt: skip
    path = tmp_path / "suite.yml"
    only_tags = SUITE.split("  - id: comments")[0]
    listed = "shop.product: {table: shop_product}"
    path.write_text(
        only_tags.replace(listed, f"{listed}\n      shop.articel: {{table: shop_article}}"),
        encoding="utf-8",
    )
    out = tmp_path / "run"
    ran = CliRunner().invoke(
        app, ["run", "--suite", str(path), "--db", first, "--out", str(out)]
    )
    assert ran.exit_code == 1, ran.output
    assert "tags.lookup" in ran.output
    doc = json.loads((out / "results.json").read_text())
    failing = [c["id"] for c in doc["checks"] if c["status"] == "failed"]
    assert failing == ["tags.lookup"]


def test_integer_target_keys_are_the_values_as_text(tmp_path: Path) -> None:
    path = tmp_path / "suite.yml"
    path.write_text(
        textwrap.dedent(
            """\
            suite: ints
            tables: {a: {key: id}, b: {key: id}, t: {key: id}}
            checks:
              - id: t.x
                kind: conditional_reference
                table: t
                column: x_id
                discriminator: x_type
                targets:
                  19: {table: a}
                  4: {table: b}
            """
        ),
        encoding="utf-8",
    )
    check = load_suite(path).checks[0]
    assert list(check.targets) == ["19", "4"]  # type: ignore[attr-defined]
