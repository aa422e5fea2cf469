"""Stage 4b, generic relations through a type table (Django's `content_type_id`): a small
table whose rows' text columns, joined, name tables, a column holding its keys, and beside it
the id column whose values, for the rows of each type, are keys of the table the type names
(the pure parts are in `refaudit.discover.type_tables`)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from ..checks import ConditionalReferenceCheck
from .context import Discoverer
from .model import (
    _INTEGER_TYPES,
    MIN_COVERAGE,
    RARE_VALUE_SHARE,
    Candidate,
    ColumnInfo,
    DeclaredReference,
    Proposal,
    TableInfo,
    _normal,
    _pct,
    _q,
    _q_table,
    _ranked,
    check_id,
)
from .names import column_stem
from .type_tables import (
    MAX_NAME_COLUMNS,
    MAX_TYPE_ROWS,
    MAX_TYPES_USED,
    TypeCount,
    TypeTable,
    relation_sql,
    type_table,
)


def generic_relations(
    ctx: Discoverer, unconditional: dict[tuple[str, str], list[Candidate]]
) -> dict[tuple[str, str], Proposal]:
    """Generic relations through every type table (see `refaudit.discover.type_tables`), by
    (table, id column)."""
    declared = {(d.table, d.columns[0]): d for d in ctx.declared if len(d.columns) == 1}
    out: dict[tuple[str, str], Proposal] = {}
    for types in type_tables(ctx):
        for t in ctx.tables.values():
            if t.name == types.table or t.key is None:
                continue
            holders = {
                c.name: how
                for c in t.columns.values()
                if (how := holds_types(ctx, t, c, types, declared, unconditional))
            }
            for column, how in holders.items():
                got = generic(ctx, t, column, types, how, set(holders), declared)
                if got is not None:
                    key = (t.name, str(got.check["column"]))
                    if key not in out or got.confidence > out[key].confidence:
                        out[key] = got
    return out


def type_tables(ctx: Discoverer) -> list[TypeTable]:
    """The small tables keyed by one integer column whose rows' text columns, joined
    with `_`, name tables (`shop` + `article`: `shop_article`)."""
    names: dict[str, str] = {}
    for u in ctx.tables.values():
        for form in (u.name, u.relname):
            names.setdefault(_normal(form), u.name)
    out = []
    for t in ctx.tables.values():
        key = t.key
        if key is None or t.columns[key].type not in _INTEGER_TYPES:
            continue
        if not 2 <= t.rows <= MAX_TYPE_ROWS:
            continue
        texts = [
            c.name
            for c in t.columns.values()
            if c.family == "text" and c.name != key and ctx.nonnull.get((t.name, c.name))
        ][:MAX_NAME_COLUMNS]
        if not texts:
            continue
        picked = ", ".join(f"{_q(c)}::text" for c in [key, *texts])
        rows = ctx.attempt(
            f"{t.name} as a type table", sa.text(f"SELECT {picked} FROM {_q_table(t)}")
        )
        if rows:
            got = type_table(t.name, key, texts, [tuple(r) for r in rows], names, _normal)
            if got is not None:
                out.append(got)
    return out


def holds_types(
    ctx: Discoverer,
    t: TableInfo,
    c: ColumnInfo,
    types: TypeTable,
    declared: dict[tuple[str, str], DeclaredReference],
    unconditional: dict[tuple[str, str], list[Candidate]],
) -> str | None:
    """How an integer column holds keys of the type table (a foreign key, or the data: at
    least MIN_COVERAGE of its rows, by a name that fits or as the best key for them), or
    None."""
    if c.type not in _INTEGER_TYPES:
        return None
    d = declared.get((t.name, c.name))
    if d is not None:
        if d.target == types.table and d.target_columns[0] == types.key:
            return f"FOREIGN KEY {d.name} -> {types.table}({types.key}) in the catalog"
        return None
    ranked = _ranked(unconditional.get((t.name, c.name), []))
    for n, x in enumerate(ranked):
        mine = x.table == types.table and x.column == types.key and not x.through
        if mine and (x.name >= 0.6 or n == 0):
            return f"{c.name} holds keys of {x.describe()}; no foreign key declares it"
    return None


def generic(
    ctx: Discoverer,
    t: TableInfo,
    column: str,
    types: TypeTable,
    how: str,
    holders: set[str],
    declared: dict[tuple[str, str], DeclaredReference],
) -> Proposal | None:
    """The generic relation of `t` whose type is `column` (keys of `types`): the id
    column beside it whose values, for the rows of each type, are keys of the table that
    type names, for at least MIN_COVERAGE of the rows of types that name a table (and
    those are MIN_COVERAGE of the rows). Targets by the type rows' names."""
    used_rows = ctx.attempt(
        f"{t.name}.{column} as types of {types.table}",
        sa.text(
            f"SELECT {_q(column)}::text, count(*) FROM {_q_table(t)} "
            f"WHERE {_q(column)} IS NOT NULL GROUP BY 1"
        ),
    )
    if not used_rows or len(used_rows) > MAX_TYPES_USED:
        return None
    used = {str(r[0]): int(r[1]) for r in used_rows}
    targets: dict[str, tuple[str, str, tuple[int, int] | None]] = {}
    for type_id in used:
        name = types.tables.get(type_id)
        u = ctx.tables.get(name) if name is not None else None
        if u is None or u.key is None:
            continue
        kp = ctx.profiles.get((u.name, u.key))
        span = None
        if (
            u.columns[u.key].type in _INTEGER_TYPES
            and kp is not None
            and kp.low is not None
            and kp.high is not None
        ):
            span = (int(kp.low), int(kp.high))
        targets[type_id] = (_q_table(u), u.key, span)
    if not targets:
        return None
    stem = column_stem(column_stem(column, "id"), "type")
    best: tuple[float, str, dict[str, TypeCount]] | None = None
    for a in t.columns.values():
        if not may_be_object_id(ctx, t, a, holders, declared):
            continue
        rows = ctx.attempt(
            f"{t.name}.{a.name} by {column}",
            sa.text(relation_sql(_q_table(t), column, a.name, targets)),
        )
        if not rows:
            continue
        counts = {
            str(r[0]): TypeCount(
                int(r[1]), int(r[2] or 0), int(r[3]), int(r[4] or 0), int(r[5] or 0)
            )
            for r in rows
        }
        typed = sum(x.rows for x in counts.values())
        mapped = [x for d, x in counts.items() if d in targets]
        rows_mapped = sum(x.rows for x in mapped)
        if not rows_mapped or rows_mapped < MIN_COVERAGE * typed:
            continue
        coverage = sum(x.found for x in mapped) / rows_mapped
        if coverage < MIN_COVERAGE:
            continue
        named = 1.0 if column_stem(a.name, "id") == stem and stem != a.name else 0.0
        # a handful of small numbers (a flag, a count) is found in every dense key; the
        # ids of objects are many for their rows, or cover much of their tables
        sizes = sum(ctx.tables[types.tables[d]].rows for d in counts if d in targets)
        fill = min(1.0, sum(x.distinct_found for x in mapped) / sizes) if sizes else 0.0
        spread = max(fill, sum(x.distinct for x in mapped) / rows_mapped)
        score = coverage + 0.25 * named + 0.5 * spread
        if best is None or score > best[0]:
            best = (score, a.name, counts)
    if best is None:
        return None
    return generic_proposal(ctx, t, column, best[1], types, how, targets, best[2])


def may_be_object_id(
    ctx: Discoverer,
    t: TableInfo,
    a: ColumnInfo,
    holders: set[str],
    declared: dict[tuple[str, str], DeclaredReference],
) -> bool:
    """A column that may hold the ids of a generic relation's objects: integer, text or
    uuid, set in some rows, not its table's key, nor a type column, nor a reference
    declared or named after a table (`user_id`)."""
    if a.name in holders or a.name in t.single_keys() or (t.name, a.name) in declared:
        return False
    if not (a.type in _INTEGER_TYPES or a.family in ("text", "uuid")):
        return False
    if not ctx.nonnull.get((t.name, a.name)):
        return False
    ref = ctx.references.get((t.name, a.name))
    return not (ref is not None and ref.best is not None and ref.best.name >= 0.9)


def generic_proposal(
    ctx: Discoverer,
    t: TableInfo,
    column: str,
    id_column: str,
    types: TypeTable,
    how: str,
    targets: dict[str, tuple[str, str, tuple[int, int] | None]],
    counts: dict[str, TypeCount],
) -> Proposal:
    """The conditional reference through `types`, its targets by name (sorted by name:
    the same text whatever ids a database gave its types)."""
    by_name: dict[str, tuple[str, str, TypeCount]] = {}
    for type_id, x in counts.items():
        if type_id not in targets:
            continue
        name = types.names[type_id]
        u = ctx.tables[types.tables[type_id]]
        key = u.key or "id"
        if name in by_name:  # two type rows of one name (a duplicate): one target
            old = by_name[name][2]
            x = TypeCount(
                old.rows + x.rows,
                old.found + x.found,
                old.distinct + x.distinct,
                old.distinct_found + x.distinct_found,
                old.gaps + x.gaps,
            )
        by_name[name] = (u.name, key, x)
    typed = sum(x.rows for x in counts.values())
    mapped = sum(x.rows for _, _, x in by_name.values())
    found = sum(x.found for _, _, x in by_name.values())
    missing = mapped - found
    gaps = sum(x.gaps for _, _, x in by_name.values())
    coverage = found / mapped
    confidence = coverage * (mapped / typed)
    if sum(x.distinct for _, _, x in by_name.values()) < 10:
        confidence *= 0.5  # a few ids fit any key by chance
    if how.startswith("FOREIGN KEY"):
        evidence = [f"{column}: {how}"]
    else:
        evidence = [how]
        confidence *= 0.9
    label = ", ".join(types.name)
    evidence.append(
        f"{types.table} is a type table: {len(types.tables)} of its "
        f"{types.rows} rows name a table by {label}"
        + (f" (joined with {types.separator!r})" if len(types.name) > 1 else "")
    )
    for name, (table, key, x) in sorted(by_name.items()):
        evidence.append(
            f"{column} = {name}: {x.found} of {x.rows} rows' {id_column} are "
            f"{table}.{key} ({_pct(x.coverage)}, {x.distinct_found} of {x.distinct} values)"
        )
    other = typed - mapped
    if other:
        evidence.append(
            f"{other} rows have a {column} whose {types.table} row names no table: "
            "discriminator findings"
        )
    check: dict[str, Any] = {
        "id": check_id(t.name, id_column, "reference"),
        "kind": "conditional_reference",
        "table": t.name,
        "column": id_column,
        "discriminator": column,
        "lookup": types.lookup(),
        "targets": {
            name: {"table": table} | ({"column": key} if key != "id" else {})
            for name, (table, key, _) in sorted(by_name.items())
        },
    }
    if missing > RARE_VALUE_SHARE * mapped and gaps == missing:
        # every id not found lies within its target's key: objects since deleted, whose
        # rows the table keeps (versions, an admin log): reported, never repaired
        check["severity"] = "warn"
        check["on_orphan"] = "report"
        evidence.append(
            f"each of the {missing} rows whose object is not found has an id within its "
            "target's key range (an object since deleted, that the table keeps rows "
            "of): a warning, reported, not repaired"
        )
    made = ConditionalReferenceCheck.model_validate(check)
    return Proposal(made, "data", round(confidence, 3), evidence, [], missing + other)
