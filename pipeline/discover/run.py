"""The stages in order, on one read-only snapshot with the audit's timeouts."""

from __future__ import annotations

import psycopg2
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection

from ..db import companion, create_engine, database_error, describe, read_only_snapshot
from ..errors import UsageError
from ..jobs import tune_session
from ..progress import ProgressLike, as_progress
from . import (
    catalog,
    conditional,
    generic,
    inclusion,
    keys,
    profile,
    rules,
    scoring,
)
from .context import Discoverer
from .model import Candidate, DiscoverOptions, Discovery, Proposal, _composite_key


def discover(
    url: URL, options: DiscoverOptions | None = None, *, progress: ProgressLike = None
) -> Discovery:
    """Read the catalog and the data of the database at `url` (read-only, one snapshot) and
    propose a suite for it."""
    opts = options or DiscoverOptions()
    prog = as_progress(progress)
    engine = create_engine(
        url, statement_timeout_s=opts.statement_timeout_s, lock_timeout_s=opts.lock_timeout_s
    )
    doing = "connecting"
    try:
        prog.stage("snapshot", 1)
        prog.step(f"connecting to {describe(url)}")
        with read_only_snapshot(engine) as (conn, snap):
            tune_session(conn)
            doing = "reading the catalog and the data"
            schemas = _schemas(conn, opts.schemas)
            found = Discovery(
                database=describe(url),
                database_name=snap.database,
                snapshot_taken_at=snap.taken_at,
                server_version=snap.server_version,
                schemas=schemas,
                tables={},
            )
            with companion(conn) as other:  # a second connection in the same snapshot
                if other is not None:
                    tune_session(other)
                run_stages(Discoverer(conn, found, prog, other))
    except (sa_exc.SQLAlchemyError, psycopg2.Error) as exc:
        raise database_error(exc, url, doing=doing) from None
    finally:
        engine.dispose()
    prog.done()
    return found


def _schemas(conn: Connection, wanted: tuple[str, ...]) -> list[str]:
    if not wanted:
        return list(conn.execute(sa.text("SELECT unnest(current_schemas(false))::text")).scalars())
    present = set(
        conn.execute(
            sa.text("SELECT nspname::text FROM pg_namespace WHERE nspname = ANY(:s)"),
            {"s": list(wanted)},
        ).scalars()
    )
    missing = [s for s in wanted if s not in present]
    if missing:
        raise UsageError(f"--schema {missing[0]} does not exist in the database; check its name")
    return list(dict.fromkeys(wanted))


def run_stages(ctx: Discoverer) -> None:
    """Every stage, in order, on one snapshot."""
    ctx.prog.stage("catalog", 1)
    ctx.prog.step("tables, keys, constraints and indexes")
    catalog.read_catalog(ctx)  # and the unique indexes that back no constraint
    ctx.found.tables = ctx.tables
    ctx.prog.stage("profiles", len(ctx.tables))
    ctx.each(list(ctx.tables.values()), lambda t: profile.profile(ctx, t), lambda t: t.name)
    keyless = [t for t in ctx.tables.values() if keys.needs_key(t)]
    if keyless:
        ctx.prog.stage("keys", len(keyless))
        for key in ctx.each(keyless, lambda t: keys.infer_key(ctx, t), lambda t: t.name):
            if key is not None:
                ctx.add(key)
    keyed = [t for t in ctx.tables.values() if t.key is not None]
    catalog.catalog_proposals(ctx)  # with the keys the rows hold
    families = {u.columns[k].family for u in ctx.tables.values() for k in u.single_keys()}
    # a table keyed by a composite primary key references too (its rows have a key)
    sources = [t for t in ctx.tables.values() if t.key or _composite_key(t)]
    dependents = [
        (t, c)
        for t in sources
        for c in t.columns.values()
        if c.family in families and inclusion.is_dependent(ctx, t, c)
    ]
    composites = inclusion.composite_candidates(ctx)
    ctx.prog.stage("references", len(dependents) + len(composites))
    found = ctx.each(
        dependents,
        lambda tc: inclusion.inclusion(ctx, *tc),
        lambda tc: f"{tc[0].name}.{tc[1].name}",
    )
    unconditional: dict[tuple[str, str], list[Candidate]] = {
        (t.name, c.name): got for (t, c), got in zip(dependents, found, strict=True)
    }
    composite_found = ctx.each(
        composites,
        lambda c: inclusion.composite_inclusion(ctx, c),
        lambda c: f"{c[0].name}({', '.join(c[1])})",
    )
    rules.preliminary_references(ctx, dependents, unconditional)
    pairs = conditional.discriminator_pairs(ctx, keyed, unconditional)
    ctx.prog.stage("conditional", len(pairs))
    by_type: dict[tuple[str, str], Proposal] = {}
    for table, column, disc in pairs:
        ctx.prog.step(f"{table.name}.{column.name} by {disc}")
        best = unconditional.get((table.name, column.name), [])
        got = conditional.conditional(ctx, table, column, disc, best)
        key = (table.name, column.name)
        if got is not None and (key not in by_type or got.confidence > by_type[key].confidence):
            by_type[key] = got
    ctx.prog.stage("generic", 1)
    ctx.prog.step("type tables and the generic relations through them")
    through_types = generic.generic_relations(ctx, unconditional)
    ctx.prog.stage("mis-keys", 1)
    ctx.prog.step("references whose values come from another key space")
    scoring.settle(ctx, dependents, unconditional, {**by_type, **through_types})
    scoring.propose_by_name(ctx)
    for (t, cols, _targets), cands in zip(composites, composite_found, strict=True):
        inclusion.propose_inferred_composite(ctx, t, cols, cands)
    ctx.prog.stage("rules", len(keyed))
    for t in keyed:
        ctx.prog.step(t.name)
        rules.rules(ctx, t, by_type)
