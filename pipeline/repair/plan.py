"""Collecting the plan: `RepairPlan.add`, the audit's violation tap, turns each diagnosis into a
planned change (or a row for review, with the reason) and spills it to disk, grouped into
steps; memory stays flat however many rows need repair.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from ..checks.base import (
    Violation,
    guard_text,
)
from ..checks.reference import DISCRIMINATOR_SUFFIX, Reference
from ..limits import DEFAULT_REPAIR_SCHEMA
from ..sqltext import (
    object_name,
    qualified,
    split_name,
)
from ..suite import Suite
from .context import RepairContext

REPAIRABLE = frozenset({"mis_keyed", "mis_keyed_hidden", "wrong_type", "malformed"})


APPLIED_CONFIDENCE = frozenset({"high", "medium"})


ACTIONS = ("update", "set_null", "quarantine")


DEFAULT_SCHEMA = DEFAULT_REPAIR_SCHEMA


QUARANTINE = "quarantine"


CONFLICTS = "rollback_conflicts"


AFTER_COLUMN = "refaudit_repaired_row"


# pg_type.typcategory of the key columns a composite key's JSON text spells exactly: numbers,
# strings, dates and times, intervals, booleans, enums (uuid and bytea by name)
_KEY_CATEGORIES = frozenset("NSDTBE")


@dataclass(frozen=True, order=True)
class StepKind:
    """What one step does; steps run in this order (updates, then NULLs, then quarantine)."""

    order: int
    table: str
    column: str
    action: str
    check: str
    diagnosis: str
    confidence: str
    guard: tuple[str, ...]  # the columns whose audited values the step's rows must still hold


Item = tuple[str, list[str | None], str | None, str]
"""A planned row: key, audited values of the step's guard columns, new value, evidence."""


@dataclass
class Step:
    kind: StepKind
    path: Path
    rows: int = 0
    handle: TextIO | None = None
    hashed: set[str] = field(default_factory=set)
    """Guard columns of which some row's audited value is long: compared by its length and
    SHA-256 (see `refaudit.checks.base.guard_value`)."""

    def items(self) -> Iterator[Item]:
        with self.path.open(encoding="utf-8") as f:
            for line in f:
                key, guard, new, note = json.loads(line)
                yield key, guard, new, note


@dataclass
class ReviewItem:
    check: str
    table: str
    key: str
    column: str
    value: str
    diagnosis: str
    confidence: str
    evidence: str
    reason: str = ""


def _why_review(check: Reference) -> str:
    """Why repair.sql changes nothing for a check that does not propose (`proposes`)."""
    if check.columns:  # a composite reference proposes nothing, whatever it says
        return ""
    if check.repair == "review":
        return f"{check.id} says `repair: review`"
    said = "`severity: warn`" if check.severity == "warn" else "`on_orphan: report`"
    return f"{check.id} is {said}: repair.sql changes its rows only with `repair: propose`"


class RepairPlan:
    """Every repair the diagnoses support, grouped into steps and spilled to disk."""

    def __init__(
        self,
        suite: Suite,
        run_id: str,
        workdir: Path | None = None,
        *,
        schema: str = DEFAULT_SCHEMA,
        context: RepairContext | None = None,
    ) -> None:
        self.suite = suite
        self.run_id = run_id
        self.schema = schema
        self.context = context
        self._tmp = tempfile.TemporaryDirectory(prefix="refaudit-plan-", dir=workdir)
        self.dir = Path(self._tmp.name)
        self._steps: dict[StepKind, Step] = {}
        self._checks: dict[str, Reference] = {
            c.id: c  # type: ignore[misc]  # a kind that repairs is a reference
            for c in suite.checks
            if c.repairs
        }
        self._review = (self.dir / "review.jsonl").open("w", encoding="utf-8")
        self.review_rows = 0
        self._backups: dict[str, str] | None = None

    def use_suite(self, suite: Suite) -> None:
        """Plan for `suite` as the audit resolved it (its lookups' type ids read)."""
        self.suite = suite
        self._checks = {c.id: c for c in suite.checks if c.repairs}  # type: ignore[misc]

    def add(self, v: Violation) -> None:
        """Plan the repair of one diagnosed violation (the audit's violation tap)."""
        if not v.diagnosis or v.diagnosis == "catalog":
            return
        check = self._checks.get(v.check.removesuffix(DISCRIMINATOR_SUFFIX))
        if check is None:
            return
        column = v.repair_column or v.column
        # a NULL or unknown discriminator is its own finding: its proposed type is for review
        own_finding = v.check.endswith(DISCRIMINATOR_SUFFIX)
        action: str | None = None
        new: str | None = None
        if not check.proposes():
            self._add_review(v, _why_review(check))
            return
        if (
            v.diagnosis in REPAIRABLE
            and v.confidence in APPLIED_CONFIDENCE
            and v.proposed_value
            and not own_finding
        ):
            action, new = "update", v.proposed_value
        elif v.diagnosis == "orphan" and check.on_orphan in ("set_null", "quarantine"):
            action = check.on_orphan
        reason = self.refusal(v.table, column, action) if action else ""
        if action is None or reason:
            self._add_review(v, reason)
            return
        guard = v.guard()
        if column not in guard:  # pragma: no cover - the engine always guards the column
            raise ValueError(f"{v.check}: the audit did not record {column} of {v.key}")
        kind = StepKind(
            ACTIONS.index(action),
            v.table,
            column,
            action,
            check.id,
            v.diagnosis,
            v.confidence,
            tuple(guard),
        )
        step = self._steps.get(kind)
        if step is None:
            path = self.dir / f"step{len(self._steps) + 1}.jsonl"
            step = self._steps[kind] = Step(kind, path, handle=path.open("w", encoding="utf-8"))
            self._backups = None  # the plan's tables changed
        assert step.handle is not None
        step.hashed.update(name for name, value in guard.items() if isinstance(value, dict))
        audited = [guard_text(value, self.run_id) for value in guard.values()]
        step.handle.write(json.dumps([v.key, audited, new, v.evidence]) + "\n")
        step.rows += 1

    def refusal(self, tbl: str, column: str, action: str) -> str:
        """Why the catalog would refuse `action` on `tbl.column` ('' when it would not)."""
        if self.context is None:
            return ""
        info = self.context.tables.get(tbl)
        if info is None:
            return f"{tbl} was not found in the catalog"
        if not info.is_table:
            return (
                f"{tbl} is a view, not a table: its rows belong to the tables it reads "
                "from; repair those"
            )
        odd = self._unspellable_key(tbl)
        if odd:
            return odd
        if info.duplicate_keys:
            key = ", ".join(self.suite.key_columns(tbl))
            return (
                f"{tbl}'s key ({key}) is not unique: {info.duplicate_keys} of its values are "
                "shared by several rows, and no primary key or unique index makes it unique; "
                "repair.sql and rollback.sql find rows by key; declare a unique key for the "
                "table in the suite, or decide by hand"
            )
        if action == "quarantine":
            return ""
        if column in self.suite.key_columns(tbl):
            return (
                f"{tbl}.{column} is part of the table's key: repair.sql does not re-key rows "
                "(rollback.sql finds them by key); decide by hand"
            )
        col = info.column(column)
        if col is None:
            return f"{tbl}.{column} was not found in the catalog"
        if col.generated:
            return f"{tbl}.{column} is a generated column: it cannot be set"
        if col.identity_always:
            return f"{tbl}.{column} is an identity column (GENERATED ALWAYS): it cannot be set"
        if action == "set_null" and col.not_null:
            return f"{tbl}.{column} is NOT NULL: it cannot be set to NULL; decide by hand"
        return ""

    def _unspellable_key(self, tbl: str) -> str:
        """Why rows of `tbl` cannot be found by their composite key ('' when they can): a
        key column of a type (an array, json, a composite or range type) whose value
        violations.csv's JSON key does not spell back exactly."""
        key = self.suite.key_columns(tbl)
        if len(key) < 2 or self.context is None:
            return ""
        for column in key:
            t = self.context.types.get((tbl, column))
            if t is not None and not (
                t.category in _KEY_CATEGORIES or t.name in ("uuid", "bytea")
            ):
                return (
                    f"{tbl}'s key column {column} is of type {t.name}: repair.sql finds rows "
                    "of composite keys made of numbers, text, dates, times, booleans, enums "
                    "and uuids only; decide by hand"
                )
        return ""

    def _add_review(self, v: Violation, reason: str) -> None:
        self.review_rows += 1
        self._review.write(
            json.dumps(
                [v.check, v.table, v.key, v.column, v.value, v.diagnosis, v.confidence,
                 v.evidence, reason]
            )
            + "\n"
        )  # fmt: skip

    def close(self) -> None:
        """Finish collecting (flush the spill files)."""
        for step in self._steps.values():
            if step.handle is not None:
                step.handle.close()
                step.handle = None
        self._review.close()

    def cleanup(self) -> None:
        self.close()
        self._tmp.cleanup()

    # ------------------------------------------------------------------ reading
    @property
    def steps(self) -> list[Step]:
        return [self._steps[k] for k in sorted(self._steps)]

    def tables(self) -> list[str]:
        return sorted({s.kind.table for s in self._steps.values()})

    def changed_columns(self, tbl: str) -> set[str]:
        """Columns of `tbl` a step sets (quarantine changes no column: it removes rows)."""
        return {
            s.kind.column
            for s in self._steps.values()
            if s.kind.table == tbl and s.kind.action != "quarantine"
        }

    def review(self) -> Iterator[ReviewItem]:
        with (self.dir / "review.jsonl").open(encoding="utf-8") as f:
            for line in f:
                yield ReviewItem(*json.loads(line))

    def check_of(self, step: Step) -> Reference:
        return self._checks[step.kind.check]

    def backup_table(self, tbl: str) -> str:
        """The backup table's name (in the plan's schema) for the rows of `tbl`: readable,
        and distinct for every table of the plan (`"Orders"` and `orders`, `a_b.c` and
        `a.b_c` would read alike: such a name gets a hash of the exact one)."""
        names = self._backup_names()
        return names.get(tbl) or self._backup_name(tbl, set())

    def _backup_names(self) -> dict[str, str]:
        if self._backups is None:
            used: set[str] = set()
            self._backups = {}
            for tbl in self.tables():
                self._backups[tbl] = name = self._backup_name(tbl, used)
                used.add(name)
        return self._backups

    def _backup_name(self, tbl: str, used: set[str]) -> str:
        info = self.context.tables.get(tbl) if self.context else None
        if info is None:
            schema, relname = split_name(tbl)
            schema = schema or "public"
        else:
            schema, relname = info.schema, info.relname
        parts = [relname] if schema == "public" else [schema, relname]
        readable = object_name(*parts)
        if len(parts) > 1 or readable != relname:
            exact = hashlib.sha1(f"{schema}\0{relname}".encode()).hexdigest()[:8]
            parts.append(exact)
        name = object_name("backup", self.run_id, *parts)
        n = 1
        while name in used:
            n += 1
            name = object_name("backup", self.run_id, *parts, str(n))
        return name

    def after_column(self, tbl: str) -> str:
        """The backup table's own column (after the table's columns): the row's text as the
        repair left it (NULL for a quarantined row), which rollback.sql compares with the row
        it finds, to move aside a row changed since. Named apart from every column of
        `tbl`."""
        taken = set()
        info = self.context.tables.get(tbl) if self.context else None
        if info is not None:
            taken = {c.name for c in info.columns}
        name, n = AFTER_COLUMN, 1
        while name in taken:
            n += 1
            name = f"{AFTER_COLUMN}_{n}"
        return name

    def backup_sql(self, tbl: str) -> str:
        return qualified(self.schema, self.backup_table(tbl))

    @property
    def quarantine_sql(self) -> str:
        return qualified(self.schema, QUARANTINE)
