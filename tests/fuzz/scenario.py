"""One example of the fuzzer: build a world in a fresh database, audit it with --repair,
drift, apply, apply again, re-audit, drift, roll back; check the invariants after every
step (tests/fuzz/state.py). A broken invariant raises `Broken` with the transcript (schema,
rows, suite, every drift statement, every step's outcome): the reproduction."""

from __future__ import annotations

import itertools
import os
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import psycopg2
from hypothesis import strategies as st
from refaudit.apply import ApplyResult, apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.embedded import create_database
from refaudit.errors import DatabaseError
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.fuzz import state
from tests.fuzz.drift import AFTER_APPLY, DRIFTS, Context, Drift
from tests.fuzz.world import Fixed, World
from tests.roundtrip import findings

CHANGES = ("updated", "set_null", "quarantine", "restored", "reinserted", "unquarantined")
_counter = itertools.count()


def drop_database(server: str, name: str) -> None:
    conn = psycopg2.connect(server)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        conn.close()


def _audit(uri: str, world: World | Fixed, out: Path, repair: bool) -> Any:
    options = AuditOptions(repair=repair, record_history=False)
    return run_audit(as_url(uri), Suite.model_validate(world.suite()), out, options=options)


def _apply(uri: str, path: Path, ctx: Context | None = None) -> ApplyResult:
    """Apply `path`; with a concurrent writer, its uncommitted update is in place when apply
    starts and commits 0.3 s later."""
    if ctx is None or ctx.concurrent is None:
        return apply_plan(as_url(uri), path)
    table, update = ctx.concurrent
    writer = psycopg2.connect(uri)
    try:
        with writer.cursor() as cur:
            before = _logged(cur)
            cur.execute(update)
            ctx.applied["concurrent"] = (table, cur.fetchall())
            # what the update's own triggers wrote (a log trigger a drift made): the
            # writer's doing, not apply's
            ctx.applied["concurrent_log"] = [r for r in _logged(cur) if r not in before]
        outcome: list[Any] = []

        def run() -> None:
            try:
                outcome.append(apply_plan(as_url(uri), path))
            except BaseException as exc:
                outcome.append(exc)

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.3)
        writer.commit()
        thread.join(120)
        ctx.log.append(f"-- concurrently, committed 0.3 s into apply: {update}")
    finally:
        writer.close()
    if isinstance(outcome[0], BaseException):
        raise outcome[0]
    result: ApplyResult = outcome[0]
    return result


def _logged(cur: Any) -> list[tuple[str, Any]]:
    """The rows of the drifts' log table, if there is one (text, jsonb)."""
    cur.execute("SELECT to_regclass('public.dr_log') IS NOT NULL")
    if not cur.fetchone()[0]:
        return []
    cur.execute("SELECT x::text, pg_catalog.to_jsonb(x) FROM public.dr_log x")
    return list(cur.fetchall())


def _with_concurrent(a: state.Snapshot, ctx: Context) -> state.Snapshot:
    """`a` as it is with the concurrent writer's update committed (what apply may see)."""
    if "concurrent" not in ctx.applied:
        return a
    table, rows = ctx.applied["concurrent"]
    import copy

    a = copy.deepcopy(a)
    key_cols = ctx.world.key_of(table)
    for text, as_json in rows:
        key = ",".join("NULL" if as_json[c] is None else str(as_json[c]) for c in key_cols)
        old = a.keyed[table][key]
        a.rows[table] -= old
        a.rows[table][text] += 1
        a.keyed[table][key] = Counter([text])
        a.as_json[table][text] = as_json
    for text, as_json in ctx.applied.get("concurrent_log", []):
        a.rows.setdefault("dr_log", Counter())[text] += 1
        a.keyed.setdefault("dr_log", {}).setdefault(text, Counter())[text] += 1
        a.as_json.setdefault("dr_log", {})[text] = as_json
    return a


class Run:
    """The example's database, transcript and snapshots."""

    def __init__(
        self, server: str, world: World | Fixed, data: Any, mallory: str, forced: bool = False
    ) -> None:
        self.forced = int(forced)  # at least one drift of each phase that has kinds
        self.server = server
        self.world = world
        self.data = data
        self.mallory = mallory
        self.name = f"refaudit_fz_{os.getpid()}_{next(_counter)}"
        self.log: list[str] = []

    def snap(self) -> state.Snapshot:
        def key_of(table: str) -> list[str] | None:
            try:
                return self.world.key_of(table)
            except KeyError:
                return None

        return state.snapshot(self.uri, key_of)

    def note(self, line: str) -> None:
        self.log.append(f"-- {line}")

    def transcript(self) -> str:
        return "\n".join([self.world.describe(), "-- then", *self.log])

    def __call__(self, pre: Iterable[Drift], post: Iterable[Drift], tmp: Path) -> None:
        self.uri = create_database(self.server, self.name)
        try:
            self._run(list(pre), list(post), tmp)
        except state.Broken as exc:
            raise state.Broken(
                exc.kind, f"{exc.message}\n--- reproduction\n{self.transcript()}"
            ) from None
        finally:
            drop_database(self.server, self.name)
            execute(self.server, f'ALTER ROLE "{self.mallory}" NOSUPERUSER')

    def _run(self, pre: list[Drift], post: list[Drift], tmp: Path) -> None:
        world = self.world
        execute(self.uri, world.schema_sql())
        s0 = self.snap()
        audit = _audit(self.uri, world, tmp / "run", repair=True)
        repair = audit.repair or {}
        self.note(
            f"audit --repair: {repair.get('updates')} updates, {repair.get('set_null')} set "
            f"null, {repair.get('quarantined')} quarantined, {repair.get('ambiguous')} ambiguous"
        )
        state.unchanged(s0, self.snap(), "the audit", "audit-changed")
        found = {(r["table"], r["key"]) for r in findings(tmp / "run").values()}
        ctx = Context(self.uri, world, repair, found, self.mallory, self.data, self.log)
        chosen = self.data.draw(
            st.lists(st.sampled_from(pre), min_size=self.forced, max_size=3)
            if pre
            else st.just([]),
            label="drift",
        )
        for d in chosen:
            self.note(f"drift {d.value}")
            DRIFTS[d](ctx)
        a = self.snap()
        _audit(self.uri, world, tmp / "base", repair=False)
        before_findings = set(findings(tmp / "base"))
        plan = tmp / "run" / "repair.sql"
        try:
            applied = _apply(self.uri, plan, ctx)
        except DatabaseError as exc:
            self.note(f"apply raised: {str(exc).splitlines()[0]}")
            after = self.snap()
            state.unchanged(
                _with_concurrent(a, ctx), after, "apply, which raised,", "abort-changed"
            )
            return
        self.note(f"apply: {applied.totals}")
        a = _with_concurrent(a, ctx)
        b = self.snap()
        state.no_row_lost(a, b, "apply")
        state.roles_and_owners_unchanged(a, b, "apply")

        try:
            again = apply_plan(as_url(self.uri), plan)
            self.note(f"second apply: {again.totals}")
            changed = {k: again.totals[k] for k in CHANGES if again.totals.get(k)}
            if changed:
                raise state.Broken("second-apply-changed", f"the second apply changed {changed}")
        except DatabaseError as exc:
            self.note(f"second apply raised: {str(exc).splitlines()[0]}")
        state.unchanged(b, self.snap(), "the second apply", "second-apply-changed")

        _audit(self.uri, world, tmp / "re", repair=False)
        new = sorted(set(findings(tmp / "re")) - before_findings)
        if new:
            raise state.Broken(
                "reaudit-new-finding", f"the re-audit after apply finds what was not there: {new}"
            )

        ctx.applied.update(a=a, b=b)
        chosen = self.data.draw(
            st.lists(st.sampled_from(post), min_size=self.forced, max_size=2)
            if post
            else st.just([]),
            label="drift after apply",
        )
        for d in chosen:
            self.note(f"drift {d.value}")
            DRIFTS[d](ctx)
        c = self.snap()
        for table, gone in ((t, a.rows[t] - b.rows.get(t, Counter())) for t in a.rows):
            for text in gone:  # what the repair changed or removed is still kept
                if not state._is_kept(
                    a.as_json[table][text], c.kept, state._live(c, table, text, a)
                ):
                    raise state.Broken(
                        "backup-lost",
                        f"after the drift since apply, the row {text} of {table}, which the "
                        "repair changed or removed, is kept nowhere",
                    )
        try:
            back = apply_plan(as_url(self.uri), tmp / "run" / "rollback.sql")
        except DatabaseError as exc:
            self.note(f"rollback raised: {str(exc).splitlines()[0]}")
            state.unchanged(c, self.snap(), "rollback, which raised,", "rollback-abort-changed")
            return
        self.note(f"rollback: {back.totals}")
        e = self.snap()
        if e.rows.get("dr_log", Counter()) != c.rows.get("dr_log", Counter()):
            fired = sorted((e.rows["dr_log"] - c.rows.get("dr_log", Counter())).elements())
            raise state.Broken(
                "rollback-fired-trigger",
                f"a trigger created after the audit fired during rollback: {fired}",
            )
        repaired = {t: b.rows[t] - a.rows.get(t, Counter()) for t in b.rows}
        state.no_row_lost(c, e, "rollback", exempt=repaired)
        state.roles_and_owners_unchanged(c, e, "rollback")
        audited = [t for t in e.rows if not t.startswith("dr_")]
        state.rollback_exact(audited, a, b, c, e)


def run_example(
    server: str,
    world: World | Fixed,
    data: Any,
    mallory: str,
    pre: Iterable[Drift],
    post: Iterable[Drift],
    *,
    forced: bool = False,
) -> None:
    """One example: `pre` and `post` are the drift kinds allowed before apply and before
    rollback (the others of each list are ignored); `forced`: at least one of each."""
    pre = [d for d in pre if d not in AFTER_APPLY]
    post = [d for d in post if d in AFTER_APPLY]
    with tempfile.TemporaryDirectory(prefix="refaudit-fuzz-") as tmp:
        Run(server, world, data, mallory, forced)(pre, post, Path(tmp))
