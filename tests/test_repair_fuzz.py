"""The repair fuzzer (issue #19), on a real PostgreSQL: random small schemas (foreign keys
with every ON DELETE action, deferrable, NOT VALID; composite keys and keys that are not
unique; inheritance; conditional references with several values per table), random faults
(orphans, wrong types, rows that violate validated foreign keys) and random drift between
the audit and `apply` and between `apply` and `rollback`. After every step the invariants
of tests/fuzz/state.py: no row lost, no role or owner changed, nothing applied where a step
raises, a second apply changes nothing, the re-audit finds nothing the repair created,
rollback exact or refused before any change.

Profiles: `fast` (the default and CI's: derandomized, so reproducible) and `long`
(`REFAUDIT_FUZZ=long`: 10,000 examples or `REFAUDIT_FUZZ_EXAMPLES`, random seed;
see docs/development.md). A counterexample is
printed with its reproduction: the schema, rows, suite and every drift statement.

Each counterexample the fuzzer found is a plain regression test below (`test_regression_*`);
the switches of tests/fuzz/world.py (`Feature`) and tests/fuzz/drift.py (`Drift`) let a run
look at one class alone.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from tests.conftest import execute
from tests.fuzz.drift import ALL_DRIFTS, Drift
from tests.fuzz.scenario import Run, run_example
from tests.fuzz.world import ALL_FEATURES, Fixed, Scripted, World, worlds

_QUIET = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much]
settings.register_profile(
    "fast", max_examples=100, deadline=None, derandomize=True, database=None,
    suppress_health_check=_QUIET, print_blob=True,
)  # fmt: skip
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("REFAUDIT_FUZZ_EXAMPLES") or 10_000),
    deadline=None,
    suppress_health_check=_QUIET,
    print_blob=True,
)
LONG = os.environ.get("REFAUDIT_FUZZ") == "long"
PROFILE = settings.get_profile("long" if LONG else "fast")
# a class known to fail stops at its first counterexample (no shrinking: the transcript is
# the reproduction), and looks at fewer examples in CI
CLASS_PROFILE = settings(
    PROFILE, max_examples=PROFILE.max_examples if LONG else 25, phases=[Phase.generate]
)

@pytest.fixture(scope="module")
def mallory(pg_server: str) -> Iterator[str]:
    """A role with no rights but those a drift grants it (CREATE on one database)."""
    name = f"refaudit_fz_mallory_{os.getpid()}"
    execute(pg_server, f'DROP ROLE IF EXISTS "{name}"; CREATE ROLE "{name}" NOLOGIN')
    yield name
    execute(pg_server, f'DROP ROLE IF EXISTS "{name}"')


@settings(PROFILE)
@given(data=st.data())
def test_fuzz(pg_server: str, mallory: str, data: st.DataObject) -> None:
    """Every schema feature and every kind of drift, mixed."""
    world: World = data.draw(worlds(ALL_FEATURES), label="world")
    run_example(pg_server, world, data, mallory, ALL_DRIFTS, ALL_DRIFTS)


# ----------------------------------------------------------- regressions (#19)
T0 = "CREATE TABLE t0 (id int PRIMARY KEY, note text);\nINSERT INTO t0 VALUES (1, 'a');\n"
KEYS = {t: ["id"] for t in ("t0", "t1", "t2", "t1_kid", "poly")}


def reference(table: str, column: str, target: str, on_orphan: str) -> dict[str, Any]:
    return {
        "id": f"{table}.{column}", "kind": "reference", "table": table, "column": column,
        "target": {"table": target, "column": "id"}, "on_orphan": on_orphan,
    }  # fmt: skip


def fixed(sql: str, *checks: dict[str, Any], tables: tuple[str, ...] = ("t0", "t1")) -> Fixed:
    suite = {"suite": "fuzz", "tables": {t: {"key": "id"} for t in tables}, "checks": [*checks]}
    return Fixed(T0 + sql, suite, KEYS, {"t0", "t1", "t2", "poly"})


def reproduce(
    server: str, mallory: str, world: Fixed, pre: list[Drift], post: list[Drift], **choices: Any
) -> None:
    """Run the scenario on `world` with these drifts, in order, and these choices."""
    data = Scripted(drift=pre, **{"drift after apply": post}, **choices)
    with tempfile.TemporaryDirectory(prefix="refaudit-fuzz-") as tmp:
        Run(server, world, data, mallory)(
            [d for d in Drift if not d.after_apply], [d for d in Drift if d.after_apply], Path(tmp)
        )


ORPHAN_T1 = "CREATE TABLE t1 (id int PRIMARY KEY, r0 int, note text);\n"
Q = reference("t1", "r0", "t0", "quarantine")


def test_regression_fk_added_after_the_audit_cascades(pg_server: str, mallory: str) -> None:
    world = fixed(ORPHAN_T1 + "INSERT INTO t1 VALUES (1, 1, 'ok'), (2, 9, 'orphan');\n", Q)
    reproduce(pg_server, mallory, world, [Drift.ADD_FK], [],
              **{"add_fk table": "t1", "add_fk action": "CASCADE"})  # fmt: skip


def test_regression_precreated_quarantine_elevates(pg_server: str, mallory: str) -> None:
    world = fixed(ORPHAN_T1 + "INSERT INTO t1 VALUES (2, 9, 'orphan');\n", Q)
    reproduce(pg_server, mallory, world, [Drift.PRECREATE_SCHEMA], [],
              precreate_schema="quarantine")  # fmt: skip


def test_regression_precreated_schema_is_dropped_by_its_owner(pg_server: str, mallory: str) -> None:
    world = fixed(ORPHAN_T1 + "INSERT INTO t1 VALUES (2, 9, 'orphan');\n", Q)
    reproduce(pg_server, mallory, world, [Drift.PRECREATE_SCHEMA],
              [Drift.HOSTILE_SCHEMA_DROP], precreate_schema="schema")  # fmt: skip


def test_regression_key_that_is_not_unique(pg_server: str, mallory: str) -> None:
    world = fixed(
        "CREATE TABLE t1 (id int, r0 int, note text);\n"
        "INSERT INTO t1 VALUES (5, 9, 'x'), (5, NULL, 'y');\n",
        reference("t1", "r0", "t0", "set_null"),
    )
    reproduce(pg_server, mallory, world, [], [])


def test_regression_row_of_an_inheritance_child(pg_server: str, mallory: str) -> None:
    world = fixed(
        ORPHAN_T1 + "CREATE TABLE t1_kid (extra text) INHERITS (t1);\n"
        "INSERT INTO t1_kid VALUES (12, 8, 'n', 'x12');\n",
        Q,
    )
    reproduce(pg_server, mallory, world, [], [])


def test_regression_suite_reference_into_a_quarantined_row(pg_server: str, mallory: str) -> None:
    world = fixed(
        ORPHAN_T1 + "CREATE TABLE t2 (id int PRIMARY KEY, r1 int);\n"
        "INSERT INTO t1 VALUES (2, 9, 'orphan');\nINSERT INTO t2 VALUES (1, 2);\n",
        Q,
        reference("t2", "r1", "t1", "report"),
        tables=("t0", "t1", "t2"),
    )
    reproduce(pg_server, mallory, world, [], [])


def test_regression_conditional_reference_into_a_quarantined_row(
    pg_server: str, mallory: str
) -> None:
    targets = {v: {"table": "t1", "column": "id"} for v in ("T1", "T1b")}
    world = fixed(
        ORPHAN_T1 + "CREATE TABLE poly (id int PRIMARY KEY, kind text, ref int);\n"
        "INSERT INTO t1 VALUES (2, 9, 'orphan');\n"
        "INSERT INTO poly VALUES (1, 'T1', 2), (2, 'T1b', 2);\n",
        Q,
        {"id": "poly.ref", "kind": "conditional_reference", "table": "poly", "column": "ref",
         "discriminator": "kind", "targets": {**targets, "T0": {"table": "t0", "column": "id"}},
         "on_orphan": "report"},
        tables=("t0", "t1", "poly"),
    )  # fmt: skip
    reproduce(pg_server, mallory, world, [], [])


def test_regression_trigger_added_before_apply_fires_in_rollback(
    pg_server: str, mallory: str
) -> None:
    world = fixed(ORPHAN_T1 + "INSERT INTO t1 VALUES (2, 9, 'orphan');\n", Q)
    reproduce(pg_server, mallory, world, [Drift.ADD_LOG_TRIGGER], [], add_log_trigger="t1")


def test_regression_trigger_added_after_apply_changes_restored_rows(
    pg_server: str, mallory: str
) -> None:
    world = fixed(ORPHAN_T1 + "INSERT INTO t1 VALUES (2, 9, 'orphan');\n", Q)
    reproduce(pg_server, mallory, world, [], [Drift.ADD_STAMP_TRIGGER], add_stamp_trigger="t1")


def test_regression_rollback_overwrites_an_edit(pg_server: str, mallory: str) -> None:
    world = fixed(
        ORPHAN_T1 + "INSERT INTO t1 VALUES (1, 8, 'b');\n", reference("t1", "r0", "t0", "set_null")
    )
    reproduce(pg_server, mallory, world, [], [Drift.EDIT_REPAIRED], edit_repaired=("t1", "1"))


def test_regression_rollback_overwrites_a_reused_key(pg_server: str, mallory: str) -> None:
    world = fixed(ORPHAN_T1 + "INSERT INTO t1 VALUES (2, 7, 'orphan');\n", Q)
    reproduce(pg_server, mallory, world, [], [Drift.REUSE_QUARANTINED_KEY],
              reuse_quarantined_key=("t1", "2"))  # fmt: skip


def test_rows_violating_a_validated_fk_roll_back_or_refuse(pg_server: str, mallory: str) -> None:
    """#19 item 6: a quarantined row that violates a validated (deferrable) foreign key;
    today rollback refuses before any change, which the invariants accept."""
    world = fixed(
        "CREATE TABLE t1 (id int PRIMARY KEY, r0 int REFERENCES t0 DEFERRABLE INITIALLY "
        "DEFERRED, note text);\nSET session_replication_role = replica;\n"
        "INSERT INTO t1 VALUES (1, 9, 'x');\nRESET session_replication_role;\n",
        Q,
    )
    reproduce(pg_server, mallory, world, [], [])


def test_the_invariants_catch_a_lost_row(new_database: Any) -> None:
    """The checks can fail: a row deleted behind the plan's back, kept in no backup or
    quarantine, is reported lost; one moved into the quarantine's row_data is not."""
    from tests.fuzz.state import Broken, no_row_lost, snapshot

    uri = new_database("fzlost")
    execute(uri, T0 + ORPHAN_T1 + "INSERT INTO t1 VALUES (1, 1, 'ok'), (2, 9, 'orphan');")
    before = snapshot(uri, lambda t: ["id"])
    execute(uri, "DELETE FROM t1 WHERE id = 2")
    with pytest.raises(Broken, match=r"\[lost-row\].*\(2,9,orphan\) of t1"):
        no_row_lost(before, snapshot(uri, lambda t: ["id"]), "a delete")
    execute(
        uri,
        "CREATE SCHEMA refaudit; CREATE TABLE refaudit.quarantine (row_data jsonb); "
        """INSERT INTO refaudit.quarantine VALUES ('{"id": 2, "r0": 9, "note": "orphan"}')""",
    )
    no_row_lost(before, snapshot(uri, lambda t: ["id"]), "a quarantine")


def test_regression_a_concurrent_writer_s_own_trigger_is_not_apply_s_doing(
    pg_server: str, mallory: str
) -> None:
    """Found by the long profile: a log trigger made after the audit stops apply (the table
    changed since), while a concurrent writer's update, committed meanwhile, fires it; the row
    the writer's trigger logged is the writer's, not a change of the apply that raised."""
    world = fixed(ORPHAN_T1 + "INSERT INTO t1 VALUES (1, 7, 'a');\n", Q)
    reproduce(pg_server, mallory, world, [Drift.ADD_LOG_TRIGGER, Drift.CONCURRENT_WRITER], [],
              add_log_trigger="t1", concurrent_writer=("t1", "1"))  # fmt: skip


def test_regression_a_row_held_by_a_row_the_plan_removes_goes_in_the_same_run(
    pg_server: str, mallory: str
) -> None:
    """Found by the long profile: t1's orphan was held because t2's orphan named it, and t2's
    was quarantined after it; the second apply then quarantined t1's (not idempotent). The
    table whose rows name the other's loses its rows first."""
    world = fixed(
        ORPHAN_T1 + "CREATE TABLE t2 (id int PRIMARY KEY, r0 int, r1 int);\n"
        "INSERT INTO t1 VALUES (1, 7, 'a');\nINSERT INTO t2 VALUES (1, 9, 1);\n",
        Q,
        reference("t2", "r0", "t0", "quarantine"),
        reference("t2", "r1", "t1", "report"),
        tables=("t0", "t1", "t2"),
    )
    reproduce(pg_server, mallory, world, [], [])
