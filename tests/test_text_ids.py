"""Text ids as frameworks resolve them (`refaudit.checks.text_ids`): django-contrib-comments
keeps the commented object's key as text (`object_pk varchar`) while the shop's keys are
bigint (articles, products) and uuid (photos). A comment whose `object_pk` is the key's text
passes; one that only reads as a key (`' 42 '`, `'0042'`, `'+42'`, a uuid in capitals,
without hyphens, in braces), which Django's `object_pk = str(pk)` lookups miss, is
`malformed` with the key's text proposed, and repair.sql rewrites it; one that reads as no
key of its model is an orphan, and no spelling makes the audit fail. The database is the one
Django's own `migrate` and ORM built (tests/frameworks/django_project), faults planted with
SQL."""

from __future__ import annotations

import json
import os
import textwrap
from pathlib import Path
from typing import Any

import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite, load_suite

from tests.conftest import as_url, execute
from tests.frameworks.harness import dump_schema, plant
from tests.roundtrip import findings
from tests.test_repair import query
from tests.test_repair_django import _copies, copy_of, ct

SUITE = textwrap.dedent(
    """\
    suite: django-comments
    tables:
      django_content_type: {key: id}
      shop_article: {key: id}
      shop_product: {key: id}
      shop_photo: {key: id}
      shop_comment: {key: id}
    checks:
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
    """
)

ARTICLE = "(SELECT min(id) FROM shop_article)"
PRODUCT = "(SELECT max(id) FROM shop_product)"
PHOTO = "(SELECT id FROM shop_photo ORDER BY id LIMIT 1)"


def comment(key: int, model: str, object_pk: str) -> str:
    """SQL: a comment `key` on `model` whose object_pk is the SQL text `object_pk`."""
    return (
        "INSERT INTO shop_comment (id, content_type_id, object_pk, user_id, comment, "
        f"submit_date) VALUES ({key}, {ct(model)}, {object_pk}, NULL, 'planted', "
        "'2024-05-01Z');\n"
    )


# key -> (model, object_pk as SQL, the diagnosis, the key whose text is proposed, as SQL)
PLANTED: dict[int, tuple[str, str, str, str]] = {
    900001: ("shop.article", f"' ' || {ARTICLE} || ' '", "malformed", ARTICLE),
    900002: ("shop.article", f"lpad({ARTICLE}::text, 6, '0')", "malformed", ARTICLE),
    900003: ("shop.product", f"'+' || {PRODUCT}", "malformed", PRODUCT),
    900004: ("shop.product", f"E'\\t' || {PRODUCT} || E'\\n'", "malformed", PRODUCT),
    900005: ("shop.photo", f"upper({PHOTO}::text)", "malformed", PHOTO),
    900006: ("shop.photo", f"replace({PHOTO}::text, '-', '')", "malformed", PHOTO),
    900007: ("shop.photo", f"'{{' || {PHOTO} || '}}'", "malformed", PHOTO),
    # true orphans: no key reads so, or the key it reads as is no row
    900008: ("shop.article", "'abc'", "orphan", ""),
    900009: ("shop.article", "'99999999999999999999999'", "orphan", ""),  # beyond bigint
    900010: ("shop.article", "'90001'", "orphan", ""),
    900011: ("shop.article", f"'4 ' || {ARTICLE}", "orphan", ""),
    900012: ("shop.article", f"'0x' || to_hex({ARTICLE})", "orphan", ""),
    900013: ("shop.photo", "'not-a-uuid'", "orphan", ""),
    900014: ("shop.photo", "'B0EEBC99-9C0B-4EF8-BB6D-6BB9BD380A11'", "orphan", ""),
    900015: ("shop.photo", f"' ' || {PHOTO}", "orphan", ""),  # ::uuid takes no whitespace
}


@pytest.fixture
def shop(pg_server: str, django_template: str) -> str:
    uri = copy_of(pg_server, django_template, f"refaudit_textids_{os.getpid()}_{next(_copies)}")
    plant(uri, "".join(comment(k, m, pk) for k, (m, pk, _, _) in PLANTED.items()))
    return uri


def suite_file(tmp_path: Path) -> Suite:
    path = tmp_path / "suite.yml"
    path.write_text(SUITE, encoding="utf-8")
    return load_suite(path)


def proposal(uri: str, key_sql: str) -> str:
    return str(query(uri, f"SELECT {key_sql}::text")[0][0]) if key_sql else ""


def test_text_ids_are_labelled_by_how_they_read(shop: str, tmp_path: Path) -> None:
    run_audit(as_url(shop), suite_file(tmp_path), tmp_path / "run", options=AuditOptions())
    found = findings(tmp_path / "run")
    # every planted comment, and no comment the ORM wrote (each is its key's text)
    assert set(found) == {("comments", str(k)) for k in PLANTED}
    for key, (_, _, label, key_sql) in PLANTED.items():
        row = found[("comments", str(key))]
        assert (row["diagnosis"], row["proposed_value"]) == (label, proposal(shop, key_sql)), key
    spaced = found[("comments", "900001")]
    article = proposal(shop, ARTICLE)
    assert spaced["value"] == f" {article} "
    assert spaced["confidence"] == "high"
    assert spaced["evidence"] == (
        f"' {article} ' is shop_article.id {article} misspelled: a lookup by the key's text "
        f"misses it; repair writes '{article}'"
    )
    assert found[("comments", "900005")]["proposed_value"] == proposal(shop, PHOTO).lower()
    assert "repair moves the row to quarantine" in found[("comments", "900008")]["evidence"]
    doc: dict[str, Any] = json.loads((tmp_path / "run" / "results.json").read_text())
    rows = {(d["diagnosis"], d["confidence"]): d["rows"] for d in doc["diagnoses"]}
    assert rows[("malformed", "high")] == 7
    assert "malformed" in (tmp_path / "run" / "report.html").read_text(encoding="utf-8")


def test_malformed_ids_are_rewritten_never_removed_and_roll_back(
    shop: str, tmp_path: Path
) -> None:
    """`run --repair` -> `apply` -> re-audit: no malformed id is left, each comment kept with
    its key's text; the orphans are quarantined; a second apply changes nothing; the
    rollback puts every table back byte for byte."""
    suite = suite_file(tmp_path)
    before = dump_schema(shop)
    run_audit(as_url(shop), suite, tmp_path / "run", options=AuditOptions(repair=True))
    plan = (tmp_path / "run" / "repair.sql").read_text(encoding="utf-8")
    assert "set shop_comment.object_pk to the proposed value: comments, malformed (high), " \
        "7 rows" in plan  # fmt: skip
    applied = apply_plan(as_url(shop), tmp_path / "run" / "repair.sql")
    assert (applied.totals["updated"], applied.totals["quarantine"]) == (7, 8)
    malformed = {k: sql for k, (_, _, label, sql) in PLANTED.items() if label == "malformed"}
    kept = query(
        shop,
        "SELECT id, object_pk FROM shop_comment WHERE id >= 900000 ORDER BY id",
    )
    assert kept == [(k, proposal(shop, key_sql)) for k, key_sql in malformed.items()]
    run_audit(as_url(shop), suite, tmp_path / "re", options=AuditOptions())
    assert findings(tmp_path / "re") == {}
    after = dump_schema(shop)
    again = apply_plan(as_url(shop), tmp_path / "run" / "repair.sql")
    assert not any(again.totals.get(k) for k in ("updated", "set_null", "quarantine"))
    assert dump_schema(shop) == after
    apply_plan(as_url(shop), tmp_path / "run" / "rollback.sql")
    assert dump_schema(shop) == before


NUMBERS = """
CREATE TABLE small_things (id smallint PRIMARY KEY);
CREATE TABLE int_things (id integer PRIMARY KEY);
CREATE TABLE priced_things (id numeric(8, 2) PRIMARY KEY);
CREATE TABLE notes (id int PRIMARY KEY, subject_type text, subject_id varchar(300));
INSERT INTO small_things VALUES (7);
INSERT INTO int_things VALUES (42);
INSERT INTO priced_things VALUES (42.50), (3);
INSERT INTO notes VALUES
    (1, 'small', '7'),            -- clean
    (2, 'small', '007'),          -- malformed: 7
    (3, 'small', '40000'),        -- orphan: beyond smallint, and no cast error
    (4, 'int', '42'),             -- clean
    (5, 'int', ' -0042 '),        -- orphan: -42 is no row
    (6, 'int', '42.0'),           -- orphan: no integer reads so
    (14, 'int', E'\t42'),          -- malformed: 42
    (7, 'priced', '42.50'),       -- clean: numeric's own text
    (8, 'priced', '42.5'),        -- malformed: 42.50
    (9, 'priced', '4.25e1'),      -- malformed: 42.50
    (10, 'priced', '3'),          -- malformed: 3.00
    (11, 'priced', '1e999999'),   -- orphan: no exponent beyond three digits, no cast error
    (12, 'priced', 'NaN'),        -- orphan
    (13, 'int', repeat('9', 250)); -- orphan: far too long to be a key
"""


def test_integer_and_numeric_keys_of_every_width(new_database: Any, tmp_path: Path) -> None:
    uri = new_database("text_ids_numbers")
    execute(uri, NUMBERS)
    suite = Suite.model_validate(
        {
            "suite": "numbers",
            "tables": {t: {} for t in ("small_things", "int_things", "priced_things", "notes")},
            "checks": [
                {
                    "id": "notes.subject",
                    "kind": "conditional_reference",
                    "table": "notes",
                    "column": "subject_id",
                    "discriminator": "subject_type",
                    "targets": {
                        "small": {"table": "small_things"},
                        "int": {"table": "int_things"},
                        "priced": {"table": "priced_things"},
                    },
                },
                {  # a plain reference follows the same rules
                    "id": "notes.int",
                    "kind": "reference",
                    "table": "notes",
                    "column": "subject_id",
                    "where": {"column": "subject_type", "eq": "int"},
                    "target": {"table": "int_things"},
                    "on_orphan": "set_null",
                },
            ],
        }
    )
    run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions())
    found = findings(tmp_path / "run")
    plain = {int(k[1]): (f["diagnosis"], f["proposed_value"]) for k, f in found.items()
             if k[0] == "notes.int"}  # fmt: skip
    assert plain == {
        5: ("orphan", "NULL"),
        6: ("orphan", "NULL"),
        13: ("orphan", "NULL"),
        14: ("malformed", "42"),
    }
    got = {
        int(k[1]): (f["diagnosis"], f["proposed_value"])
        for k, f in found.items()
        if k[0] == "notes.subject"
    }
    assert got == {
        2: ("malformed", "7"),
        3: ("orphan", ""),
        5: ("orphan", ""),
        6: ("orphan", ""),
        8: ("malformed", "42.50"),
        9: ("malformed", "42.50"),
        10: ("malformed", "3.00"),
        11: ("orphan", ""),
        12: ("orphan", ""),
        13: ("orphan", ""),
        14: ("malformed", "42"),
    }
