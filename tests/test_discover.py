"""`refaudit discover` on databases it has never seen: the Astegni demo with its foreign keys
dropped, the seed's "before" state, polymorphic references whose type values are class names,
single-table inheritance, dirty and composite references, row rules, patterns and a unique
among pending requests, hostile names, and generated schemas whose recall and precision are
measured against the generator's ground truth."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import yaml
from refaudit.audit import AuditOptions, run_audit
from refaudit.demo import build_sample
from refaudit.discover import Discovery, discover, name_fit, render_suite, write_suite
from refaudit.errors import ExitCode, UsageError
from refaudit.suite import Suite, load_suite

from tests.conftest import as_url, execute
from tests.discover_world import build, generate
from tests.test_cli import assert_one_line_error, refaudit

NO_HISTORY = AuditOptions(record_history=False)


def flagged(out: Path, suite: Suite) -> dict[tuple[str, str], set[str]]:
    """The keys each reference check flagged, by (table, column) of the check."""
    where = {
        c.id: (c.table, getattr(c, "column", ""))
        for c in suite.checks
        if c.kind in ("reference", "conditional_reference")
    }
    got: dict[tuple[str, str], set[str]] = {}
    with (out / "violations.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            check = row["check"]
            if check in where and where[check][1]:
                got.setdefault(where[check], set()).add(row["key"])
    return got


def violations(out: Path) -> list[dict[str, str]]:
    with (out / "violations.csv").open(newline="") as f:
        return list(csv.DictReader(f))


def discovered_suite(found: Discovery, path: Path, min_confidence: float = 0.5) -> Suite:
    write_suite(found, path, min_confidence)
    return load_suite(path)


def references(found: Discovery, min_confidence: float = 0.5) -> dict[tuple[str, str], Any]:
    """(table, column) -> target table, or {value: table} for a conditional reference."""
    out: dict[tuple[str, str], Any] = {}
    for p in found.references():
        if p.confidence < min_confidence:
            continue
        c = p.check
        if c["kind"] == "reference":
            column = c.get("column") or ",".join(c["columns"])
            out[(c["table"], column)] = c["target"]["table"]
        else:
            out[(c["table"], c["column"])] = {v: t["table"] for v, t in c["targets"].items()}
    return out


def drop_foreign_keys(uri: str) -> None:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT conrelid::regclass::text, quote_ident(conname) FROM pg_constraint "
                "WHERE contype = 'f'"
            )
            for table, name in cur.fetchall():
                cur.execute(f"ALTER TABLE {table} DROP CONSTRAINT {name}")
        conn.commit()
    finally:
        conn.close()


# ------------------------------------------------------------------------ Astegni
@pytest.fixture(scope="module")
def astegni_without_fks(new_database, suite):  # type: ignore[no-untyped-def]
    uri = new_database("discover")
    build_sample(uri, suite, requests=3000, seed=11)
    drop_foreign_keys(uri)
    return uri


def test_astegni_references_from_the_data_alone(astegni_without_fks) -> None:  # type: ignore[no-untyped-def]
    found = discover(as_url(astegni_without_fks))
    refs = references(found)
    assert refs == {
        ("session_requests", "tutor_id"): "tutor_profiles",
        ("session_requests", "package_id"): "tutor_packages",
        ("session_requests", "requester_id"): {
            "student": "student_profiles",
            "parent": "parent_profiles",
        },
        ("tutor_packages", "tutor_id"): "tutor_profiles",
        ("tutor_profiles", "user_id"): "users",
        ("student_profiles", "user_id"): "users",
        ("parent_profiles", "user_id"): "users",
    }
    requester = found.find("conditional_reference", "session_requests", "requester_id")
    assert requester is not None and requester.check["discriminator"] == "requester_type"
    assert requester.check["mis_key"]["through"] == "user_id"
    space = found.key_spaces[requester.check["mis_key"]["key_space"]]
    assert space["table"] == "users"
    evidence = {
        e["attribute"]["column"]: e["attribute"]["key_space_column"]
        for e in requester.check["mis_key"]["evidence"]
    }
    assert evidence == {"contact_email": "email", "contact_phone": "phone"}
    # the stray type values ('guardian', 'Student', ...) are findings, not targets
    assert any("discriminator findings" in e for e in requester.evidence)
    tutor = found.find("reference", "session_requests", "tutor_id")
    assert tutor is not None and tutor.violations and tutor.violations > 0
    assert tutor.check["mis_key"]["through"] == "user_id"
    assert {
        "via": {
            "column": "package_id",
            "table": "tutor_packages",
            "key": "id",
            "target_column": "tutor_id",
        }
    } in tutor.check["mis_key"]["evidence"]
    # every small id is also a users.id: the alternative is recorded
    assert any(a.startswith("users.id") for a in tutor.alternatives)


def test_astegni_discovered_suite_flags_what_the_hand_written_one_does(  # type: ignore[no-untyped-def]
    astegni_without_fks, suite, tmp_path
) -> None:
    uri = astegni_without_fks
    mine = discovered_suite(discover(as_url(uri)), tmp_path / "suite.yml")
    run_audit(as_url(uri), suite, tmp_path / "hand", options=NO_HISTORY)
    run_audit(as_url(uri), mine, tmp_path / "mine", options=NO_HISTORY)
    hand = flagged(tmp_path / "hand", suite)
    got = flagged(tmp_path / "mine", mine)
    reference_ids = [c for c in suite.checks if c.kind in ("reference", "conditional_reference")]
    total = found = 0
    for c in reference_ids:
        want = hand.get((c.table, c.column), set())  # type: ignore[union-attr]
        total += len(want)
        found += len(want & got.get((c.table, c.column), set()))  # type: ignore[union-attr]
    assert total > 50
    assert found == total  # mis-keys, hidden ones too, orphans and unknown requester types
    # the diagnosis works with the discovered mis_key as with the hand-written one
    lines = violations(tmp_path / "mine")
    diagnoses = {row["diagnosis"] for row in lines if row["check"].endswith("tutor_id.reference")}
    assert {"mis_keyed", "mis_keyed_hidden", "orphan"} <= diagnoses


def lines_by_kind(out: Path, suite: Suite) -> dict[str, set[tuple[str, str, str]]]:
    """(table, key, column) of every violation line, by the kind of the check that flagged it
    (a discriminator finding counts as its conditional reference)."""
    kinds = {c.id: (c.kind, c.table) for c in suite.checks}
    got: dict[str, set[tuple[str, str, str]]] = {}
    for row in violations(out):
        kind, table = kinds.get(row["check"].removesuffix(".discriminator"), ("", ""))
        if kind and kind not in ("constraint", "index", "trigger"):
            got.setdefault(kind, set()).add((table, row["key"], row["column"]))
    return got


def test_astegni_discovered_suite_finds_the_demos_defects(  # type: ignore[no-untyped-def]
    astegni_without_fks, suite, tmp_path
) -> None:
    """Beyond references: NULLs, unknown values, a user with two profiles of one role, a
    package of another tutor or of another name, responded_at against the status, updated_at
    before created_at, e-mail and phone patterns, a duplicate pending request."""
    uri = astegni_without_fks
    found = discover(as_url(uri))
    mine = discovered_suite(found, tmp_path / "suite.yml")
    run_audit(as_url(uri), suite, tmp_path / "hand", options=NO_HISTORY)
    run_audit(as_url(uri), mine, tmp_path / "mine", options=NO_HISTORY)
    hand = lines_by_kind(tmp_path / "hand", suite)
    got = lines_by_kind(tmp_path / "mine", mine)
    kinds = ("reference", "conditional_reference", "not_null", "in_set", "consistency")
    for kind in (*kinds, "row_rule", "pattern", "unique"):
        assert hand[kind] and hand[kind] <= got.get(kind, set()), kind
    phone = found.find("pattern", "session_requests", "contact_phone")
    assert phone is not None and phone.check["regex"] == r"^\+2519[0-9]{8}$"
    responded = found.find("row_rule", "session_requests")
    assert responded is not None
    status = found.find("in_set", "session_requests", "status")
    assert status is not None and sorted(status.check["values"]) == [
        "accepted",
        "pending",
        "rejected",
    ]
    requester_type = found.find("in_set", "session_requests", "requester_type")
    assert requester_type is not None and requester_type.check["values"] == ["student", "parent"]
    matches = {
        (p.check["column"], p.check["match"][0]["column"], p.check["match"][0]["target_column"])
        for p in found.proposals
        if p.kind == "consistency"
    }
    assert matches == {
        ("package_id", "tutor_id", "tutor_id"),
        ("package_id", "package_name", "name"),
    }
    everything = set().union(*hand.values())
    share = len(everything & set().union(*got.values())) / len(everything)
    print(f"rows of the hand-written suite's data checks flagged: {share:.1%}")
    assert share >= 0.95


def test_astegni_through_the_command_line(astegni_without_fks, tmp_path) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "suite.yml"
    proc = refaudit("discover", "--db", astegni_without_fks, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "references" in proc.stdout and str(out) in proc.stdout
    text = out.read_text()
    assert "# data, confidence" in text and "alternative: users.id" in text
    proc = refaudit(
        "run",
        "--db",
        astegni_without_fks,
        "--suite",
        str(out),
        "--out",
        str(tmp_path / "run"),
        "--no-history",
    )
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    checks = {row["check"] for row in violations(tmp_path / "run")}
    assert "session_requests.requester_id.reference.discriminator" in checks


# ------------------------------------------------------------------------ the seed
def test_seed_before_the_declared_users_target_is_questioned(seed_before_db, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri, _ = seed_before_db
    found = discover(as_url(uri))
    tutor = found.find("reference", "session_requests", "tutor_id")
    assert tutor is not None
    assert tutor.check["target"] == {"table": "tutor_profiles", "column": "id"}
    assert tutor.check["mis_key"] == {"key_space": "users", "through": "user_id"}
    assert tutor.violations == 6 and tutor.confidence < 1
    assert any("declared: fk_session_requests_tutor -> users(id)" in e for e in tutor.evidence)
    assert any(a.startswith("users.id") for a in tutor.alternatives)
    [fk] = [p.check for p in found.proposals if p.check.get("name") == "fk_session_requests_tutor"]
    assert fk["references"] == {"table": "tutor_profiles", "columns": ["id"]}
    requester = found.find("conditional_reference", "session_requests", "requester_id")
    assert requester is not None
    assert {v: t["table"] for v, t in requester.check["targets"].items()} == {
        "student": "student_profiles",
        "parent": "parent_profiles",
    }
    assert requester.check["mis_key"]["through"] == "user_id"
    unwanted = [p.check for p in found.proposals if p.check.get("absent")]
    assert [c["name"] for c in unwanted] == ["fk_session_requests_requester"]
    # declared CHECKs and NOT NULLs
    status = found.find("in_set", "session_requests", "status")
    assert status is not None and status.check["values"] == ["pending", "accepted", "rejected"]

    mine = discovered_suite(found, tmp_path / "suite.yml")
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    lines = [r for r in violations(tmp_path / "run") if r["check"] == tutor.check["id"]]
    assert sorted(int(r["key"]) for r in lines) == [1, 2, 3, 4, 5, 6]
    assert {(r["value"], r["diagnosis"], r["proposed_value"]) for r in lines} == {
        ("115", "mis_keyed", "85")
    }
    requesters = [r for r in violations(tmp_path / "run") if r["check"] == requester.check["id"]]
    assert {r["diagnosis"] for r in requesters} == {"mis_keyed"} and len(requesters) == 6


# ------------------------------------------------------------------------ polymorphism
POLYMORPHIC = """
CREATE TABLE student_profiles (id serial PRIMARY KEY, name text);
CREATE TABLE tutor_profiles (id serial PRIMARY KEY, name text);
CREATE TABLE organizations (id integer PRIMARY KEY, name text);
CREATE TABLE comments (id serial PRIMARY KEY, commentable_type text, commentable_id integer,
                       body text);
INSERT INTO student_profiles (name) SELECT 's' || g FROM generate_series(1, 80) g;
INSERT INTO tutor_profiles (name) SELECT 't' || g FROM generate_series(1, 60) g;
INSERT INTO organizations SELECT 9000 + g, 'o' || g FROM generate_series(1, 30) g;
INSERT INTO comments (commentable_type, commentable_id, body)
SELECT CASE g % 3 WHEN 0 THEN 'StudentProfile' WHEN 1 THEN 'TutorProfile' ELSE 'Company' END,
       CASE g % 3 WHEN 0 THEN 1 + g % 80 WHEN 1 THEN 1 + g % 60 ELSE 9001 + g % 30 END,
       'text ' || g
FROM generate_series(1, 600) g;
-- two orphans
UPDATE comments SET commentable_id = 500 WHERE id IN (3, 6);
"""


def test_polymorphic_reference_whose_types_are_class_names(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("poly")
    execute(uri, POLYMORPHIC)
    found = discover(as_url(uri))
    assert references(found)[("comments", "commentable_id")] == {
        "StudentProfile": "student_profiles",
        "TutorProfile": "tutor_profiles",
        "Company": "organizations",  # a class name unlike its table: the ids decide
    }
    proposal = found.find("conditional_reference", "comments", "commentable_id")
    assert proposal is not None and proposal.violations == 2
    mine = discovered_suite(found, tmp_path / "suite.yml")
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    assert flagged(tmp_path / "run", mine)[("comments", "commentable_id")] == {"3", "6"}


STI = """
CREATE TABLE users (id serial PRIMARY KEY, type text NOT NULL, name text);
CREATE TABLE posts (id serial PRIMARY KEY, title text);
CREATE TABLE likes (id serial PRIMARY KEY, likeable_type text, likeable_id integer);
INSERT INTO users (type, name)
SELECT CASE WHEN g % 4 = 0 THEN 'Admin' ELSE 'Member' END, 'u' || g FROM generate_series(1, 200) g;
INSERT INTO posts (title) SELECT 'p' || g FROM generate_series(1, 150) g;
INSERT INTO likes (likeable_type, likeable_id)
SELECT 'Admin', id FROM users WHERE type = 'Admin'
UNION ALL SELECT 'Member', id FROM users WHERE type = 'Member'
UNION ALL SELECT 'Post', id FROM posts;
UPDATE likes SET likeable_id = 777 WHERE id = 10;
"""


def test_single_table_inheritance_several_values_one_table(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("sti")
    execute(uri, STI)
    found = discover(as_url(uri))
    assert references(found)[("likes", "likeable_id")] == {
        "Admin": "users",
        "Member": "users",
        "Post": "posts",
    }
    proposal = found.find("conditional_reference", "likes", "likeable_id")
    assert proposal is not None and proposal.violations == 1
    assert any("users.id" in e and "'Admin'" in e for e in proposal.evidence)
    # the suite loads as it is written (two values naming one table)
    mine = discovered_suite(found, tmp_path / "suite.yml")
    check = mine.check(proposal.check["id"])
    assert {v: t.table for v, t in check.targets.items()} == {  # type: ignore[union-attr]
        "Admin": "users",
        "Member": "users",
        "Post": "posts",
    }


# ------------------------------------------------------------------------ dirty, composite
DIRTY = """
CREATE TABLE customers (id serial PRIMARY KEY, email text UNIQUE, tier smallint NOT NULL
                        CHECK (tier IN (1, 2, 3)), code text UNIQUE NULLS NOT DISTINCT);
CREATE TABLE orders (id serial PRIMARY KEY, customer_id integer, quantity integer,
                     status text CHECK (status = ANY (ARRAY['open', 'paid'])));
CREATE TABLE order_lines (order_id integer, line integer, sku text,
                          PRIMARY KEY (order_id, line));
CREATE TABLE shipments (id serial PRIMARY KEY, order_id integer, line integer,
                        FOREIGN KEY (order_id, line) REFERENCES order_lines (order_id, line)
                        ON DELETE CASCADE);
CREATE INDEX orders_lower_status ON orders (lower(status));
CREATE INDEX orders_customer ON orders (customer_id);
INSERT INTO customers (email, tier, code) SELECT 'c' || g || '@x', 1 + g % 3, 'C' || g
FROM generate_series(1, 120) g;
INSERT INTO orders (customer_id, quantity, status)
SELECT 1 + (g * 7) % 120, 1 + g % 9, CASE WHEN g % 2 = 0 THEN 'open' ELSE 'paid' END
FROM generate_series(1, 500) g;
INSERT INTO order_lines SELECT g, 1, 'sku' FROM generate_series(1, 50) g;
INSERT INTO shipments (order_id, line) SELECT g, 1 FROM generate_series(1, 40) g;
-- three orphans
UPDATE orders SET customer_id = 4000 + id WHERE id IN (11, 22, 33);
"""


def test_dirty_reference_is_proposed_with_its_violations(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("dirtyref")
    execute(uri, DIRTY)
    found = discover(as_url(uri))
    orders = found.find("reference", "orders", "customer_id")
    assert orders is not None
    assert orders.check["target"] == {"table": "customers", "column": "id"}
    assert orders.violations == 3 and orders.confidence > 0.9
    assert "orders.quantity" not in str(references(found))  # small numbers fit every key
    assert ("orders", "quantity") not in references(found)
    # declared: composite key and reference, UNIQUE, CHECK value lists, indexes
    composite = [p.check for p in found.proposals if p.check.get("type") == "foreign_key"]
    assert composite == [
        {
            "id": composite[0]["id"],
            "kind": "constraint",
            "table": "shipments",
            "name": composite[0]["name"],
            "type": "foreign_key",
            "columns": ["order_id", "line"],
            "references": {"table": "order_lines", "columns": ["order_id", "line"]},
            "on_delete": "cascade",
        }
    ]
    composite_ref = [
        p.check for p in found.proposals if p.kind == "reference" and "columns" in p.check
    ]
    assert composite_ref == [
        {
            "id": "shipments.order_id_line.reference",
            "kind": "reference",
            "table": "shipments",
            "columns": ["order_id", "line"],
            "target": {"table": "order_lines", "columns": ["order_id", "line"]},
        }
    ]
    assert any("order_lines has no single-column key" in n for n in found.notes)
    tier = found.find("in_set", "customers", "tier")
    assert tier is not None and tier.check["values"] == [1, 2, 3]
    status = found.find("in_set", "orders", "status")
    assert status is not None and status.check["values"] == ["open", "paid"]
    uniques = {
        tuple(p.check["columns"]): p.check.get("nulls")
        for p in found.proposals
        if p.kind == "unique" and p.table == "customers"
    }
    assert uniques == {("id",): None, ("email",): None, ("code",): "equal"}
    indexes = {
        p.check["name"]: p.check.get("columns") for p in found.proposals if p.kind == "index"
    }
    assert indexes == {"orders_lower_status": None, "orders_customer": ["customer_id"]}

    mine = discovered_suite(found, tmp_path / "suite.yml")
    assert mine.tables["order_lines"].key_columns() == ["order_id", "line"]
    result = run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    assert flagged(tmp_path / "run", mine) == {("orders", "customer_id"): {"11", "22", "33"}}
    failed = {c.id for c in result.checks if c.status == "failed"}
    assert failed == {orders.check["id"]}
    # a shipment of a line that is not there (written past the foreign key): the discovered
    # composite reference flags it
    execute(
        uri,
        "SET session_replication_role = replica; "
        "INSERT INTO shipments (order_id, line) VALUES (70, 2); "
        "SET session_replication_role = DEFAULT",
    )
    run_audit(as_url(uri), mine, tmp_path / "again", options=NO_HISTORY)
    with (tmp_path / "again" / "violations.csv").open(newline="") as f:
        wanted = composite_ref[0]["id"]
        composite_rows = [(r["key"], r["value"]) for r in csv.DictReader(f) if r["check"] == wanted]
    assert composite_rows == [("41", "[70, 2]")]


def test_min_confidence_filters_and_nothing_left_is_a_usage_error(new_database) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("minconf")
    execute(uri, DIRTY)
    found = discover(as_url(uri))
    everything = render_suite(found, 0.0)
    declared_only = render_suite(found, 1.0)
    assert "customer_id.reference" in everything and "customer_id.reference" not in declared_only
    assert "left out" in declared_only
    execute(uri, "DROP TABLE shipments, order_lines, orders, customers")
    with pytest.raises(UsageError, match="--min-confidence"):
        render_suite(discover(as_url(uri)), 0.5)


# ------------------------------------------------------------------------ names
HOSTILE = """
CREATE SCHEMA "My Shop";
CREATE TABLE "My Shop"."Cust""omers" ("Id" serial PRIMARY KEY, "e-mail" text);
CREATE TABLE "My Shop"."order lines" (id serial PRIMARY KEY, "Cust""omer Id" integer,
                                      "kind" text, "target" integer);
CREATE TABLE "My Shop"."a.b" (id serial PRIMARY KEY);
INSERT INTO "My Shop"."Cust""omers" ("e-mail") SELECT 'x' || g FROM generate_series(1, 90) g;
INSERT INTO "My Shop"."order lines" ("Cust""omer Id")
SELECT 1 + g % 90 FROM generate_series(1, 300) g;
UPDATE "My Shop"."order lines" SET "Cust""omer Id" = 999 WHERE id = 5;
"""


def test_hostile_names_are_quoted_everywhere(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("hostile")
    execute(uri, HOSTILE)
    out = tmp_path / "suite.yml"
    proc = refaudit("discover", "--db", uri, "--schema", "My Shop", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(out.read_text())
    assert set(data["tables"]) == {'My Shop.Cust"omers', "My Shop.order lines", 'My Shop."a.b"'}
    [ref] = [c for c in data["checks"] if c["kind"] == "reference"]
    assert ref["column"] == 'Cust"omer Id'
    assert ref["target"] == {"table": 'My Shop.Cust"omers', "column": "Id"}
    proc = refaudit(
        "run", "--db", uri, "--suite", str(out), "--out", str(tmp_path / "run"), "--no-history"
    )
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    lines = [r for r in violations(tmp_path / "run") if r["check"] == ref["id"]]
    assert [(r["key"], r["value"]) for r in lines] == [("5", "999")]


COLONS = """
CREATE TABLE "o:rg" (id int PRIMARY KEY, "ty :pe" text);
CREATE TABLE "p :x" (id int PRIMARY KEY, "o :id" int, "st :at" text);
INSERT INTO "o:rg" SELECT g, CASE WHEN g % 2 = 0 THEN 'A' ELSE 'B' END
FROM generate_series(1, 50) g;
INSERT INTO "p :x" SELECT g, 1 + g % 50, CASE WHEN g % 3 = 0 THEN 'on' ELSE 'off' END
FROM generate_series(1, 500) g;
UPDATE "p :x" SET "o :id" = 77 WHERE id = 9;
"""


def test_a_colon_in_a_name_is_no_bind_parameter(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("colons")
    execute(uri, COLONS)
    out = tmp_path / "suite.yml"
    proc = refaudit("discover", "--db", uri, "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    data = yaml.safe_load(out.read_text())
    [ref] = [c for c in data["checks"] if c["kind"] == "reference"]
    assert (ref["table"], ref["column"], ref["target"]) == (
        "p :x", "o :id", {"table": "o:rg", "column": "id"}
    )
    proc = refaudit(
        "run", "--db", uri, "--suite", str(out), "--out", str(tmp_path / "run"), "--no-history"
    )
    assert proc.returncode == ExitCode.VIOLATIONS, proc.stderr
    lines = [r for r in violations(tmp_path / "run") if r["check"] == ref["id"]]
    assert [(r["key"], r["value"]) for r in lines] == [("9", "77")]


def test_names_fit_singular_plural_and_class_names() -> None:
    assert name_fit("warehouse", "warehouses") == 1.0
    assert name_fit("category", "categories") == 1.0
    assert name_fit("TutorProfile", "tutor_profiles") == 1.0
    assert name_fit("Student", "student_profiles") == 0.9
    assert name_fit("tutor", "tutor_packages") == 0.9
    assert name_fit("requester", "users") == 0.0


# ------------------------------------------------------------------------ the command line
def test_command_line_errors_are_one_line(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = refaudit("discover", "--db", "postgresql://auditor:s3cret-pw@127.0.0.1:1/x")
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "s3cret-pw" not in proc.stderr + proc.stdout and "is the server running" in line
    uri = new_database("cli")
    proc = refaudit("discover", "--db", uri, "--schema", "nowhere")
    assert "--schema nowhere does not exist" in assert_one_line_error(proc, ExitCode.USAGE)
    proc = refaudit("discover", "--db", uri, "--min-confidence", "1.5")
    assert proc.returncode == ExitCode.USAGE
    execute(uri, DIRTY)
    proc = refaudit("discover", "--db", uri, "--out", str(tmp_path / "none" / "suite.yml"))
    assert "cannot write" in assert_one_line_error(proc, ExitCode.USAGE)
    proc = refaudit("discover", "--db", uri)  # the suite on standard output
    assert proc.returncode == 0, proc.stderr
    assert Suite.model_validate(yaml.safe_load(proc.stdout)).tables
    assert "checks on 4 tables" in proc.stderr


# ------------------------------------------------------------------------ generated schemas
SEEDS = tuple(range(1, 10))


def test_generated_schemas_recall_and_precision(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Every foreign key dropped: the discovered suite recovers >= 95% of the true references
    (each discriminator value's table counted on its own) with >= 90% precision, and run as
    it is flags >= 95% of the rows the hand-written suite flags."""
    truth_total = found_total = correct = 0
    hand_rows = matched_rows = 0
    for seed in SEEDS:
        world = generate(seed)
        uri = new_database(f"world{seed}")
        build(uri, world)
        found = discover(as_url(uri))
        truth = set()
        for r in world.references:
            if r.target is not None:
                truth.add((r.table, r.column, None, r.target))
            else:
                truth |= {(r.table, r.column, v, t) for v, t in r.targets.items()}
        got = set()
        for (table, column), target in references(found).items():
            if isinstance(target, str):
                got.add((table, column, None, target))
            else:
                got |= {(table, column, v, t) for v, t in target.items()}
        truth_total += len(truth)
        found_total += len(got)
        correct += len(truth & got)

        hand = Suite.model_validate(world.suite())
        mine = discovered_suite(found, tmp_path / f"suite{seed}.yml")
        run_audit(as_url(uri), hand, tmp_path / f"hand{seed}", options=NO_HISTORY)
        run_audit(as_url(uri), mine, tmp_path / f"mine{seed}", options=NO_HISTORY)
        want = flagged(tmp_path / f"hand{seed}", hand)
        have = flagged(tmp_path / f"mine{seed}", mine)
        for where, keys in want.items():
            hand_rows += len(keys)
            matched_rows += len(keys & have.get(where, set()))
    recall, precision = correct / truth_total, correct / found_total
    print(
        f"recall {recall:.3f} ({correct}/{truth_total}), precision {precision:.3f} "
        f"({correct}/{found_total}), rows {matched_rows}/{hand_rows}"
    )
    assert recall >= 0.95
    assert precision >= 0.90
    assert hand_rows > 20 and matched_rows >= 0.95 * hand_rows


def test_single_table_inheritance_suite_runs_as_it_is(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("sti_run")
    execute(uri, STI)
    mine = discovered_suite(discover(as_url(uri)), tmp_path / "suite.yml")
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    assert flagged(tmp_path / "run", mine) == {("likes", "likeable_id"): {"10"}}


def test_progress_reports_the_stages(new_database) -> None:  # type: ignore[no-untyped-def]
    from tests.test_progress import Recorder

    uri = new_database("progress")
    execute(uri, POLYMORPHIC)
    rec = Recorder()
    discover(as_url(uri), progress=rec)
    stages = [e[1] for e in rec.events if e[0] == "stage"]
    assert stages == [
        "snapshot/1",
        "catalog/1",
        "profiles/4",
        "references/1",
        "conditional/1",
        "generic/1",
        "mis-keys/1",
        "rules/4",
    ]
    assert ("step", "comments.commentable_id by commentable_type") in rec.events
    assert rec.events[-1] == ("done", "")


# ------------------------------------------------------------------------ STI target `where`
ODD_TYPE = "Odd'\"--*/\n#Kind: x"
"""A type value with quotes, a newline, SQL comment markers and YAML syntax in it."""

RAILS_STI = f"""
CREATE TABLE users (id serial PRIMARY KEY, type text NOT NULL, name text);
CREATE TABLE posts (id serial PRIMARY KEY, user_id integer REFERENCES users, title text);
CREATE TABLE comments (id serial PRIMARY KEY, post_id integer REFERENCES posts, body text);
CREATE TABLE reactions (id serial PRIMARY KEY, reactable_type text, reactable_id integer);
INSERT INTO users (type, name)
SELECT CASE g % 3 WHEN 0 THEN 'AdminUser' WHEN 1 THEN 'User' ELSE $h${ODD_TYPE}$h$ END, 'u' || g
FROM generate_series(1, 300) g;
INSERT INTO posts (user_id, title) SELECT 1 + (g * 7) % 300, 'p' || g
FROM generate_series(1, 200) g;
INSERT INTO comments (post_id, body) SELECT 1 + g % 200, 'c' || g FROM generate_series(1, 150) g;
INSERT INTO reactions (reactable_type, reactable_id)
SELECT type, id FROM users
UNION ALL SELECT 'Post', id FROM posts
UNION ALL SELECT 'Comment', id FROM comments;
"""


def sti_wrong_types(uri: str) -> set[str]:
    """Rows whose id is a users row of another type (three AdminUser reactions naming a
    User, one of the odd type naming an AdminUser), and one id that is no row at all."""
    execute(
        uri,
        """
        UPDATE reactions SET reactable_id = 1 WHERE id IN (
            SELECT id FROM reactions WHERE reactable_type = 'AdminUser' ORDER BY id LIMIT 3);
        UPDATE reactions SET reactable_id = 3 WHERE id = (
            SELECT max(id) FROM reactions WHERE reactable_type NOT IN
            ('User', 'AdminUser', 'Post', 'Comment'));
        UPDATE reactions SET reactable_id = 9999 WHERE id = (
            SELECT max(id) FROM reactions WHERE reactable_type = 'User');
        """,
    )
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT r.id FROM reactions r LEFT JOIN users u ON u.id = r.reactable_id "
                "WHERE r.reactable_type NOT IN ('Post', 'Comment') "
                "AND u.type IS DISTINCT FROM r.reactable_type"
            )
            return {str(r[0]) for r in cur.fetchall()}
    finally:
        conn.close()


def test_single_table_inheritance_targets_get_a_where(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("sti_where")
    execute(uri, RAILS_STI)
    drop_foreign_keys(uri)
    wrong = sti_wrong_types(uri)
    assert len(wrong) == 5
    found = discover(as_url(uri))
    proposal = found.find("conditional_reference", "reactions", "reactable_id")
    assert proposal is not None
    targets = proposal.check["targets"]
    users = {"table": "users", "column": "id"}
    assert targets == {
        "AdminUser": {**users, "where": {"column": "type", "eq": "AdminUser"}},
        "Comment": {"table": "comments", "column": "id"},
        "Post": {"table": "posts", "column": "id"},
        "User": {**users, "where": {"column": "type", "eq": "User"}},
        ODD_TYPE: {**users, "where": {"column": "type", "eq": ODD_TYPE}},
    }
    assert proposal.violations == 5
    assert any("where users.type = 'AdminUser': 97 of the 100 ids" in e for e in proposal.evidence)
    # the plain references are found as well
    refs = references(found)
    assert refs[("posts", "user_id")] == "users" and refs[("comments", "post_id")] == "posts"
    # the odd value survives the YAML exactly; the suite runs as it is and flags the
    # wrong-type rows and the dangling one, no clean row
    path = tmp_path / "suite.yml"
    text = write_suite(found, path)
    loaded = yaml.safe_load(text)
    [check] = [c for c in loaded["checks"] if c["id"] == proposal.check["id"]]
    assert check["targets"][ODD_TYPE]["where"]["eq"] == ODD_TYPE
    mine = load_suite(path)
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    assert flagged(tmp_path / "run", mine)[("reactions", "reactable_id")] == wrong


def test_sti_where_only_when_the_data_tells_the_types_apart(new_database) -> None:  # type: ignore[no-untyped-def]
    """Ids of any type under every value: no `where` (the type column says nothing)."""
    uri = new_database("sti_mixed")
    execute(
        uri,
        """
        CREATE TABLE users (id serial PRIMARY KEY, type text NOT NULL);
        CREATE TABLE posts (id serial PRIMARY KEY);
        CREATE TABLE likes (id serial PRIMARY KEY, likeable_type text, likeable_id integer);
        INSERT INTO users (type) SELECT CASE WHEN g % 4 = 0 THEN 'Admin' ELSE 'Member' END
        FROM generate_series(1, 200) g;
        INSERT INTO posts SELECT FROM generate_series(1, 150);
        INSERT INTO likes (likeable_type, likeable_id)
        SELECT CASE WHEN g % 2 = 0 THEN 'Admin' ELSE 'Member' END, 1 + (g * 7) % 200
        FROM generate_series(1, 400) g
        UNION ALL SELECT 'Post', g FROM generate_series(1, 150) g;
        """,
    )
    found = discover(as_url(uri))
    proposal = found.find("conditional_reference", "likes", "likeable_id")
    assert proposal is not None
    assert {v: t.get("where") for v, t in proposal.check["targets"].items()} == {
        "Admin": None,
        "Member": None,
        "Post": None,
    }


# ------------------------------------------------------------------------ keys that are no PK
UNIQUE_KEYS = """
CREATE TABLE accounts (id serial PRIMARY KEY, login text NOT NULL, code text UNIQUE);
CREATE UNIQUE INDEX accounts_login ON accounts (login);
CREATE TABLE devices (serial_no text NOT NULL, label text);
CREATE UNIQUE INDEX devices_serial ON devices (serial_no);
CREATE UNIQUE INDEX devices_label_live ON devices (label) WHERE label <> '';
CREATE TABLE logins (id serial PRIMARY KEY, account_login text, account_code text,
                     device_serial text);
INSERT INTO accounts (login, code) SELECT 'user' || g, 'A-' || g FROM generate_series(1, 120) g;
INSERT INTO devices SELECT 'SN' || lpad(g::text, 5, '0'), 'd' || g FROM generate_series(1, 80) g;
INSERT INTO logins (account_login, account_code, device_serial)
SELECT 'user' || (1 + g % 120), 'A-' || (1 + (g * 7) % 120),
       'SN' || lpad((1 + g % 80)::text, 5, '0')
FROM generate_series(1, 400) g;
UPDATE logins SET account_login = 'ghost' WHERE id = 7;
UPDATE logins SET account_code = 'A-999' WHERE id = 8;
UPDATE logins SET device_serial = 'SN99999' WHERE id = 9;
"""


def test_references_to_keys_that_are_no_primary_key(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Targets keyed by a UNIQUE constraint, by a unique index beside the primary key, and by
    a unique index on a table without a primary key: each found, and its orphan flagged. A
    partial unique index is no key."""
    uri = new_database("uniquekeys")
    execute(uri, UNIQUE_KEYS)
    found = discover(as_url(uri))
    refs = {
        (p.table, p.check["column"]): (p.check["target"]["table"], p.check["target"]["column"])
        for p in found.references()
    }
    assert refs == {
        ("logins", "account_login"): ("accounts", "login"),
        ("logins", "account_code"): ("accounts", "code"),
        ("logins", "device_serial"): ("devices", "serial_no"),
    }
    assert not any("devices has no single-column key" in n for n in found.notes)
    mine = discovered_suite(found, tmp_path / "suite.yml")
    assert mine.tables["devices"].key == "serial_no"
    [unique] = [p for p in found.proposals if p.kind == "unique" and p.table == "devices"]
    assert unique.check["columns"] == ["serial_no"]  # not the partial index's label
    assert unique.evidence == ["UNIQUE INDEX devices_serial (serial_no) in the catalog"]
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    assert flagged(tmp_path / "run", mine) == {
        ("logins", "account_login"): {"7"},
        ("logins", "account_code"): {"8"},
        ("logins", "device_serial"): {"9"},
    }


# ------------------------------------------------------------------------ composite, inferred
TENANTS = """
CREATE TABLE tenants (id integer PRIMARY KEY, name text);
CREATE TABLE orders (tenant_id integer REFERENCES tenants, id integer, note text,
                     PRIMARY KEY (tenant_id, id));
CREATE TABLE invoices (tenant_id integer, id integer, total integer, PRIMARY KEY (tenant_id, id));
CREATE TABLE order_items (id serial PRIMARY KEY, tenant_id integer, order_id integer, qty integer,
                          FOREIGN KEY (tenant_id, order_id) REFERENCES orders);
INSERT INTO tenants SELECT g, 't' || g FROM generate_series(1, 5) g;
INSERT INTO orders SELECT t, o, 'n' FROM generate_series(1, 5) t,
                   LATERAL generate_series(1, 20 + 5 * t) o;
INSERT INTO invoices SELECT t, o, 100 * o FROM generate_series(1, 5) t,
                     LATERAL generate_series(1, 30) o;
INSERT INTO order_items (tenant_id, order_id, qty)
SELECT 1 + g % 5, 1 + (g * 7) % (20 + 5 * (1 + g % 5)), 1 + g % 4 FROM generate_series(1, 600) g;
"""


def test_composite_reference_inferred_from_the_data(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("composite_inferred")
    execute(uri, TENANTS)
    drop_foreign_keys(uri)
    # an order of tenant 5's numbers under tenant 1: every single column exists, the pair not
    execute(uri, "UPDATE order_items SET order_id = 44 WHERE id = 17 AND tenant_id = 3")
    execute(uri, "UPDATE order_items SET tenant_id = 1, order_id = 44 WHERE id = 17")
    found = discover(as_url(uri))
    composite = [p for p in found.proposals if p.kind == "reference" and "columns" in p.check]
    assert [p.check for p in composite] == [
        {
            "id": "order_items.tenant_id_order_id.reference",
            "kind": "reference",
            "table": "order_items",
            "columns": ["tenant_id", "order_id"],
            "target": {"table": "orders", "columns": ["tenant_id", "id"]},
        }
    ]
    [p] = composite
    assert p.source == "data" and p.violations == 1 and p.confidence > 0.9
    assert p.evidence[0].startswith("(tenant_id, order_id): orders(tenant_id, id) (99.8% of 600")
    # invoices(tenant_id, id) is its own key, not a reference to orders by the names alone
    assert references(found)[("order_items", "tenant_id")] == "tenants"
    assert references(found)[("orders", "tenant_id")] == "tenants"
    mine = discovered_suite(found, tmp_path / "suite.yml")
    assert mine.tables["orders"].key_columns() == ["tenant_id", "id"]
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    rows = violations(tmp_path / "run")
    assert [(r["key"], r["value"]) for r in rows if r["check"] == p.check["id"]] == [
        ("17", "[1, 44]")
    ]


# ------------------------------------------------------------------------ row rules, patterns
RULES = """
CREATE TABLE events (id serial PRIMARY KEY, status text NOT NULL, created_at timestamp,
                     updated_at timestamp, "closed: at -- */" timestamp, phone text,
                     email text, note text);
INSERT INTO events (status, created_at, updated_at, "closed: at -- */", phone, email, note)
SELECT CASE WHEN g % 2 = 0 THEN E'done: it''s -- */ $$\\n"x"' ELSE 'open' END,
       timestamp '2026-01-01' + g * interval '1 hour',
       timestamp '2026-01-03' + g * interval '1 hour' + (g % 5) * interval '1 minute',
       CASE WHEN g % 2 = 0 THEN timestamp '2026-01-02' + g * interval '1 hour' END,
       '+4915' || lpad(((g * 7919) % 100000000)::text, 8, '0'),
       'user' || g || '@example.com',
       substr(md5(g::text), 1, 1 + g % 17) || CASE WHEN g % 3 = 0 THEN ' x-' || g ELSE '' END
FROM generate_series(1, 200) g;
-- the faults: 2 updated before created, 2 closed_at against the status, 2 phones, 2 e-mails
UPDATE events SET updated_at = created_at - interval '1 hour' WHERE id IN (7, 8);
UPDATE events SET "closed: at -- */" = NULL WHERE id = 10;
UPDATE events SET "closed: at -- */" = created_at + interval '1 day' WHERE id = 11;
UPDATE events SET phone = CASE id WHEN 20 THEN '0151 234' ELSE 'n/a' END WHERE id IN (20, 21);
UPDATE events SET email = CASE id WHEN 30 THEN 'user30 at example' ELSE 'bad@' END
WHERE id IN (30, 31);
"""
RULE_FAULTS = {"7", "8", "10", "11", "20", "21", "30", "31"}


def test_row_rules_and_patterns_with_their_exact_violations(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("rules")
    execute(uri, RULES)
    found = discover(as_url(uri))
    closed, done = "closed: at -- */", 'done: it\'s -- */ $$\n"x"'
    rules = {str(p.check["columns"]): p for p in found.proposals if p.kind == "row_rule"}
    after = rules[str(["updated_at", "created_at"])]
    assert after.check["require"] == {"column": "updated_at", "ge": {"column": "created_at"}}
    assert after.violations == 2 and after.source == "data"
    when = rules[str(["status", closed])]
    assert when.violations == 2
    assert sorted(when.check["where"]["in"]) == sorted([done, "open"])
    assert when.check["require"]["any"][0]["all"] == [
        {"column": "status", "in": [done]},
        {"column": closed, "is_null": False},
    ]
    patterns = {p.check["column"]: p for p in found.proposals if p.kind == "pattern"}
    assert set(patterns) == {"phone", "email"}  # the notes share no shape
    assert patterns["phone"].check["regex"].startswith(r"^\+4915")
    assert patterns["phone"].violations == 2 and patterns["email"].violations == 2
    assert "pattern" not in render_suite(found, 0.99)  # --min-confidence leaves them out

    mine = discovered_suite(found, tmp_path / "suite.yml")
    loaded = {c.id: c for c in mine.checks}
    assert loaded[when.check["id"]].where.in_ == when.check["where"]["in"]  # type: ignore[union-attr]
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    data_ids = {p.check["id"] for p in found.proposals if p.source == "data"}
    rows = [r for r in violations(tmp_path / "run") if r["check"] in data_ids]
    assert {r["key"] for r in rows} == RULE_FAULTS
    by_check: dict[str, set[str]] = {}
    for r in rows:
        by_check.setdefault(r["check"], set()).add(r["key"])
    assert by_check[after.check["id"]] == {"7", "8"}
    assert by_check[when.check["id"]] == {"10", "11"}
    assert by_check[patterns["phone"].check["id"]] == {"20", "21"}
    assert by_check[patterns["email"].check["id"]] == {"30", "31"}


PENDING = """
CREATE TABLE tutors (id serial PRIMARY KEY);
CREATE TABLE students (id serial PRIMARY KEY);
CREATE TABLE packages (id serial PRIMARY KEY);
INSERT INTO tutors SELECT FROM generate_series(1, 10);
INSERT INTO students SELECT FROM generate_series(1, 30);
INSERT INTO packages SELECT FROM generate_series(1, 5);
CREATE TABLE requests (id serial PRIMARY KEY, tutor_id integer REFERENCES tutors,
                       student_id integer REFERENCES students,
                       package_id integer REFERENCES packages, status text NOT NULL);
INSERT INTO requests (tutor_id, student_id, package_id, status)
SELECT 1 + g % 10, 1 + g % 30, 1 + g % 5, 'accepted' FROM generate_series(1, 300) g;
INSERT INTO requests (tutor_id, student_id, package_id, status)
SELECT 1 + g % 10, 1 + g / 10, CASE WHEN g % 3 <> 0 THEN 1 + g % 5 END, 'pending'
FROM generate_series(1, 100) g;
-- two duplicate pending requests, one without a package
INSERT INTO requests (tutor_id, student_id, package_id, status)
VALUES (1 + 3 % 10, 1 + 3 / 10, NULL, 'pending'), (1 + 4 % 10, 1 + 4 / 10, 5, 'pending');
"""


def test_unique_among_the_rows_of_one_status(new_database, tmp_path) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("pending")
    execute(uri, PENDING)
    found = discover(as_url(uri))
    got = [p for p in found.proposals if p.kind == "unique" and "where" in p.check]
    assert [p.check for p in got] == [
        {
            "id": "requests.status.pending.unique",
            "kind": "unique",
            "table": "requests",
            "columns": ["tutor_id", "student_id", "package_id"],
            "where": {"column": "status", "eq": "pending"},
            "nulls": "equal",
            "description": "one row per tutor_id, student_id, package_id where status is 'pending'",
            # two rows break it on the data read: a warning, so a run on it passes
            "severity": "warn",
        }
    ]
    assert got[0].violations == 2
    mine = discovered_suite(found, tmp_path / "suite.yml")
    run_audit(as_url(uri), mine, tmp_path / "run", options=NO_HISTORY)
    keys = {r["key"] for r in violations(tmp_path / "run") if r["check"] == got[0].check["id"]}
    assert keys == {"401", "402"}
