"""What the framework round trips share: faults planted as a restore or a replication
subscriber loads them (`session_replication_role = replica`: no FK is checked), every table of
the schema dumped, and the steps of issue #19's round trip, `run --repair` -> `apply` ->
re-audit -> `apply` -> `rollback`, each a function the tests call and assert on."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from refaudit.apply import ApplyResult, apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url
from tests.roundtrip import CHANGES, changed_rows, dump_tables, findings
from tests.test_repair import psql, query


def plant(uri: str, sql: str) -> None:
    """Run `sql` with no trigger and no foreign key checked, as `pg_restore
    --disable-triggers` and logical-replication subscribers load rows."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute("SET session_replication_role = replica")
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


def schema_tables(uri: str, schema: str = "public") -> list[str]:
    """Every table of `schema`, as SQL names."""
    rows = query(
        uri,
        "SELECT format('%I.%I', n.nspname, c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace "
        f"WHERE n.nspname = '{schema}' AND c.relkind IN ('r', 'p') ORDER BY 1",
    )
    return [r[0] for r in rows]


def dump_schema(uri: str) -> dict[str, list[str]]:
    return dump_tables(uri, schema_tables(uri))


def foreign_keys(uri: str) -> list[tuple[Any, ...]]:
    """Every foreign key of the public schema: table, name, definition, validated."""
    return sorted(
        query(
            uri,
            "SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), convalidated "
            "FROM pg_constraint WHERE contype = 'f' AND connamespace = 'public'::regnamespace",
        )
    )


def violating_foreign_keys(uri: str) -> list[tuple[str, str]]:
    """(table, foreign key) for every validated foreign key that some row violates now."""
    found = []
    for table, name, definition, _ in foreign_keys(uri):
        cols, rest = definition.removeprefix("FOREIGN KEY (").split(") REFERENCES ", 1)
        target, tcols = rest.split("(", 1)
        tcols = tcols.split(")", 1)[0]
        where = " AND ".join(f"c.{c.strip()} IS NOT NULL" for c in cols.split(","))
        join = " AND ".join(
            f"t.{t.strip()} = c.{c.strip()}"
            for c, t in zip(cols.split(","), tcols.split(","), strict=True)
        )
        sql = (
            f"SELECT count(*) FROM {table} c WHERE {where} "
            f"AND NOT EXISTS (SELECT 1 FROM {target} t WHERE {join})"
        )
        if query(uri, sql)[0][0]:
            found.append((table, name))
    return found


@dataclass
class Trip:
    """One database's way through the round trip, and what each step left."""

    uri: str
    suite: Suite
    out: Path
    before: dict[str, list[str]] = field(default_factory=dict)
    first: dict[tuple[str, str], dict[str, str]] = field(default_factory=dict)
    repair: dict[str, Any] = field(default_factory=dict)
    applied: ApplyResult | None = None
    after: dict[str, list[str]] = field(default_factory=dict)

    def dump(self) -> dict[str, list[str]]:
        return dump_schema(self.uri)

    def audit_and_repair(self) -> None:
        """`run --repair` on the database as it is."""
        self.before = self.dump()
        result = run_audit(
            as_url(self.uri),
            self.suite,
            self.out / "run",
            options=AuditOptions(repair=True, record_history=False),
        )
        self.first = findings(self.out / "run")
        self.repair = result.repair

    def apply(self) -> ApplyResult:
        """`refaudit apply repair.sql`."""
        self.applied = apply_plan(as_url(self.uri), self.out / "run" / "repair.sql")
        self.after = self.dump()
        return self.applied

    def reaudit(self, name: str = "again") -> dict[tuple[str, str], dict[str, str]]:
        """The same suite audited again, after the repair: its findings by (check, key)."""
        run_audit(
            as_url(self.uri),
            self.suite,
            self.out / name,
            options=AuditOptions(record_history=False),
        )
        return findings(self.out / name)

    def apply_again(self) -> ApplyResult:
        """repair.sql a second time: it must change nothing."""
        return apply_plan(as_url(self.uri), self.out / "run" / "repair.sql")

    def rollback(self) -> str:
        """rollback.sql through psql; its stderr ('' when it succeeded)."""
        back = psql(self.uri, self.out / "run" / "rollback.sql")
        return "" if back.returncode == 0 else back.stderr

    def rollback_with_apply(self) -> ApplyResult:
        """`refaudit apply rollback.sql`."""
        return apply_plan(as_url(self.uri), self.out / "run" / "rollback.sql")


def changed(result: ApplyResult) -> int:
    return sum(result.totals.get(k, 0) for k in CHANGES)


def new_findings(
    first: dict[tuple[str, str], dict[str, str]], again: dict[tuple[str, str], dict[str, str]]
) -> dict[tuple[str, str], tuple[str, str, str]]:
    """Findings of the re-audit that the first audit did not report as such (another value or
    diagnosis is another finding): what the repair created. (check, key) -> (value,
    diagnosis, proposed value)."""

    def seen(f: dict[str, str]) -> tuple[str, str, str]:
        return (f["value"], f["diagnosis"], f["proposed_value"])

    return {k: seen(f) for k, f in again.items() if k not in first or seen(first[k]) != seen(f)}


def assert_round_trip(trip: Trip, *, rollback: str = "psql") -> None:
    """Issue #19's round trip, every step asserted: `run --repair`, `apply` (it changes
    something), a re-audit that finds nothing the repair created, `apply` again (changes
    nothing), `rollback` (every table of the schema byte for byte as before)."""
    trip.audit_and_repair()
    applied = trip.apply()
    assert changed(applied) > 0, applied.totals
    created = new_findings(trip.first, trip.reaudit())
    assert created == {}, f"the re-audit finds what the repair created: {created}"
    assert_reapplies_nothing(trip)
    assert_rolls_back(trip, rollback=rollback)


def assert_reapplies_nothing(trip: Trip) -> None:
    second = trip.apply_again()
    assert changed(second) == 0, second.totals
    now = trip.dump()
    assert now == trip.after, changed_rows(trip.after, now)


def assert_rolls_back(trip: Trip, *, rollback: str = "psql") -> None:
    """rollback.sql (through psql, or `refaudit apply`) succeeds and leaves every table of the
    schema as it was before the repair."""
    if rollback == "psql":
        failed = trip.rollback()
        assert failed == "", f"rollback.sql failed: {failed[-600:]}"
    else:
        trip.rollback_with_apply()
    now = trip.dump()
    assert now == trip.before, changed_rows(trip.before, now)
