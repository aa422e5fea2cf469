"""The first statement sent at start-up (`refaudit.early`): taken only when it is the run's
own statement, in the run's snapshot, with the run's settings; never a different result,
never a password written down, never a run refused for want of a connection."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from refaudit import early

from tests.conftest import SAMPLE_SUITE, build_state, execute
from tests.test_operations import sql

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def entries(tmp_path: Path) -> Path:
    folder = tmp_path / "entries"
    folder.mkdir(mode=0o700)
    return folder


@pytest.fixture(scope="module")
def db(new_database: Any, generator: Any) -> str:
    uri: str = new_database("early")
    build_state(uri, generator, "dirty")
    return uri


def refaudit(
    entries: Path, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "REFAUDIT_EARLY_DIR": str(entries), **(env or {})}
    full.pop("DATABASE_URL", None)
    return subprocess.run(
        [sys.executable, "-m", "refaudit", *args, "-vv"],
        capture_output=True, text=True, cwd=ROOT, env=full, timeout=300,
    )


def audit(entries: Path, uri: str, out: Path, *more: str, **env: str) -> bool:
    """`refaudit run` on `uri` into `out`; whether it took the statement sent at start-up."""
    proc = refaudit(
        entries, "run", "--suite", SAMPLE_SUITE, "--db", uri, "--out", str(out), "--no-history",
        *more, env=env,
    )
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    return early.TAKEN in proc.stderr


def violations(out: Path) -> bytes:
    return (out / "violations.csv").read_bytes()


def the_entry(entries: Path) -> Path:
    (found,) = entries.glob("*.json")
    return found


def test_the_next_run_takes_the_statement_sent_at_start_up(
    db: str, entries: Path, tmp_path: Path
) -> None:
    assert not audit(entries, db, tmp_path / "first")  # nothing written down yet
    assert audit(entries, db, tmp_path / "second")
    assert audit(entries, db, tmp_path / "third")
    assert violations(tmp_path / "first") == violations(tmp_path / "second") == violations(
        tmp_path / "third"
    )
    first = json.loads((tmp_path / "first" / "results.json").read_text())
    second = json.loads((tmp_path / "second" / "results.json").read_text())
    assert [c["violations"] for c in first["checks"]] == [
        c["violations"] for c in second["checks"]
    ]
    entry = the_entry(entries)
    assert entry.stat().st_mode & 0o777 == 0o600
    # and without it, the same
    assert not audit(entries, db, tmp_path / "off", REFAUDIT_EARLY="0")
    assert violations(tmp_path / "off") == violations(tmp_path / "first")


def test_rows_changed_since_the_last_run_are_seen(
    new_database: Any, generator: Any, entries: Path, tmp_path: Path
) -> None:
    uri = new_database("early_rows")
    build_state(uri, generator, "dirty")
    audit(entries, uri, tmp_path / "before")
    execute(uri, "UPDATE session_requests SET tutor_id = NULL WHERE id % 7 = 0")
    assert audit(entries, uri, tmp_path / "after")
    assert not audit(entries, uri, tmp_path / "plain", REFAUDIT_EARLY="0")
    assert violations(tmp_path / "after") == violations(tmp_path / "plain")
    assert violations(tmp_path / "after") != violations(tmp_path / "before")


def test_another_suite_under_the_same_command_line_is_not_taken(
    db: str, entries: Path, tmp_path: Path
) -> None:
    suite = tmp_path / "suite.yml"
    text = Path(SAMPLE_SUITE).read_text()
    suite.write_text(text)
    args = ("run", "--suite", str(suite), "--db", db, "--no-history")
    refaudit(entries, *args, "--out", str(tmp_path / "a"))
    # a check changed: the first statement differs
    changed = text.replace(r"'^\+2519[0-9]{8}$'", r"'^\+2519[0-9]{7,8}$'")
    assert changed != text
    suite.write_text(changed)
    proc = refaudit(entries, *args, "--out", str(tmp_path / "b"))
    assert proc.returncode in (0, 1), proc.stderr[-3000:]
    assert early.TAKEN not in proc.stderr
    plain = refaudit(entries, *args, "--out", str(tmp_path / "c"), env={"REFAUDIT_EARLY": "0"})
    assert plain.returncode == proc.returncode
    assert violations(tmp_path / "b") == violations(tmp_path / "c")


@pytest.mark.parametrize(
    "damage",
    [
        # the statement written down is not this run's: sent, cancelled, never taken
        lambda e: {**e, "statement": "COPY (SELECT 1 AS one) TO STDOUT (FORMAT csv)"},
        # other settings: the same statement, planned and run otherwise
        lambda e: {**e, "settings": [*e["settings"], ["work_mem", "1024"]]},
        lambda e: {**e, "settings": [["enable_hashjoin", "off"], *e["settings"]]},
        # another database of the same server: the snapshot cannot be imported
        lambda e: {**e, "connect": {**e["connect"], "dbname": "postgres"}},
        # a server that is not there
        lambda e: {**e, "connect": {**e["connect"], "host": "127.0.0.1", "port": "1"}},
        # a setting pg_settings does not show (a custom one, as row-level security reads)
        lambda e: {**e, "connect": {**e["connect"], "options": "-c app.tenant=8"}},
        lambda e: {**e, "format": 0},
        lambda e: {**e, "statement": 7},
        lambda e: {**e, "password": 5},
        lambda e: {**e, "password": ["argv", "1"]},
        lambda e: {**e, "password": ["env", "HOME"]},
        lambda e: {**e, "connect": {**e["connect"], "sslpassword": "x"}},
        # two statements in one
        lambda e: {**e, "statement": "COPY (SELECT 1) TO STDOUT (FORMAT csv); " + e["statement"]},
        lambda e: "not an entry",
    ],
    ids=["statement", "work_mem", "hashjoin", "database", "no-server", "custom-setting",
         "format", "type", "password-type", "password-index", "password-variable", "secret",
         "two-statements", "junk"],
)
def test_an_entry_that_does_not_fit_is_never_taken(
    db: str, entries: Path, tmp_path: Path, damage: Any
) -> None:
    audit(entries, db, tmp_path / "first")
    entry = the_entry(entries)
    entry.write_text(json.dumps(damage(json.loads(entry.read_text()))))
    assert not audit(entries, db, tmp_path / "second")
    assert violations(tmp_path / "second") == violations(tmp_path / "first")
    # written down again as this run sent it, and taken by the next
    assert audit(entries, db, tmp_path / "third")
    assert violations(tmp_path / "third") == violations(tmp_path / "first")


def test_garbage_in_the_entry_file_is_ignored(db: str, entries: Path, tmp_path: Path) -> None:
    audit(entries, db, tmp_path / "first")
    the_entry(entries).write_bytes(b"\x00\xff{")
    assert not audit(entries, db, tmp_path / "second")
    assert violations(tmp_path / "second") == violations(tmp_path / "first")


def test_a_directory_others_can_read_is_not_used(db: str, entries: Path, tmp_path: Path) -> None:
    entries.chmod(0o755)
    audit(entries, db, tmp_path / "first")
    assert not list(entries.iterdir())
    audit(entries, db, tmp_path / "first")
    entries.chmod(0o700)
    audit(entries, db, tmp_path / "second")
    assert len(list(entries.glob("*.json"))) == 1
    entries.chmod(0o777)
    assert not audit(entries, db, tmp_path / "third")


def test_one_connection_opens_no_other(db: str, entries: Path, tmp_path: Path) -> None:
    assert not audit(entries, db, tmp_path / "first", "--one-connection")
    assert not audit(entries, db, tmp_path / "second", "--one-connection")
    assert not list(entries.iterdir())


def test_turned_off_it_writes_nothing(db: str, entries: Path, tmp_path: Path) -> None:
    audit(entries, db, tmp_path / "first", REFAUDIT_EARLY="0")
    assert not list(entries.iterdir())


def test_no_password_is_written_down(
    db: str, entries: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The URL's password stays where the user put it; the next run reads it from there."""
    from sqlalchemy.engine import make_url

    with_password = make_url(db).set(password="s3cret-pw").render_as_string(False)
    audit(entries, with_password, tmp_path / "first")
    text = the_entry(entries).read_text()
    assert "s3cret-pw" not in text
    entry = json.loads(text)
    assert "password" not in entry["connect"]
    where, which = entry["password"]
    # the entry says where the URL is; the next run with this command line finds it there
    args = ["refaudit", "run", "--suite", SAMPLE_SUITE, "--db", with_password, "--out", "x",
            "--no-history", "-vv"]
    assert where == "argv" and args[which] == with_password
    monkeypatch.setattr(sys, "argv", args)
    found = early._read(the_entry(entries))
    assert found is not None and found[2]["password"] == "s3cret-pw"


@pytest.mark.parametrize("limit", [1, 2])
def test_a_role_allowed_few_connections_gets_them_back(
    new_database: Any, generator: Any, entries: Path, tmp_path: Path, limit: int
) -> None:
    """CONNECTION LIMIT 1: the early statement holds the only connection when the run asks
    for its own; it gives it up, and the run goes on in a snapshot of its own. LIMIT 2: it
    gives it up to the second connection."""
    uri = new_database("early_solo")
    build_state(uri, generator, "dirty")
    execute(
        uri,
        f"DROP ROLE IF EXISTS early_solo; CREATE ROLE early_solo LOGIN CONNECTION LIMIT {limit}; "
        "GRANT SELECT ON ALL TABLES IN SCHEMA public TO early_solo",
    )
    try:
        from sqlalchemy.engine import make_url

        solo = make_url(uri).set(username="early_solo", password=None).render_as_string(False)
        audit(entries, solo, tmp_path / "first")
        assert list(entries.glob("*.json"))
        assert not audit(entries, solo, tmp_path / "second")
        assert violations(tmp_path / "second") == violations(tmp_path / "first")
    finally:
        execute(
            uri, "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM early_solo; DROP ROLE early_solo"
        )


def as_audit_here(entries: Path, uri: str, out: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`audit`'s command line into `out` (the same entry: --out aside), as this process's
    own, for `early.start` and the CLI to run in it."""
    args = ["run", "--suite", SAMPLE_SUITE, "--db", uri, "--out", str(out), "--no-history",
            "-vv"]
    monkeypatch.setenv("REFAUDIT_EARLY_DIR", str(entries))
    monkeypatch.chdir(ROOT)
    monkeypatch.setattr(sys, "argv", ["refaudit", *args])
    return args


@pytest.fixture
def fresh_early() -> Iterator[None]:
    import signal

    names = ("_folder", "_context", "_key_here", "_started", "_pending", "_recorder", "_armed")
    saved = [getattr(early, name) for name in names]
    on_sigterm = signal.getsignal(signal.SIGTERM)
    yield
    early.close()
    for name, value in zip(names, saved, strict=True):
        setattr(early, name, value)
    signal.signal(signal.SIGTERM, on_sigterm)


def test_the_whole_run_sees_the_snapshot_of_the_early_statement(
    new_database: Any,
    generator: Any,
    entries: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_early: None,
) -> None:
    """Rows changed after the early statement started are seen by none of the run's
    statements (it imported that statement's snapshot), whatever table they are in."""
    from refaudit.cli import app

    uri = new_database("early_snap")
    build_state(uri, generator, "dirty")
    assert not audit(entries, uri, tmp_path / "before")
    args = as_audit_here(entries, uri, tmp_path / "during", monkeypatch)
    early.start()
    started = early._started
    assert started is not None and started.ready.wait(30) and started.snapshot_id
    execute(
        uri,
        "UPDATE session_requests SET tutor_id = NULL WHERE id % 5 = 0; "
        "DELETE FROM session_requests WHERE id % 11 = 0; "
        "UPDATE student_profiles SET user_id = NULL WHERE id % 3 = 0",
    )
    code = app(args, standalone_mode=False)
    assert code in (0, 1)
    assert started.taken
    assert violations(tmp_path / "during") == violations(tmp_path / "before")
    # and the run's time is the snapshot's, not its own transaction's (later)
    results = json.loads((tmp_path / "during" / "results.json").read_text())
    assert started.taken_at is not None and started.taken_at in json.dumps(results["run"])
    assert not audit(entries, uri, tmp_path / "after", REFAUDIT_EARLY="0")
    assert violations(tmp_path / "after") != violations(tmp_path / "before")


def test_no_room_for_the_spool_and_the_run_sends_the_statement_itself(
    new_database: Any,
    generator: Any,
    entries: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fresh_early: None,
) -> None:
    """The early statement's rows wait in a spool until the run takes them: where it cannot
    be written (a full temporary directory), the run runs the statement on its own
    connection, as without the early start."""
    from refaudit.cli import app
    from refaudit.spool import Spool

    class Full(Spool):
        def write(self, row: Any) -> int:
            raise OSError(28, "No space left on device")

    uri = new_database("early_full")
    build_state(uri, generator, "dirty")
    audit(entries, uri, tmp_path / "before")
    args = as_audit_here(entries, uri, tmp_path / "during", monkeypatch)
    monkeypatch.setattr(early, "Spool", Full)
    early.start()
    started = early._started
    assert started is not None and started.done.wait(60)
    assert isinstance(started.error, OSError)
    assert app(args, standalone_mode=False) in (0, 1)
    assert not started.taken
    assert violations(tmp_path / "during") == violations(tmp_path / "before")


def test_at_most_keep_entries_the_least_recently_used_go(
    entries: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from types import SimpleNamespace

    monkeypatch.setenv("REFAUDIT_EARLY_DIR", str(entries))
    (entries / "notes.json").write_text("{}")  # not an entry: never removed
    stale = entries / ".0123.99.part"  # left by a run killed while writing
    stale.write_text("")
    os.utime(stale, (1_000_000, 1_000_000))
    raw = SimpleNamespace(info=SimpleNamespace(dsn_parameters={"dbname": "x", "password": "p"}))
    fingerprint = ("u", "u", [["jit", "off", "session"], ["work_mem", "4096", "default"]])
    keys = [f"{i:032x}" for i in range(early.KEEP)]
    for i, key in enumerate(keys):
        early._Recorder(entries, key, None).write(
            b"COPY (SELECT 1) TO STDOUT", raw, fingerprint, "utf_8"
        )
        os.utime(entries / f"{key}.json", (1_000_000 + i, 1_000_000 + i))
    early._Recorder(entries, keys[0], None).touch()  # in use: kept, though written first
    later = [f"{i:032x}" for i in range(1000, 1003)]
    for key in later:
        early._Recorder(entries, key, None).write(
            b"COPY (SELECT 2) TO STDOUT", raw, fingerprint, "utf_8"
        )
    kept = {p.stem for p in entries.glob("*.json")} - {"notes"}
    assert (entries / "notes.json").exists() and not stale.exists()
    assert len(kept) == early.KEEP
    assert keys[0] in kept and set(later) <= kept
    assert not {keys[1], keys[2], keys[3]} & kept and keys[4] in kept
    entry = json.loads((entries / f"{keys[0]}.json").read_text())
    assert entry["settings"] == [["jit", "off"]] and "password" not in entry["connect"]
    assert not list(entries.glob(".*"))  # no part file left


@pytest.mark.parametrize(
    ("sql", "one"),
    [
        ("COPY (SELECT 'a;b') TO STDOUT", True),
        ("COPY (SELECT 'it''s; fine') TO STDOUT", True),
        ('COPY (SELECT "a;""b" FROM t) TO STDOUT', True),
        ("COPY (SELECT x FROM t WHERE kind = 'e') TO STDOUT", True),
        ("COPY (SELECT 1) TO STDOUT; COPY (SELECT 2) TO STDOUT", False),
        ("COPY (SELECT 1) TO STDOUT; COMMIT; DELETE FROM t; COPY (SELECT 2) TO STDOUT", False),
        ("COPY (SELECT E'\\'';' ) TO STDOUT", False),
        ("COPY (SELECT $$;$$) TO STDOUT", False),
        ("COPY (SELECT 1 -- ;\n) TO STDOUT", False),
        ("COPY (SELECT 1 /* ; */) TO STDOUT", False),
        ("COPY (SELECT 'open) TO STDOUT", False),
    ],
)
def test_an_entry_holds_one_statement(sql: str, one: bool) -> None:
    assert early._one_statement(sql) is one


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_stopped_while_it_starts_the_early_statement_ends_too(
    db: str, entries: Path, tmp_path: Path, signum: int
) -> None:
    """SIGTERM or Ctrl-C while the interpreter still imports (the command line's own
    handlers are not in place yet): the statement sent at start-up does not go on running on
    the server. (A statement the run does not take is cancelled as the run compares it.)"""
    audit(entries, db, tmp_path / "first")
    entry = the_entry(entries)
    slow = {**json.loads(entry.read_text()),
            "statement": "COPY (SELECT pg_sleep(60) AS early_sleeper) TO STDOUT (FORMAT csv)"}
    entry.write_text(json.dumps(slow))
    proc = subprocess.Popen(
        [sys.executable, "-m", "refaudit", "run", "--suite", SAMPLE_SUITE, "--db", db,
         "--out", str(tmp_path / "stopped"), "--no-history", "-vv"],
        cwd=ROOT, env={**os.environ, "REFAUDIT_EARLY_DIR": str(entries)},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + 10
    while not sleeping(db) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sleeping(db)  # sent at start-up
    proc.send_signal(signum)
    proc.wait(30)
    assert proc.returncode != 0
    deadline = time.monotonic() + 10
    while sleeping(db) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not sleeping(db)


def sleeping(uri: str) -> bool:
    return bool(sql(uri, "SELECT count(*) FROM pg_stat_activity WHERE query LIKE"
                         " '%early_sleeper%' AND pid <> pg_backend_pid()")[0][0])


def test_the_variable_a_project_file_names_is_part_of_the_entry(
    new_database: Any, generator: Any, db: str, entries: Path, tmp_path: Path
) -> None:
    """refaudit.toml's `database_env`: its URL's password is read again from that variable;
    another value, another entry (the early start never goes to the database it named
    before); another project file, another entry too."""
    from sqlalchemy.engine import make_url

    other = new_database("early_other")
    build_state(other, generator, "before")
    project = tmp_path / "project"
    project.mkdir()
    (project / "refaudit.toml").write_text(
        f'suite = "{SAMPLE_SUITE}"\ndatabase_env = "EARLY_AUDIT_URL"\n'
    )
    env = {"REFAUDIT_EARLY_DIR": str(entries)}

    def run(url: str, out: str) -> bool:
        proc = subprocess.run(
            [sys.executable, "-m", "refaudit", "run", "--out", str(tmp_path / out),
             "--no-history", "-vv"],
            cwd=project, env={**os.environ, **env, "EARLY_AUDIT_URL": url},
            capture_output=True, text=True, timeout=300,
        )
        assert proc.returncode in (0, 1), proc.stderr[-2000:]
        return early.TAKEN in proc.stderr

    first = make_url(db).set(password="pw-one").render_as_string(False)
    assert not run(first, "a")
    (entry,) = entries.glob("*.json")
    assert json.loads(entry.read_text())["password"] == ["env", "EARLY_AUDIT_URL"]
    assert run(first, "b")
    second = make_url(other).set(password="pw-one").render_as_string(False)
    assert not run(second, "c")
    assert len(list(entries.glob("*.json"))) == 2
    (project / "refaudit.toml").write_text(
        f'suite = "{SAMPLE_SUITE}"\ndatabase_env = "EARLY_AUDIT_URL"\nfail_on = "warn"\n'
    )
    assert not run(second, "d")
    assert len(list(entries.glob("*.json"))) == 3
