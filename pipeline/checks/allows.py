"""What a CHECK constraint allows, compared with the suite's rule it stands for.

A `constraint` check of `type: check` with `for_check: <rule>` expects a CHECK that accepts
exactly the rows the rule accepts. Both are asked of PostgreSQL on the same probe rows: the
CHECK as the catalog holds it (`pg_get_constraintdef`) and the rule as constraints.sql would
write it, each evaluated on a row of the table's own type (`jsonb_populate_record`), so every
probe value is converted as a stored value would be. A probe on which they disagree is a
finding: the CHECK lets through a value the rule rejects, or rejects one the rule allows.

Probes, per column of the rule: every literal either expression mentions (so a value added to
the CHECK, `'done'`, is tried), the rule's own values, the empty string, a value no rule
names (`PROBE`) and NULL. Values the column's type cannot hold are skipped.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .. import sqltext
from .enforce import check_expression  # the rule as constraints.sql writes it

if TYPE_CHECKING:
    from ..suite import Suite
    from .catalog import ConstraintCheck

_BODY = re.compile(r"^CHECK \((?P<body>.*)\)(?: NO INHERIT)?(?: NOT VALID)?$", re.DOTALL)
_STRING = re.compile(r"'((?:[^']|'')*)'")
PROBE = "refaudit?"
MAX_PROBES = 200
SHOWN = 3


def check_body(definition: str) -> str | None:
    """The expression of a `CHECK (...)` definition as `pg_get_constraintdef` writes it."""
    m = _BODY.match(definition.strip())
    return m.group("body") if m else None


def _literals(sql: str) -> list[str]:
    return [m.group(1).replace("''", "'") for m in _STRING.finditer(sql)]


def _evaluate(conn: Connection, table: str, expected: str, actual: str, row: dict[str, Any]) -> Any:
    """(rule allows, CHECK allows) for one probe row, or None when the row cannot be made
    (a value its column's type cannot hold) or an expression cannot be evaluated on it."""
    # the expressions are SQL text from the suite and the catalog: a colon in them is text,
    # never a bind parameter (`\:` is SQLAlchemy's escape)
    expected, actual = (e.replace(":", "\\:") for e in (expected, actual))
    stmt = sa.text(
        f"SELECT ({expected}) IS NOT FALSE, ({actual}) IS NOT FALSE "
        f"FROM jsonb_populate_record(CAST(NULL AS {sqltext.table(table)}), "
        "CAST(:row AS jsonb)) AS probe"
    )
    try:
        with conn.begin_nested():
            return conn.execute(stmt, {"row": json.dumps(row)}).one()
    except sa_exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise
        return None


def disagreements(
    conn: Connection, suite: Suite, check: ConstraintCheck, found: dict[str, Any]
) -> str | None:
    """What the catalog's CHECK `found` allows that the rule `check.for_check` does not (or
    the other way round), as one problem; None when they agree on every probe or when
    there is nothing to compare (no rule, an expression refaudit cannot derive)."""
    if found.get("type") != "check" or check.for_check is None:
        return None
    expected = check_expression(suite, check)
    actual = check_body(found.get("definition", ""))
    if expected is None or actual is None:
        return None
    try:
        rule: Any = suite.check(check.for_check)
    except KeyError:
        return None
    values = [str(v) for v in rule.probe_values()]
    candidates = list(dict.fromkeys([*values, *_literals(expected), *_literals(actual), "", PROBE]))
    probes: list[dict[str, Any]] = [{}]  # every column NULL
    for column in rule.column_list():
        probes.extend({column: v} for v in candidates)
    allows: list[str] = []
    rejects: list[str] = []
    for row in probes[:MAX_PROBES]:
        got = _evaluate(conn, check.table, expected, actual, row)
        if got is None or got[0] == got[1]:
            continue
        shown = ", ".join(f"{c}={v!r}" for c, v in row.items()) or "NULL"
        (allows if got[1] else rejects).append(shown)
    problems = []
    if allows:
        problems.append(f"allows {_some(allows)}, which {rule.id} rejects")
    if rejects:
        problems.append(f"rejects {_some(rejects)}, which {rule.id} allows")
    return "; ".join(problems) or None


def _some(items: list[str]) -> str:
    more = f" (+{len(items) - SHOWN} more)" if len(items) > SHOWN else ""
    return ", ".join(items[:SHOWN]) + more
