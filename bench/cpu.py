"""The CPU time a PostgreSQL server spends, read from Linux's /proc: where the time of a
benchmark pair goes when the machine has fewer cores than the work has processes.

A server's CPU is its postmaster's own, plus what its children (backends, parallel workers,
background processes) have spent: a live child's own time, and, once the postmaster has
reaped it, the child's time in the postmaster's `cutime`/`cstime`. The sum only grows; the
difference of two readings is the CPU spent in between, provided no child ends in between
the two halves of one reading: `ServerCpu.settled` waits until the backends a measured run
opened have gone.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psycopg2

_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_PROC = Path("/proc")


def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3 on), or None if gone."""
    try:
        raw = (_PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return raw[raw.rindex(")") + 2:].split()


def _parent(fields: list[str]) -> int:
    return int(fields[1])  # ppid (field 4)


def _times(fields: list[str]) -> float:
    """utime + stime + cutime + cstime (fields 14 to 17): a process's own CPU seconds and
    those of its children it has reaped."""
    return sum(int(f) for f in fields[11:15]) / _TICK


class ServerCpu:
    """CPU seconds spent by the server whose postmaster is `pid` (see the module's note)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid

    @classmethod
    def of(cls, uri: str) -> ServerCpu | None:
        """The server at `uri`, if it runs on this machine and /proc shows it; else None."""
        conn = psycopg2.connect(uri)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                backend = cur.fetchone()[0]
            fields = _stat(backend)
        finally:
            conn.close()
        if fields is None:
            return None  # another machine (or another PID namespace)
        return cls(_parent(fields))

    def _children(self) -> list[int]:
        listed = _PROC / str(self.pid) / "task" / str(self.pid) / "children"
        try:
            return [int(p) for p in listed.read_text().split()]
        except OSError:  # a kernel without CONFIG_PROC_CHILDREN: look at every process
            pids = [int(p.name) for p in _PROC.iterdir() if p.name.isdigit()]
            return [p for p in pids if (f := _stat(p)) is not None and _parent(f) == self.pid]

    def seconds(self) -> float:
        """The server's CPU seconds so far (only differences between two readings mean
        anything)."""
        own = _stat(self.pid)
        if own is None:
            raise RuntimeError(f"the postmaster (PID {self.pid}) is gone")
        total = _times(own)
        for child in self._children():
            fields = _stat(child)
            if fields is not None:
                total += _times(fields)
        return total

    def settled(self, uri: str, timeout_s: float = 5.0) -> float:
        """`seconds()` once no other client backend is connected to `uri`'s database (a
        measured run's backends exit after it has disconnected), waiting at most
        `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        conn = psycopg2.connect(uri)
        try:
            conn.autocommit = True
            with conn.cursor() as cur:
                while True:
                    cur.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'client "
                        "backend' AND datname = current_database() AND pid <> pg_backend_pid()"
                    )
                    if cur.fetchone()[0] == 0 or time.monotonic() > deadline:
                        break
                    time.sleep(0.02)
        finally:
            conn.close()
        time.sleep(0.05)  # the asking backend's own exit, and the postmaster's reaping
        return self.seconds()
