"""The CPU time a PostgreSQL server spends, read with psutil: where the time of a
benchmark pair goes when the machine has fewer cores than the work has processes.

A server's CPU is its postmaster's own, plus what its children (backends, parallel workers,
background processes) have spent: a live child's own time, and, once the postmaster has
reaped it, in the postmaster's own `children_user` and `children_system`. The sum only grows; the
difference of two readings is the CPU spent in between, provided no child ends in between
the two halves of one reading: `ServerCpu.settled` waits until the backends a measured run
opened have gone.
"""

from __future__ import annotations

import contextlib
import time

import psutil
import psycopg2


def _cpu(process: psutil.Process) -> float:
    """A process's own CPU seconds and those of the children it has reaped."""
    t = process.cpu_times()
    return t.user + t.system + t.children_user + t.children_system


class ServerCpu:
    """CPU seconds spent by the server whose postmaster is `postmaster` (see the module's
    note)."""

    def __init__(self, postmaster: psutil.Process) -> None:
        self.postmaster = postmaster

    @classmethod
    def of(cls, uri: str) -> ServerCpu | None:
        """The server at `uri`, if it runs on this machine and its processes can be seen;
        else None."""
        conn = psycopg2.connect(uri)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_backend_pid()")
                backend = cur.fetchone()[0]
            try:
                postmaster = psutil.Process(backend).parent()
            except psutil.Error:
                return None  # another machine (or another PID namespace)
        finally:
            conn.close()
        return None if postmaster is None else cls(postmaster)

    def seconds(self) -> float:
        """The server's CPU seconds so far (only differences between two readings mean
        anything)."""
        total = _cpu(self.postmaster)  # raises psutil.NoSuchProcess if it is gone
        for child in self.postmaster.children():
            with contextlib.suppress(psutil.NoSuchProcess):  # ended meanwhile
                total += _cpu(child)
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
