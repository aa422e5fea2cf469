"""README's complete example runs for real: its schema and planted rows, its suite and its
project file, the commands of its example output, and the repair the text describes. When the
example or the output changes, this test says which line of README no longer holds."""

from __future__ import annotations

import csv
import re
import shlex
from collections.abc import Callable
from pathlib import Path

import psycopg2

from tests.conftest import execute
from tests.test_project_file import refaudit

README = Path(__file__).resolve().parent.parent / "README.md"
# the masked URL README's example output shows for the database
SHOWN_URL = "postgresql://auditor@db.example/blog"

# the defects README's rows plant, one per (check, key), with the diagnosis README gives
PLANTED = {
    ("posts.author_id.reference", "12", "orphan"),
    ("comments.commentable.reference", "102", "wrong_type"),
    ("comments.commentable.reference", "103", "orphan"),
    ("comments.not_null", "104", ""),
    ("users.email.unique", "3", ""),
}


def example(name: str) -> str:
    """The fenced block that follows `<!-- example: NAME -->` in README."""
    text = README.read_text(encoding="utf-8")
    marker = f"<!-- example: {name} -->\n"
    assert marker in text, f"README.md has no block marked {marker.strip()}"
    block = text.split(marker, 1)[1]
    assert block.startswith("```"), f"README.md: {marker.strip()} must precede a ``` block"
    return block.split("\n", 1)[1].split("\n```", 1)[0] + "\n"


def transcript() -> list[tuple[str, list[str]]]:
    """README's example output: each `$ command` with the lines it shows."""
    steps: list[tuple[str, list[str]]] = []
    for line in example("output").splitlines():
        if line.startswith("$ "):
            steps.append((line[2:], []))
        elif line.strip() != "...":
            steps[-1][1].append(line)
    return steps


def rows(uri: str, sql: str) -> list[tuple[object, ...]]:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
            return cur.fetchall()
    finally:
        conn.close()


def test_readme_example_runs_as_written(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    uri = new_database("readme")
    execute(uri, example("schema.sql"))
    (tmp_path / "suite.yml").write_text(example("suite.yml"))
    (tmp_path / "refaudit.toml").write_text(example("refaudit.toml"))
    env = {"DATABASE_URL": uri}

    steps = transcript()
    assert [cmd.split()[:2] for cmd, _ in steps][:2] == [["refaudit", "suite"], ["refaudit", "run"]]
    for command, shown in steps:
        argv = [uri if a in ("$DATABASE_URL", "$OWNER_URL") else a for a in shlex.split(command)]
        assert argv[0] == "refaudit", f"README's example output runs {command!r}"
        done = refaudit(tmp_path, *argv[1:], env=env)
        expected_code = 1 if argv[1] == "run" else 0
        assert done.returncode == expected_code, (command, done.stdout, done.stderr)
        real = [
            re.sub(r"postgresql://\S+?(?=[;\s]|$)", SHOWN_URL, line).replace(f"{tmp_path}/", "")
            for line in done.stdout.splitlines()
        ]
        for line in shown:
            assert line in real, (
                f"README.md's example output, under `$ {command}`, shows a line the command "
                f"no longer prints:\n  {line}\nit printed:\n  " + "\n  ".join(real)
            )

    # the audit finds the planted defects, and only those, diagnosed as README says
    with (tmp_path / "audit" / "violations.csv").open(newline="") as f:
        found = {(r["check"], r["key"], r["diagnosis"]) for r in csv.DictReader(f)}
    assert found == PLANTED

    # the repair README describes: 102 retyped, 103 quarantined, post 12 loses its author
    applied = refaudit(tmp_path, "apply", "audit/repair.sql", "--db", uri, env=env)
    assert applied.returncode == 0, applied.stderr
    assert rows(uri, "SELECT commentable_type FROM comments WHERE id = 102") == [("Post",)]
    assert rows(uri, "SELECT id FROM comments WHERE id = 103") == []
    assert rows(uri, "SELECT row_key FROM refaudit.quarantine") == [("103",)]
    assert rows(uri, "SELECT author_id FROM posts WHERE id = 12") == [(None,)]

    # audit again, beside the plan: what is left is what no plan guesses
    again = refaudit(tmp_path, "run", "--out", "audit-after/", env=env)
    assert again.returncode == 1, again.stderr
    assert (tmp_path / "audit" / "rollback.sql").is_file()
    with (tmp_path / "audit-after" / "violations.csv").open(newline="") as f:
        left = {(r["check"], r["key"]) for r in csv.DictReader(f)}
    assert left == {("comments.not_null", "104"), ("users.email.unique", "3")}


def test_readme_path_starts_with_discover(
    new_database: Callable[[str], str], tmp_path: Path
) -> None:
    """Step 1 of README's path on the example database: discover writes a suite that
    `suite check --db` accepts."""
    uri = new_database("readme_discover")
    execute(uri, example("schema.sql"))
    found = refaudit(tmp_path, "discover", "--db", uri, "--out", "suite.yml", "-q")
    assert found.returncode == 0, found.stderr
    checked = refaudit(tmp_path, "suite", "check", "suite.yml", "--db", uri)
    assert checked.returncode == 0, checked.stderr
    assert " is valid: " in checked.stdout
