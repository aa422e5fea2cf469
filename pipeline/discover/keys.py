"""Stage 2b, key inference: a table whose catalog declares no key (an inheritance child, a
link table, a table whose keys were never declared) still has rows a suite must name, and
may be the target of references. Its key is what its rows hold: the columns NOT NULL on
every row and unique together, one column where one will do (an `id`-like name first),
else two. One statement per table counts the distinct values of every candidate column and
pair (HoPF, Jiang & Naumann 2020, infers keys the same way before it scores references)."""

from __future__ import annotations

import itertools

import sqlalchemy as sa

from ..checks import UniqueCheck
from .context import Discoverer
from .model import Proposal, TableInfo, _q, _q_table, check_id
from .names import tokens

MAX_KEY_COLUMNS = 12
"""Columns tried as a single-column key, per table."""
MAX_PAIR_COLUMNS = 6
"""Columns whose pairs are tried where no single column is a key."""


def needs_key(t: TableInfo) -> bool:
    """A table with no key at all in its catalog (a link table keyed by two columns has
    its key: a column of it unique by chance is none)."""
    return not t.primary_key and not t.all_uniques()


def infer_key(ctx: Discoverer, t: TableInfo) -> Proposal | None:
    """Set `t.inferred` to the key its rows hold, if any, and return it as a `unique` to
    propose (the caller adds it, in table order, whichever connection read it).
    An empty table holds no evidence but its names: a NOT NULL column named as its
    table's key is (`id`, `order_id` of `orders`), or its first column named as a key
    (`customer_type_id` of `customer_demographics`), so that
    references to it can be proposed by name; nothing is proposed of it."""
    if not t.rows:
        first = next(iter(t.columns), None)
        named = [
            c
            for c in t.columns.values()
            if c.not_null
            and (_id_like(c.name, t) >= 2 or (c.name == first and _id_like(c.name, t)))
        ]
        if named:
            t.inferred = [named[0].name]
        return None
    columns = [
        c.name
        for c in t.columns.values()
        if c.family in ("number", "text", "uuid") and ctx.nonnull.get((t.name, c.name)) == t.rows
    ]
    columns.sort(key=lambda name: -_id_like(name, t))
    columns = columns[:MAX_KEY_COLUMNS]
    if not columns:
        return None
    singles = [c for c, n in zip(columns, _distinct(ctx, t, columns), strict=True) if n == t.rows]
    if singles:
        t.inferred = [singles[0]]
        t.inferred_alternates = singles[1:]
    else:  # only where no column will do: a pair (a link table without its key)
        pairs = list(itertools.combinations(columns[:MAX_PAIR_COLUMNS], 2))
        tuples = [f"({_q(a)}, {_q(b)})" for a, b in pairs]
        held = zip(pairs, _distinct(ctx, t, tuples, quoted=True), strict=True)
        doubles = [list(p) for p, n in held if n == t.rows]
        if not doubles:
            return None
        t.inferred = doubles[0]
    names = ", ".join(t.inferred)
    return Proposal(
        UniqueCheck.propose(
            check_id(t.name, *t.inferred, "unique"),
            t.name,
            list(t.inferred),
            description=f"{names}: the key the rows hold (the catalog declares none)",
        ),
        "data",
        0.8,
        [f"{names} NOT NULL and unique on all {t.rows} rows; no key in the catalog"],
        violations=0,
    )


def _distinct(
    ctx: Discoverer, t: TableInfo, exprs: list[str], *, quoted: bool = False
) -> list[int]:
    """The distinct values of each column (or row of columns) of `t`, in one statement;
    none where PostgreSQL refuses it (a type without equality is no key)."""
    if not exprs:
        return []
    counts = ", ".join(f"count(DISTINCT {e if quoted else _q(e)})" for e in exprs)
    got = ctx.attempt(f"keys of {t.name}", sa.text(f"SELECT {counts} FROM {_q_table(t)}"))
    return [int(n) for n in got[0]] if got else [-1] * len(exprs)


def _id_like(column: str, t: TableInfo) -> float:
    """How much a column's name says it is its table's key: `id`, `payment_id` in
    `payment_p2007_01`, then any `*_id`, then the first columns."""
    words = tokens(column)
    own = tokens(t.relname)
    stem = words[:-1]
    if words == ["id"] or (words[-1:] == ["id"] and stem and stem == own[: len(stem)]):
        return 2.0
    if words[-1:] in (["id"], ["uuid"], ["key"]):
        return 1.0
    return 0.0
