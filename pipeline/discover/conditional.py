"""Stage 4, conditional references: the inclusion of a column's values, per value of a
low-cardinality text column beside it (`*_type`/`*_id`, or any other naming), in the table
that value names; single-table inheritance (the value is a type of rows of one table)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa

from ..checks import ConditionalReferenceCheck
from . import inclusion, miskeys
from .context import Discoverer
from .model import (
    MIN_COVERAGE,
    RARE_VALUE_SHARE,
    Candidate,
    ColumnInfo,
    Proposal,
    TableInfo,
    _q,
    _q_table,
    _ranked,
    _TypeWhere,
    check_id,
)
from .names import _NAME_LIKE, column_stem, is_polymorphic_type, tokens, value_fit


def discriminator_pairs(
    ctx: Discoverer, keyed: list[TableInfo], unconditional: dict[tuple[str, str], list[Candidate]]
) -> list[tuple[TableInfo, ColumnInfo, str]]:
    """(table, id column, discriminator) to test: `x_type` beside `x_id` only, where
    there is one; else every low-cardinality text column whose values look like names
    (`student`, `TutorProfile`, `Admin::User`; not sentences) beside an id column that no
    key fits by name."""
    pairs = []
    for t in keyed:
        discs = [
            c.name
            for c in t.columns.values()
            if c.family == "text"
            and (p := ctx.profiles.get((t.name, c.name))) is not None
            and p.values is not None
            and 2 <= len(p.values) <= max(2, p.nonnull // 3)
            and sum(bool(_NAME_LIKE.match(v)) for v in p.values) >= 0.8 * len(p.values)
        ]
        for c in t.columns.values():
            cands = unconditional.get((t.name, c.name))
            if cands is None:
                continue
            good = [x for x in cands if x.coverage >= MIN_COVERAGE]
            fits = any(x.name >= 0.9 and x.coverage >= 0.98 for x in good)
            stem = column_stem(c.name, "id")
            same = [d for d in discs if stem != c.name and column_stem(d, "type") == stem]
            if same:
                pairs += [(t, c, d) for d in same]
            elif not fits:
                pairs += [(t, c, d) for d in discs]
    return pairs


def conditional(
    ctx: Discoverer, t: TableInfo, c: ColumnInfo, disc: str, unconditional: list[Candidate]
) -> Proposal | None:
    keys = inclusion.keys_for(ctx, t, c, disc)
    if not keys:
        return None
    q, dq = _q(c.name), _q(disc)

    def statement(keys: list[tuple[TableInfo, str]]) -> Any:
        joins, misses = inclusion._probes(ctx, c, keys)
        return sa.text(
            f"WITH v AS MATERIALIZED (SELECT {dq}::text AS d, {q} AS v, count(*) AS n "
            f"FROM {_q_table(t)} WHERE {q} IS NOT NULL AND {dq} IS NOT NULL "
            f"GROUP BY 1, 2) SELECT v.d, count(*), sum(v.n), {misses} "
            f'FROM v {joins} GROUP BY v.d ORDER BY v.d COLLATE "C"'
        )

    per_value: dict[str, list[Candidate]] = {}
    what = f"{t.name}.{c.name} by {disc}"
    rows = ctx.attempt(what, statement(keys), note=len(keys) == 1)
    if rows is None and len(keys) > 1:
        keys = ctx.plannable(what, keys, statement)
        rows = ctx.attempt(what, statement(keys)) if keys else None
    if rows is None:
        return None
    for row in rows:
        per_value[row[0]] = [
            Candidate(
                u.name,
                k,
                int(row[2]),
                int(row[1]),
                int(row[3 + 2 * i] or 0),
                int(row[4 + 2 * i] or 0),
                u.rows,
                value_fit(ctx, row[0], u, t, disc),
            )
            for i, (u, k) in enumerate(keys)
        ]
    total = sum(cs[0].rows for cs in per_value.values() if cs)
    if not total:
        return None
    # values that fit no key themselves: their ids may be keys of a key space that map
    # through a column of the table the value names (the seed's users.id requesters)
    targets: dict[str, Candidate] = {}
    others: dict[str, list[Candidate]] = {}
    normal = {v: " ".join(tokens(v)) for v in per_value}
    for value, cands in sorted(per_value.items(), key=lambda kv: -kv[1][0].rows):
        share = cands[0].rows / total
        through = miskeys.through_candidates(ctx, t, c, cands, disc=disc, value=value)
        ranked = _ranked(cands + through)
        if not ranked:
            continue
        best = ranked[0]
        rival = next((x for x in ranked[1:] if x.table != best.table), None)
        duplicate = any(normal[v] == normal[value] for v in targets)
        if duplicate or (share < RARE_VALUE_SHARE and best.name < 0.6):
            continue  # a misspelling or a stray value: the discriminator finding's business
        if rival is not None and best.score - rival.score < 0.05:
            return None  # the values fit another table as well: nothing picks the target
        targets[value] = best
        others[value] = ranked[1:4]
    if len(targets) < 2 or len({x.table for x in targets.values()}) < 2:
        return None
    covered = sum(x.rows for x in targets.values())
    score = sum(x.score * x.rows for x in targets.values()) / covered
    plain = max(
        (x for x in unconditional if x.coverage >= MIN_COVERAGE),
        key=lambda x: x.score,
        default=None,
    )
    if plain is not None and score < plain.score + 0.05:
        return None
    coverage = sum(x.rows - x.missing_rows for x in targets.values()) / covered
    if column_stem(disc, "type") != column_stem(c.name, "id"):
        # no `x_type` beside `x_id`: the names of the values are not enough (a quantity
        # beside a discriminator fits its tables as well); the data must need them
        fill = sum(x.fill * x.rows for x in targets.values()) / covered
        if fill < 0.5 or (
            plain is not None and (plain.coverage >= 0.95 or coverage < plain.coverage + 0.05)
        ):
            return None
    named = sum(x.rows for x in targets.values() if x.name >= 0.6) / covered
    confidence = coverage * (0.75 + 0.25 * named)
    if covered < 0.95 * total:
        confidence *= 0.9
    violations = sum(x.rows if x.through else x.missing_rows for x in targets.values())
    violations += total - covered
    if any(x.through for x in targets.values()):
        confidence = min(confidence, 0.8)
    wheres = sti_wheres(ctx, t, c, disc, targets)
    violations += sum(w.wrong for w in wheres.values())
    check: dict[str, Any] = {
        "id": check_id(t.name, c.name, "reference"),
        "kind": "conditional_reference",
        "table": t.name,
        "column": c.name,
        "discriminator": disc,
        "targets": {
            v: {"table": x.table, "column": x.column}
            | ({"where": {"column": wheres[v].column, "eq": v}} if v in wheres else {})
            for v, x in targets.items()
        },
    }
    evidence = [
        f"{disc} = {v!r}: {x.describe()}"
        + (" [mis-keyed: values of the key space]" if x.through else "")
        + (f"; {wheres[v].describe(x.table, v)}" if v in wheres else "")
        for v, x in targets.items()
    ]
    unknown = sorted(set(per_value) - set(targets))
    if unknown:
        evidence.append(
            f"{total - covered} rows with other {disc} values "
            f"({', '.join(map(repr, unknown))}) are discriminator findings"
        )
    alternatives = [f"{disc} = {v!r}: {o.describe()}" for v, os_ in others.items() for o in os_[:2]]
    if plain is not None:
        alternatives.insert(0, f"one target for every row: {plain.describe()}")
    made = ConditionalReferenceCheck.model_validate(check)
    return Proposal(made, "data", round(confidence, 3), evidence, alternatives, violations)


def sti_wheres(
    ctx: Discoverer, t: TableInfo, c: ColumnInfo, disc: str, targets: dict[str, Candidate]
) -> dict[str, _TypeWhere]:
    """Single-table inheritance: where several discriminator values name one table and a
    few-valued text column of it holds those values (`users.type` in ('User',
    'AdminUser')), the target `where` of each value whose ids fall in rows of its own type
    (`{column: type, eq: AdminUser}`): at least 90% of the ids found in the table, and
    at most a quarter of the wrong-type ids that ids of any row would give (a type
    most rows have proves nothing). One join per such table and type column."""
    by_target: dict[tuple[str, str], list[str]] = defaultdict(list)
    for v, x in targets.items():
        if not x.through:
            by_target[(x.table, x.column)].append(v)
    out: dict[str, _TypeWhere] = {}
    for (table, key), values in sorted(by_target.items()):
        if len(values) < 2:
            continue
        u = ctx.tables[table]
        for col in u.columns.values():
            prof = ctx.profiles.get((u.name, col.name))
            if (
                col.family != "text"
                or (u is t and col.name == disc)
                or prof is None
                or prof.values is None
                or is_polymorphic_type(u, col.name)
            ):
                continue
            held = sorted(set(values) & set(prof.values))
            if not held:
                continue
            got = type_counts(ctx, t, c.name, disc, u, key, col.name, held)
            for value, found in got.items():
                if found.ok and (value not in out or found.typed > out[value].typed):
                    out[value] = found
    return out


def type_counts(
    ctx: Discoverer,
    t: TableInfo,
    column: str,
    disc: str,
    u: TableInfo,
    key: str,
    type_column: str,
    values: list[str],
) -> dict[str, _TypeWhere]:
    """Per discriminator value: the rows whose id is a row of `u`, and how many of those
    rows have `type_column` = the value; with the share of `u`'s rows of that type (the
    rows per value the profile counted: `type_column` is a few-valued text column)."""
    q, dq, kq, tq = (_q(n) for n in (column, disc, key, type_column))
    rows = (
        ctx.attempt(
            f"{t.name}.{column} by {disc} in rows of {u.name}.{type_column}",
            sa.text(
                f"SELECT t.{dq}::text, count(*), "
                f"count(*) FILTER (WHERE k.{tq}::text = t.{dq}::text) "
                f"FROM {_q_table(t)} t JOIN {_q_table(u)} k ON k.{kq} = t.{q} "
                f"WHERE t.{dq}::text = ANY(:values) GROUP BY 1"
            ),
            {"values": values},
        )
        or []
    )
    base = ctx.value_counts[(u.name, type_column)]
    return {
        str(value): _TypeWhere(
            type_column, int(found), int(typed), int(base.get(value, 0)) / (u.rows or 1)
        )
        for value, found, typed in rows
    }
