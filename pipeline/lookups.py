"""Conditional references through a type table (`lookup:`), resolved in the audit's snapshot.

Django's generic relations keep the type of the row they name as `content_type_id`, the key
of a row `(app_label, model)` of `django_content_type`, and those ids follow the order in
which each database ran its migrations: `shop.article` is 19 in one database of a project
and 4 in the next. A suite names each target by what the type row says (`shop.article:
{table: shop_article}`, with `lookup: {table: django_content_type, key: id, name:
[app_label, model]}`), and before any check runs the audit reads the type table, in the
snapshot it audits, to learn the ids: the check then runs as a conditional reference keyed
by those ids (every id a type table gives one name maps to that name's target), and carries
every type row's name (`labels`) so that its evidence speaks in names.

A target name that no type row says is reported (`Resolution.unknown`, with the closest
name the table holds): its rows cannot be told apart from rows of any other unlisted type.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from pipeline.checks.reference import ConditionalReferenceCheck
from pipeline.sqltext import ident, literal, table
from pipeline.suite import Suite


@dataclass
class Resolution:
    """What the type table of one check said."""

    check: str
    table: str
    ids: dict[str, list[str]] = field(default_factory=dict)  # target name -> its ids
    unknown: list[str] = field(default_factory=list)  # target names no type row says
    suggestions: dict[str, str] = field(default_factory=dict)  # unknown name -> closest name
    types: int = 0  # rows of the type table

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "table": self.table,
            "types": self.types,
            "ids": self.ids,
            "unknown": self.unknown,
            "suggestions": self.suggestions,
        }

    def notes(self) -> list[str]:
        """One line per target name the type table does not hold."""
        out = []
        for name in self.unknown:
            hint = self.suggestions.get(name)
            closest = f"; did you mean {hint}?" if hint else ""
            out.append(
                f"{self.check}: no row of {self.table} is {name}: its target is never "
                f"chosen (rows of that type are flagged as naming no target){closest}"
            )
        return out


def resolve_lookups(conn: Connection, suite: Suite) -> tuple[Suite, list[Resolution]]:
    """`suite` with every conditional reference's `lookup` resolved: targets keyed by the
    type table's ids, and the names of all its rows as labels; and what each table said."""
    checks: list[Any] = []
    found: list[Resolution] = []
    for check in suite.checks:
        if not isinstance(check, ConditionalReferenceCheck) or check.lookup is None:
            checks.append(check)
            continue
        resolved, resolution = _resolve(conn, check)
        checks.append(resolved)
        found.append(resolution)
    if not found:
        return suite, []
    return suite.model_copy(update={"checks": checks}), found


def _resolve(
    conn: Connection, check: ConditionalReferenceCheck
) -> tuple[ConditionalReferenceCheck, Resolution]:
    lookup = check.lookup
    assert lookup is not None
    parts = ", ".join(f"{ident(c)}::pg_catalog.text" for c in lookup.name_columns())
    statement = (
        f"SELECT {ident(lookup.key)}::pg_catalog.text AS id, "
        f"pg_catalog.concat_ws({literal(lookup.separator)}, {parts}) AS name "
        f"FROM {table(lookup.table)} ORDER BY 1"
    )
    rows = conn.execute(sa.text(statement)).all()
    labels = {str(r.id): str(r.name) for r in rows if r.id is not None and r.name is not None}
    by_name: dict[str, list[str]] = {}
    for type_id, name in labels.items():
        by_name.setdefault(name, []).append(type_id)
    resolution = Resolution(check.id, lookup.table, types=len(rows))
    targets = {}
    for name, ref in check.targets.items():
        ids = by_name.get(name)
        if not ids:
            resolution.unknown.append(name)
            close = difflib.get_close_matches(name, list(by_name), n=1)
            if close:
                resolution.suggestions[name] = close[0]
            continue
        resolution.ids[name] = ids
        for type_id in ids:
            targets[type_id] = ref
    return check.resolved(targets, labels), resolution
