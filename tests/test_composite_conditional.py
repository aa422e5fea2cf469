"""Composite keys for conditional references and consistency: a polymorphic reference over
(type, tenant, id) to `orgs(tenant, id)` or, by single-table inheritance, to `people(tenant,
id)` filtered by `kind`; a consistency check over (tenant, org_id). Names and values are
hostile (quotes, newlines, `--`, `*/`, `$$`). Every fault is flagged with its exact key and
label, no clean row is, a row with a NULL among the columns names nothing (MATCH SIMPLE), a
target's `where` limits the target rows that count; repair.sql changes nothing and lists
the findings for review; the GX export and a snapshot count alike; constraints.sql's
triggers accept and refuse as the audit judges."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.errors import ExitCode, SuiteError
from refaudit.suite import Suite, load_suite

from tests.conftest import as_url, execute
from tests.roundtrip import audits_alike_from_a_snapshot
from tests.test_repair import psql, query

REF = 'ref "id"--*/$$\n'  # the notes' target id column
TYPE = "ty'pe */"  # their discriminator
NAME = "org name'--*/"  # the invoices' copy of the org's name
ORG, PERSON, BOT = "Org'--*/", "Per$$son\n", 'Bot"'
T1, T2, T3, T4 = "t'1", "t--2", "t*/3$$", "t\n4"


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def lit(value: str | int | None) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, int):
        return str(value)
    return "'" + value.replace("'", "''") + "'"


def rows(values: list[tuple[Any, ...]]) -> str:
    return ", ".join("(" + ", ".join(lit(v) for v in row) + ")" for row in values)


NOTES = [
    (1, T1, 1, ORG),  # clean
    (2, T1, 10, PERSON),  # clean
    (3, T2, 20, BOT),  # clean
    (4, T4, 4, ORG),  # clean (a newline in the tenant)
    (5, T1, 2, ORG),  # orphan: tenant t'1 has no org 2 (t--2 has)
    (6, T2, 20, ORG),  # wrong type: a bot
    (7, T1, 11, PERSON),  # filtered out: a retired person
    (8, T3, 3, BOT),  # ambiguous: an org and a person
    (9, None, 99, ORG),  # a NULL tenant: names nothing
    (10, T1, None, PERSON),  # a NULL id: names nothing
    (11, T1, 1, "Nope"),  # unknown type: the key is an org's
    (12, T1, 77, None),  # NULL type, the key is nobody's
    (13, None, None, None),  # names nothing
    (14, T2, 2, PERSON),  # wrong type: an org
    (15, T1, 10, BOT),  # wrong type: a person, not a bot (same table, another kind)
    (16, T3, 3, "Nope"),  # unknown type, an org and a person
]
INVOICES = [
    (1, T1, 1, "acme"),  # clean
    (2, T1, 1, "wrong"),  # another name
    (3, None, 1, "zzz"),  # a NULL tenant: names nothing
    (4, T1, 5, "acme"),  # no org (T1, 5): a reference's finding, not this one's
    (5, T2, 2, None),  # no name: NULL is no disagreement
    (6, T4, 4, "x'--*/$$"),  # another name
    (7, T2, 1, "acme"),  # no org (T2, 1), though (T1, 1) is acme
]
SCHEMA = f"""
CREATE TABLE orgs (tenant text, id int, name text, PRIMARY KEY (tenant, id));
CREATE TABLE people (tenant text, id int, kind text, PRIMARY KEY (tenant, id));
CREATE TABLE notes (id int PRIMARY KEY, tenant text, {q(REF)} int, {q(TYPE)} text);
CREATE TABLE invoices (id int PRIMARY KEY, tenant text, org_id int, {q(NAME)} text);
INSERT INTO orgs VALUES {rows([(T1, 1, "acme"), (T2, 2, "globex"), (T3, 3, "initech"),
                              (T4, 4, "x")])};
INSERT INTO people VALUES {rows([(T1, 10, "person"), (T2, 20, "bot"), (T1, 11, "retired"),
                                (T3, 3, "person")])};
INSERT INTO notes VALUES {rows(NOTES)};
INSERT INTO invoices VALUES {rows(INVOICES)};
"""


def person(kind: str) -> dict[str, Any]:
    return {"table": "people", "columns": ["tenant", "id"], "where": {"column": "kind", "eq": kind}}


SUITE: dict[str, Any] = {
    "suite": "polymorphic tenants",
    "tables": {
        "orgs": {"key": ["tenant", "id"]},
        "people": {"key": ["tenant", "id"]},
        "notes": {"key": "id"},
        "invoices": {"key": "id"},
    },
    "checks": [
        {
            "id": "notes.target",
            "kind": "conditional_reference",
            "table": "notes",
            "columns": ["tenant", REF],
            "discriminator": TYPE,
            "targets": {
                ORG: {"table": "orgs", "columns": ["tenant", "id"]},
                PERSON: person("person"),
                BOT: person("bot"),
            },
        },
        {
            "id": "invoices.org_name",
            "kind": "consistency",
            "table": "invoices",
            "columns": ["tenant", "org_id"],
            "target": {"table": "orgs", "columns": ["tenant", "id"]},
            "match": [{"column": NAME, "target_column": "name"}],
        },
        {  # only the orgs its `where` keeps count: (t\n4, 4), named x, does not
            "id": "invoices.org_name.kept",
            "kind": "consistency",
            "table": "invoices",
            "columns": ["tenant", "org_id"],
            "target": {"table": "orgs", "columns": ["tenant", "id"],
                       "where": {"column": "name", "ne": "x"}},
            "match": [{"column": NAME, "target_column": "name"}],
        },
    ],
}  # fmt: skip
TRIGGER = {"id": "notes.target.trigger", "kind": "trigger", "table": "notes",
           "name": "notes_target'trg", "for_check": "notes.target"}  # fmt: skip


def key(tenant: str, id_: int) -> str:
    return json.dumps([tenant, id_], ensure_ascii=False)


ORGS, PEOPLE = "orgs(tenant, id)", "people(tenant, id)"
EXPECTED = [
    ("notes.target", "5", f"tenant,{REF}", key(T1, 2), "orphan", "",
     f"no {ORGS} {key(T1, 2)}; listed for review (a composite reference)"),
    ("notes.target", "6", f"tenant,{REF}", key(T2, 20), "wrong_type", "",
     f"no {ORGS} {key(T2, 20)}, but {PEOPLE} {key(T2, 20)} where kind = 'bot' exists: "
     f"{TYPE} should be {BOT}; listed for review"),
    ("notes.target", "7", f"tenant,{REF}", key(T1, 11), "filtered_out", "",
     f"no {PEOPLE} {key(T1, 11)} where kind = 'person'; the table has it, outside the "
     "target's `where`: listed for review"),
    ("notes.target", "8", f"tenant,{REF}", key(T3, 3), "ambiguous", "",
     f"no {PEOPLE} {key(T3, 3)} where kind = 'bot'; several other targets have it; listed "
     "for review"),
    ("notes.target", "14", f"tenant,{REF}", key(T2, 2), "wrong_type", "",
     f"no {PEOPLE} {key(T2, 2)} where kind = 'person', but {ORGS} {key(T2, 2)} exists: "
     f"{TYPE} should be {ORG}; listed for review"),
    ("notes.target", "15", f"tenant,{REF}", key(T1, 10), "wrong_type", "",
     f"no {PEOPLE} {key(T1, 10)} where kind = 'bot', but {PEOPLE} {key(T1, 10)} "
     f"where kind = 'person' exists: {TYPE} should be {PERSON}; listed for review"),
    ("notes.target.discriminator", "11", TYPE, "Nope", "wrong_type", ORG,
     f"{TYPE} names no target, but {ORGS} {key(T1, 1)} exists"),
    ("notes.target.discriminator", "12", TYPE, "NULL", "", "", ""),
    ("notes.target.discriminator", "16", TYPE, "Nope", "ambiguous", "",
     f"{TYPE} names no target; several targets have {key(T3, 3)}"),
    ("invoices.org_name", "2", NAME, "wrong", "", "", ""),
    ("invoices.org_name", "6", NAME, "x'--*/$$", "", "", ""),
    ("invoices.org_name.kept", "2", NAME, "wrong", "", "", ""),
]  # fmt: skip


@pytest.fixture
def tenants(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("polytenants")
    execute(uri, SCHEMA)
    return uri


def found(out: Path) -> list[tuple[str, ...]]:
    with (out / "violations.csv").open(encoding="utf-8", newline="") as f:
        return sorted(
            (r["check"], r["key"], r["column"], r["value"], r["diagnosis"], r["proposed_value"],
             r["evidence"])
            for r in csv.DictReader(f)
        )  # fmt: skip


def test_every_fault_is_flagged_with_its_key_and_label(tenants: str, tmp_path: Path) -> None:
    suite = Suite.model_validate(SUITE)
    result = run_audit(as_url(tenants), suite, tmp_path / "run", options=AuditOptions(repair=True))
    assert found(tmp_path / "run") == sorted(EXPECTED)
    checked = {c.id: (c.rows_checked, c.violations) for c in result.checks}
    assert checked == {
        "notes.target": (16, 6),
        "notes.target.discriminator": (16, 3),
        "invoices.org_name": (7, 2),
        "invoices.org_name.kept": (7, 1),
    }
    # nothing is changed automatically: every composite finding is listed for review
    repair = (tmp_path / "run" / "repair.sql").read_text(encoding="utf-8")
    assert "-- 0 steps" in repair
    for line in EXPECTED:
        if line[0] == "notes.target":
            assert f"notes {line[1]}: tenant," in repair, line


def test_gx_counts_the_composite_checks_alike(tenants: str, tmp_path: Path) -> None:
    from refaudit.gx_export import export_suite, run_with_gx, write_export

    suite = Suite.model_validate(SUITE)
    result = run_audit(as_url(tenants), suite, tmp_path / "run")
    ours = {c.id: c.violations for c in result.checks}
    write_export(export_suite(suite), tmp_path / "gx")
    gx = run_with_gx(as_url(tenants).render_as_string(hide_password=False), tmp_path / "gx")
    assert gx.broken == {}
    assert gx.counts == ours == {
        "notes.target": 6, "notes.target.discriminator": 3, "invoices.org_name": 2,
        "invoices.org_name.kept": 1,
    }  # fmt: skip


def test_a_snapshot_audits_the_composite_checks_alike(
    tenants: str, pg_server: str, tmp_path: Path
) -> None:
    audits_alike_from_a_snapshot(tenants, Suite.model_validate(SUITE), tmp_path, pg_server)
    assert found(tmp_path / "re") == found(tmp_path / "direct") == sorted(EXPECTED)


def _try(uri: str, sql: str) -> str:
    """'' when PostgreSQL accepts the statement, else its SQLSTATE and message."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
        return ""
    except psycopg2.Error as exc:
        return f"{exc.pgcode} {exc.pgerror}"
    finally:
        conn.close()


def test_constraints_sql_triggers_enforce_the_composite_reference(
    tenants: str, tmp_path: Path
) -> None:
    suite = Suite.model_validate({**SUITE, "checks": [*SUITE["checks"], TRIGGER]})
    run_audit(as_url(tenants), suite, tmp_path / "run", options=AuditOptions(repair=True))
    done = psql(tenants, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    notes = f"INSERT INTO notes (id, tenant, {q(REF)}, {q(TYPE)}) VALUES "
    accepted = [
        notes + rows([(100, T1, 1, ORG)]),
        notes + rows([(101, None, 5, ORG)]),  # MATCH SIMPLE
        notes + rows([(102, T2, 20, BOT)]),
        notes + rows([(103, T4, None, None)]),
        f"UPDATE orgs SET name = 'new' WHERE tenant = {lit(T1)} AND id = 1",
        f"DELETE FROM orgs WHERE tenant = {lit(T3)}",  # named as a bot only, never as an org
        f"UPDATE people SET kind = 'gone' WHERE tenant = {lit(T1)} AND id = 11",
    ]
    for sql in accepted:
        assert _try(tenants, sql) == "", sql
    refused = {
        notes + rows([(110, T1, 10, ORG)]): "23503",  # a person, not an org
        notes + rows([(111, T1, 10, BOT)]): "23503",  # a person, not a bot
        notes + rows([(112, T1, 2, ORG)]): "23503",  # the other tenant's org
        notes + rows([(113, T1, 1, "Nope")]): "23514",  # no such type
        f"UPDATE notes SET {q(REF)} = 2 WHERE id = 1": "23503",
        f"DELETE FROM orgs WHERE tenant = {lit(T1)} AND id = 1": "23503",
        f"UPDATE orgs SET id = 9 WHERE tenant = {lit(T4)} AND id = 4": "23503",
        f"UPDATE people SET kind = 'gone' WHERE tenant = {lit(T1)} AND id = 10": "23503",
        f"UPDATE people SET tenant = 'other' WHERE tenant = {lit(T2)} AND id = 20": "23503",
    }
    for sql, state in refused.items():
        assert _try(tenants, sql).startswith(state), sql
    message = _try(tenants, notes + rows([(120, T1, 10, ORG)]))
    assert f"notes(tenant, {REF}) ({T1}, 10) is not in the table {TYPE} {ORG} names" in message
    message = _try(tenants, f"DELETE FROM orgs WHERE tenant = {lit(T1)} AND id = 1")
    assert f"orgs(tenant, id) ({T1}, 1) is still referenced by notes(tenant, {REF})" in message
    assert query(tenants, "SELECT count(*) FROM notes WHERE id >= 110") == [(0,)]

    back = psql(tenants, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert _try(tenants, notes + rows([(130, T1, 10, ORG)])) == ""  # the triggers are gone


COND = SUITE["checks"][0]
CONS = SUITE["checks"][1]


@pytest.mark.parametrize(
    ("check", "message"),
    [
        ({**COND, "columns": ["tenant"]}, "a composite key of one column; write `column: tenant`"),
        ({**COND, "columns": ["tenant", "tenant"]}, "names `tenant` twice"),
        ({**COND, "columns": ["tenant", REF, "id"]}, "has 3 columns but the target orgs has 2"),
        ({**COND, "columns": ["tenant", TYPE]}, f"the discriminator `{TYPE}` is one of the"),
        ({**COND, "column": REF}, "names `column:` or (a composite key) `columns:`"),
        ({**COND, "targets": {**COND["targets"], ORG: {"table": "orgs"}}},
         "has 2 columns but the target orgs has 1"),
        ({**COND, "on_orphan": "quarantine"}, "`on_orphan: quarantine` is for single-column"),
        ({**COND, "mis_key": {"key_space": "x"}}, "`mis_key` is for single-column references"),
        ({**{k: v for k, v in COND.items() if k != "columns"}, "column": REF},
         "names one column but the target orgs names `columns: [tenant, id]`"),
        ({**CONS, "columns": ["tenant", "org_id", "id"]}, "has 3 columns but the target orgs"),
        ({**CONS, "column": "org_id"}, "a consistency check names `column:` or"),
        ({**{k: v for k, v in CONS.items() if k != "columns"}, "column": "org_id"},
         "names one column but the target orgs names `columns: [tenant, id]`"),
        ({**CONS, "target": {"table": "orgs", "columns": ["tenant", "tenant"]}},
         "the target orgs names `tenant` twice"),
    ],
)  # fmt: skip
def test_composite_mistakes_are_one_line_exit_2(
    tmp_path: Path, check: dict[str, Any], message: str
) -> None:
    import yaml

    path = tmp_path / "suite.yml"
    path.write_text(yaml.safe_dump({**SUITE, "checks": [check]}, sort_keys=False), encoding="utf-8")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    text = str(err.value)
    assert message in text and str(path) in text, text
    assert err.value.exit_code == ExitCode.USAGE
    assert "\n" not in text.replace(REF, ""), text  # one line, but for a name's own newline
