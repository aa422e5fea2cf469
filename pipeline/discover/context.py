"""The discovery's working state: the snapshot's connection (and its companion, so that two
statements of a stage run at once), what the catalog and the profiles said, and the checks
proposed so far. A candidate's statement that PostgreSQL refuses is dropped with a note
(`Discoverer.attempt`): one bad candidate never ends the run."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .model import (
    DeclaredReference,
    Discovery,
    Proposal,
    TableInfo,
    _Profile,
    _Reference,
)


class Discoverer:
    """What discovery has read and proposed so far, shared by its stages, and the
    connections of its snapshot."""

    def __init__(
        self, conn: Connection, found: Discovery, prog: Any, other: Connection | None = None
    ) -> None:
        self._main = conn
        self._other = other
        self._local = threading.local()
        self.found = found
        self.prog = prog
        self.tables: dict[str, TableInfo] = {}
        self.by_oid: dict[int, TableInfo] = {}
        self.declared: list[DeclaredReference] = []
        self.checks_in: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        self.indexes: list[tuple[str, str, list[str] | None]] = []
        self.profiles: dict[tuple[str, str], _Profile] = {}
        self.references: dict[tuple[str, str], _Reference] = {}
        self.ids: set[str] = set()
        self.nulls_equal: set[tuple[str, tuple[str, ...]]] = set()
        self.nonnull: dict[tuple[str, str], int] = {}
        self.shapes: dict[tuple[str, str], tuple[int, int]] = {}
        """(non-NULL rows, distinct values) of each column tested for inclusion."""
        self.value_counts: dict[tuple[str, str], dict[str, int]] = {}
        self._collations: dict[str, dict[str, tuple[int, str]]] = {}
        """Rows per value of the text columns of few values (as `few_values` read them)."""

    @property
    def conn(self) -> Connection:
        """The connection of the running thread: the snapshot's, or its companion's."""
        return getattr(self._local, "conn", self._main)

    def each(
        self, items: list[Any], work: Callable[[Any], Any], step: Callable[[Any], str]
    ) -> list[Any]:
        """`work(item)` for every item, results in item order: on the snapshot's connection
        and, when there is one, on a second connection in the same snapshot at the same time
        (each item's statements read only; what they record is keyed by the item)."""
        if self._other is None or len(items) < 2:
            out = []
            for item in items:
                self.prog.step(step(item))
                out.append(work(item))
            return out
        pending = list(enumerate(items))
        results: dict[int, Any] = {}
        lock = threading.Lock()

        def take() -> tuple[int, Any] | None:
            with lock:
                return pending.pop(0) if pending else None

        def side() -> None:
            self._local.conn = self._other
            while (got := take()) is not None:
                results[got[0]] = work(got[1])

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="refaudit-discover") as pool:
            helper = pool.submit(side)
            try:
                while (got := take()) is not None:
                    self.prog.step(step(got[1]))
                    results[got[0]] = work(got[1])
            finally:
                with lock:
                    pending.clear()  # on an error here, the other thread stops too
                helper.result()
        return [results[i] for i in range(len(items))]

    def plannable(
        self,
        what: str,
        keys: list[tuple[TableInfo, str]],
        statement: Callable[[list[tuple[TableInfo, str]]], Any],
    ) -> list[tuple[TableInfo, str]]:
        """The keys whose statement PostgreSQL plans (`EXPLAIN`, nothing runs), when one of
        several candidate keys made a statement fail: those it refuses (a comparison of
        types with no operator) are dropped with a note, the rest tested together again."""
        return [
            (u, k)
            for u, k in keys
            if self.attempt(
                f"{what} -> {u.name}.{k}", sa.text(f"EXPLAIN {statement([(u, k)]).text}")
            )
            is not None
        ]

    def attempt(
        self, what: str, stmt: Any, params: dict[str, Any] | None = None, note: bool = True
    ) -> list[Any] | None:
        """The rows of one candidate's statement, or None when PostgreSQL refuses it (types
        it cannot compare, a value it cannot cast, the statement timeout): the statement runs
        in a savepoint, so the snapshot's transaction survives, and the candidate is dropped
        with a note. A lost connection or a cancel asked by the user still ends discovery."""
        conn = self.conn
        try:
            with conn.begin_nested():
                return list(conn.execute(stmt, params or {}).all())
        except sa_exc.DBAPIError as exc:
            message = str(getattr(exc.orig, "pgerror", None) or exc.orig or exc).strip()
            if exc.connection_invalidated or "due to user request" in message:
                raise
            first = message.splitlines()[0] if message else type(exc.orig).__name__
            if note:
                self.found.notes.append(
                    f"{what}: not tested, PostgreSQL refused its statement ({first})"
                )
            return None

    def one(self, what: str, stmt: Any, params: dict[str, Any] | None = None) -> Any | None:
        """The one row of a candidate's statement, or None when PostgreSQL refuses it
        (see `attempt`)."""
        got = self.attempt(what, stmt, params)
        return got[0] if got else None

    def add(self, proposal: Proposal) -> None:
        """Propose a check, its id made unique among those proposed. A rule the rows
        mostly obey and some break today is proposed as it is: `severity: warn`, so that
        a run on the same data passes at the default `--fail-on` and lists its exceptions
        for review (a reference's orphans stay errors: real defects, the seed's case)."""
        if (
            proposal.source == "data"
            and proposal.violations
            and proposal.kind not in ("reference", "conditional_reference")
            and "severity" not in proposal.model.model_fields_set
        ):
            proposal.revise(severity="warn")
            proposal.evidence.append(
                f"{proposal.violations} rows break it today: a warning, its rows for review"
            )
        base = proposal.model.id
        cid, n = base, 1
        while cid in self.ids:
            n += 1
            cid = f"{base}-{n}"
        self.ids.add(cid)
        if cid != base:
            proposal.revise(id=cid)
        self.found.proposals.append(proposal)
