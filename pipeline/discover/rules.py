"""Stage 7, rules: what the rows almost always obey (NOT NULL, value sets, unique and
consistent references), row rules between two columns (`updated_at >= created_at`,
`responded_at` set exactly for some statuses), e-mail and shape patterns, and the reference
columns unique together (among all rows, or those of one status), each with its violations."""

from __future__ import annotations

import itertools
from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from ..checks import (
    ConsistencyCheck,
    InSetCheck,
    NotNullCheck,
    PatternCheck,
    RowRuleCheck,
    UniqueCheck,
)
from . import miskeys
from .context import Discoverer
from .model import (
    _SHAPE_CLASSES,
    EMAIL_REGEX,
    MAX_LABEL_LENGTH,
    MAX_ORDERED_COLUMNS,
    MAX_RULE_GROUPS,
    MAX_SHAPE_LENGTH,
    MAX_UNIQUE_COUNTS,
    MAX_UNIQUE_VALUES,
    MIN_RULE_ROWS,
    PREFIX_ROWS,
    RARE_VALUE_SHARE,
    RULE_HOLDS,
    SAMPLE_SHAPE_SHARE,
    SHAPE_SHARE,
    UNIQUE_DUPLICATES,
    Candidate,
    ColumnInfo,
    Proposal,
    TableInfo,
    _agreement,
    _common_prefix,
    _pct,
    _q,
    _q_table,
    _ranked,
    _Reference,
    _shape_sql,
    check_id,
    shape_regex,
)


def preliminary_references(
    ctx: Discoverer,
    dependents: list[tuple[TableInfo, ColumnInfo]],
    unconditional: dict[tuple[str, str], list[Candidate]],
) -> None:
    """The best plain target of every column, and the declared references: the key
    spaces that conditional targets and mis-keys may map through."""
    ctx.references.clear()
    for t, c in dependents:
        ranked = _ranked(unconditional.get((t.name, c.name), []))
        if ranked:
            best = ranked[0]
            ctx.references[(t.name, c.name)] = _Reference(
                t.name, c.name, best.table, best.column, False, best
            )
    for d in ctx.declared:
        if len(d.columns) == 1:
            ctx.references[(d.table, d.columns[0])] = _Reference(
                d.table, d.columns[0], d.target, d.target_columns[0], True
            )


def rules(ctx: Discoverer, t: TableInfo, conditional: dict[tuple[str, str], Proposal]) -> None:
    """What the rows of `t` almost always obey, proposed with the rows that do not: NOT
    NULL, a closed set of values, uniqueness of a reference, a referenced row that agrees."""
    rare_nulls(ctx, t)
    discriminators = {
        p.check["discriminator"]: list(p.check["targets"])
        for (table, _), p in conditional.items()
        if table == t.name
    }
    value_sets(ctx, t, discriminators)
    unique_references(ctx, t)
    consistencies(ctx, t)
    row_rules(ctx, t)
    conditional_uniques(ctx, t, conditional)


def rare_nulls(ctx: Discoverer, t: TableInfo) -> None:
    if t.rows < 100:
        return
    rare = [
        (c.name, t.rows - ctx.nonnull[(t.name, c.name)])
        for c in t.columns.values()
        if not c.not_null and 0 < t.rows - ctx.nonnull[(t.name, c.name)] <= 0.01 * t.rows
    ]
    if not rare:
        return
    worst = max(n for _, n in rare) / t.rows
    ctx.add(
        Proposal(
            NotNullCheck.propose(
                check_id(t.name, "not_null", "inferred"), t.name, [c for c, _ in rare]
            ),
            "data",
            round(min(0.95, 1 - 10 * worst), 3),
            [f"{c} is NULL in {n} of {t.rows} rows ({_pct(n / t.rows)})" for c, n in rare],
            violations=sum(n for _, n in rare),
        )
    )


def value_sets(ctx: Discoverer, t: TableInfo, discriminators: dict[str, list[str]]) -> None:
    """A text column of few values whose rare values (each under 1% of the rows, 2% in
    all) look like mistakes: the others are its set; a discriminator's set is its
    targets' values."""
    cols = [
        c
        for c in t.columns.values()
        if c.family == "text"
        and not c.enum
        and (p := ctx.profiles.get((t.name, c.name))) is not None
        and p.values is not None
        and not any(x[0] == c.name for x in ctx.checks_in.get(t.name, []))
    ]
    if not cols:
        return
    counts: dict[str, dict[str, int]] = defaultdict(dict)
    # the profile counted the values of a text or character column already (grouped as
    # text: the same groups); other types (citext) group by their own equality
    for c in cols:
        known = ctx.value_counts.get((t.name, c.name))
        if known is not None and c.type.startswith(("text", "character")):
            counts[c.name] = dict(known)
    unread = [c for c in cols if c.name not in counts]
    if unread:
        sets = ", ".join(f"({_q(c.name)})" for c in unread)
        exprs = ", ".join(
            f"CASE WHEN GROUPING({q}) = 0 THEN {q}::text END" for q in (_q(c.name) for c in unread)
        )
        for row in ctx.conn.execute(
            sa.text(f"SELECT {exprs}, count(*) FROM {_q_table(t)} GROUP BY GROUPING SETS ({sets})")
        ):
            for c, value in zip(unread, row[:-1], strict=True):
                if value is not None:
                    counts[c.name][value] = int(row[-1])
    for c in cols:
        values = counts.get(c.name, {})
        total = sum(values.values())
        if not total:
            continue
        if c.name in discriminators:
            allowed = discriminators[c.name]
            why = f"the values of the conditional reference's targets ({', '.join(allowed)})"
        else:
            allowed = [
                v
                for v, n in sorted(values.items(), key=lambda x: (-x[1], x[0]))
                if n >= RARE_VALUE_SHARE * total
            ]
            why = f"each of these values is {_pct(RARE_VALUE_SHARE)} of the rows or more"
        rare = {v: n for v, n in values.items() if v not in allowed}
        share = sum(rare.values()) / total
        if len(allowed) < 2 or not rare or share > 0.02:
            continue
        ctx.add(
            Proposal(
                InSetCheck.model_validate(
                    {
                        "id": check_id(t.name, c.name, "in_set"),
                        "kind": "in_set",
                        "table": t.name,
                        "column": c.name,
                        "values": allowed,
                    }
                ),
                "data",
                round(min(0.9, 1 - 5 * share), 3),
                [
                    why,
                    "rare values: " + ", ".join(f"{v!r} ({n})" for v, n in sorted(rare.items())),
                ],
                violations=sum(rare.values()),
            )
        )


def unique_references(ctx: Discoverer, t: TableInfo) -> None:
    """A reference whose values are (almost) all distinct: one row per referenced row
    (a user holds one profile of a role)."""
    declared = {tuple(cols) for cols in [t.primary_key, *t.all_uniques()]}
    for (table, column), ref in sorted(ctx.references.items()):
        if table != t.name or (column,) in declared:
            continue
        rows, distinct = ctx.shapes.get((table, column), (0, 0))
        if rows < 20 or distinct < 0.95 * rows:
            continue
        ctx.add(
            Proposal(
                UniqueCheck.propose(check_id(t.name, column, "unique"), t.name, [column]),
                "data",
                round(0.9 * min(1.0, (distinct / rows - 0.9) * 10), 3),
                [
                    f"{column}: {distinct} distinct values in {rows} rows "
                    f"(references {ref.target}.{ref.target_column})"
                ],
                violations=rows - distinct,
            )
        )


def consistencies(ctx: Discoverer, t: TableInfo) -> None:
    """For each reference of `t`: another reference of the row that the referenced row
    repeats (`tutor_packages.tutor_id` = the request's `tutor_id`), or a text column the
    referenced row repeats (`tutor_packages.name` = the request's `package_name`), on at
    least 90% of the rows where both are set."""
    refs = {
        col: ref
        for (table, col), ref in ctx.references.items()
        if table == t.name and ref.target != t.name
    }
    texts = [c.name for c in t.columns.values() if c.family == "text" and c.name != t.key]
    for column, ref in sorted(refs.items()):
        u = ctx.tables[ref.target]
        pairs: list[tuple[str, str]] = []
        for other, ref2 in sorted(refs.items()):
            if other == column:
                continue
            for (table2, q), ref3 in sorted(ctx.references.items()):
                if table2 == u.name and (ref3.target, ref3.target_column) == (
                    ref2.target,
                    ref2.target_column,
                ):
                    pairs.append((other, q))
        named = [
            (e, a.name)
            for e in texts
            for a in u.columns.values()
            if a.family == "text" and a.name != ref.target_column
        ]
        if named:  # a pair that cannot agree on any row is not counted
            apart = miskeys.disjoint_pairs(ctx, t, u, named)
            pairs += [p for p in named if p not in apart]
        if not pairs:
            continue
        exprs = _agreement(pairs, "u")
        row = ctx.conn.execute(
            sa.text(
                f"SELECT {', '.join(exprs)} FROM {_q_table(t)} t JOIN {_q_table(u)} u "
                f"ON u.{_q(ref.target_column)} = t.{_q(column)}"
            )
        ).one()
        for i, (e, a) in enumerate(pairs):
            both, same = int(row[2 * i]), int(row[2 * i + 1])
            if both < 20 or same < 0.9 * both:
                continue
            ctx.add(
                Proposal(
                    ConsistencyCheck.model_validate(
                        {
                            "id": check_id(t.name, column, e, "consistency"),
                            "kind": "consistency",
                            "table": t.name,
                            "column": column,
                            "target": {"table": u.name, "column": ref.target_column},
                            "match": [{"column": e, "target_column": a}],
                        }
                    ),
                    "data",
                    round(0.9 * same / both, 3),
                    [
                        f"{u.name}.{a} of the row's {column} equals {e} on {same} of {both} "
                        f"rows ({_pct(same / both)})"
                    ],
                    violations=both - same,
                )
            )


def row_rules(ctx: Discoverer, t: TableInfo) -> None:
    """Rules across the columns of a row and shapes of text columns, proposed with the
    rows that break them: one column later than another (`updated_at >= created_at`), a
    column set exactly for some values of a few-valued column (`responded_at` set iff
    `status` in (accepted, rejected)), and a regex that most values of a text column
    match (an e-mail address, or the dominant shape `+2519########`). The shapes are read
    from the first PREFIX_ROWS rows; everything proposed is counted over the whole table
    in one grouped statement (grouped by the few-valued columns)."""
    if t.rows < MIN_RULE_ROWS:
        return
    ordered = [
        c
        for c in t.columns.values()
        if c.family == "time"
        and c.type.startswith(("date", "timestamp"))
        and ctx.nonnull.get((t.name, c.name), 0) >= MIN_RULE_ROWS
    ][:MAX_ORDERED_COLUMNS]
    pairs = list(itertools.combinations(ordered, 2))
    discs = rule_discriminators(ctx, t)
    nullable = [
        c
        for c in t.columns.values()
        if 0 < ctx.nonnull.get((t.name, c.name), 0) < t.rows
        and c.name not in {d.name for d in discs}
    ]
    if not discs:
        nullable = []
    shapes = shape_candidates(ctx, t)
    if not (pairs or nullable or shapes):
        return
    aggs = ["count(*)"]
    params: dict[str, Any] = {}

    def agg(expr: str) -> int:
        aggs.append(expr)
        return len(discs) + len(aggs) - 1

    pair_at = []
    for a, b in pairs:
        qa, qb = _q(a.name), _q(b.name)
        pair_at.append(
            (
                agg(f"count(*) FILTER (WHERE {qa} IS NOT NULL AND {qb} IS NOT NULL)"),
                agg(f"count(*) FILTER (WHERE {qa} < {qb})"),
                agg(f"count(*) FILTER (WHERE {qa} > {qb})"),
            )
        )
    null_at = [agg(f"count({_q(c.name)})") for c in nullable]
    shape_at = []
    for n, (c, regex, _) in enumerate(shapes):
        params[f"rr_{n}"] = regex
        shape_at.append(agg(f"count(*) FILTER (WHERE {_q(c.name)} ~ :rr_{n})"))
    group = [f"{_q(d.name)}::text" for d in discs]
    sql = f"SELECT {', '.join([*group, *aggs])} FROM {_q_table(t)}"
    if group:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(group)))
    rows = [tuple(r) for r in ctx.conn.execute(sa.text(sql), params)]

    def total(i: int) -> int:
        return sum(int(r[i] or 0) for r in rows)

    for (a, b), (both_i, lt_i, gt_i) in zip(pairs, pair_at, strict=True):
        ordering(ctx, t, a.name, b.name, total(both_i), total(lt_i), total(gt_i))
    best: dict[str, Proposal] = {}
    for d_i, d in enumerate(discs):
        for c, at in zip(nullable, null_at, strict=True):
            counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
            for r in rows:
                if r[d_i] is not None:
                    counts[r[d_i]][0] += int(r[len(discs)])
                    counts[r[d_i]][1] += int(r[at])
            got = set_when(ctx, t, c.name, d.name, counts)
            if got is not None and (
                c.name not in best or got.violations < best[c.name].violations  # type: ignore[operator]
            ):
                best[c.name] = got
    for c in nullable:
        if c.name in best:
            ctx.add(best[c.name])
    for (c, regex, shape), hit_i in zip(shapes, shape_at, strict=True):
        pattern(ctx, t, c.name, regex, shape, total(hit_i))


def rule_discriminators(ctx: Discoverer, t: TableInfo) -> list[ColumnInfo]:
    """Few-valued text columns (not enums) whose values are labels (of at most
    MAX_LABEL_LENGTH characters, not sentences) to group a table's rule counts by, as
    many as keep the groups at most MAX_RULE_GROUPS (the fewest-valued first)."""
    found = sorted(
        (len(p.values), c.name)
        for c in t.columns.values()
        if c.family == "text"
        and not c.enum
        and c.name != t.key
        and (p := ctx.profiles.get((t.name, c.name))) is not None
        and p.values is not None
        and len(p.values) >= 2
        and max(map(len, p.values)) <= MAX_LABEL_LENGTH
    )
    kept, groups = [], 1
    for n, name in found:
        if groups * (n + 1) > MAX_RULE_GROUPS:
            break
        groups *= n + 1
        kept.append(t.columns[name])
    return sorted(kept, key=lambda c: list(t.columns).index(c.name))


def shape_candidates(ctx: Discoverer, t: TableInfo) -> list[tuple[ColumnInfo, str, str | None]]:
    """Text columns of many values whose first PREFIX_ROWS rows are mostly e-mail
    addresses or mostly of one shape (`translate`d: digits 9, letters a / A), with the
    regex to count over the whole table (and the shape; None for e-mail addresses): one
    grouped statement over those rows. A shape's fixed prefix is what its 1st and 99th
    percentile values (in byte order) begin with, so a few stray values of the shape
    (`+2517...` among `+2519...`) do not shorten it."""
    cols = [
        c
        for c in t.columns.values()
        if c.family == "text"
        and not c.enum
        and c.type.startswith(("text", "character varying"))
        and ctx.nonnull.get((t.name, c.name), 0) >= MIN_RULE_ROWS
        and (p := ctx.profiles.get((t.name, c.name))) is not None
        and p.values is None
    ]
    if not cols:
        return []
    picked = ", ".join(f"{_q(c.name)}::text AS c{i}" for i, c in enumerate(cols))
    values = ", ".join(f"({i}, p.c{i})" for i in range(len(cols)))
    sql = (
        "SELECT i, shape, n, total, emails, low, high FROM ("
        f"SELECT i, {_shape_sql('v.v')} AS shape, count(*) AS n, "
        'percentile_disc(0.01) WITHIN GROUP (ORDER BY v.v COLLATE "C") AS low, '
        'percentile_disc(0.99) WITHIN GROUP (ORDER BY v.v COLLATE "C") AS high, '
        "sum(count(*)) OVER (PARTITION BY i) AS total, "
        "sum(count(*) FILTER (WHERE v.v ~ :email)) OVER (PARTITION BY i) AS emails, "
        "row_number() OVER (PARTITION BY i ORDER BY count(*) DESC, "
        f"{_shape_sql('v.v')}) AS rank "
        f"FROM (SELECT {picked} FROM {_q_table(t)} LIMIT {PREFIX_ROWS}) p "
        f"CROSS JOIN LATERAL (VALUES {values}) v(i, v) WHERE v.v IS NOT NULL "
        "GROUP BY 1, 2) s WHERE rank = 1 ORDER BY i"
    )
    out: list[tuple[ColumnInfo, str, str | None]] = []
    found = ctx.conn.execute(sa.text(sql), {"email": EMAIL_REGEX})
    for i, shape, n, total, email, low, high in found:
        tot, emails = int(total or 0), int(email or 0)
        if not tot:
            continue
        if emails >= SAMPLE_SHAPE_SHARE * tot:
            out.append((cols[i], EMAIL_REGEX, None))
            continue
        prefix = _common_prefix(low, high)
        if (
            n >= SAMPLE_SHAPE_SHARE * tot
            and len(shape) <= MAX_SHAPE_LENGTH
            and any(ch in _SHAPE_CLASSES for ch in shape[len(prefix) :])
        ):
            out.append((cols[i], shape_regex(shape, prefix), shape))
    return out


def ordering(ctx: Discoverer, t: TableInfo, a: str, b: str, both: int, lt: int, gt: int) -> None:
    """`a >= b` (or `b >= a`) when it holds on nearly all rows with both set, and the
    later one is strictly later on more rows than it is earlier."""
    if both < MIN_RULE_ROWS:
        return
    if lt > gt:
        a, b, lt, gt = b, a, gt, lt
    equal = both - lt - gt
    if lt > (1 - RULE_HOLDS) * both or gt < max(5, 2 * lt):
        return
    share = lt / both
    ctx.add(
        Proposal(
            RowRuleCheck.model_validate(
                {
                    "id": check_id(t.name, a, "after_" + b),
                    "kind": "row_rule",
                    "table": t.name,
                    "columns": [a, b],
                    "description": f"{a} is never before {b}",
                    "require": {"column": a, "ge": {"column": b}},
                }
            ),
            "data",
            round(min(0.95, 1 - 5 * share), 3),
            [
                f"{a} >= {b} on {both - lt} of the {both} rows with both set "
                f"({_pct(1 - share)}; later on {gt}, equal on {equal})"
            ],
            violations=lt,
        )
    )


def set_when(
    ctx: Discoverer, t: TableInfo, column: str, disc: str, counts: dict[str, list[int]]
) -> Proposal | None:
    """`column` set exactly for some values of `disc` (and NULL for the others), on
    nearly all rows of its values (rare values, under RARE_VALUE_SHARE of the rows, are
    left to `in_set`); `counts`: value -> [rows, rows with `column` set]."""
    every = sum(n for n, _ in counts.values())
    kept = {v: x for v, x in counts.items() if x[0] >= RARE_VALUE_SHARE * every}
    rows = sum(n for n, _ in kept.values())
    if rows < MIN_RULE_ROWS or len(kept) < 2:
        return None
    order = sorted(kept, key=lambda v: (-kept[v][0], v))
    set_values = [v for v in order if kept[v][1] * 2 > kept[v][0]]
    null_values = [v for v in order if v not in set_values]
    set_rows = sum(kept[v][0] for v in set_values)
    null_rows = sum(kept[v][0] for v in null_values)
    if not set_values or not null_values or min(set_rows, null_rows) < 5:
        return None
    unset = sum(kept[v][0] - kept[v][1] for v in set_values)
    stray = sum(kept[v][1] for v in null_values)
    violations = unset + stray
    if violations > (1 - RULE_HOLDS) * rows:
        return None
    share = violations / rows
    return Proposal(
        RowRuleCheck.model_validate(
            {
                "id": check_id(t.name, column, "matches_" + disc),
                "kind": "row_rule",
                "table": t.name,
                "columns": [disc, column],
                "description": f"{column} is set exactly when {disc} is one of "
                f"{', '.join(set_values)}",
                "where": {"column": disc, "in": order},
                "require": {
                    "any": [
                        {
                            "all": [
                                {"column": disc, "in": set_values},
                                {"column": column, "is_null": False},
                            ]
                        },
                        {
                            "all": [
                                {"column": disc, "in": null_values},
                                {"column": column, "is_null": True},
                            ]
                        },
                    ]
                },
            }
        ),
        "data",
        round(min(0.95, 1 - 5 * share), 3),
        [
            f"{column} is set on {set_rows - unset} of the {set_rows} rows whose {disc} is "
            f"{' or '.join(repr(v) for v in set_values)}",
            f"{column} is NULL on {null_rows - stray} of the {null_rows} rows whose {disc} "
            f"is {' or '.join(repr(v) for v in null_values)}",
        ]
        + (
            [f"rare {disc} values left to in_set: {', '.join(repr(v) for v in rare)}"]
            if (rare := sorted(set(counts) - set(kept)))
            else []
        ),
        violations=violations,
    )


def pattern(
    ctx: Discoverer, t: TableInfo, column: str, regex: str, shape: str | None, hits: int
) -> None:
    """A `pattern` when at least SHAPE_SHARE of the column's non-NULL values match
    `regex` (`hits` of them): the e-mail regex (`shape` None), or that of the dominant
    shape and its fixed prefix."""
    nonnull = ctx.nonnull.get((t.name, column), 0)
    if nonnull < MIN_RULE_ROWS or hits < SHAPE_SHARE * nonnull:
        return
    if shape is None:
        what = "a plausible e-mail address"
        evidence = f"{hits} of the {nonnull} values are e-mail addresses"
    else:
        what = f"values shaped {shape!r} (9 a digit, a / A a letter)"
        evidence = f"{hits} of the {nonnull} values have the shape {shape!r} and match"
    share = hits / nonnull
    ctx.add(
        Proposal(
            PatternCheck.model_validate(
                {
                    "id": check_id(t.name, column, "pattern"),
                    "kind": "pattern",
                    "table": t.name,
                    "column": column,
                    "regex": regex,
                    "description": what,
                }
            ),
            "data",
            round(min(0.95, 1 - 3 * (1 - share)), 3),
            [f"{evidence} ({_pct(share)})"],
            violations=nonnull - hits,
        )
    )


def conditional_uniques(
    ctx: Discoverer, t: TableInfo, conditional: dict[tuple[str, str], Proposal]
) -> None:
    """The reference columns of `t` together (a conditional reference with its
    discriminator): unique among all rows but a few, or else among the rows of one value
    of a few-valued column (`status = 'pending'`): one grouped statement per table (one
    group per tuple of the columns), and only when they are not unique among all rows a
    second one that counts per group the rows of each value."""
    refs = {c for (table, c) in ctx.references if table == t.name}
    for (table, c), p in conditional.items():
        if table == t.name:
            refs |= {c, p.check["discriminator"]}
    columns = [c for c in t.columns if c in refs]
    if len(columns) < 2 or t.rows < MIN_RULE_ROWS or set(columns) & set(t.single_keys()):
        return
    full = " AND ".join(f"{_q(c)} IS NOT NULL" for c in columns)
    grouped = f"FROM {_q_table(t)} GROUP BY {', '.join(_q(c) for c in columns)}"
    overall, distinct = (
        int(x or 0)
        for x in ctx.conn.execute(
            sa.text(
                "SELECT sum(n - 1), sum(n - 1) FILTER (WHERE complete) FROM ("
                f"SELECT count(*) AS n, {full} AS complete {grouped}) g"
            )
        ).one()
    )
    if overall <= UNIQUE_DUPLICATES * t.rows:  # unique among all rows but a few
        composite_unique(ctx, t, columns, None, overall, distinct, t.rows, overall)
        return
    values = [
        (d.name, v)
        for d in rule_discriminators(ctx, t)
        if d.name not in refs
        and len(vals := ctx.profiles[(t.name, d.name)].values or []) <= MAX_UNIQUE_VALUES
        for v in vals
    ][:MAX_UNIQUE_COUNTS]
    if not values:
        return
    params = {f"uv_{i}": v for i, (_, v) in enumerate(values)}
    counts = "".join(
        f", count(*) FILTER (WHERE {_q(d)}::text = :uv_{i}) AS n{i}"
        for i, (d, _) in enumerate(values)
    )
    sums = "".join(
        f", sum(greatest(n{i} - 1, 0)), sum(greatest(n{i} - 1, 0)) FILTER (WHERE complete)"
        f", sum(n{i})"
        for i in range(len(values))
    )
    sql = f"SELECT {sums[2:]} FROM (SELECT {full} AS complete{counts} {grouped}) g"
    row = [int(x or 0) for x in ctx.conn.execute(sa.text(sql), params).one()]
    for i, (disc, value) in enumerate(values):
        equal, distinct, rows = row[3 * i : 3 + 3 * i]
        if rows >= MIN_RULE_ROWS and equal <= UNIQUE_DUPLICATES * rows:
            composite_unique(ctx, t, columns, (disc, value), equal, distinct, rows, overall)


def composite_unique(
    ctx: Discoverer,
    t: TableInfo,
    columns: list[str],
    where: tuple[str, str] | None,
    equal: int,
    distinct: int,
    rows: int,
    overall: int,
) -> None:
    """A `unique` on `columns` (of the rows where `where` holds): `equal` and `distinct`
    of its `rows` repeat another's columns, NULLs compared equal or not; `nulls: equal`
    when NULLs would hide duplicates."""
    nulls = equal > distinct
    dups = equal if nulls else distinct
    names = ", ".join(columns)
    whose = f" whose {where[0]} is {where[1]!r}" if where else ""
    check = UniqueCheck.propose(
        check_id(t.name, *(where or ["_".join(columns)]), "unique"),
        t.name,
        columns,
        where={"column": where[0], "eq": where[1]} if where is not None else None,
        nulls_equal=nulls,
        description=f"one row per {names}"
        + (f" where {where[0]} is {where[1]!r}" if where else ""),
    )
    evidence = [
        f"{dups} of the {rows} rows{whose} repeat another's {names}"
        + (" (NULLs compared equal)" if nulls else "")
    ]
    if where:
        evidence.append(f"{overall} of all {t.rows} rows do")
    ctx.add(
        Proposal(
            check,
            "data",
            round(min(0.9, 1 - 10 * dups / rows), 3),
            evidence,
            violations=dups,
        )
    )
