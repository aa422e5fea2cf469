"""A small database whose references discover cannot tell: it says why, rather than write a
suite without references and nothing more."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from refaudit.discover import discover, thin_result

from tests.conftest import as_url, execute
from tests.test_cli import refaudit

SMALL = """
CREATE TABLE teams (id integer PRIMARY KEY, name text);
CREATE TABLE rooms (id integer PRIMARY KEY, label text);
CREATE TABLE players (id integer PRIMARY KEY, name text, squad integer);
INSERT INTO teams SELECT g, 'team ' || g FROM generate_series(1, 4) g;
INSERT INTO rooms SELECT g, 'room ' || g FROM generate_series(1, 4) g;
INSERT INTO players SELECT g, 'player ' || g, 1 + g % 3 FROM generate_series(1, 8) g;
"""


def test_discover_says_why_no_reference_was_inferred(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    uri = new_database("thin")
    execute(uri, SMALL)
    found = discover(as_url(uri))
    lines = thin_result(found)
    # `squad` names no table and its three values fit both small keys: a candidate below the
    # bar, named with its confidence and evidence, and how to keep it
    assert lines[0].startswith("no reference inferred from the data reaches confidence 0.5")
    assert "--min-confidence" in lines[0]
    assert any(line.lstrip().startswith("players.squad -> ") for line in lines[1:])
    proc = refaudit("discover", "--db", uri, "--out", str(tmp_path / "suite.yml"), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert "no reference inferred from the data" in proc.stderr + proc.stdout
    assert "players.squad" in proc.stderr + proc.stdout


def test_a_database_with_references_needs_no_explanation(
    new_database: Callable[[str], str],
) -> None:
    uri = new_database("thick")
    execute(uri, SMALL.replace("squad integer", "team_id integer"))
    assert thin_result(discover(as_url(uri))) == []
