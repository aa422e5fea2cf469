"""Generic relations through a type table, for `refaudit discover`.

A framework's generic relation keeps the type of the row it names as the key of a row of a
*type table* (Django's `content_type_id` -> `django_content_type(id, app_label, model)`),
beside the row's id (`object_id`, or a text `object_pk`). The type rows name tables: their
text columns, joined with `_`, are a table's name (`shop` + `article` -> `shop_article`),
singular or plural alike. Discovery finds such tables from their rows (`type_table`), then
the columns that hold their keys, then the id column beside each whose values, for the rows
of each type, are keys of the table that type names; the suite writes each target by the
type row's name (`shop.article`), never by its id, so it holds on every database of the
project.

Only the pure parts live here (which columns name tables, how a relation's rows are counted);
`refaudit.discover` reads the rows and proposes the checks.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

from .. import sqltext

MAX_TYPE_ROWS = 5_000
"""A type table has at most this many rows."""
MAX_NAME_COLUMNS = 6
"""The text columns of a candidate type table tried as its name (the first ones)."""
MIN_NAMED_TYPES = 2
"""A type table's rows name at least this many tables ..."""
NAMED_SHARE = 0.5
"""... and at least this share of its rows name one."""
MAX_TYPES_USED = 64
"""A referencing column of more type ids than this is not a generic relation's."""


@dataclass
class TypeTable:
    """A table whose rows name tables: the name columns and, per type id, what it says."""

    table: str
    key: str
    name: list[str]
    separator: str
    rows: int
    names: dict[str, str] = field(default_factory=dict)
    """Type id (as text) -> its name as the suite writes it (`shop.article`)."""
    tables: dict[str, str] = field(default_factory=dict)
    """Type id -> the table its name names (only the ids whose name names one)."""

    def lookup(self) -> dict[str, object]:
        """The suite's `lookup:`."""
        name: str | list[str] = self.name[0] if len(self.name) == 1 else list(self.name)
        out: dict[str, object] = {"table": self.table, "key": self.key, "name": name}
        if len(self.name) > 1:
            out["separator"] = self.separator
        return out


def type_table(
    table: str,
    key: str,
    columns: list[str],
    rows: list[tuple[str | None, ...]],
    tables: dict[str, str],
    normal: Callable[[str], str],
) -> TypeTable | None:
    """`table` as a type table, when its rows (`(key, *columns)` as text) name tables: the
    one column, or the ordered pair of columns joined with `_`, whose values name the most
    tables (`tables`: a normal form of each table's name -> the table as the suite writes
    it; `normal` makes that form of a name, singular and plural alike); at least
    MIN_NAMED_TYPES tables and NAMED_SHARE of the rows. The name is written joined by `.`
    (as Django writes `app_label.model`)."""
    if not rows or len(rows) > MAX_TYPE_ROWS:
        return None
    best: tuple[int, int, list[str], dict[str, str], dict[str, str]] | None = None
    index = {c: i + 1 for i, c in enumerate(columns)}
    combos: list[tuple[str, ...]] = [(c,) for c in columns]
    combos += list(itertools.permutations(columns, 2))
    for combo in combos:
        names: dict[str, str] = {}
        named: dict[str, str] = {}
        for row in rows:
            type_id = row[0]
            parts = [row[index[c]] for c in combo]
            if type_id is None or any(p is None or not str(p).strip() for p in parts):
                continue
            texts = [str(p) for p in parts]
            names[type_id] = ".".join(texts)
            target = tables.get(normal("_".join(texts)))
            if target is not None and target != table:
                named[type_id] = target
        hits = len(named)
        if hits < MIN_NAMED_TYPES or hits < NAMED_SHARE * len(rows):
            continue
        rank = (hits, -len(combo))
        if best is None or rank > (best[0], best[1]):
            best = (hits, -len(combo), list(combo), names, named)
    if best is None:
        return None
    _, _, name, names, named = best
    return TypeTable(table, key, name, ".", len(rows), names, named)


def relation_sql(
    table: str,
    column: str,
    id_column: str,
    targets: dict[str, tuple[str, str, tuple[int, int] | None]],
) -> str:
    """SQL: per type id (as text) of `table.column`, the rows whose `id_column` is set, how
    many of them (and of their distinct ids) are keys of the table that type names, and how
    many of the others are ids within that key's range (rows of objects since deleted).
    `targets`: type id -> (the target as SQL, its key column, the key's integer range or
    None). Ids are compared as text, as a text id is with an integer or uuid key."""
    q, d = sqltext.ident(column), sqltext.ident(id_column)
    keys = " UNION ALL ".join(
        f"SELECT {sqltext.literal(type_id)}::text AS d, {sqltext.ident(key)}::text AS k "
        f"FROM {target}"
        for type_id, (target, key, _) in sorted(targets.items())
    )
    ranges = ", ".join(
        f"({sqltext.literal(type_id)}::text, {span[0]}::numeric, {span[1]}::numeric)"
        for type_id, (_, _, span) in sorted(targets.items())
        if span is not None
    )
    within = "false"
    joins = ""
    if ranges:
        joins = f" LEFT JOIN (VALUES {ranges}) r(d, lo, hi) ON r.d = v.d"
        within = (
            "(k.k IS NULL AND CASE WHEN v.v ~ '^[0-9]{1,18}$' "
            "THEN v.v::numeric BETWEEN r.lo AND r.hi END)"
        )
    return (
        f"WITH v AS MATERIALIZED (SELECT {q}::text AS d, {d}::text AS v, count(*) AS n "
        f"FROM {table} WHERE {q} IS NOT NULL AND {d} IS NOT NULL GROUP BY 1, 2), "
        f"k AS ({keys}) "
        "SELECT v.d, sum(v.n), sum(v.n) FILTER (WHERE k.k IS NOT NULL), count(*), "
        f"count(*) FILTER (WHERE k.k IS NOT NULL), sum(v.n) FILTER (WHERE {within}) "
        f"FROM v LEFT JOIN k ON k.d = v.d AND k.k = v.v{joins} GROUP BY v.d"
    )


@dataclass(frozen=True)
class TypeCount:
    """How the ids of the rows of one type fall in the key of the table it names."""

    rows: int
    found: int
    distinct: int
    distinct_found: int
    gaps: int
    """Rows not found whose id lies within the key's range (an object since deleted)."""

    @property
    def missing(self) -> int:
        return self.rows - self.found

    @property
    def coverage(self) -> float:
        return self.found / self.rows if self.rows else 0.0
