"""Extract throughput and peak memory: `python bench/extract.py [--requests N ...]`.

Builds the suite's sample database with its generator in an embedded PostgreSQL, once per
size, then runs `refaudit extract` on it in a child process and prints rows/s and the
child's peak resident memory (its own `wait4` rusage, through a small launcher). Several
sizes show whether memory stays flat as the tables grow. `--audit` also times a direct
`refaudit run` and a `refaudit run --snapshot` of the same database.

Run from the repository root; it needs nothing but the installed dependencies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from refaudit.demo import build_sample  # noqa: E402
from refaudit.embedded import create_database, embedded_server  # noqa: E402
from refaudit.suite import load_suite  # noqa: E402

# A process's peak RSS counts the memory of the process it was forked from (the kernel keeps
# the forked copy's high-water mark across exec), and this one holds the generator's data.
# So a small launcher forks the measured command and reports that child's own rusage.
_LAUNCHER = """
import json, os, subprocess, sys
child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
_, status, usage = os.wait4(child.pid, 0)
print(json.dumps({"maxrss_kib": usage.ru_maxrss, "code": os.waitstatus_to_exitcode(status)}))
"""


def measure(*args: str) -> tuple[float, float, int]:
    """Run `python -m refaudit ARGS`; return (wall seconds, peak RSS in MiB, exit code)."""
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _LAUNCHER, sys.executable, "-m", "refaudit", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    wall = time.perf_counter() - started
    report = json.loads(out.stdout)
    return wall, report["maxrss_kib"] / 1024, report["code"]  # ru_maxrss is KiB on Linux


def bench(server: str, suite_path: Path | None, requests: int, audit: bool) -> None:
    suite = load_suite(suite_path)
    uri = create_database(server, f"bench_extract_{requests}")
    started = time.perf_counter()
    build_sample(uri, suite, requests=requests, seed=7, truth=False)
    print(f"built {requests:,} requests in {time.perf_counter() - started:.1f}s", flush=True)
    work = Path(tempfile.mkdtemp(prefix="refaudit-bench-"))
    try:
        suite_args = ["--suite", str(suite.path)]  # the command line names its suite
        snap = work / "snapshot"
        wall, rss, code = measure("extract", "--db", uri, "--out", str(snap), "-q", *suite_args)
        if code != 0:
            raise SystemExit(f"refaudit extract failed with exit code {code}")
        manifest = json.loads((snap / "manifest.json").read_text())
        rows = sum(t["rows"] for t in manifest["tables"])
        size = sum(f.stat().st_size for f in snap.iterdir()) / 2**20
        print(
            f"extract  {requests:>9,} requests: {rows:,} rows in {manifest['duration_s']:.2f}s "
            f"= {rows / manifest['duration_s']:,.0f} rows/s (process {wall:.2f}s), "
            f"peak RSS {rss:.0f} MiB, snapshot {size:.1f} MiB",
            flush=True,
        )
        if audit:
            for label, source in (
                ("direct", ["--db", uri]),
                ("snapshot", ["--snapshot", str(snap)]),
            ):
                wall, rss, code = measure(
                    "run", *source, "--out", str(work / label), "-q", *suite_args
                )
                print(
                    f"run {label:<8} {requests:>9,} requests: {wall:.2f}s, peak RSS {rss:.0f} MiB, "
                    f"exit {code}",
                    flush=True,
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--suite", type=Path, default=None)
    parser.add_argument("--audit", action="store_true", help="also time run and run --snapshot")
    args = parser.parse_args()
    with embedded_server() as server:
        for requests in args.requests:
            bench(server, args.suite, requests, args.audit)


if __name__ == "__main__":
    main()
