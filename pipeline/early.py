"""The audit's first statement, sent at start-up.

Before a run sends its first statement, the interpreter spends ~0.3 s importing what builds
it (SQLAlchemy, pydantic, typer), on one core, while the server waits. When the last run
with the same command line (in the same directory, with the same project files and the same
`PG*`, `DATABASE_URL`, `REFAUDIT_*` and project-named variables) left its first statement
here, `start` sends that statement at once,
on a connection of its own, in a REPEATABLE READ READ ONLY transaction whose snapshot it
exports, with the settings that run's transaction had; its output waits in a spool, then goes
to the run as it arrives.

The run takes that output as its first statement's only when nothing could tell them apart:
its own transaction imported that snapshot (`snapshot`, `imported`), the statement it built
is the same, byte for byte, its connection has the same parameters (host, database, user,
`options`, ...: every one but the secrets) and the same settings and roles (every row of
`pg_settings`, `current_user`, `session_user`); otherwise the early statement is cancelled
and the run sends its own (`claim`). What the early start left behind is only a guess,
checked before use: a stale, damaged or foreign entry costs a cancelled statement, never a
wrong result. The run's time is the snapshot's (`taken_at`).

Entries live in `$XDG_CACHE_HOME/refaudit/first-statement` (`~/.cache/...`; or
`$REFAUDIT_EARLY_DIR`), a directory only the user can read or write, one file per command
line (at most `KEEP`: the least recently used go first), named by a salted hash. An entry
holds no secret: where the URL had a password, it says which argument or variable holds
that URL. `REFAUDIT_EARLY=0` turns the early start off.

Only the standard library and psycopg2 here: this runs before anything else is imported.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import signal
import sys
import threading
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from . import __version__
from .libpq import SECRET_PARAMETERS
from .spool import Spool

OFF = "REFAUDIT_EARLY"
"""Set to 0 (or off, no, false) to turn the early start off."""
DIRECTORY = "REFAUDIT_EARLY_DIR"
"""Where the entries go, if not the user's cache directory."""
KEEP = 32
"""Entries kept (one per command line); writing one more drops the least recently used."""
TAKEN = "-- sent at start-up, in this snapshot (the last run's first)"
"""What `refaudit -vv` shows before the first statement when the run took the early one."""
TAKEN_AT = (
    "to_char(transaction_timestamp() AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US\"Z\"')"
)
"""A transaction's time as results.json writes it (the snapshot's)."""

_FORMAT = 2
_VARIABLES = ("PG", "DATABASE_URL", "REFAUDIT_")
_OUT = "--out"
_ENTRY = re.compile(r"[0-9a-f]{32}\.json")
_SALT = "salt"
_STALE_PART_S = 3600.0
# the only statements an entry may hold: what `copy_stream` sends
_HEAD, _ENDS = b"COPY (", (b") TO STDOUT", b") TO STDOUT (FORMAT csv)")

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


def _owned(st: os.stat_result) -> bool:
    """This user's, and nobody else's to read or write."""
    return st.st_uid == os.getuid() and not st.st_mode & 0o077


def _private(path: Path) -> bool:
    """Whether `path` is a directory of this user's that nobody else can read or write (not
    a symbolic link)."""
    try:
        st = path.lstat()
    except OSError:
        return False
    return path.is_dir() and not path.is_symlink() and _owned(st)


def _read_private(path: Path) -> bytes | None:
    """A regular file of this user's that nobody else can read or write, else None."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as handle:
        st = os.fstat(handle.fileno())
        if not (_owned(st) and (st.st_mode & 0o170000) == 0o100000):
            return None
        return handle.read()


def _write_private(folder: Path, name: str, data: bytes) -> bool:
    part = folder / f".{name}.{os.getpid()}.part"
    try:
        fd = os.open(part, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
        os.replace(part, folder / name)
    except OSError:
        with contextlib.suppress(OSError):
            part.unlink()
        return False
    return True


def _project_files(cwd: str) -> list[bytes]:
    """What the project files the command may read hold (`project.find_project` looks for
    the first of them, from `cwd` up to the user's home): where they send it, with what."""
    found = []
    try:
        home: Path | None = Path.home().resolve()
    except RuntimeError:
        home = None
    here = Path(cwd)
    for directory in (here, *here.parents):
        for name in ("refaudit.toml", "pyproject.toml"):
            with contextlib.suppress(OSError):
                found.append((directory / name).read_bytes())
        if directory == home:
            break
    return found


def _variables(environ: dict[str, str], projects: list[bytes]) -> set[str]:
    """The variables that can change where a run connects or how: those of libpq and
    refaudit, and any a project file names (`database_env`)."""
    return {
        k for k in environ
        if k.startswith(_VARIABLES) or any(k.encode() in data for data in projects)
    }


def _key(
    salt: bytes, argv: list[str], environ: dict[str, str], cwd: str, projects: list[bytes]
) -> str:
    """The entry's name: the command line (but the value of --out, a new directory each run
    for many), the directory, the project files and the `_variables`; salted (they may hold
    a password)."""
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
    variables = sorted((k, environ[k]) for k in _variables(environ, projects))
    digest = hashlib.sha256(b"\0".join(projects)).hexdigest()
    blob = json.dumps([_FORMAT, __version__, cwd, args, variables, digest])
    return hashlib.sha256(salt + blob.encode("utf-8", "surrogateescape")).hexdigest()[:32]


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


def _parameters(raw: Any) -> dict[str, str]:
    """A connection's libpq parameters, but the secrets."""
    return {
        k: v for k, v in raw.info.dsn_parameters.items() if k not in SECRET_PARAMETERS
    }


class _Early:
    """The early statement: its connection, in a thread of its own."""

    def __init__(self, statement: bytes, settings: list[tuple[str, str]]) -> None:
        self.statement = statement
        self._settings = settings
        self.ready = threading.Event()  # the snapshot is exported (or that failed)
        self.done = threading.Event()  # the statement ended (or never started)
        self.snapshot_id: str | None = None
        self.taken_at: str | None = None
        self.fingerprint: Any = None
        self.parameters: dict[str, str] | None = None
        self.error: BaseException | None = None
        self.relay = _Relay()
        self.in_snapshot = False  # the run's transaction imported the snapshot
        self.taken = False  # the run took its output as its first statement's (`into`)
        self._raw: Any = None
        self._lock = threading.Lock()
        self._dropped = False

    def run(self, connect: dict[str, str]) -> None:
        import psycopg2

        try:
            try:
                raw = psycopg2.connect(**connect)
            except Exception:
                return
            with self._lock:
                self._raw = raw
            try:
                with raw.cursor() as cur:
                    cur.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
                    for name, value in self._settings:
                        cur.execute("SELECT pg_catalog.set_config(%s, %s, true)", (name, value))
                    cur.execute(f"SELECT pg_catalog.pg_export_snapshot(), {TAKEN_AT}")
                    self.snapshot_id, self.taken_at = cur.fetchone()
                    cur.execute(_FINGERPRINT)
                    self.fingerprint = cur.fetchone()
                self.parameters = _parameters(raw)
            except Exception:
                self.snapshot_id = None
                return
            self.ready.set()
            with self._lock:
                if self._dropped:
                    return
            try:
                with raw.cursor() as cur:
                    cur.copy_expert(self.statement, self.relay)
            except BaseException as exc:  # the statement's error is the run's, if it takes it
                self.error = exc
        finally:
            self.ready.set()
            with self._lock:
                self.done.set()
                dropped = self._dropped
            if dropped:
                self.close()

    def cancel(self) -> None:
        """Cancel the statement if it runs (from any thread)."""
        with self._lock:
            raw = self._raw if not self.done.is_set() else None
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.cancel()

    def drop(self) -> None:
        """Not needed: stop the statement; its thread closes the connection when it ends
        (now, if it has)."""
        with self._lock:
            self._dropped = True
            ended = self.done.is_set()
        if ended:
            self.close()
        else:
            self.cancel()

    def stop(self, timeout_s: float) -> bool:
        """Drop it and cancel its statement until it has ended (a cancel request that arrives
        before the statement is lost), for at most `timeout_s`; whether it has ended and its
        connection is closed."""
        self.drop()
        deadline = time.monotonic() + timeout_s
        while not self.done.wait(0.1):
            if time.monotonic() > deadline:
                return False
            self.cancel()
        self.close()
        return True

    @property
    def holds_connection(self) -> bool:
        with self._lock:
            return self._raw is not None

    def close(self) -> None:
        """Close the connection; only once the statement has ended (its thread uses it)."""
        with self._lock:
            if not self.done.is_set():
                return
            raw, self._raw = self._raw, None
        self.relay.close()
        if raw is not None:
            with contextlib.suppress(Exception):
                raw.close()

    def into(self, sink: Any, codec: str) -> bool:
        """Hand the statement's rows to `sink` as COPY would have (text to a text file):
        those spooled so far, then each as it arrives, on the statement's thread; wait for
        its end; raise its error if it failed. False, with nothing handed over, where the
        spool failed before (the caller then runs the statement itself)."""
        try:
            if not self.relay.hand_over(sink, codec):
                self.drop()
                return False
            self.taken = True
            while not self.done.wait(0.05):
                pass
            if self.error is not None:
                raise self.error
        except BaseException:  # Ctrl-C, the statement or the sink failed
            self.relay.discard()  # no row reaches the sink any more
            self.drop()
            raise
        finally:
            self.close()
        return True


class _Relay(io.RawIOBase):
    """Where the early statement's COPY writes: a spool until the run takes the statement
    (`hand_over`), then the run's own sink, row by row, as its own COPY would."""

    def __init__(self) -> None:
        self._spool: Spool | None = Spool(None, framed=True)
        self._target: Any = None
        self._lock = threading.Lock()
        self._spool_failed = False

    def writable(self) -> bool:
        return True

    def write(self, row: Any) -> int:
        with self._lock:
            if self._target is not None:
                self._target(row)  # its error stops the COPY; `into` raises it
                return len(row)
            if self._spool is None:
                raise RuntimeError("not taken")  # stops the COPY
            try:
                return self._spool.write(row)
            except OSError:  # no room for the spool: the run runs the statement itself
                self._spool_failed = True
                raise

    def hand_over(self, sink: Any, codec: str) -> bool:
        """From now on the rows go to `sink`, the spooled ones first; False if the spool
        failed (nothing is handed over)."""
        if isinstance(sink, io.TextIOBase):
            write = sink.write

            def target(row: bytes) -> None:
                write(row.decode(codec))

        else:
            target = sink.write
        with self._lock:
            spool, self._spool = self._spool, None
            if spool is None or self._spool_failed:
                return False
            try:
                for row in spool.framed_rows():
                    target(row)
            finally:
                spool.file.close()
            self._target = target
            return True

    def discard(self) -> None:
        with self._lock:
            self._target = None

    def close(self) -> None:
        with self._lock:
            spool, self._spool = self._spool, None
            self._target = None
        if spool is not None:
            spool.file.close()


class _Recorder:
    """Writes this run's first statement down for the next run with the same command line."""

    def __init__(self, folder: Path, key: str, password: tuple[str, Any] | None) -> None:
        self.folder = folder
        self.key = key
        self.password = password

    def write(self, statement: bytes, raw: Any, fingerprint: Any, codec: str) -> None:
        # what the transaction changed (BEGIN sets the transaction_* ones)
        settings = [
            [name, setting]
            for name, setting, source in fingerprint[2]
            if source == "session" and not name.startswith("transaction_")
        ]
        entry = {
            "format": _FORMAT,
            "connect": _parameters(raw),
            "password": self.password,
            "codec": codec,
            "settings": settings,
            "statement": statement.decode(codec),
        }
        if _write_private(self.folder, f"{self.key}.json", json.dumps(entry).encode()):
            _prune(self.folder)

    def touch(self) -> None:
        with contextlib.suppress(OSError):
            os.utime(self.folder / f"{self.key}.json")


def _prune(folder: Path) -> None:
    """Keep the KEEP entries last used; remove what a run killed while writing left."""
    with contextlib.suppress(OSError):
        entries = sorted(
            (p for p in folder.iterdir() if _ENTRY.fullmatch(p.name)),
            key=lambda p: p.stat().st_mtime,
            reverse=True,
        )
        for old in entries[KEEP:]:
            old.unlink()
        now = time.time()
        for part in folder.glob(".*.part"):
            if now - part.stat().st_mtime > _STALE_PART_S:
                part.unlink()


def _salt(folder: Path, *, make: bool) -> bytes | None:
    """The directory's salt (with `make`, the directory and the salt made if missing), or
    None."""
    if make:
        with contextlib.suppress(OSError):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not _private(folder):
        return None
    path = folder / _SALT
    found = _read_private(path)
    if found is None and make:
        _write_private(folder, _SALT, os.urandom(32))
        found = _read_private(path)
    return found if found and len(found) == 32 else None


def _read(path: Path) -> tuple[bytes, list[tuple[str, str]], dict[str, str]] | None:
    """An entry's statement, settings and connection parameters (password included), or
    None if it is missing, damaged or not this user's alone."""
    data = _read_private(path)
    if data is None:
        return None
    try:
        entry = json.loads(data)
        if entry.get("format") != _FORMAT:
            return None
        codec = str(entry["codec"])
        statement = str(entry["statement"]).encode(codec)
        settings = [(str(n), str(v)) for n, v in entry["settings"]]
        connect = {str(k): str(v) for k, v in dict(entry["connect"]).items()}
        if any(name in SECRET_PARAMETERS for name in connect):
            return None
        password = entry["password"]
        if password is not None:
            where, which = password
            text = _pointed(where, which)
            if text is None:
                return None
            found = _password_in(text)
            if found is None:
                return None
            connect["password"] = found
    except (ValueError, TypeError, KeyError, LookupError, AttributeError):
        return None
    if not (statement.startswith(_HEAD) and statement.endswith(_ENDS)):
        return None
    if not _one_statement(statement.decode(codec)):
        return None
    return statement, settings, connect


_TOKENS = re.compile(r"'[^']*'|\"[^\"]*\"|[^'\"]+|['\"]")


def _one_statement(sql: str) -> bool:
    """Whether `sql` is surely one statement: no `;` outside its '...' literals and "..."
    names (a doubled quote within one reads as two of them side by side). Cautious (pglast
    would know, but its import alone takes ~50 ms, at start-up): what this does not read as
    refaudit writes SQL (E'...' or $...$ strings, comments) is not taken."""
    before = ""
    for token in _TOKENS.findall(sql):
        if token[0] in "'\"":
            if len(token) == 1 or (token[0] == "'" and before[-1:] in ("E", "e")):
                return False  # unterminated, or an escape string (backslashes would count)
        elif ";" in token or "$" in token or "--" in token or "/*" in token:
            return False
        before = token
    return True


_lock = threading.Lock()
_folder: Path | None = None
# what names the entry: the command line, the variables, the directory, the project files
_context: tuple[list[str], dict[str, str], str, list[bytes]] | None = None
_key_here: str | None = None
_started: _Early | None = None  # the early statement of this process
_pending: _Early | None = None  # ... until the run's first statement is compared with it
_recorder: _Recorder | None = None
_armed = False  # the next COPY is the audit's first (`arm`)


def _keyed() -> set[str]:
    """The variables in this process's entry's name (`_key`)."""
    if _context is None:
        return set()
    _, environ, _, projects = _context
    return _variables(environ, projects)


def _pointed(where: Any, which: Any) -> str | None:
    """What the place an entry's password pointer names holds: an argument of this command
    line (`argv`, its index) or a variable in the entry's name (`env`, its name); None for
    any other place."""
    if where == "argv" and isinstance(which, int) and 0 < which < len(sys.argv):
        return sys.argv[which]
    if where == "env" and isinstance(which, str) and which in _keyed():
        return os.environ.get(which, "")
    return None


def start() -> None:
    """Send the statement the last run with this command line sent first, if there is one
    (see the module's doc). Returns at once; the statement runs in a thread of its own.
    Nothing here stops the run: whatever fails, there is no early statement."""
    global _folder, _context, _key_here, _started, _pending
    if os.environ.get(OFF, "").strip().lower() in {"0", "off", "no", "false"}:
        return
    try:
        _folder = _directory()
        cwd = os.getcwd()
        _context = (sys.argv[1:], dict(os.environ), cwd, _project_files(cwd))
        salt = _salt(_folder, make=False)  # none yet: no entry either (`arm` makes one)
        if salt is None:
            return
        key = _key_here = _key(salt, *_context)
        found = _read(_folder / f"{key}.json")
        if found is None:
            return
        statement, settings, connect = found
        import psycopg2  # noqa: F401  (here, not in two threads at once)

        early = _Early(statement, settings)
        threading.Thread(
            target=early.run, args=(connect,), name="refaudit-early", daemon=True
        ).start()
        _started = _pending = early
        _cancel_on_sigterm()
    except Exception:
        return


def _cancel_on_sigterm() -> None:
    """Until the command line puts its own handler in place: SIGTERM cancels the early
    statement, then ends the process as it would have."""
    if threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        return

    def terminated(signum: int, _frame: Any) -> None:
        cancel()
        signal.signal(signum, signal.SIG_DFL)
        os.kill(os.getpid(), signum)

    signal.signal(signal.SIGTERM, terminated)


def arm(password: str | None) -> None:
    """The audit's statements begin: the next COPY is its first (`claim` compares it with
    the early one, and writes it down for the next run). `password`: the one its URL holds,
    found again by the next run in the same argument or variable (not written down); where
    it is nowhere to be found, nothing is written."""
    global _recorder, _armed, _key_here
    _armed = True
    if _folder is None or _context is None:  # not started from the command line
        return
    if _key_here is None:
        salt = _salt(_folder, make=True)
        if salt is None:
            return
        _key_here = _key(salt, *_context)
    pointer: tuple[str, Any] | None = None
    if password is not None:
        places: list[tuple[str, Any]] = [("argv", i) for i in range(1, len(sys.argv))]
        places += [("env", name) for name in sorted(_keyed())]
        for where, which in places:
            if _password_in(_pointed(where, which) or "") == password:
                pointer = (where, which)
                break
        else:
            return
    _recorder = _Recorder(_folder, _key_here, pointer)


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


def taken_at() -> str | None:
    """The time of the snapshot the run imported (`imported`), as results.json writes it."""
    early = _pending if _pending is not None and _pending.in_snapshot else None
    return early.taken_at if early is not None else None


def _give_up() -> None:
    global _pending
    with _lock:
        early, _pending = _pending, None
    if early is not None:
        early.drop()


def claim(statement: bytes, raw: Any, codec: str) -> _Early | None:
    """For the audit's first COPY (the first after `arm`: `statement`, about to go out on
    `raw`, inside the run's snapshot): the early statement if it is the same statement in
    the same snapshot, on a connection with the same parameters, settings and roles (hand
    its output over with `into`), else None, and the early one is cancelled. Also writes the
    statement down for the next run, if it differs. Any other COPY: None."""
    global _pending, _recorder, _armed
    if not _armed:  # a statement before the checks' (reading a lookup's type table, say)
        return None
    with _lock:
        _armed = False
        early, _pending = _pending, None
        recorder, _recorder = _recorder, None
    if early is None and recorder is None:
        return None
    try:
        import logging

        logging.getLogger(f"{__package__}.sql").debug("%s", _FINGERPRINT)  # as `db` logs
        with raw.cursor() as cur:
            cur.execute(_FINGERPRINT)
            fingerprint = cur.fetchone()
        same = (
            early is not None
            and early.in_snapshot
            and early.statement == statement
            and early.fingerprint == fingerprint
            and early.parameters == _parameters(raw)
        )
        if recorder is not None:
            with contextlib.suppress(Exception):  # written down or not, the run goes on
                if same:
                    recorder.touch()  # in use: the last to go when entries are dropped
                else:
                    recorder.write(statement, raw, fingerprint, codec)
    except BaseException:
        if early is not None:
            early.drop()
        raise
    if early is None:
        return None
    if not same:
        early.drop()
        return None
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
    return early.stop(10)


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
        _started.stop(1.0)
