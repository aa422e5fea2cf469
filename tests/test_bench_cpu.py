"""The benchmark's reading of a server's CPU time (`bench/cpu.py`): what each pair's
statements cost PostgreSQL, beside what refaudit's own process costs."""

from __future__ import annotations

import threading
import time

import psutil
import psycopg2
import pytest

from bench import cpu as bench_cpu
from bench.cpu import ServerCpu

# ~0.4 s of one backend's CPU on this machine, without parallel workers
BUSY = (
    "SET max_parallel_workers_per_gather = 0; "
    "SELECT count(*) FROM generate_series(1, 4000000) AS g WHERE g % 7 = 3"
)


def _busy(uri: str) -> float:
    conn = psycopg2.connect(uri)
    try:
        started = time.perf_counter()
        with conn.cursor() as cur:
            cur.execute(BUSY)
            cur.fetchall()
        return time.perf_counter() - started
    finally:
        conn.close()


def test_a_statement_s_cpu_is_counted_once_its_backend_has_gone(pg_server: str) -> None:
    cpu = ServerCpu.of(pg_server)
    assert cpu is not None  # the test servers run on this machine
    before = cpu.settled(pg_server)
    took = _busy(pg_server)
    spent = cpu.settled(pg_server) - before
    # a backend that computes alone spends about its wall time on a core (the reading's
    # resolution is one clock tick, 10 ms); an idle server spends next to nothing
    assert 0.5 * took <= spent <= 2 * took + 0.2, (took, spent)
    idle = cpu.settled(pg_server)
    time.sleep(0.3)
    assert cpu.settled(pg_server) - idle < 0.15


def test_two_backends_at_once_count_twice(pg_server: str) -> None:
    cpu = ServerCpu.of(pg_server)
    assert cpu is not None
    before = cpu.settled(pg_server)
    took: list[float] = []
    threads = [threading.Thread(target=lambda: took.append(_busy(pg_server))) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    spent = cpu.settled(pg_server) - before
    assert spent >= 0.5 * sum(took), (took, spent)


def test_settled_waits_for_the_database_s_other_backends_to_end(pg_server: str) -> None:
    cpu = ServerCpu.of(pg_server)
    assert cpu is not None
    cpu.settled(pg_server)
    conn = psycopg2.connect(pg_server)  # a run that has not disconnected yet
    closer = threading.Timer(0.3, conn.close)
    closer.start()
    started = time.perf_counter()
    cpu.settled(pg_server)
    waited = time.perf_counter() - started
    closer.join()
    assert 0.25 <= waited < 3, waited


def test_a_server_on_another_machine_has_no_reading(
    pg_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def unseen(pid: int) -> None:  # no process of the server is seen
        raise psutil.NoSuchProcess(pid)

    monkeypatch.setattr(bench_cpu.psutil, "Process", unseen)
    assert ServerCpu.of(pg_server) is None
