"""constraints.sql's conditional-reference triggers enforce like a foreign key, whoever writes:
on the Astegni world, with its tables owned by a DBA role that applies constraints.sql, an
application role that may only insert into and update `session_requests` (and use the schema)
cannot slip an invalid `requester_id` past them with a temporary table named like a target;
its honest inserts need no right on the target tables (a foreign key asks for none); a
session whose search_path lacks the tables' schema is judged alike; a role that may delete
target rows needs no right on the referencing table. The functions run as the table's owner
(SECURITY DEFINER, search_path pinned), no one else may call them, and rollback.sql still
drops everything constraints.sql added. Where the applying role may not give a function to
the table's owner, it keeps it and says so."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psycopg2
import pytest
from refaudit import sqltext
from refaudit.apply import apply_plan
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.test_repair import AUDITED, audit, psql, public_constraints, query, requests

FUNCTIONS = (
    "trg_session_requests_requester_fn",
    "trg_session_requests_requester_student_profiles_fn",
    "trg_session_requests_requester_parent_profiles_fn",
)
VALID = (
    "INSERT INTO public.session_requests (id, tutor_id, requester_id, requester_type, status) "
    "VALUES ({id}, 85, 27, 'student', 'pending')"
)
INVALID = (
    "INSERT INTO public.session_requests (id, tutor_id, requester_id, requester_type, status) "
    "VALUES ({id}, 85, 424242, 'student', 'pending')"
)


def as_role(uri: str, role: str) -> str:
    """The URI of a session that starts as `role` (SET ROLE at connection, by the superuser)."""
    return uri + ("&" if "?" in uri else "?") + "options=" + quote(f"-c role={role}", safe="")


def run(uri: str, *statements: str) -> list[tuple[Any, ...]]:
    """The statements in one transaction of one session; the last one's rows, if any."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            for s in statements:
                cur.execute(s)
            rows = list(cur.fetchall()) if cur.description else []
        conn.commit()
        return rows
    finally:
        conn.close()


@pytest.fixture
def roles(world: str) -> Iterator[dict[str, str]]:
    """A DBA that owns every table of the world; an application role with INSERT and UPDATE
    on session_requests only; an operator with SELECT and DELETE on student_profiles only."""
    pid = os.getpid()
    made = {
        "dba": f"refaudit_dba_{pid}",
        "app": f"refaudit_app_{pid}",
        "ops": f"refaudit_ops_{pid}",
        "applier": f"refaudit_applier_{pid}",  # no rights; a test gives it some
    }
    dba, app, ops = made["dba"], made["app"], made["ops"]
    for role in made.values():
        execute(world, f"DROP ROLE IF EXISTS {role}")
        execute(world, f"CREATE ROLE {role} NOLOGIN")
    tables = [
        t for (t,) in query(world, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    ]
    execute(world, "; ".join(f"ALTER TABLE public.{t} OWNER TO {dba}" for t in tables))
    execute(
        world,
        f"GRANT USAGE, CREATE ON SCHEMA public TO {dba}; "
        f"GRANT USAGE ON SCHEMA public TO {app}, {ops}; "
        f"GRANT INSERT, UPDATE ON public.session_requests TO {app}; "
        f"GRANT SELECT, DELETE ON public.student_profiles TO {ops}",
    )
    try:
        yield made
    finally:
        names = ", ".join(made.values())
        execute(world, f"REASSIGN OWNED BY {names} TO CURRENT_USER; DROP OWNED BY {names}")
        for role in made.values():
            execute(world, f"DROP ROLE {role}")


def repaired(world: str, suite: Suite, tmp_path: Path) -> Path:
    """The world audited, repaired and its rows for review decided; the run's directory."""
    audit(world, suite, tmp_path / "run")
    apply_plan(as_url(world), tmp_path / "run" / "repair.sql")
    execute(world, "UPDATE session_requests SET tutor_id = 90 WHERE id = 3")
    execute(world, "UPDATE session_requests SET requester_type = 'parent' WHERE id = 9")
    execute(world, "INSERT INTO student_profiles VALUES (500, 50)")  # referenced by no row
    return tmp_path / "run"


def functions(uri: str) -> dict[str, tuple[Any, ...]]:
    """constraints.sql's trigger functions: schema, owner, SECURITY DEFINER, settings."""
    rows = query(
        uri,
        "SELECT proname, pronamespace::regnamespace::text, proowner::regrole::text, prosecdef, "
        "proconfig FROM pg_proc WHERE proname LIKE 'trg_session_requests_requester%'",
    )
    return {r[0]: r[1:] for r in rows}


def test_the_triggers_hold_like_a_foreign_key_for_every_writer(
    world: str, suite: Suite, tmp_path: Path, roles: dict[str, str]
) -> None:
    dba, app, ops = roles["dba"], roles["app"], roles["ops"]
    before_constraints = public_constraints(world)
    before_triggers = query(world, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")
    out = repaired(world, suite, tmp_path)

    # the DBA, owner of the tables and no superuser, applies constraints.sql; again, unchanged
    done = psql(as_role(world, dba), out / "constraints.sql")
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    again = apply_plan(as_url(as_role(world, dba)), out / "constraints.sql")
    assert not again.transactional
    made = functions(world)
    assert made == {
        fn: ("public", dba, True, ["search_path=pg_catalog, pg_temp"]) for fn in FUNCTIONS
    }
    # no one calls them but their triggers, and the writers have no right on the targets
    for fn in FUNCTIONS:
        assert query(
            world, f"SELECT has_function_privilege('{app}', 'public.{fn}()', 'EXECUTE')"
        ) == [(False,)]
    for target in ("student_profiles", "parent_profiles"):
        for right in ("SELECT", "UPDATE"):
            assert query(
                world, f"SELECT has_table_privilege('{app}', 'public.{target}', '{right}')"
            ) == [(False,)]
    assert query(
        world, f"SELECT has_table_privilege('{ops}', 'public.session_requests', 'SELECT')"
    ) == [(False,)]

    # an honest insert needs INSERT on its own table only, as with a foreign key
    as_app = as_role(world, app)
    run(as_app, VALID.format(id=100))
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        run(as_app, INVALID.format(id=101))
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):  # an update is judged alike
        run(as_app, "UPDATE public.session_requests SET requester_id = 424242")

    # a temporary table named like the target stands in for nothing, whatever the path says
    for path in ("pg_temp, public", "public, pg_temp"):
        with pytest.raises(psycopg2.errors.ForeignKeyViolation):
            run(
                as_app,
                f"SET search_path = {path}",
                "CREATE TEMP TABLE student_profiles (id integer, user_id integer)",
                "INSERT INTO pg_temp.student_profiles VALUES (424242, 1)",
                INVALID.format(id=102),
            )

    # a session whose search_path lacks public: valid rows in, invalid ones refused
    run(as_app, "SET search_path = pg_catalog", VALID.format(id=103))
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        run(as_app, "SET search_path = pg_catalog", INVALID.format(id=104))
    assert sorted(
        r for (r,) in query(world, "SELECT id FROM session_requests WHERE id >= 100")
    ) == [
        100,
        103,
    ]

    # the target side: deleting needs no right on the referencing table either
    as_ops = as_role(world, ops)
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        run(
            as_ops,
            "SET search_path = pg_catalog",
            "DELETE FROM public.student_profiles WHERE id = 27",
        )
    run(
        as_ops, "SET search_path = pg_catalog", "DELETE FROM public.student_profiles WHERE id = 500"
    )
    assert query(world, "SELECT count(*) FROM student_profiles WHERE id IN (27, 500)") == [(1,)]

    # rollback.sql still drops every trigger and function constraints.sql added
    execute(world, "DELETE FROM session_requests WHERE id >= 100")
    back = psql(world, out / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert functions(world) == {}
    assert query(world, "SELECT tgname FROM pg_trigger WHERE NOT tgisinternal") == before_triggers
    assert public_constraints(world) == before_constraints
    assert {k: v for k, v in requests(world).items() if k not in (3, 9)} == {
        k: v for k, v in AUDITED.items() if k not in (3, 9)
    }


def test_a_function_the_applier_may_not_give_away_stays_its_own_and_says_so(
    world: str, suite: Suite, tmp_path: Path, roles: dict[str, str]
) -> None:
    """The applying role is a member of the tables' owner, which may not create in the
    schema: PostgreSQL gives a function only to a role that may create in its schema, so the
    applier keeps the functions, a WARNING names each, and the triggers still enforce."""
    dba, app, applier = roles["dba"], roles["app"], roles["applier"]
    out = repaired(world, suite, tmp_path)
    execute(
        world,
        f"REVOKE CREATE ON SCHEMA public FROM PUBLIC, {dba}; "
        f"GRANT USAGE, CREATE ON SCHEMA public TO {applier}; GRANT {dba} TO {applier}",
    )
    done = psql(as_role(world, applier), out / "constraints.sql")
    assert done.returncode == 0, done.stderr
    for fn in FUNCTIONS:
        assert f"public.{fn}() stays owned by {applier}, who may not give it to {dba}" in (
            done.stderr
        ), done.stderr
    assert {fn: owner for fn, (_, owner, *_rest) in functions(world).items()} == {
        fn: applier for fn in FUNCTIONS
    }
    as_app = as_role(world, app)
    run(as_app, VALID.format(id=100))
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        run(as_app, INVALID.format(id=101))


SCHEMA = 'app "s".x\n$$'  # a schema on no search_path, its name hostile


def test_tables_in_a_schema_on_no_search_path(new_database: Any, tmp_path: Path) -> None:
    """The tables live in a schema no session's search_path holds, its name full of quotes, a
    dot, a newline and `$$`: constraints.sql creates the functions there, and the triggers
    judge a session with the default search_path as any other; rollback.sql drops them."""
    uri = new_database("schema")
    s = '"' + SCHEMA.replace('"', '""') + '"'
    execute(
        uri,
        f"CREATE SCHEMA {s}; "
        f"CREATE TABLE {s}.articles (id int PRIMARY KEY); "
        f"CREATE TABLE {s}.videos (id int PRIMARY KEY); "
        f"CREATE TABLE {s}.comments (id int PRIMARY KEY, kind text, item_id int); "
        f"INSERT INTO {s}.articles VALUES (1), (2); INSERT INTO {s}.videos VALUES (7); "
        f"INSERT INTO {s}.comments VALUES (1, 'article', 1), (2, 'video', 7)",
    )
    name = sqltext.join_name(SCHEMA, "{}")
    suite = Suite.model_validate(
        {
            "suite": "schema",
            "tables": {name.format(t): {"key": "id"} for t in ("articles", "videos", "comments")},
            "checks": [
                {"id": "comments.item", "kind": "conditional_reference",
                 "table": name.format("comments"), "column": "item_id", "discriminator": "kind",
                 "targets": {"article": {"table": name.format("articles")},
                             "video": {"table": name.format("videos")}}},
                {"id": "comments.item.trigger", "kind": "trigger",
                 "table": name.format("comments"), "name": "comments_item_ref",
                 "for_check": "comments.item"},
            ],
        }
    )  # fmt: skip
    audit(uri, suite, tmp_path / "run")
    done = psql(uri, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    made = query(
        uri,
        "SELECT proname, pronamespace::regnamespace::text, prosecdef, proconfig FROM pg_proc "
        "WHERE proname LIKE 'comments_item_ref%' ORDER BY proname",
    )
    assert made == [
        (fn, s, True, ["search_path=pg_catalog, pg_temp"])
        for fn in (
            "comments_item_ref_articles_fn",
            "comments_item_ref_fn",
            "comments_item_ref_videos_fn",
        )
    ]
    insert = f"INSERT INTO {s}.comments VALUES (%s, 'video', %s)"
    run(uri, insert % (3, 7))
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        run(uri, insert % (4, 1))  # 1 is an article, no video
    with pytest.raises(psycopg2.errors.ForeignKeyViolation):
        run(uri, f"DELETE FROM {s}.articles WHERE id = 1")
    run(uri, f"DELETE FROM {s}.articles WHERE id = 2")
    back = psql(uri, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert query(uri, "SELECT count(*) FROM pg_proc WHERE proname LIKE 'comments_item_ref%'") == [
        (0,)
    ]
    assert query(uri, "SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal") == [(0,)]
