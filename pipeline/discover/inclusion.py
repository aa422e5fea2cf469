"""Stage 3, undeclared references: inclusion dependencies between columns and keys, computed
in PostgreSQL (one grouped statement per column that joins its distinct values to every
surviving key, or tests a dense integer key's range); candidates are pruned by type, range
and distinct count first. Composite candidates likewise, one statement per column set."""

from __future__ import annotations

import itertools
from typing import Any

import sqlalchemy as sa

from ..checks import ReferenceCheck
from .context import Discoverer
from .model import (
    _INTEGER_TYPES,
    MAX_KEYS_PER_COLUMN,
    NAME_VOUCHES,
    Candidate,
    ColumnInfo,
    Proposal,
    TableInfo,
    _composite_key,
    _member_tuple,
    _overlaps,
    _pct,
    _q,
    _q_table,
    _range_jaccard,
    _ranked,
    base_type,
    check_id,
    narrow_band,
)
from .names import column_fit, column_stem, name_fit, names_other, value_fit


def is_dependent(ctx: Discoverer, t: TableInfo, c: ColumnInfo) -> bool:
    """A column that may reference a key: comparable, not all NULL, not its table's own
    `id`-like key (a key named after another table, `user_id`, may)."""
    if c.family not in ("number", "text", "uuid"):
        return False
    if c.family == "number" and not c.type.startswith(("smallint", "integer", "bigint", "numeric")):
        return False
    if c.name in t.single_keys() and not any(
        names_other(t, c.name, o, name_fit(column_stem(c.name, "id"), o.name))
        for o in ctx.tables.values()
        if o is not t
    ):
        return False
    prof = ctx.profiles.get((t.name, c.name))
    return prof is not None and prof.nonnull > 0


def keys_for(
    ctx: Discoverer, t: TableInfo, c: ColumnInfo, disc: str | None = None
) -> list[tuple[TableInfo, str]]:
    """The keys `c`'s values may be: same type family (the same type, unless the name
    vouches for the key or a discriminator chooses it), overlapping range; the best
    MAX_KEYS_PER_COLUMN by name (the column's, or a discriminator value's), then by how
    closely the key's range matches the values' (a few orphans beyond it do not matter)."""
    prof = ctx.profiles[(t.name, c.name)]
    values = (ctx.profiles[(t.name, disc)].values or []) if disc is not None else []
    out: list[tuple[tuple[float, float], TableInfo, str]] = []
    for u in ctx.tables.values():
        for k in u.single_keys():
            kc = u.columns[k]
            if (u is t and k == c.name) or kc.family != c.family or u.kin(t):
                continue
            kp = ctx.profiles.get((u.name, k))
            if kp is None or not kp.nonnull:
                continue
            if not _overlaps(prof.low, prof.high, kp.low, kp.high):
                continue
            fit = max(
                [column_fit(ctx, t, c.name, u, k)]
                + [value_fit(ctx, v, u, t, disc) for v in values if disc is not None]
            )
            differ = base_type(c.type) != base_type(kc.type)
            if differ and disc is None and fit < NAME_VOUCHES:
                continue  # not declared as the key is, and no name says otherwise (`_ranked`)
            if differ and disc is not None and c.family == "number" and not (
                {base_type(c.type), base_type(kc.type)} <= _INTEGER_TYPES
            ):
                continue  # ids by type: integers of any width, never a price against an id
            if fit < NAME_VOUCHES and k in u.inferred_alternates:
                continue  # a natural value unique by its rows (an address) is a key by name only
            out.append(((-fit, -_range_jaccard(prof.low, prof.high, kp.low, kp.high)), u, k))
    out.sort(key=lambda x: x[0])
    return [(u, k) for _, u, k in out[:MAX_KEYS_PER_COLUMN]]


def inclusion(
    ctx: Discoverer, t: TableInfo, c: ColumnInfo, keys: list[tuple[TableInfo, str]] | None = None
) -> list[Candidate]:
    """How many of `c`'s values (rows and distinct) each candidate key lacks: one
    statement, the distinct values grouped once and joined to every key (`_probes`)."""
    keys = keys_for(ctx, t, c) if keys is None else keys
    if not keys:
        return []
    what = f"{t.name}.{c.name}"
    got = ctx.attempt(what, _inclusion_sql(ctx, t, c.name, keys), note=len(keys) == 1)
    if got is None and len(keys) > 1:
        keys = ctx.plannable(what, keys, lambda ks: _inclusion_sql(ctx, t, c.name, ks))
        got = ctx.attempt(what, _inclusion_sql(ctx, t, c.name, keys)) if keys else None
    if not got:
        return []
    rows = got[0]
    ctx.shapes[(t.name, c.name)] = (int(rows[1] or 0), int(rows[0] or 0))
    prof = ctx.profiles[(t.name, c.name)]
    out = []
    for i, (u, k) in enumerate(keys):
        distinct, missing = int(rows[0] or 0), int(rows[3 + 2 * i] or 0)
        kp = ctx.profiles.get((u.name, k))
        bunched = 0.0
        if c.family == "number" and kp is not None:
            bunched = narrow_band(
                distinct - missing, prof.low, prof.high, kp.nonnull, kp.low, kp.high
            )
        fit = column_fit(ctx, t, c.name, u, k)
        if c.name in t.single_keys() and not names_other(t, c.name, u, fit):
            continue  # a table's own key is another's only where its name says so
        out.append(
            Candidate(
                u.name,
                k,
                int(rows[1] or 0),
                distinct,
                int(rows[2 + 2 * i] or 0),
                missing,
                u.rows,
                fit,
                same_type=base_type(c.type) == base_type(u.columns[k].type),
                spread_known=c.family == "number" and kp is not None,
                bunched=bunched,
            )
        )
    return out


def _dense(ctx: Discoverer, c: ColumnInfo, u: TableInfo, key: str) -> tuple[int, int] | None:
    """(low, high) when the integer key `u.key` holds every integer from its min to its
    max (as many distinct values as the range is wide; a key's values are distinct) and
    `c` is an integer column too: a value is then a key exactly when it lies in the
    range, and no key table need be read."""
    kp = ctx.profiles.get((u.name, key))
    if (
        c.type not in _INTEGER_TYPES
        or u.columns[key].type not in _INTEGER_TYPES
        or kp is None
        or kp.low is None
        or kp.high is None
    ):
        return None
    low, high = int(kp.low), int(kp.high)
    return (low, high) if kp.nonnull == high - low + 1 else None


def _probes(ctx: Discoverer, c: ColumnInfo, keys: list[tuple[TableInfo, str]]) -> tuple[str, str]:
    """SQL: a LEFT JOIN of the distinct values `v` of `c` to every key (a key matches a
    value at most once), and per key the rows and values it lacks. The planner hashes
    each key table once (or probes its index); a dense integer key is a range test."""
    joins, lacks = [], []
    for i, (u, k) in enumerate(keys):
        dense = _dense(ctx, c, u, k)
        if dense is not None:
            lacks.append(f"v.v NOT BETWEEN {dense[0]} AND {dense[1]}")
            continue
        q = _q(k)
        joins.append(f"LEFT JOIN {_q_table(u)} k{i} ON k{i}.{q} = v.v")
        lacks.append(f"k{i}.{q} IS NULL")
    misses = ", ".join(
        f"sum(v.n) FILTER (WHERE {lack}), count(*) FILTER (WHERE {lack})" for lack in lacks
    )
    return " ".join(joins), misses


def _inclusion_sql(
    ctx: Discoverer, t: TableInfo, column: str, keys: list[tuple[TableInfo, str]]
) -> Any:
    q = _q(column)
    joins, misses = _probes(ctx, t.columns[column], keys)
    return sa.text(
        f"WITH v AS MATERIALIZED (SELECT {q} AS v, count(*) AS n FROM {_q_table(t)} "
        f"WHERE {q} IS NOT NULL GROUP BY {q}) "
        f"SELECT count(*), sum(v.n), {misses} FROM v {joins}"
    )


def composite_candidates(
    ctx: Discoverer,
) -> list[tuple[TableInfo, list[str], list[tuple[TableInfo, list[str]]]]]:
    """(table, its columns, the composite keys they may be) to test for inclusion: only
    keys of several columns the catalog declares (primary key, UNIQUE, unique index);
    per key column, a column of the row of the same type family whose name is the key
    column's (`tenant_id`) or names the key's table (`order_id` -> `orders(tenant_id,
    id)`), never the row's own single key by name alone, and not the row's own key
    as a whole by names alone; ranges that overlap; nothing a foreign key declares."""
    declared = {(d.table, tuple(d.columns)) for d in ctx.declared}
    found: dict[tuple[str, tuple[str, ...]], list[tuple[TableInfo, list[str]]]] = {}
    for u in ctx.tables.values():
        for key in u.composite_keys():
            if len(key) > 4:
                continue
            for t in ctx.tables.values():
                if t is u or (t.key is None and _composite_key(t) is None):
                    continue
                for cols, named in composite_columns(ctx, t, u, key):
                    own = any(set(cols) == set(k) for k in [t.primary_key, *t.all_uniques()])
                    if (t.name, tuple(cols)) in declared or (own and not named):
                        continue
                    targets = found.setdefault((t.name, tuple(cols)), [])
                    if (u, key) not in targets:
                        targets.append((u, key))
    return [
        (ctx.tables[table], list(cols), targets[:MAX_KEYS_PER_COLUMN])
        for (table, cols), targets in sorted(found.items())
    ]


def composite_columns(
    ctx: Discoverer, t: TableInfo, u: TableInfo, key: list[str]
) -> list[tuple[list[str], bool]]:
    """The columns of `t` that may hold `u`'s composite `key` (see
    `composite_candidates`), with whether a column names `u`."""
    options: list[list[tuple[str, bool]]] = []
    for k in key:
        kc, kp = u.columns[k], ctx.profiles.get((u.name, k))
        here = []
        for a in t.columns.values():
            prof = ctx.profiles.get((t.name, a.name))
            if a.family != kc.family or kp is None or prof is None or not prof.nonnull:
                continue
            if not _overlaps(prof.low, prof.high, kp.low, kp.high):
                continue
            named = name_fit(column_stem(a.name, k), u.name) >= 0.9
            if named or (a.name == k and a.name not in t.single_keys()):
                here.append((a.name, named))
        if not here:
            return []
        options.append(here)
    out = []
    for combo in itertools.product(*options):
        cols = [a for a, _ in combo]
        if len(set(cols)) == len(cols):
            out.append((cols, any(n for _, n in combo)))
    return out[:4]


def composite_inclusion(
    ctx: Discoverer, item: tuple[TableInfo, list[str], list[tuple[TableInfo, list[str]]]]
) -> list[Candidate]:
    """How many of the rows' value tuples (every column set: MATCH SIMPLE) each
    candidate composite key lacks: one statement, as for one column."""
    t, cols, targets = item
    names = [_q(c) for c in cols]
    vs = [f"v.v{i}" for i in range(len(cols))]
    probes = ", ".join(f"{_member_tuple(vs, u, key)} AS h{i}" for i, (u, key) in enumerate(targets))
    misses = ", ".join(
        f"sum(v.n) FILTER (WHERE NOT x.h{i}), count(*) FILTER (WHERE NOT x.h{i})"
        for i in range(len(targets))
    )
    picked = ", ".join(f"{q} AS v{i}" for i, q in enumerate(names))
    got = ctx.attempt(
        f"{t.name}({', '.join(cols)})",
        sa.text(
            f"WITH v AS MATERIALIZED (SELECT {picked}, count(*) AS n FROM {_q_table(t)} "
            f"WHERE {' AND '.join(f'{q} IS NOT NULL' for q in names)} "
            f"GROUP BY {', '.join(names)}) "
            f"SELECT count(*), sum(v.n), {misses} FROM v, LATERAL (SELECT {probes}) x"
        ),
    )
    if not got:
        return []
    row = got[0]
    return [
        Candidate(
            u.name,
            ", ".join(key),
            int(row[1] or 0),
            int(row[0] or 0),
            int(row[2 + 2 * i] or 0),
            int(row[3 + 2 * i] or 0),
            u.rows,
            max(name_fit(column_stem(c, k), u.name) for c, k in zip(cols, key, strict=True)),
        )
        for i, (u, key) in enumerate(targets)
    ]


def propose_inferred_composite(
    ctx: Discoverer, t: TableInfo, cols: list[str], cands: list[Candidate]
) -> None:
    """A composite reference the data holds (at least MIN_COVERAGE of the rows whose
    columns are all set), to the best-fitting key."""
    ranked = _ranked(cands)
    if not ranked:
        return
    best, rest = ranked[0], ranked[1:]
    confidence = best.coverage * (1.0 if best.name >= 0.9 else 0.9)
    if best.distinct < 10:
        confidence *= 0.5
    if any(x.score > best.score - 0.05 for x in rest):
        confidence *= 0.8
    key = best.column.split(", ")
    ctx.add(
        Proposal(
            ReferenceCheck.propose(
                check_id(t.name, "_".join(cols), "reference"), t.name, cols, best.table, key
            ),
            "data",
            round(confidence, 3),
            [
                f"({', '.join(cols)}): {best.table}({best.column}) "
                f"({_pct(best.coverage)} of {best.rows} rows with every column set, "
                f"{best.distinct - best.missing_distinct} of {best.distinct} value tuples"
                + (f", name fits {best.name:.1f})" if best.name else ")"),
                f"no foreign key declares it; {best.table}({best.column}) is a declared key",
            ],
            [f"{x.table}({x.column}) ({_pct(x.coverage)} of {x.rows} rows)" for x in rest[:3]],
            best.missing_rows,
        )
    )
