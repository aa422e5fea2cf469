"""The run history is kept by the database itself (its cluster's system identifier and its
oid), not by how its URL is spelled: a nightly job that reaches the database by another host
name, a socket path written otherwise or `PG*` variables still sees what is new and what was
fixed since the last run. A history kept by the shown name before is taken over."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.db import describe
from refaudit.history import default_history_path
from refaudit.suite import Suite, load_suite
from sqlalchemy.engine import URL

from tests.conftest import as_url, execute

SCHEMA = """
CREATE TABLE owners (id integer PRIMARY KEY);
CREATE TABLE pets (id integer PRIMARY KEY, owner_id integer);
INSERT INTO owners SELECT generate_series(1, 5);
INSERT INTO pets VALUES (1, 1), (2, 2), (3, 99), (4, 98);
"""
SUITE = """\
suite: pets
tables:
  owners: {key: id}
  pets: {key: id}
checks:
  - id: pets.owner
    kind: reference
    table: pets
    column: owner_id
    target: {table: owners, column: id}
"""


def respelled(url: URL) -> URL:
    """The same database by another spelling of where it is: the other name of the loopback
    host, or the socket directory with a trailing slash."""
    socket = url.query.get("host")
    if isinstance(socket, str) and socket.startswith("/"):
        return url.update_query_dict({"host": socket.rstrip("/") + "/"})
    if url.host in ("localhost", "127.0.0.1"):
        return url.set(host="127.0.0.1" if url.host == "localhost" else "localhost")
    pytest.skip(f"no second spelling known for {describe(url)}")


def history_of(out: Path) -> dict:  # type: ignore[type-arg]
    return json.loads((out / "results.json").read_text(encoding="utf-8"))["history"]


@pytest.fixture
def pets(new_database: Callable[[str], str], tmp_path: Path) -> tuple[str, Suite]:
    uri = new_database("pets")
    execute(uri, SCHEMA)
    path = tmp_path / "suite.yml"
    path.write_text(SUITE, encoding="utf-8")
    return uri, load_suite(path)


def test_the_history_survives_another_spelling_of_the_url(
    pets: tuple[str, Suite], tmp_path: Path
) -> None:
    uri, suite = pets
    first, second = as_url(uri), respelled(as_url(uri))
    assert describe(first) != describe(second)
    options = AuditOptions(history=tmp_path / "history.db")
    one = run_audit(first, suite, tmp_path / "one", options=options)
    assert one.run.database_identity  # the role may read pg_control_system()
    execute(uri, "UPDATE pets SET owner_id = 3 WHERE id = 3")  # one orphan fixed
    two = run_audit(second, suite, tmp_path / "two", options=options)
    assert two.run.database_identity == one.run.database_identity
    history = history_of(tmp_path / "two")
    assert history["runs"] == 2 and history["previous"] is not None
    assert (history["new"], history["fixed"]) == (0, 1)


def test_another_database_is_another_history(
    pets: tuple[str, Suite], new_database: Callable[[str], str], tmp_path: Path
) -> None:
    uri, suite = pets
    other = new_database("pets")
    execute(other, SCHEMA)
    options = AuditOptions(history=tmp_path / "history.db")
    a = run_audit(as_url(uri), suite, tmp_path / "a", options=options)
    b = run_audit(as_url(other), suite, tmp_path / "b", options=options)
    assert a.run.database_identity != b.run.database_identity
    assert history_of(tmp_path / "b")["runs"] == 1


def test_a_history_kept_by_the_shown_name_is_taken_over(
    pets: tuple[str, Suite], tmp_path: Path
) -> None:
    uri, suite = pets
    options = AuditOptions(history=tmp_path / "history.db")
    one = run_audit(as_url(uri), suite, tmp_path / "one", options=options)
    # as a history written before identities were kept: scoped by the database as shown
    db = sqlite3.connect(tmp_path / "history.db")
    with db:
        for table in ("runs", "last_keys"):
            db.execute(
                f"UPDATE {table} SET database = ? WHERE database = ?",
                (one.run.database, one.run.database_identity),
            )
    db.close()
    execute(uri, "UPDATE pets SET owner_id = 3 WHERE id = 3")
    run_audit(as_url(uri), suite, tmp_path / "two", options=options)
    history = history_of(tmp_path / "two")
    assert history["runs"] == 2 and (history["new"], history["fixed"]) == (0, 1)


def test_out_dot_keeps_the_history_here(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert default_history_path(Path("."), tmp_path / "reports") == tmp_path / "history.db"
    run_dir = tmp_path / "reports" / "20261206T000000Z"
    assert default_history_path(run_dir, tmp_path) == tmp_path / "reports" / "history.db"


def test_an_audit_of_a_snapshot_joins_its_database_history(
    pets: tuple[str, Suite], pg_server: str, tmp_path: Path
) -> None:
    from refaudit.extract import extract_snapshot
    from refaudit.replay import audit_snapshot

    uri, suite = pets
    options = AuditOptions(history=tmp_path / "history.db")
    live = run_audit(as_url(uri), suite, tmp_path / "live", options=options)
    execute(uri, "UPDATE pets SET owner_id = 3 WHERE id = 3")
    extract_snapshot(as_url(uri), suite, tmp_path / "snap")
    replay = audit_snapshot(
        tmp_path / "snap", suite, tmp_path / "re", options=options, server=pg_server
    )
    # the scratch database the snapshot is loaded into is another database; the run is kept
    # by the one the snapshot was taken of
    assert replay.run.database_identity == live.run.database_identity
    history = history_of(tmp_path / "re")
    assert history["runs"] == 2 and (history["new"], history["fixed"]) == (0, 1)
