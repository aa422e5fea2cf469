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

What the type table says that the suite cannot run with is a finding of the check's own,
`<id>.lookup` (`LOOKUP_SUFFIX`), which fails like any check and is read by every output:

- `unknown_name` (always an error: a mistake of the suite): a target name no type row says,
  with the closest name the table holds; its rows cannot be told apart from rows of any
  other unlisted type.
- `stale_type`: a type row that rows of the check name, that no target maps, and after which
  no table is named (its name's parts joined with `_`, as Django names a model's table, or
  that plus `s`): a type whose model is gone (Django leaves its content type behind), with
  the number of rows naming it. The audit of a snapshot looks for none: the snapshot holds
  the suite's tables only, so it cannot tell a gone model's table from one the suite omits.

Each row naming a type no target maps is besides flagged as `<id>.discriminator`, labelled
`unknown_type` (its id is no type row), `stale_type` or `unmapped_type` (a type whose table
exists but that the suite does not list).
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .checks.base import Violation
from .checks.enforce import condition_sql
from .checks.reference import LOOKUP_SUFFIX, ConditionalReferenceCheck
from .sqltext import ident, literal, table
from .suite import Suite


@dataclass
class Resolution:
    """What the type table of one check said."""

    check: str
    table: str
    ids: dict[str, list[str]] = field(default_factory=dict)  # target name -> its ids
    unknown: list[str] = field(default_factory=list)  # target names no type row says
    suggestions: dict[str, str] = field(default_factory=dict)  # unknown name -> closest name
    types: int = 0  # rows of the type table
    stale: dict[str, int] = field(default_factory=dict)  # stale type id -> rows naming it
    names: dict[str, str] = field(default_factory=dict)  # every type id -> its name

    def to_dict(self) -> dict[str, Any]:
        return {
            "check": self.check,
            "table": self.table,
            "types": self.types,
            "ids": self.ids,
            "unknown": self.unknown,
            "suggestions": self.suggestions,
            "stale": {self.names[i]: n for i, n in self.stale.items()},
        }

    def findings(self, check: ConditionalReferenceCheck) -> list[Violation]:
        """The check's `<id>.lookup` findings: one per unknown name, one per stale type."""
        assert check.lookup is not None
        rule, names = check.id + LOOKUP_SUFFIX, ",".join(check.lookup.name_columns())
        out = [
            Violation(
                rule, self.table, name, names, name, diagnosis="unknown_name", evidence=note
            )
            for name, note in zip(self.unknown, self.notes(), strict=True)
        ]
        for type_id, rows in self.stale.items():
            name = self.names[type_id]
            out.append(
                Violation(
                    rule,
                    self.table,
                    type_id,
                    names,
                    name,
                    diagnosis="stale_type",
                    evidence=(
                        f"{check.discriminator} {type_id} is {name} in {self.table}, after "
                        f"which no table is named: a stale type; {rows:,} "
                        f"row{'s' if rows != 1 else ''} of {check.table} name it"
                    ),
                )
            )
        return out

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


def resolve_lookups(
    conn: Connection, suite: Suite, *, stale: bool = True
) -> tuple[Suite, list[Resolution]]:
    """`suite` with every conditional reference's `lookup` resolved: targets keyed by the
    type table's ids, the names of all its rows as labels, and its `<id>.lookup` findings;
    and what each table said. `stale` False reads no row of the checks' own tables (no
    stale type is looked for)."""
    checks: list[Any] = []
    found: list[Resolution] = []
    for check in suite.checks:
        if not isinstance(check, ConditionalReferenceCheck) or check.lookup is None:
            checks.append(check)
            continue
        resolved, resolution = _resolve(conn, check, stale)
        checks.append(resolved)
        found.append(resolution)
    if not found:
        return suite, []
    return suite.model_copy(update={"checks": checks}), found


def _resolve(
    conn: Connection, check: ConditionalReferenceCheck, stale: bool
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
    resolution = Resolution(check.id, lookup.table, types=len(rows), names=labels)
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
    if stale:
        resolution.stale = _stale_types(conn, check, set(targets), labels)
    found = resolution.findings(check)
    return check.resolved(targets, labels, set(resolution.stale), found), resolution


def _stale_types(
    conn: Connection, check: ConditionalReferenceCheck, mapped: set[str], labels: dict[str, str]
) -> dict[str, int]:
    """Type id -> rows of the check naming it, for every type row those rows name that no
    target maps and after which no table is named (see the module's doc). One statement
    over the check's rows (those its `where` keeps, whose ids are not NULL), grouped by
    type."""
    assert check.lookup is not None
    disc = f"t.{ident(check.discriminator)}"
    kept = [f"{disc} IS NOT NULL", *(f"t.{ident(c)} IS NOT NULL" for c in check.key_of_row())]
    where = check.row_filter()
    if where is not None:
        kept.append(f"coalesce(({condition_sql(where, 't.')}), false)")
    if mapped:
        kept.append(f"{disc}::pg_catalog.text NOT IN ({', '.join(map(literal, sorted(mapped)))})")
    named = conn.execute(
        sa.text(
            f"SELECT {disc}::pg_catalog.text AS id, count(*) AS n FROM {table(check.table)} t "
            f"WHERE {' AND '.join(kept)} GROUP BY 1 ORDER BY 1"
        )
    ).all()
    typed = {str(r.id): int(r.n) for r in named if str(r.id) in labels}
    if not typed:
        return {}
    separator = check.lookup.separator
    tables = {i: labels[i].replace(separator, "_") if separator else labels[i] for i in typed}
    probe = ", ".join(
        f"pg_catalog.to_regclass(pg_catalog.quote_ident({literal(name)})) IS NOT NULL OR "
        f"pg_catalog.to_regclass(pg_catalog.quote_ident({literal(name + 's')})) IS NOT NULL"
        for name in tables.values()
    )
    exists = conn.execute(sa.text(f"SELECT {probe}")).one()
    return {i: typed[i] for i, there in zip(tables, exists, strict=True) if not there}
