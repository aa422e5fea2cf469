"""Stage 5, mis-keys: a reference whose violating values are keys of another key space that
map through a column of the target (`users.id` -> `tutor_profiles.user_id`), with the row's
columns that agree with that key space's attributes as evidence."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from .. import sqltext
from .context import Discoverer
from .model import (
    MIN_COVERAGE,
    Candidate,
    ColumnInfo,
    TableInfo,
    _agreement,
    _member,
    _pct,
    _q,
    _q_table,
    _rows_of,
    check_id,
)
from .names import column_fit, value_fit


def key_spaces_of(ctx: Discoverer, target: str) -> list[tuple[str, TableInfo, str]]:
    """(through, key-space table, its key): the target's columns that reference another
    key (declared or found), e.g. tutor_profiles.user_id -> users.id."""
    out = []
    for (table, column), ref in ctx.references.items():
        if table == target and ref.target != target:
            out.append((column, ctx.tables[ref.target], ref.target_column))
    for d in ctx.declared:
        if d.table == target and len(d.columns) == 1 and d.target != target:
            item = (d.columns[0], ctx.tables[d.target], d.target_columns[0])
            if item not in out:
                out.append(item)
    return out


def through_candidates(
    ctx: Discoverer,
    t: TableInfo,
    c: ColumnInfo,
    direct: list[Candidate],
    *,
    disc: str | None = None,
    value: str | None = None,
) -> list[Candidate]:
    """Targets whose *through* column holds the values: for every key table U whose name
    fits (the column's stem or the discriminator value) and that maps a key space the
    values belong to (the values are users.id and U.user_id holds them)."""
    out = []
    holders = {x.table: x for x in direct if x.coverage >= MIN_COVERAGE}
    for u in ctx.tables.values():
        if value is not None and disc is not None:
            fit = value_fit(ctx, value, u, t, disc)
        else:
            fit = column_fit(ctx, t, c.name, u, "id")
        if fit < 0.6 or u.key is None or u is t:
            continue
        for through, space, _space_key in key_spaces_of(ctx, u.name):
            if space.name not in holders or u.columns[through].family != c.family:
                continue
            q = _q(c.name)
            where, params = _rows_of(c.name, disc, value)
            row = ctx.one(
                f"{t.name}.{c.name} -> {u.name}.{through}",
                sa.text(
                    f"WITH v AS MATERIALIZED (SELECT {q} AS v, count(*) AS n "
                    f"FROM {_q_table(t)} "
                    f"WHERE {where} GROUP BY {q}), "
                    # the test once per value (read twice below)
                    f"x AS MATERIALIZED (SELECT v.n, {_member('v.v', u, through)} AS h "
                    "FROM v) "
                    "SELECT count(*), sum(x.n), "
                    "sum(x.n) FILTER (WHERE NOT x.h), count(*) FILTER (WHERE NOT x.h) FROM x"
                ),
                params,
            )
            if row is None:
                continue
            out.append(
                Candidate(
                    u.name,
                    u.key,
                    int(row[1] or 0),
                    int(row[0] or 0),
                    int(row[2] or 0),
                    int(row[3] or 0),
                    u.rows,
                    fit,
                    through=through,
                    # the values are keys of the key space: they spread over it as its
                    bunched=holders[space.name].bunched,
                )
            )
    return out


def mis_key(
    ctx: Discoverer,
    t: TableInfo,
    column: str,
    targets: list[tuple[str | None, str]],
    disc: str | None,
) -> tuple[dict[str, Any], list[str]] | None:
    """A `mis_key` for the reference from `t.column` to `targets` ((discriminator value
    or None, target table)): a key space whose keys most violating values are and that
    maps through one column of every target; with the row's columns that agree with the
    key space's attributes as evidence."""
    options: dict[tuple[str, str], list[str]] = {}
    for _value, target in targets:
        for through, space, space_key in key_spaces_of(ctx, target):
            options.setdefault((through, f"{space.name}\0{space_key}"), []).append(target)
    for (through, space_ref), holders in options.items():
        if len(holders) < len(targets):
            continue
        space_name, _, space_key = space_ref.partition("\0")
        space = ctx.tables[space_name]
        violating = mapped = 0
        for value, target in targets:
            u = ctx.tables[target]
            assert u.key is not None
            q = _q(column)
            where, params = _rows_of(column, disc, value, "t.")
            # per distinct value, not per row: the violating values are few, and the
            # key-space and `through` tests become semi-joins over those values only
            row = ctx.one(
                f"mis-key {t.name}.{column} -> {space.name}.{space_key}",
                sa.text(
                    f"WITH v AS MATERIALIZED (SELECT t.{q} AS v, count(*) AS n "
                    f"FROM {_q_table(t)} t WHERE {where} GROUP BY 1), "
                    "missing AS MATERIALIZED (SELECT v.v, v.n FROM v WHERE NOT EXISTS "
                    f"(SELECT FROM {_q_table(u)} k WHERE k.{_q(u.key)} = v.v)), "
                    f"spaced AS (SELECT DISTINCT s.{_q(space_key)} AS v "
                    f"FROM {_q_table(space)} s WHERE s.{_q(space_key)} IN "
                    "(SELECT v FROM missing)), "
                    f"mapped AS (SELECT DISTINCT m.{_q(through)} AS v "
                    f"FROM {_q_table(u)} m WHERE m.{_q(through)} IN "
                    "(SELECT v FROM missing)) "
                    "SELECT coalesce(sum(missing.n), 0), coalesce(sum(missing.n) FILTER "
                    "(WHERE sp.v IS NOT NULL AND mp.v IS NOT NULL), 0) FROM missing "
                    "LEFT JOIN spaced sp ON sp.v = missing.v "
                    "LEFT JOIN mapped mp ON mp.v = missing.v"
                ),
                params,
            )
            if row is None:
                violating = mapped = 0
                break
            violating += int(row[0])
            mapped += int(row[1])
        if not mapped or mapped < 0.5 * violating:
            continue
        attributes = attribute_evidence(ctx, t, column, targets, disc, through, space, space_key)
        mis_key: dict[str, Any] = {
            "key_space": key_space(ctx, space, space_key, attributes),
            "through": through,
        }
        vias = via_evidence(ctx, t, column, targets[0][1]) if disc is None else []
        items: list[dict[str, Any]] = [
            {"attribute": {"column": e, "key_space_column": a}} for e, a, _ in attributes
        ]
        items += [{"via": via} for via, _ in vias]
        if items:
            mis_key["evidence"] = items
        evidence = (
            [
                f"mis-key: {mapped} of {violating} violating rows hold a "
                f"{space.name}.{space_key} that {'/'.join(sorted(set(holders)))}.{through} maps"
            ]
            + [
                f"evidence: {e} agrees with {space.name}.{a} on {_pct(share)} of the rows "
                "that reference correctly"
                for e, a, share in attributes
            ]
            + [
                f"evidence: {v['table']}.{v['target_column']} of the row's {v['column']} "
                f"equals {column} on {_pct(share)} of the rows"
                for v, share in vias
            ]
        )
        return mis_key, evidence
    return None


def via_evidence(
    ctx: Discoverer, t: TableInfo, column: str, target: str
) -> list[tuple[dict[str, str], float]]:
    """Another reference of the row that names the same target row: the request's
    package (`package_id -> tutor_packages.id`) whose `tutor_id` references the same
    tutor_profiles as the request's `tutor_id`, on at least 80% of the rows."""
    out = []
    for (table, p), ref in sorted(ctx.references.items()):
        if table != t.name or p == column or ref.target == target:
            continue
        other = ctx.tables[ref.target]
        for (table2, q), ref2 in sorted(ctx.references.items()):
            if table2 != other.name or ref2.target != target:
                continue
            tc, tp = _q(column), _q(p)
            row = ctx.one(
                f"{t.name}.{column} via {other.name}.{q}",
                sa.text(
                    f"SELECT count(*) FILTER (WHERE o.{_q(q)} IS NOT NULL), "
                    f"count(*) FILTER (WHERE o.{_q(q)} = t.{tc}) "
                    f"FROM {_q_table(t)} t JOIN {_q_table(other)} o "
                    f"ON o.{_q(ref.target_column)} = t.{tp} "
                    f"WHERE t.{tc} IS NOT NULL"
                ),
            )
            if row is None:
                continue
            both, same = int(row[0]), int(row[1])
            if both >= 3 and same >= 0.8 * both:
                via = {
                    "column": p,
                    "table": other.name,
                    "key": ref.target_column,
                    "target_column": q,
                }
                out.append((via, same / both))
    return out


def key_space(
    ctx: Discoverer, space: TableInfo, key: str, attributes: list[tuple[str, str, float]]
) -> str:
    spaces = ctx.found.key_spaces
    name = check_id(space.name)
    entry = spaces.setdefault(name, {"table": space.name, "key": key, "attributes": []})
    for _, a, _share in attributes:
        if a not in entry["attributes"]:
            entry["attributes"].append(a)
    return name


def disjoint_pairs(
    ctx: Discoverer, t: TableInfo, u: TableInfo, pairs: list[tuple[str, str]]
) -> set[tuple[str, str]]:
    """The pairs (column of `t`, column of `u`) of text columns whose values cannot be
    equal: their ranges (the profiles' min and max) do not overlap in the collation both
    columns have. Such a pair agrees on no row, so an agreement test can leave it out."""
    typed = ("text", "character varying")
    todo = []
    for e, a in pairs:
        ce, ca = t.columns.get(e), u.columns.get(a)
        pe, pa = ctx.profiles.get((t.name, e)), ctx.profiles.get((u.name, a))
        if (
            ce is not None
            and ca is not None
            and ce.type.startswith(typed)
            and ca.type.startswith(typed)
            and pe is not None
            and pa is not None
            and None not in (pe.low, pe.high, pa.low, pa.high)
        ):
            todo.append((e, a, pe, pa))
    if not todo:
        return set()
    tests: list[str] = []
    params: dict[str, Any] = {}
    asked: list[tuple[str, str]] = []
    for e, a, pe, pa in todo:
        ke, ka = collations(ctx, t).get(e), collations(ctx, u).get(a)
        if ke is None or ka is None or ke[0] != ka[0]:
            continue  # no one collation both columns compare in: not pruned
        i = len(asked)
        params |= {f"el{i}": pe.low, f"eh{i}": pe.high, f"al{i}": pa.low, f"ah{i}": pa.high}
        c = ke[1]
        tests.append(
            f"(CAST(:el{i} AS text) COLLATE {c} <= CAST(:ah{i} AS text) COLLATE {c} "
            f"AND CAST(:al{i} AS text) COLLATE {c} <= CAST(:eh{i} AS text) COLLATE {c})"
        )
        asked.append((e, a))
    if not asked:
        return set()
    row = ctx.conn.execute(sa.text(f"SELECT {', '.join(tests)}"), params).one()
    return {pair for pair, overlaps in zip(asked, row, strict=True) if overlaps is False}


def collations(ctx: Discoverer, t: TableInfo) -> dict[str, tuple[int, str]]:
    """Column -> (oid, quoted name) of its collation, for the columns of `t` that have
    one; read once per table."""
    got = ctx._collations.get(t.name)
    if got is None:
        got = {}
        for name, oid, schema, collname in ctx.conn.execute(
            sa.text(
                "SELECT a.attname::text, co.oid::bigint, n.nspname::text, co.collname::text "
                "FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation "
                "JOIN pg_namespace n ON n.oid = co.collnamespace "
                "WHERE a.attrelid = CAST(:rel AS regclass) AND a.attnum > 0 "
                "AND NOT a.attisdropped"
            ),
            {"rel": t.sql},
        ):
            # quoted here (quote_ident leaves a newline raw), a colon no bind parameter
            got[name] = (int(oid), sqltext.qualified(schema, collname).replace(":", "\\:"))
        ctx._collations[t.name] = got
    return got


def attribute_evidence(
    ctx: Discoverer,
    t: TableInfo,
    column: str,
    targets: list[tuple[str | None, str]],
    disc: str | None,
    through: str,
    space: TableInfo,
    space_key: str,
) -> list[tuple[str, str, float]]:
    """(row column, key-space column, agreement) where the row's value equals the key
    space's attribute of the row it references correctly (`contact_email` =
    `users.email` of the requester's user) on at least 80% of such rows."""
    mine = [
        c.name
        for c in t.columns.values()
        if c.family == "text" and c.name not in (column, disc, t.key) and not c.enum
    ]
    theirs = [
        c.name
        for c in space.columns.values()
        if c.family == "text" and c.name != space_key and not c.enum
    ]
    pairs = [(e, a) for e in mine for a in theirs]
    if pairs:  # a pair that cannot agree on any row is not counted
        apart = disjoint_pairs(ctx, t, space, pairs)
        pairs = [p for p in pairs if p not in apart]
    if not pairs:
        return []
    both = [0] * len(pairs)
    same = [0] * len(pairs)
    for value, target in targets:
        u = ctx.tables[target]
        assert u.key is not None
        exprs = _agreement(pairs, "s")
        where = ""
        params: dict[str, Any] = {}
        if disc is not None:
            where = f"WHERE t.{_q(disc)}::text = :value"
            params["value"] = value
        row = ctx.one(
            f"attributes of {t.name}.{column} in {space.name}",
            sa.text(
                f"SELECT {', '.join(exprs)} FROM {_q_table(t)} t "
                f"JOIN {_q_table(u)} u ON u.{_q(u.key)} = t.{_q(column)} "
                f"JOIN {_q_table(space)} s "
                f"ON s.{_q(space_key)} = u.{_q(through)} "
                f"{where}"
            ),
            params,
        )
        if row is None:
            return []
        for i in range(len(pairs)):
            both[i] += int(row[2 * i])
            same[i] += int(row[2 * i + 1])
    found = [
        (e, a, same[i] / both[i])
        for i, (e, a) in enumerate(pairs)
        if both[i] >= 3 and same[i] >= 0.8 * both[i]
    ]
    # one attribute per row column: the one it agrees with most
    best: dict[str, tuple[str, str, float]] = {}
    for e, a, share in found:
        if e not in best or share > best[e][2]:
            best[e] = (e, a, share)
    return list(best.values())
