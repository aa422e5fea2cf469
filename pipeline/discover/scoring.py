"""Stage 6, settling: per column, the declared, conditional or plain reference that the
candidates' scores choose, with its confidence, evidence and alternatives; declared foreign
keys (single and composite) become data checks."""

from __future__ import annotations

from typing import Any

from ..checks import ConstraintCheck, ReferenceCheck
from . import miskeys
from .context import Discoverer
from .model import (
    BY_NAME,
    NAME_VOUCHES,
    SOLE_NAME,
    SPREAD,
    SPREAD_ONLY,
    SPREAD_VALUES,
    Candidate,
    ColumnInfo,
    DeclaredReference,
    Proposal,
    TableInfo,
    _composite_key,
    _ranked,
    _Reference,
    check_id,
)
from .names import column_fit, column_stem, name_fit, names_other


def settle(
    ctx: Discoverer,
    dependents: list[tuple[TableInfo, ColumnInfo]],
    unconditional: dict[tuple[str, str], list[Candidate]],
    conditional: dict[tuple[str, str], Proposal],
) -> None:
    """Choose per column: declared, conditional or plain reference; key spaces (the
    references between key tables) first, so mis-keys can map through them."""
    declared = {(d.table, d.columns[0]): d for d in ctx.declared if len(d.columns) == 1}
    chosen: dict[tuple[str, str], tuple[Candidate, list[Candidate]]] = {}
    for t, c in dependents:
        key = (t.name, c.name)
        if key in conditional:
            continue
        ranked = _ranked(unconditional.get(key, []))
        if ranked:
            chosen[key] = (ranked[0], ranked[1:])
    for key in conditional:
        ctx.references.pop(key, None)
    # with the key spaces known: a better target through which the values map
    for t, c in dependents:
        key = (t.name, c.name)
        if key in conditional:
            continue
        direct = unconditional.get(key, [])
        through = miskeys.through_candidates(ctx, t, c, direct)
        ranked = _ranked(direct + through)
        if ranked and ranked[0].through:
            chosen[key] = (ranked[0], ranked[1:])
    for (table, column), d in declared.items():
        if (table, column) not in conditional:
            propose_declared(ctx, d, chosen.get((table, column)))
    for d in ctx.declared:
        if len(d.columns) > 1:
            propose_composite(ctx, d)
    for key, (best, rest) in sorted(chosen.items()):
        if key in declared:
            continue
        propose_reference(ctx, ctx.tables[key[0]], key[1], best, rest)
    for key, proposal in sorted(conditional.items()):
        t = ctx.tables[key[0]]
        targets = [(v, x["table"]) for v, x in proposal.check["targets"].items()]
        # through a type table, the discriminator's values are ids, not the targets' names
        got = (
            None
            if "lookup" in proposal.check
            else miskeys.mis_key(ctx, t, key[1], targets, proposal.check["discriminator"])
        )
        if got is not None:
            mis_key, more = got
            proposal.revise(mis_key=mis_key)
            proposal.evidence += more
        ctx.add(proposal)
        ctx.add(trigger_note(ctx, proposal, declared.get(key)))


def trigger_note(
    ctx: Discoverer, proposal: Proposal, declared: DeclaredReference | None
) -> Proposal:
    """No foreign key can hold a conditional reference: a declared one is questioned."""
    column = proposal.check["column"]
    check: dict[str, Any] = {
        "id": check_id("catalog", proposal.table, column, "no_foreign_key"),
        "kind": "constraint",
        "table": proposal.table,
    }
    evidence = ["a foreign key on a conditional reference can only point at one of its targets"]
    if declared is not None:
        check["name"] = declared.name
        evidence.append(
            f"declared: {declared.name} -> {declared.target}({declared.target_columns[0]})"
        )
    return Proposal(
        ConstraintCheck.model_validate(
            {
                **check,
                "type": "foreign_key",
                "columns": [column],
                "absent": True,
                "description": f"{column} is a conditional reference (by "
                f"{proposal.check['discriminator']}); a plain foreign key on it points at one "
                "table only",
            }
        ),
        "data",
        proposal.confidence,
        evidence,
    )


def propose_reference(
    ctx: Discoverer,
    t: TableInfo,
    column: str,
    best: Candidate,
    rest: list[Candidate],
    declared: DeclaredReference | None = None,
) -> None:
    target = ctx.tables[best.table]
    ctx.references[(t.name, column)] = _Reference(
        t.name, column, target.name, best.column, declared is not None, best
    )
    evidence = [f"{column}: {best.describe()}"]
    confidence = best.coverage
    if 0 < best.name < 0.6 and best.same_type and all(x.name == 0 for x in rest):
        # a weak name (`ship_via` -> `shippers`) that no other key holding the values
        # shares: the name singles the target out
        confidence *= SOLE_NAME
    elif best.name < 0.6 and _names_a_table(ctx, column):
        # the name points at a table (`personid`, a table's own `emailaddressid`): values
        # that also fit another key, whose name does not fit, are no evidence for that key
        confidence = 0.0
    elif (
        best.name == 0
        and not rest
        and best.same_type
        and best.missing_rows == 0
        and best.distinct >= SPREAD_VALUES
        and best.spread_known
        and best.bunched > SPREAD
    ):
        # no name (`country.capital` -> `city.id`), but many values, every one a key of
        # the one key that holds them, spread over its range as keys drawn at random are
        confidence = SPREAD_ONLY
        evidence.append(
            f"no name fits; {best.distinct} values spread over {target.name}.{best.column} "
            "as its keys would, and no other key holds them"
        )
    elif best.name < 0.6:
        # a handful of small numbers, or a narrow band of a big key (years, counts),
        # fits every dense key: without a name, the values must use much of the key
        confidence *= 0.85 * min(1.0, max(0.0, (best.fill - 0.3) / 0.5))
        if best.distinct < 10:
            confidence *= 0.5
    close = [x for x in rest if x.score > best.score - 0.05]
    if close:
        confidence *= 0.8
    violations = best.missing_rows
    if best.through:
        # the values are the key space's: every row violates the proposed reference
        violations = best.rows
        confidence = min(confidence, 0.8)
        evidence.append(
            f"the values are not {target.name}.{best.column} but {target.name}.{best.through} "
            "values: the column holds keys of another key space"
        )
    questioned = []
    if declared is not None:
        questioned.append(
            f"declared: {declared.name} -> {declared.target}({declared.target_columns[0]}); "
            f"the data and the name say {target.name}({best.column})"
        )
        evidence += questioned
    mis_key = None
    if best.through or best.missing_rows:
        got = miskeys.mis_key(ctx, t, column, [(None, target.name)], None)
        if got is not None:
            mis_key, more = got
            evidence += more
    check = ReferenceCheck.propose(
        check_id(t.name, column, "reference"),
        t.name,
        [column],
        target.name,
        [best.column],
        mis_key=mis_key,
    )
    ctx.add(
        Proposal(
            check,
            "data",
            round(confidence, 3),
            evidence,
            [x.describe() for x in rest[:3]],
            violations,
        )
    )
    if declared is not None:
        ctx.add(fk_proposal(ctx, declared, target.name, [best.column], confidence, questioned))


def fk_proposal(
    ctx: Discoverer,
    d: DeclaredReference,
    target: str,
    target_columns: list[str],
    confidence: float,
    evidence: list[str],
) -> Proposal:
    check: dict[str, Any] = {
        "id": check_id("catalog", d.name),
        "kind": "constraint",
        "table": d.table,
        "name": d.name,
        "type": "foreign_key",
        "columns": d.columns,
        "references": {"table": target, "columns": target_columns},
    }
    if d.on_delete is not None and d.on_delete != "no_action":
        check["on_delete"] = d.on_delete
    return Proposal(
        ConstraintCheck.model_validate(check),
        "catalog",
        round(confidence, 3),
        [f"FOREIGN KEY {d.name} in the catalog", *evidence],
    )


def propose_declared(
    ctx: Discoverer, d: DeclaredReference, questioned: tuple[Candidate, list[Candidate]] | None
) -> None:
    t = ctx.tables[d.table]
    if (
        questioned is not None
        and (questioned[0].table != d.target or questioned[0].column != d.target_columns[0])
        and questioned[0].name > name_fit(column_stem(d.columns[0], "id"), d.target)
    ):
        propose_reference(ctx, t, d.columns[0], questioned[0], questioned[1], declared=d)
        return
    if t.key is not None or _composite_key(t) is not None:
        # a declared foreign key is a data check wherever its rows can be named: a table keyed
        # by one column, by several (a link table), or by what its rows hold (keys stage)
        check = ReferenceCheck.propose(
            check_id(d.table, d.columns[0], "reference"),
            d.table,
            d.columns[:1],
            d.target,
            d.target_columns[:1],
        )
        evidence = [f"FOREIGN KEY {d.name} in the catalog"]
        if not d.validated:
            evidence.append("NOT VALID: existing rows were never checked")
        ctx.add(Proposal(check, "catalog", 1.0, evidence))
    ctx.add(fk_proposal(ctx, d, d.target, d.target_columns[:1], 1.0, []))


def propose_composite(ctx: Discoverer, d: DeclaredReference) -> None:
    ctx.add(fk_proposal(ctx, d, d.target, d.target_columns, 1.0, []))
    reference = ReferenceCheck.propose(
        check_id(d.table, "_".join(d.columns), "reference"),
        d.table,
        d.columns,
        d.target,
        d.target_columns,
    )
    evidence = [f"FOREIGN KEY {d.name} in the catalog (composite: MATCH SIMPLE)"]
    if not d.validated:
        evidence.append("NOT VALID: existing rows were never checked")
    ctx.add(Proposal(reference, "catalog", 1.0, evidence))


def propose_by_name(ctx: Discoverer) -> None:
    """References of columns that hold no value to test (an empty table, a column NULL on
    every row): where the column is named as exactly one key of its type family is named
    (`customer_id` -> `customers.customer_id`, `original_language_id` ->
    `language.language_id`), the reference is proposed on the name alone, at a confidence
    that says so. Such a check flags nothing today and holds the rows to come."""
    declared = {(d.table, c) for d in ctx.declared for c in d.columns}
    for t in ctx.tables.values():
        for c in t.columns.values():
            if (
                c.family not in ("number", "text", "uuid")
                or ctx.nonnull.get((t.name, c.name), 0) > 0
                or (t.name, c.name) in declared
            ):
                continue
            fits = sorted(
                (
                    (column_fit(ctx, t, c.name, u, k), u, k)
                    for u in ctx.tables.values()
                    if u is not t and not u.kin(t)
                    for k in u.single_keys()
                    # a natural value its rows hold unique is no key for a name alone
                    if u.columns[k].family == c.family and k not in u.inferred_alternates
                ),
                key=lambda x: -x[0],
            )
            tied = len(fits) > 1 and fits[1][0] >= fits[0][0]
            if not fits or fits[0][0] < NAME_VOUCHES or tied:
                continue
            fit, u, k = fits[0]
            declared_key = c.name in t.single_keys() and c.name not in t.inferred
            if declared_key or (c.name in t.single_keys() and not names_other(t, c.name, u, fit)):
                continue  # an empty table's declared key is its own, not another's
            ctx.references[(t.name, c.name)] = _Reference(t.name, c.name, u.name, k, False)
            where = "the table has no rows" if not t.rows else "the column is NULL on every row"
            ctx.add(
                Proposal(
                    ReferenceCheck.propose(
                        check_id(t.name, c.name, "reference"), t.name, [c.name], u.name, [k]
                    ),
                    "data",
                    BY_NAME,
                    [
                        f"{c.name}: named as {u.name}.{k} (name fits {fit:.1f}); {where}, "
                        "so no value was tested"
                    ],
                    violations=0,
                )
            )


def _names_a_table(ctx: Discoverer, column: str) -> bool:
    """The column's name names some table (`personid` -> `person`): values that fit
    another key without a name are then no evidence (its own target may be empty)."""
    stem = column_stem(column, "id")
    return any(name_fit(stem, u.name) >= 0.6 for u in ctx.tables.values())
