"""The plan files' templates let no value reach the SQL unquoted: a plain string, None, a
float or a bool in a template expression stops the rendering; names and values pass only
through the quoting filters; separators and aliases are the templates' own."""

from __future__ import annotations

from pathlib import Path

import pytest
import refaudit
from refaudit.constraints import AuditedConstraint, guarded_drop
from refaudit.sqlrender import (
    Sql,
    UnquotedValue,
    ident,
    join,
    literal,
    prefixed,
    printable,
    render,
    sep,
    stream,
)
from refaudit.sqltext import psql_lines, statements

HOSTILE = "x'; DROP TABLE users; --\n*/ $$ $refaudit$ \u2028 \\"


@pytest.mark.parametrize("value", ["public.users", None, 1.5, True, b"x"])
def test_an_unquoted_value_stops_the_rendering(value: object) -> None:
    with pytest.raises(UnquotedValue):
        render("add_unless_exists.sql.j2", table="t", name="c", definition=value, not_valid=False)


def test_quoted_values_keep_inside_their_quotes() -> None:
    drop = guarded_drop(AuditedConstraint(HOSTILE, HOSTILE, HOSTILE, (HOSTILE,)))
    assert "\n" not in drop.split("\n", 1)[0]
    (statement,) = statements(psql_lines(drop))
    assert statement.kind == "DoStmt"
    # the hostile text appears only escaped: never a raw newline, line separator or `$$`
    assert "\u2028" not in drop and "DROP TABLE users; --\n" not in drop


def test_filters_take_their_own_kind_of_input_only() -> None:
    assert literal("it's") == "'it''s'" and ident('a"b') == '"a""b"'
    assert printable("keys").startswith("pg_catalog.translate(keys, ")
    with pytest.raises(UnquotedValue):
        printable("keys); DROP TABLE users; --")
    assert join([Sql("a"), Sql("b")], " AND ") == "a AND b"
    with pytest.raises(UnquotedValue):
        join([Sql("a"), "b"])
    with pytest.raises(UnquotedValue):
        join([Sql("a")], "; DROP TABLE users; ")

    class Last:
        last = True

    assert sep(Last()) == ";"
    with pytest.raises(UnquotedValue):
        sep(Last(), ",", "); DROP")
    assert prefixed(Sql("id"), "t") == "t.id"
    with pytest.raises(UnquotedValue):
        prefixed(Sql("id"), "t; DROP")


def test_every_template_is_package_data() -> None:
    """The wheel ships the templates (pyproject's package-data names their folder)."""
    folder = Path(refaudit.__file__).parent / "templates" / "sql"
    names = sorted(p.name for p in folder.glob("*.sql.j2"))
    assert {"repair.sql.j2", "rollback.sql.j2", "constraints.sql.j2", "step.sql.j2"} <= set(
        names
    )
    text = (Path(refaudit.__file__).parent.parent / "pyproject.toml").read_text()
    assert '"templates/sql/*"' in text


def test_no_line_of_a_plan_can_be_a_psql_command() -> None:
    """A second guard behind the filters: SQL that would put a line starting with a
    backslash into a file (a name quoted by something else, with a raw newline) stops the
    rendering; the preamble's own psql lines pass."""
    hostile = Sql('CHECK (x)\n\\! touch /tmp/pwned\n')
    with pytest.raises(UnquotedValue, match="psql command"):
        render("add_unless_exists.sql.j2", table="t", name="c", definition=hostile,
               not_valid=False)  # fmt: skip
    with pytest.raises(UnquotedValue, match="psql command"):
        list(stream("constraints.sql.j2", run_id="r", preamble=Sql(""), sections=[hostile]))
    assert "\\set ON_ERROR_STOP on" in render(
        "constraints.sql.j2", run_id="r", preamble=Sql("\\set ON_ERROR_STOP on"), sections=[]
    )
