"""Connections to the audited database: where the URL comes from, how it is shown, and the
read-only snapshot every check runs in."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import threading
import time
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote

import psycopg2
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection, Engine, make_url

from . import early
from .errors import DatabaseError, UsageError
from .libpq import SECRET_PARAMETERS
from .limits import CONNECT_TIMEOUT_S, DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S

DRIVER = "postgresql+psycopg2"

SQL_LOG = logging.getLogger(f"{__package__}.sql")
"""Every statement refaudit sends, at DEBUG, as the server receives it (`refaudit -vv`
shows them); silent unless the application configures it."""


def log_statement(statement: str | bytes) -> None:
    """Log a statement's text on `SQL_LOG` (a no-op unless DEBUG is enabled there)."""
    if SQL_LOG.isEnabledFor(logging.DEBUG):
        text = statement.decode(errors="replace") if isinstance(statement, bytes) else statement
        SQL_LOG.debug("%s", text.strip())


_SENDING = threading.local()


@contextlib.contextmanager
def on_sending(callback: Callable[[], None]) -> Iterator[None]:
    """Call `callback` once: when this thread is about to send its next statement, built and
    compiled (`sending`), or else on leaving. For what should wait rather than compete with
    the building of a first statement for the interpreter (the statements of the second
    connection, loading the report's template)."""
    _SENDING.callback = callback
    try:
        yield
    finally:
        sending()


class Stopped(Exception):
    """A statement was not sent: the audit is stopping (see `stopping_on`)."""


@contextlib.contextmanager
def stopping_on(stop: threading.Event) -> Iterator[None]:
    """On this thread, send no statement once `stop` is set: raise `Stopped` instead. For a
    thread that runs statements for another one, which stops them by cancelling the one
    running: a statement still being built then would be sent after the cancel request and
    run to its end."""
    _SENDING.stop = stop
    try:
        yield
    finally:
        _SENDING.stop = None


def sending() -> None:
    """A statement is about to go out on this thread (see `on_sending`, `stopping_on`)."""
    stop = getattr(_SENDING, "stop", None)
    if stop is not None and stop.is_set():
        raise Stopped("not sent: the audit is stopping")
    callback = getattr(_SENDING, "callback", None)
    if callback is not None:
        _SENDING.callback = None
        callback()


def _before_execute(
    _conn: Any, cursor: Any, statement: str, parameters: Any, _context: Any, executemany: bool
) -> None:
    """Every statement SQLAlchemy sends: it is on its way (`sending`), and logged."""
    sending()
    if not SQL_LOG.isEnabledFor(logging.DEBUG):
        return
    if not executemany and hasattr(cursor, "mogrify"):
        with contextlib.suppress(Exception):  # shown as sent; else with its placeholders
            log_statement(cursor.mogrify(statement, parameters))
            return
    log_statement(statement)


def resolve_url(db: str | None) -> URL:
    """`--db`, else `DATABASE_URL`, else an empty URL that lets libpq read the `PG*` variables.

    A URL refaudit cannot use is a `UsageError` whose message never repeats the URL (it may
    hold a password). A password given as `?password=` moves into the URL's password, so it
    is connected with and hidden like any other."""
    source = "--db" if db else "DATABASE_URL"
    raw = db or os.environ.get("DATABASE_URL") or f"{DRIVER}://"
    url = parse_url(raw, source)
    if url.get_backend_name() not in {"postgresql", "postgres"}:
        raise UsageError(
            f"{source} names a {url.get_backend_name()} database; refaudit audits PostgreSQL "
            "(postgresql://...)"
        )
    query_password = _query_password(url)
    if query_password is not None:
        url = url.difference_update_query(["password"]).set(password=query_password)
    return url.set(drivername=DRIVER)


_URL_FORM = "postgresql://USER:PASSWORD@HOST:PORT/DBNAME"


def parse_url(raw: str, source: str = "--db") -> URL:
    """`raw` as a URL, or a UsageError (one line, without the URL) saying what is wrong."""
    try:
        url = make_url(raw)
    except (sa_exc.ArgumentError, ValueError):
        raise UsageError(
            f"{source} is not a database URL; write it as {_URL_FORM}, with special "
            "characters in the user name or password percent-encoded (@ as %40, : as %3A, "
            "/ as %2F)"
        ) from None
    if url.host and "@" in url.host:
        raise UsageError(
            f"{source} has an unencoded @ in its user name or password; percent-encode it "
            "as %40 (the URL's form is " + _URL_FORM + ")"
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise UsageError(f"{source} has port {url.port}; a port is a number from 1 to 65535")
    if url.get_backend_name() in {"postgresql", "postgres"}:
        unknown = _unknown_parameters(url)
        if unknown:
            raise UsageError(
                f"{source}: {unknown}; use libpq's connection parameters (host, port, dbname, "
                "user, password, passfile, sslmode, options, ...)"
            )
    return url


def _unknown_parameters(url: URL) -> str | None:
    """libpq's own verdict on the URL's query parameter names: None, or what it says about
    the first unknown one (`invalid connection option "foo"`)."""
    from psycopg2.extensions import parse_dsn

    try:
        parse_dsn(" ".join(f"{name}=''" for name in url.query if name.isidentifier()))
    except psycopg2.ProgrammingError as exc:
        return str(exc).strip().removeprefix("invalid dsn: ")
    odd = [name for name in url.query if not name.isidentifier()]
    return f'invalid connection option "{odd[0]}"' if odd else None


def _query_password(url: URL) -> str | None:
    value = url.query.get("password")
    if isinstance(value, tuple):  # given twice: libpq takes the last
        value = value[-1] if value else None
    return value


_MASK = "***"
_MASKED = "refaudit-masked-secret"  # stands for _MASK in a URL until it is rendered


def describe(url: URL) -> str:
    """The URL as it may be shown anywhere: the password and every other secret parameter
    (`SECRET_PARAMETERS`) replaced by `***`, wherever it was. The same database gives the
    same text whatever its secrets, so it also keys the run history."""
    if not url.host and not url.database and not url.query:
        parts = [
            f"{k}={os.environ[k]}"
            for k in ("PGHOST", "PGPORT", "PGUSER", "PGDATABASE")
            if os.environ.get(k)
        ]
        return "libpq environment" + (f" ({', '.join(parts)})" if parts else "")
    query_password = _query_password(url)
    if query_password is not None:
        url = url.difference_update_query(["password"]).set(password=query_password)
    hidden = {name: _MASKED for name in SECRET_PARAMETERS if name in url.query}
    if hidden:
        url = url.update_query_dict(hidden)
    shown = url.set(drivername="postgresql").render_as_string(hide_password=True)
    return shown.replace(_MASKED, _MASK)


def mask_shown(shown: str) -> str:
    """A URL as `describe` showed it before it masked every secret parameter, as it shows it
    now (other text unchanged): for URLs stored by an older refaudit."""
    if "://" not in shown or not any(f"{name}=" in shown for name in SECRET_PARAMETERS):
        return shown
    try:
        url = make_url(shown)
    except (sa_exc.ArgumentError, ValueError):
        return shown
    if url.password is not None and url.password != _MASK:
        return shown  # not a URL `describe` wrote
    return describe(url)


def secrets(*urls: URL | str | None) -> list[str]:
    """Every secret a message must never show: the passwords and other secret parameters
    (`SECRET_PARAMETERS`) of `urls` (in the user info or the query string, or in a libpq
    `key=value` string), of DATABASE_URL and PGPASSWORD, and of the password file libpq
    would read for them; as written and as percent-encoded in a URL; longest first."""
    found = {os.environ.get("PGPASSWORD", "")}
    passfiles = {os.environ.get("PGPASSFILE") or str(Path("~/.pgpass").expanduser())}
    for raw in (*urls, os.environ.get("DATABASE_URL")):
        if isinstance(raw, str) and raw:
            found.add(_raw_password(raw))
            found |= _raw_secret_parameters(raw)
            try:
                raw = make_url(raw)
            except (sa_exc.ArgumentError, ValueError):
                continue
        if isinstance(raw, URL):
            found.add(raw.password or "")
            for name in SECRET_PARAMETERS:
                found |= set(_values(raw, name))
            passfiles |= set(_values(raw, "passfile"))
    for passfile in passfiles:
        found |= _passfile_passwords(Path(passfile))
    for secret in list(found):
        found |= {quote(secret, safe=""), quote(secret), quote_plus(secret)}
    return sorted((s for s in found if s), key=len, reverse=True)


def _values(url: URL, name: str) -> tuple[str, ...]:
    value = url.query.get(name)
    return (value,) if isinstance(value, str) else tuple(value or ())


def _raw_secret_parameters(raw: str) -> set[str]:
    """The secret parameters of a URL's query string or of a libpq `key=value` string, as
    their author meant them, even where the rest cannot be parsed."""
    from psycopg2.extensions import parse_dsn

    found: set[str] = set()
    if "://" in raw:
        query = raw.partition("?")[2].partition("#")[0]
        # a + may stand for a blank or for itself, depending on who decodes the URL: both
        for reading in (query, query.replace("+", "%2B")):
            pairs = parse_qsl(reading, keep_blank_values=True)
            found |= {value for name, value in pairs if name in SECRET_PARAMETERS}
        return found
    try:
        params = parse_dsn(raw)
    except psycopg2.Error:
        # unparseable: whatever follows `name=` up to the next blank
        for name in SECRET_PARAMETERS:
            found |= {m.strip("'") for m in re.findall(rf"\b{name}\s*=\s*(\S+)", raw)}
        return found
    return {value for name, value in params.items() if name in SECRET_PARAMETERS}


def _raw_password(raw: str) -> str:
    """The password of a URL as its author meant it, even where it is malformed (an
    unencoded @ or /): everything between the first `:` of the user info and its last `@`."""
    _, _, rest = raw.partition("://")
    userinfo, at, _ = rest.rpartition("@")
    if not at:
        return ""
    _, colon, password = userinfo.partition(":")
    return unquote(password) if colon else ""


def _passfile_passwords(path: Path) -> set[str]:
    """The passwords of a libpq password file (`host:port:db:user:password` lines, with
    colons and backslashes escaped by a backslash); nothing when it is absent or unreadable."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return set()
    found = set()
    for line in text.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        fields = re.split(r"(?<!\\):", line.replace("\\\\", "\0"), maxsplit=4)
        if len(fields) == 5:
            found.add(fields[4].replace("\\:", ":").replace("\0", "\\"))
    return found


def scrub(text: str, url: URL | str | None) -> str:
    """Remove any trace of the password from a message."""
    for secret in secrets(url):
        text = text.replace(secret, "***")
    return text


_OPEN: weakref.WeakSet[Any] = weakref.WeakSet()
"""Every DBAPI connection refaudit's engines opened that is still alive."""


def cancel_statements() -> None:
    """Ask the server to cancel whatever statement refaudit's connections are running (from
    any thread, e.g. on SIGTERM): a call blocked in libpq returns with an error instead of
    waiting for the statement to end, so the run can stop and clean up at once."""
    for dbapi_conn in list(_OPEN):
        if not dbapi_conn.closed:
            with contextlib.suppress(Exception):
                dbapi_conn.cancel()
    early.cancel()


def _track(dbapi_conn: Any, _record: Any) -> None:
    _OPEN.add(dbapi_conn)


def create_engine(
    url: URL,
    *,
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S,
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S,
) -> Engine:
    options = (
        f"-c statement_timeout={int(statement_timeout_s * 1000)} "
        f"-c lock_timeout={int(lock_timeout_s * 1000)} "
        "-c idle_in_transaction_session_timeout=0"
    )
    engine = sa.create_engine(
        url,
        poolclass=sa.pool.NullPool,
        connect_args={
            "options": options,
            "application_name": "refaudit",
            "connect_timeout": CONNECT_TIMEOUT_S,
        },
    )
    sa.event.listen(engine, "connect", _track)
    sa.event.listen(engine, "before_cursor_execute", _before_execute)
    return engine


@dataclass(frozen=True)
class SnapshotInfo:
    taken_at: str
    server_version: str
    database: str
    user: str
    identity: str = ""
    """The database whatever URL reached it: the cluster's system identifier and the
    database's oid (`7301...-/16384`); empty where the server does not let the role read
    `pg_control_system()`."""
    imported: bool = False
    """Whether the transaction runs in a snapshot it imported (`read_only_snapshot`)."""


# What libpq says when the connection is gone (the backend was terminated, the server or the
# network went away): shown as it is.
_LOST = (
    "server closed the connection",
    "terminating connection",
    "could not receive data from server",
    "could not send data to server",
    "connection reset",
    "connection timed out",
    "ssl syscall error",
    "ssl connection has been closed",
    "no connection to the server",
    "lost synchronization with server",
)
# What psycopg2 and SQLAlchemy say about a connection that was used after that: replaced by
# LOST_CONNECTION, since their words (and links) mean nothing to the user.
_GIVEN_UP = (
    "connection already closed",
    "can't reconnect until invalid transaction is rolled back",
    "this connection is closed",
    "connection was invalidated",
)
_SQLALCHEMY_NOISE = re.compile(r"\s*\(Background on this error at: [^)]*\)|^\([\w.]+\)\s*")
LOST_CONNECTION = "the connection to the server was lost"


def database_error(exc: BaseException, url: URL | None, *, doing: str) -> DatabaseError:
    """One clear line for a failed database operation: the server's (or libpq's) first line,
    without the driver's class names, links or follow-up lines, and a hint at what to do
    (for a missing privilege: which one, on what)."""
    orig = getattr(exc, "orig", None) or exc
    full = str(orig)
    first = next((ln.strip() for ln in full.splitlines() if ln.strip()), type(orig).__name__)
    first = _SQLALCHEMY_NOISE.sub("", first).replace("FATAL:", "").replace("ERROR:", "")
    first = " ".join(first.split())
    lower = first.lower()
    if any(marker in lower for marker in _GIVEN_UP):
        first, lost = LOST_CONNECTION, True
    else:
        lost = any(marker in lower for marker in _LOST)
    lost = lost or bool(getattr(exc, "connection_invalidated", False))
    where = describe(url) if url is not None else "the database"
    own = lower.startswith("refaudit:")  # a plan's own RAISE: its words, without the prefix
    if own:
        first = first[len("refaudit:") :].strip()
    if lost:
        hint = _LOST_HINT
    else:
        privilege = _privilege_hint(first, full, _failed_statement(exc, orig), doing)
        hint = privilege if privilege is not None else "" if own else _hint(first)
    return DatabaseError(scrub(f"{doing} failed on {where}: {first}{hint}", url))


_LOST_HINT = " - the connection was lost mid-run; nothing was concluded, run again"


def _hint(message: str) -> str:
    m = message.lower()
    if "password authentication failed" in m or "no password supplied" in m:
        return " - check the user and password in --db or DATABASE_URL"
    if "connection refused" in m or "could not translate host name" in m or "no such file" in m:
        return " - is the server running and the host/port right?"
    if "statement timeout" in m:
        return " - raise --statement-timeout or audit off-peak"
    if "lock timeout" in m:
        return " - another session holds a lock; retry or raise --lock-timeout"
    if 'database "' in m and "does not exist" in m:
        return " - check the database name in --db or DATABASE_URL"
    if 'role "' in m and "does not exist" in m:
        return " - check the user name in --db or DATABASE_URL"
    if "does not exist" in m:
        return " - check the suite against the database schema"
    return ""


# What PostgreSQL says when a privilege is missing (SQLSTATE 42501, insufficient_privilege):
# the kind of object and its name, never the privilege; that follows from the kind and from
# the statement that was refused.
_KINDS = (
    "materialized view", "foreign table", "foreign-data wrapper", "foreign server",
    "large object", "database", "schema", "table", "relation", "view", "sequence",
    "function", "procedure", "routine", "aggregate", "type", "domain", "language",
    "tablespace", "parameter",
)  # fmt: skip
_KIND = "|".join(re.escape(k) for k in _KINDS)
_DENIED = re.compile(rf"permission denied for ({_KIND}) (.+)$", re.IGNORECASE)
_OWNER = re.compile(rf"must be owner of ({_KIND}) (.+)$", re.IGNORECASE)
_TEMP = re.compile(r"permission denied to create temporary tables in database (.+)$", re.I)
_SET_PARAMETER = re.compile(r'permission denied to set parameter "?([^"]+)"?', re.I)
_RELATIONS = {"table", "relation", "view", "materialized view", "foreign table"}
_USAGE_KINDS = {"type", "domain", "language", "foreign-data wrapper", "foreign server"}

_IDENT = r'(?:"(?:[^"]|"")*"|[^\W\d][\w$]*)'
_NAME = rf"{_IDENT}(?:\s*\.\s*{_IDENT})*"
_TARGETS = [
    (verb, re.compile(pattern, re.IGNORECASE | re.DOTALL))
    for verb, pattern in (
        ("UPDATE", rf"UPDATE\s+(?:ONLY\s+)?({_NAME})"),
        ("DELETE", rf"DELETE\s+FROM\s+(?:ONLY\s+)?({_NAME})"),
        ("INSERT", rf"INSERT\s+INTO\s+({_NAME})"),
        ("TRUNCATE", rf"TRUNCATE\s+(?:TABLE\s+)?(?:ONLY\s+)?({_NAME})"),
        ("INSERT", rf"COPY\s+({_NAME})(?:\s*\([^)]*\))?\s+FROM\b"),
        (
            "CREATE",
            r"CREATE\b(?:\s+\w+)*?\s+(?:TABLE|VIEW|SEQUENCE|FUNCTION|PROCEDURE|TYPE"
            rf"|DOMAIN|INDEX|SCHEMA)\s+(?:IF\s+NOT\s+EXISTS\s+)?({_NAME})",
        ),
        ("ALTER", rf"ALTER\s+\w+(?:\s+VIEW)?\s+(?:IF\s+EXISTS\s+)?(?:ONLY\s+)?({_NAME})"),
    )
]
_RELATION_PRIVILEGE = {
    "UPDATE": "UPDATE and SELECT",  # SELECT for the columns its WHERE and SET read
    "DELETE": "DELETE and SELECT",
    "INSERT": "INSERT",
    "TRUNCATE": "TRUNCATE",
}
_CONTEXT_STATEMENT = re.compile(r'SQL statement "(.*?)"\s*(?:\n|$)', re.DOTALL)


def _failed_statement(exc: BaseException, orig: BaseException) -> str | None:
    """The statement the server refused: inside a function or DO block the one PostgreSQL
    names in its CONTEXT, else the one sent."""
    diag = getattr(orig, "diag", None)
    context = getattr(diag, "context", None) or ""
    found = _CONTEXT_STATEMENT.search(context)
    if found:
        return found.group(1)
    statement = getattr(exc, "statement", None)
    if statement is None:
        query = getattr(getattr(orig, "cursor", None), "query", None)
        statement = query.decode(errors="replace") if isinstance(query, bytes) else query
    return statement if isinstance(statement, str) else None


def _strip_comments(statement: str) -> str:
    text = statement.lstrip()
    while text.startswith("--") or text.startswith("/*"):
        end = text.find("\n") if text.startswith("--") else text.find("*/") + 1
        text = text[end + 1 :].lstrip() if end > 0 else ""
    return text


def _target(statement: str | None) -> tuple[str, list[str]] | None:
    """What `statement` does (UPDATE, DELETE, INSERT, TRUNCATE, CREATE, ALTER) and the name of
    the object it does it to, as its parts (`schema`, `name`), unquoted."""
    if not statement:
        return None
    text = _strip_comments(statement)
    for verb, pattern in _TARGETS:
        found = pattern.match(text)
        if found:
            parts = re.findall(_IDENT, found.group(1))
            return verb, [p[1:-1].replace('""', '"') if p[0] == '"' else p.lower() for p in parts]
    return None


def _unquote(name: str) -> str:
    name = name.strip()
    return name[1:-1] if len(name) > 1 and name[0] == name[-1] == '"' else name


def _privilege_hint(message: str, full: str, statement: str | None, doing: str) -> str | None:
    """The privilege a refused statement lacks, as what to grant on what; None when the
    message is not about a privilege."""
    grant = ' - grant {} on {} "{}" to this role'
    found = _TEMP.search(message)
    if found:
        return grant.format("TEMPORARY", "database", _unquote(found.group(1)))
    found = _SET_PARAMETER.search(message)
    if found:
        return (
            " - run it as a superuser, or have one GRANT SET ON PARAMETER "
            f"{found.group(1)} TO this role (PostgreSQL 15 and later)"
        )
    found = _OWNER.search(message)
    if found:
        kind = found.group(1).lower()
        kind = "table" if kind == "relation" else kind
        return (
            f' - run it as the owner of {kind} "{_unquote(found.group(2))}" (or a member of '
            "the role that owns it)"
        )
    if "must be superuser" in message.lower():
        return " - run it as a superuser"
    found = _DENIED.search(message)
    if found is None:
        return None
    kind, name = found.group(1).lower(), _unquote(found.group(2))
    target = _target(statement)
    verb, parts = target if target is not None else ("", [])
    if kind == "database":
        connecting = "CONNECT privilege" in full or doing.startswith("connecting")
        privilege = "CREATE" if verb == "CREATE" or not connecting else "CONNECT"
    elif kind == "schema":
        # creating in the schema needs CREATE on it; naming anything in it, USAGE
        creates_here = verb == "CREATE" and (len(parts) < 2 or parts[-2] == name)
        privilege = "CREATE" if creates_here else "USAGE"
    elif kind in _RELATIONS:
        kind = "table" if kind == "relation" else kind
        privilege = _RELATION_PRIVILEGE.get(verb, "SELECT") if parts[-1:] == [name] else "SELECT"
    elif kind == "sequence":
        privilege = "USAGE"
    elif kind in {"function", "procedure", "routine", "aggregate"}:
        privilege = "EXECUTE"
    elif kind in _USAGE_KINDS:
        privilege = "USAGE"
    elif kind == "large object":
        privilege = "SELECT and UPDATE"
    elif kind == "tablespace":
        privilege = "CREATE"
    else:
        return None
    return grant.format(privilege, kind, name)


def _connect(engine: Engine) -> Connection:
    """A connection; if the server refuses one while the early start (`early`) holds one,
    the early statement gives its connection up for this one (its server process may take a
    moment to go)."""
    try:
        return engine.connect()
    except sa_exc.OperationalError:
        if not early.release():
            raise
    for pause in (0.05, 0.1, 0.2, 0.4):
        try:
            return engine.connect()
        except sa_exc.OperationalError:
            time.sleep(pause)
    return engine.connect()


@contextmanager
def read_only_snapshot(
    engine: Engine, snapshot_id: str | None = None
) -> Iterator[tuple[Connection, SnapshotInfo]]:
    """One REPEATABLE READ READ ONLY transaction: every check sees the same snapshot and none
    can write. With `snapshot_id`, the snapshot another transaction exported, if it can be
    imported (`SnapshotInfo.imported`), else a snapshot of its own."""
    with _connect(engine) as conn:
        conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        transaction = conn.begin()
        imported = False
        if snapshot_id is not None:
            try:
                conn.execute(sa.text("SET TRANSACTION SNAPSHOT :id"), {"id": snapshot_id})
                imported = True
            except sa_exc.DBAPIError:  # that transaction has ended, another database: none
                transaction.rollback()
                transaction = conn.begin()
        with transaction:
            row = conn.execute(
                sa.text(
                    f"SELECT {early.TAKEN_AT}, current_setting('server_version'), "
                    "current_database(), current_user"
                )
            ).one()
            yield (
                conn,
                SnapshotInfo(
                    taken_at=row[0],
                    server_version=row[1],
                    database=row[2],
                    user=row[3],
                    identity=database_identity(conn),
                    imported=imported,
                ),
            )


# Asked first, so that a server without the function or a role without the right never
# runs a statement that fails (which would end the snapshot's transaction)
_CAN_READ_CONTROL = sa.text(
    "SELECT to_regprocedure('pg_catalog.pg_control_system()') IS NOT NULL"
    " AND has_function_privilege('pg_catalog.pg_control_system()', 'EXECUTE')"
)
_IDENTITY = sa.text(
    "SELECT (SELECT system_identifier::text FROM pg_catalog.pg_control_system()) || '/' ||"
    " (SELECT oid::text FROM pg_catalog.pg_database WHERE datname = current_database())"
)


def database_identity(conn: Connection) -> str:
    """`<system identifier>/<database oid>`: the same database however its URL is spelled
    (host name or address, `.pgpass`, `PG*` variables), another one after a restore into a
    new cluster; "" where it cannot be read."""
    if not conn.execute(_CAN_READ_CONTROL).scalar():
        return ""
    return str(conn.execute(_IDENTITY).scalar() or "")


# pg_export_snapshot() where it can work: the function exists (not every server that speaks
# PostgreSQL has it) and the server is a primary or a standby of version 10 or later. Asked
# without calling it otherwise: a failed statement would end the audit's transaction.
_EXPORT_SNAPSHOT = sa.text(
    "SELECT CASE WHEN to_regprocedure('pg_catalog.pg_export_snapshot()') IS NOT NULL"
    " AND (current_setting('server_version_num')::int >= 100000 OR NOT pg_is_in_recovery())"
    " THEN pg_export_snapshot() END"
)


@contextmanager
def companion(conn: Connection) -> Iterator[Connection | None]:
    """A second connection that sees exactly what `conn` sees: `conn`'s snapshot exported
    (`pg_export_snapshot()`) and imported into a new REPEATABLE READ READ ONLY transaction,
    as `pg_dump --jobs` does. `conn` must be inside its read-only snapshot transaction.

    Yields None where the server will not give one (it cannot export snapshots, no second
    connection is allowed for this role, the import is refused): the caller then runs
    everything on `conn`."""
    other = _import_snapshot(conn)
    if other is None:
        yield None
        return
    try:
        yield other
    finally:
        # never hide the error that ended the run behind one of a lost connection
        with contextlib.suppress(sa_exc.DBAPIError):
            other.rollback()
        with contextlib.suppress(sa_exc.DBAPIError):
            other.close()


def _import_snapshot(conn: Connection) -> Connection | None:
    snapshot_id = conn.execute(_EXPORT_SNAPSHOT).scalar()
    if snapshot_id is None:
        return None
    try:
        other = _connect(conn.engine)
    except sa_exc.DBAPIError:
        return None
    try:
        other = other.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        other.begin()
        other.execute(sa.text("SET TRANSACTION SNAPSHOT :id"), {"id": snapshot_id})
    except sa_exc.DBAPIError:
        with contextlib.suppress(sa_exc.DBAPIError):
            other.close()
        return None
    return other
