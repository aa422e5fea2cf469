"""Stage 2, column profiles: row counts, NULLs, min/max (one aggregate scan per table) and
which text columns have few values (`pg_stats.n_distinct` where ANALYZE has run, else a
bounded DISTINCT)."""

from __future__ import annotations

from collections import defaultdict

import sqlalchemy as sa

from .context import Discoverer
from .model import (
    MAX_DISCRIMINATOR_VALUES,
    PREFIX_ROWS,
    ColumnInfo,
    TableInfo,
    _Profile,
    _q,
    _q_table,
)


def profile(ctx: Discoverer, t: TableInfo) -> None:
    """Rows, non-NULL counts and min/max of every comparable column in one scan; small
    distinct counts of text columns (discriminator candidates)."""
    cols = [c for c in t.columns.values() if c.family in ("number", "text", "uuid")]
    exprs = ["count(*)"]
    for c in cols:
        q = _q(c.name)
        cast = "::text" if c.enum else ""
        exprs.append(f"count({q})")
        if c.family == "uuid":
            exprs += [f"min({q}::text)", f"max({q}::text)"]
        else:
            exprs += [f"min({q}{cast})", f"max({q}{cast})"]
    others = [c for c in t.columns.values() if c not in cols]
    exprs += [f"count({_q(c.name)})" for c in others]
    row = ctx.conn.execute(sa.text(f"SELECT {', '.join(exprs)} FROM {_q_table(t)}")).one()
    t.rows = int(row[0])
    for i, c in enumerate(cols):
        prof = _Profile(t.rows, int(row[1 + 3 * i]), row[2 + 3 * i], row[3 + 3 * i])
        ctx.profiles[(t.name, c.name)] = prof
    for i, c in enumerate(others):
        ctx.nonnull[(t.name, c.name)] = int(row[1 + 3 * len(cols) + i])
    for c in cols:
        ctx.nonnull[(t.name, c.name)] = ctx.profiles[(t.name, c.name)].nonnull
    texts = [
        c
        for c in cols
        if c.family == "text" and c.name != t.key and ctx.profiles[(t.name, c.name)].nonnull
    ]
    for c, values in zip(texts, few_values(ctx, t, texts), strict=True):
        ctx.profiles[(t.name, c.name)].values = values


def n_distinct(ctx: Discoverer, t: TableInfo) -> dict[str, float]:
    rows = ctx.conn.execute(
        sa.text(
            "SELECT attname::text, n_distinct FROM pg_stats "
            "WHERE schemaname = :s AND tablename = :t AND NOT inherited"
        ),
        {"s": t.schema, "t": t.relname},
    )
    return {r[0]: float(r[1]) for r in rows}


def few_values(ctx: Discoverer, t: TableInfo, columns: list[ColumnInfo]) -> list[list[str] | None]:
    """Per column, its distinct values when there are at most MAX_DISCRIMINATOR_VALUES,
    else None. Columns with many values are ruled out without a full read: by
    `pg_stats.n_distinct` where ANALYZE has run, else by the first PREFIX_ROWS rows; the
    rest are read in one scan."""
    if not columns:
        return []
    stats = n_distinct(ctx, t)
    limit = MAX_DISCRIMINATOR_VALUES
    candidates = []
    for c in columns:
        estimate = stats.get(c.name)
        n = None if estimate is None else (-estimate * t.rows if estimate < 0 else estimate)
        candidates.append(n is None or n <= 3 * limit)
    probe = [c for c, ok in zip(columns, candidates, strict=True) if ok]
    if probe:
        counts = ", ".join(f"count(DISTINCT {_q(c.name)})" for c in probe)
        names = ", ".join(_q(c.name) for c in probe)
        row = ctx.conn.execute(
            sa.text(
                f"SELECT {counts} FROM (SELECT {names} FROM {_q_table(t)} LIMIT {PREFIX_ROWS}) p"
            )
        ).one()
        probe = [c for c, n in zip(probe, row, strict=True) if n <= limit]
    found: dict[str, list[str] | None] = {}
    if probe:
        # one hashed pass for every column (GROUPING SETS), at most limit + 1 values each
        exprs = [f"{_q(c.name)}::text" for c in probe]
        which = " ".join(f"WHEN GROUPING({e}) = 0 THEN {i}" for i, e in enumerate(exprs))
        grouped = (
            f"SELECT CASE {which} END AS i, coalesce({', '.join(exprs)}) AS value, "
            f"count(*) AS n FROM {_q_table(t)} "
            f"GROUP BY GROUPING SETS ({', '.join(f'({e})' for e in exprs)})"
        )
        values: dict[int, dict[str, int]] = defaultdict(dict)
        for i, value, n in ctx.conn.execute(
            sa.text(
                f"SELECT i, value, n FROM (SELECT g.*, row_number() OVER (PARTITION BY i) "
                f"AS r FROM ({grouped}) g WHERE value IS NOT NULL) w WHERE r <= {limit + 1}"
            )
        ):
            values[int(i)][str(value)] = int(n)
        for i, c in enumerate(probe):
            held = values.get(i, {})
            found[c.name] = sorted(held) if len(held) <= limit else None
            if len(held) <= limit:
                ctx.value_counts[(t.name, c.name)] = held
    return [found.get(c.name) for c in columns]
