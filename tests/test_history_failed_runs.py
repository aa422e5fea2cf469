"""A run that ends in exit 3 is never recorded in the run history: the next run compares
with the last run that completed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import FIXTURES, as_url, execute


@pytest.fixture(scope="module")
def gate_db(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("hist")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text())
    execute(uri, (FIXTURES / "gate_rows.sql").read_text())
    return uri


class Stop(Exception):
    """What ends the run while its files are written (a full disk, a bug, Ctrl-C)."""


@pytest.mark.parametrize("stop", [Stop, KeyboardInterrupt])
def test_a_run_that_fails_while_writing_its_files_is_not_a_previous_run(
    tmp_path: Path, gate_db: str, suite: Suite, stop: type[BaseException]
) -> None:
    store = tmp_path / "history.db"
    opts = AuditOptions(history=store)
    first = run_audit(as_url(gate_db), suite, tmp_path / "first", options=opts)

    def fail_while_writing(message: str) -> None:
        if message.startswith("writing "):
            raise stop("stopped while writing the files")

    execute(gate_db, "UPDATE session_requests SET status = 'lost' WHERE id = 1")
    try:
        with pytest.raises(stop):
            run_audit(
                as_url(gate_db),
                suite,
                tmp_path / "failed",
                options=opts,
                progress=fail_while_writing,
            )
    finally:
        execute(gate_db, "UPDATE session_requests SET status = 'pending' WHERE id = 1")
    failed = json.loads((tmp_path / "failed" / "results.json").read_text())
    assert (failed["verdict"], failed["exit_code"]) == ("ERROR", 3)

    with sqlite3.connect(store) as db:
        assert db.execute("SELECT run_id FROM runs").fetchall() == [(first.run.run_id,)]
    last = run_audit(as_url(gate_db), suite, tmp_path / "last", options=opts)
    history = last.history
    assert history["previous"]["run_id"] == first.run.run_id
    assert history["runs"] == 2
    # nothing new or fixed: the failed run's extra violation never reached the history
    assert (history["new"], history["fixed"]) == (0, 0)
