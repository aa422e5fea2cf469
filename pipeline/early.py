"""The audit's first statement, sent at start-up.

Before a run sends its first statement, the interpreter spends ~0.3 s importing what builds
it (SQLAlchemy, pydantic, typer), on one core, while the server waits. When the last run
with the same command line (in the same directory, with the same `PG*`, `DATABASE_URL` and
`REFAUDIT_*` variables) left its first statement here, `start` sends that statement at once,
on a connection of its own, in a REPEATABLE READ READ ONLY transaction whose snapshot it
exports, with the settings that run's transaction had; its output waits in a spool, then goes
to the run as it arrives.

The run takes that output as its first statement's only when nothing could tell them apart:
its own transaction imported that snapshot (`snapshot`, `imported`), the statement it built
is the same, byte for byte, and its connection's settings and roles are the same (every row
of `pg_settings`, `current_user`, `session_user`); otherwise the early statement is
cancelled and the run sends its own (`claim`). What the early start left behind is only a
guess, checked before use: a stale, damaged or foreign entry costs a cancelled statement,
never a wrong result.

Entries live in `$XDG_CACHE_HOME/refaudit/first-statement` (`~/.cache/...`; or
`$REFAUDIT_EARLY_DIR`), a directory only the user can read or write, one JSON file per
command line (at most `KEEP`: the least recently written go first). An entry holds no
password: where the URL had one, it says which argument or variable holds that URL.
`REFAUDIT_EARLY=0` turns the early start off.

Only the standard library and psycopg2 here: this runs before anything else is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import sys
import threading
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import __version__
from .spool import Spool

OFF = "REFAUDIT_EARLY"
"""Set to 0 (or off, no, false) to turn the early start off."""
DIRECTORY = "REFAUDIT_EARLY_DIR"
"""Where the entries go, if not the user's cache directory."""
KEEP = 32
"""Entries kept (one per command line); writing one more drops the oldest."""
TAKEN = "-- sent at start-up, in this snapshot (the last run's first)"
"""What `refaudit -vv` shows before the first statement when the run took the early one."""
_FORMAT = 1
_VARIABLES = ("PG", "DATABASE_URL", "REFAUDIT_")
_OUT = "--out"

# What the run's statement must share with the early one besides its text and snapshot
_FINGERPRINT = (
    "SELECT current_user, session_user,"
    " array_agg(ARRAY[name, setting, source] ORDER BY name) FROM pg_catalog.pg_settings"
)


def _directory() -> Path:
    chosen = os.environ.get(DIRECTORY)
    if chosen:
        return Path(chosen)
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "refaudit" / "first-statement"


def _private(path: Path) -> bool:
    """Whether `path` is a directory of this user that nobody else can read or write."""
    try:
        st = path.stat()
    except OSError:
        return False
    return path.is_dir() and st.st_uid == os.getuid() and not st.st_mode & 0o077


def _key(argv: list[str], environ: dict[str, str], cwd: str) -> str:
    """The entry's name: the command line (but the value of --out, a new directory each run
    for many), the directory, the variables that can change where it connects or how."""
    args, skip = [], False
    for arg in argv:
        if skip:
            args.append("<out>")
            skip = False
        elif arg == _OUT:
            args.append(arg)
            skip = True
        elif arg.startswith(_OUT + "="):
            args.append(_OUT + "=<out>")
        else:
            args.append(arg)
    variables = sorted((k, v) for k, v in environ.items() if k.startswith(_VARIABLES))
    blob = json.dumps([_FORMAT, __version__, cwd, args, variables])
    return hashlib.sha256(blob.encode("utf-8", "surrogateescape")).hexdigest()[:32]


def _password_in(text: str) -> str | None:
    """The password of a PostgreSQL URL (`--db=URL` too), as refaudit reads it; else None."""
    text = text.removeprefix("--db=")
    try:
        parts = urlsplit(text)
        if parts.scheme.split("+")[0] not in {"postgresql", "postgres"}:
            return None
        if parts.password is not None:
            return unquote(parts.password)
    except ValueError:
        return None
    found = parse_qs(parts.query).get("password")
    return found[-1] if found else None


class _Early:
    """The early statement: its connection (a thread of its own) and, once it ends, its
    output or its error."""

    def __init__(self, statement: bytes, settings: list[tuple[str, str]]) -> None:
        self.statement = statement
        self._settings = settings
        self.ready = threading.Event()  # the snapshot is exported (or that failed)
        self.done = threading.Event()  # the statement ended
        self.snapshot_id: str | None = None
        self.fingerprint: Any = None
        self.error: BaseException | None = None
        self.relay = _Relay()
        self.in_snapshot = False  # the run's transaction imported the snapshot
        self.taken = False  # the run took it as its first statement (`claim`)
        self._raw: Any = None
        self._lock = threading.Lock()
        self._dropped = False

    def run(self, connect: dict[str, str]) -> None:
        import psycopg2

        try:
            raw = psycopg2.connect(**connect)
        except Exception:
            self.ready.set()
            self.done.set()
            return
        with self._lock:
            self._raw = raw
        try:
            with raw.cursor() as cur:
                cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                for name, value in self._settings:
                    cur.execute("SELECT pg_catalog.set_config(%s, %s, true)", (name, value))
                cur.execute("SELECT pg_catalog.pg_export_snapshot()")
                snapshot_id = cur.fetchone()[0]
                cur.execute(_FINGERPRINT)
                fingerprint = cur.fetchone()
        except Exception:
            self.ready.set()
            self._finish()
            return
        self.snapshot_id, self.fingerprint = snapshot_id, fingerprint
        self.ready.set()
        with self._lock:
            dropped = self._dropped
        if not dropped:
            try:
                with raw.cursor() as cur:
                    cur.copy_expert(self.statement, self.relay)
            except BaseException as exc:  # the statement's error is the run's, if it takes it
                self.error = exc
        self._finish()

    def _finish(self) -> None:
        with self._lock:
            self.done.set()
            dropped = self._dropped
        if dropped:
            self.close()

    @property
    def holds_connection(self) -> bool:
        with self._lock:
            return self._raw is not None

    def cancel(self) -> None:
        """Cancel the statement if it runs (from any thread)."""
        with self._lock:
            raw = self._raw
        if raw is not None and not self.done.is_set():
            with contextlib.suppress(Exception):
                raw.cancel()

    def drop(self) -> None:
        """Not needed: stop the statement, close the connection (now or when it ends)."""
        with self._lock:
            self._dropped = True
            ended = self.done.is_set()
        if ended:
            self.close()
        else:
            self.cancel()

    def close(self) -> None:
        with self._lock:
            raw, self._raw = self._raw, None
        self.relay.close()
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()

    def into(self, sink: Any, codec: str) -> None:
        """Hand the statement's rows to `sink` as COPY would have (text to a text file):
        those spooled so far, then each as it arrives, on the statement's thread; wait for
        its end; raise its error instead, if it failed."""
        try:
            self.relay.hand_over(sink, codec)
            while not self.done.wait(0.05):
                pass
            if self.error is not None:
                raise self.error
            if self.relay.failed is not None:  # the sink's own error, on the early thread
                raise self.relay.failed
        except BaseException:  # Ctrl-C, or the sink failed: stop the statement too
            self.drop()
            raise
        finally:
            if self.done.is_set():
                self.close()


class _Relay(io.RawIOBase):
    """Where the early statement's COPY writes: a spool until the run takes the statement
    (`hand_over`), then the run's own sink, row by row, as its own COPY would."""

    def __init__(self) -> None:
        self._spool: Spool | None = Spool(None, framed=True)
        self._target: Any = None
        self._lock = threading.Lock()
        self.failed: BaseException | None = None

    def writable(self) -> bool:
        return True

    def write(self, row: Any) -> int:
        with self._lock:
            if self._target is not None:
                try:
                    self._target(row)
                except BaseException as exc:  # stops the COPY; `into` raises it
                    self.failed = exc
                    raise
                return len(row)
            assert self._spool is not None
            return self._spool.write(row)

    def hand_over(self, sink: Any, codec: str) -> None:
        """From now on the rows go to `sink`, the spooled ones first."""
        if isinstance(sink, io.TextIOBase):
            write = sink.write

            def target(row: bytes) -> None:
                write(row.decode(codec))

        else:
            target = sink.write
        with self._lock:
            spool, self._spool = self._spool, None
            if spool is not None:
                for row in spool.framed_rows():
                    target(row)
            self._target = target

    def close(self) -> None:
        with self._lock:
            spool, self._spool = self._spool, None
        if spool is not None:
            spool.file.close()


class _Recorder:
    """Writes this run's first statement down for the next run with the same command line."""

    def __init__(self, key: str, password: tuple[str, Any] | None) -> None:
        self.key = key
        self.password = password

    def write(self, statement: bytes, raw: Any, fingerprint: Any, codec: str) -> None:
        connect = {k: v for k, v in raw.info.dsn_parameters.items() if k != "password"}
        # what the transaction changed (BEGIN sets the transaction_* ones)
        settings = [
            [name, setting]
            for name, setting, source in fingerprint[2]
            if source == "session" and not name.startswith("transaction_")
        ]
        entry = {
            "format": _FORMAT,
            "connect": connect,
            "password": self.password,
            "codec": codec,
            "settings": settings,
            "statement": statement.decode(codec),
        }
        folder = _directory()
        with contextlib.suppress(OSError):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not _private(folder):
            return
        path = folder / f"{self.key}.json"
        part = folder / f".{self.key}.{os.getpid()}.part"
        try:
            fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(entry, handle)
            os.replace(part, path)
        except OSError:
            with contextlib.suppress(OSError):
                part.unlink()
            return
        _prune(folder)


def _prune(folder: Path) -> None:
    with contextlib.suppress(OSError):
        entries = sorted(folder.glob("*.json"), key=lambda p: p.stat().st_mtime, reverse=True)
        for old in entries[KEEP:]:
            old.unlink()


_lock = threading.Lock()
_key_here: str | None = None
_started: _Early | None = None  # the early statement of this process
_pending: _Early | None = None  # ... until the run's first statement is compared with it
_recorder: _Recorder | None = None
_armed = False  # the next COPY is the audit's first (`arm`)


def _read(path: Path) -> tuple[bytes, list[tuple[str, str]], dict[str, str]] | None:
    """An entry's statement, settings and connection parameters (password included), or
    None if it is missing, damaged or not this user's alone."""
    if not _private(path.parent):
        return None
    try:
        entry = json.loads(path.read_text("utf-8"))
        if entry.get("format") != _FORMAT:
            return None
        codec = str(entry["codec"])
        statement = str(entry["statement"]).encode(codec)
        settings = [(str(n), str(v)) for n, v in entry["settings"]]
        connect = {str(k): str(v) for k, v in dict(entry["connect"]).items()}
        password = entry["password"]
    except (OSError, ValueError, TypeError, KeyError, LookupError, AttributeError):
        return None
    if password is not None:
        where, which = password
        text = sys.argv[which] if where == "argv" and 0 <= which < len(sys.argv) else (
            os.environ.get(str(which), "") if where == "env" else ""
        )
        found = _password_in(text)
        if found is None:
            return None
        connect["password"] = found
    return statement, settings, connect


def start() -> None:
    """Send the statement the last run with this command line sent first, if there is one
    (see the module's doc). Returns at once; the statement runs in a thread of its own."""
    global _key_here, _started, _pending
    if os.environ.get(OFF, "").strip().lower() in {"0", "off", "no", "false"}:
        return
    _key_here = _key(sys.argv[1:], dict(os.environ), os.getcwd())
    found = _read(_directory() / f"{_key_here}.json")
    if found is None:
        return
    statement, settings, connect = found
    import psycopg2  # noqa: F401  (here, not in two threads at once)

    early = _Early(statement, settings)
    threading.Thread(
        target=early.run, args=(connect,), name="refaudit-early", daemon=True
    ).start()
    _started = _pending = early


def arm(password: str | None) -> None:
    """The audit's statements begin: the next COPY is its first (`claim` compares it with
    the early one, and writes it down for the next run). `password`: the one its URL holds,
    found again by the next run in the same argument or variable (not written down); where
    it is nowhere to be found, nothing is written."""
    global _recorder, _armed
    _armed = True
    if _key_here is None:
        return
    pointer: tuple[str, Any] | None = None
    if password is not None:
        places: list[tuple[str, Any]] = [("argv", i) for i in range(1, len(sys.argv))]
        places.append(("env", "DATABASE_URL"))
        for where, which in places:
            text = sys.argv[which] if where == "argv" else os.environ.get(which, "")
            if _password_in(text) == password:
                pointer = (where, which)
                break
        else:
            return
    _recorder = _Recorder(_key_here, pointer)


def snapshot() -> str | None:
    """The early statement's snapshot, for the run's transaction to import; None if there is
    none (not started, not connected yet, failed)."""
    early = _pending
    if early is None:
        return None
    if early.ready.is_set() and early.snapshot_id is not None:
        return early.snapshot_id
    _give_up()
    return None


def imported(ok: bool) -> None:
    """Whether the run's transaction imported `snapshot()`'s snapshot."""
    if _pending is None:
        return
    if ok:
        _pending.in_snapshot = True
    else:
        _give_up()


def _give_up() -> None:
    global _pending
    with _lock:
        early, _pending = _pending, None
    if early is not None:
        early.drop()


def claim(statement: bytes, raw: Any, codec: str) -> _Early | None:
    """For the audit's first COPY (the first after `arm`: `statement`, about to go out on
    `raw`, inside the run's snapshot): the early statement if it is the same statement in
    the same snapshot with the same settings (hand its output over with `into`), else None,
    and the early one is cancelled. Also writes the statement down for the next run, if it
    differs. Any other COPY: None."""
    global _pending, _recorder, _armed
    if not _armed:  # a statement before the checks' (reading a lookup's type table, say)
        return None
    with _lock:
        _armed = False
        early, _pending = _pending, None
        recorder, _recorder = _recorder, None
    if early is None and recorder is None:
        return None
    with raw.cursor() as cur:
        cur.execute(_FINGERPRINT)
        fingerprint = cur.fetchone()
    same = (
        early is not None
        and early.in_snapshot
        and early.statement == statement
        and early.fingerprint == fingerprint
    )
    if recorder is not None and not same:
        recorder.write(statement, raw, fingerprint, codec)
    if early is not None and not same:
        early.drop()
        return None
    if early is not None:
        early.taken = True
    return early


def release() -> bool:
    """Close the early statement's connection, so that the run can have it (the server or
    the role allows no more); whether there was one to close."""
    early = _started
    if early is None:
        return False
    early.ready.wait(10)  # still connecting: it will hold one
    if not early.holds_connection:
        return False
    _give_up()
    early.drop()
    early.done.wait(10)
    early.close()
    return True


def cancel() -> None:
    """Cancel the early statement, if it runs (the run is stopping: Ctrl-C, SIGTERM, another
    statement failed)."""
    if _started is not None:
        _started.cancel()


def close() -> None:
    """At exit: stop the early statement and close its connection, if still there."""
    global _pending
    _pending = None
    if _started is not None:
        _started.drop()
