"""The cost of `refaudit discover` against a full audit of the same database.

    python -m bench.discover --rows 1000000 [--server pgserver|embedded|debian|URL]
                             [--seed 7] [--repeat 3] [--pgdata DIR] [--drop-fks]

Uses the benchmark database of `python -m bench` (built once, then cached) and times,
alternating, `--repeat` times: `python -m refaudit discover` (writing the suite) and
`python -m refaudit run --no-history` (every check of the Astegni suite), each end to end as a
subprocess with its peak RSS. With `--drop-fks` both run on a copy of that database (cached
too) without its foreign keys, so that discover infers every reference from the data. The
issue's target is discover <= 3x the audit.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

import psycopg2

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from refaudit.embedded import database_uri  # noqa: E402

from bench.__main__ import (  # noqa: E402
    bench_server,
    cached_database,
    run_child,
    server_facts,
    time_refaudit,
)

TARGET_DISCOVER_RATIO = 3.0


def without_fks(server_uri: str, uri: str) -> str:
    """A copy of the database at `uri` without its foreign keys (made once, then cached)."""
    source = psycopg2.connect(uri)
    try:
        name = source.info.dbname
    finally:
        source.close()
    copy = f"{name}_nofk"
    admin = psycopg2.connect(server_uri)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (copy,))
            if cur.fetchone() is None:
                building = f"{copy}_building"
                cur.execute(f'DROP DATABASE IF EXISTS "{building}"')
                cur.execute(f'CREATE DATABASE "{building}" TEMPLATE "{name}"')
                conn = psycopg2.connect(database_uri(server_uri, building))
                try:
                    with conn.cursor() as c2:
                        c2.execute(
                            "SELECT conrelid::regclass::text, quote_ident(conname) "
                            "FROM pg_constraint WHERE contype = 'f'"
                        )
                        for table, fk in c2.fetchall():
                            c2.execute(f"ALTER TABLE {table} DROP CONSTRAINT {fk}")
                    conn.commit()
                finally:
                    conn.close()
                cur.execute(f'ALTER DATABASE "{building}" RENAME TO "{copy}"')
    finally:
        admin.close()
    return database_uri(server_uri, copy)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.discover", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--rows", type=int, default=1_000_000, help="synthetic session requests")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=3, help="alternating repetitions")
    parser.add_argument("--server", default="pgserver", help="a server kind or a URL")
    parser.add_argument("--pgdata", type=Path, default=None, help="the server's data directory")
    parser.add_argument("--drop-fks", action="store_true", help="run on a copy without FKs")
    args = parser.parse_args()
    with bench_server(args.server, args.pgdata) as server:
        uri, how = cached_database(server, args.rows, args.seed)
        if args.drop_fks:
            uri = without_fks(server, uri)
        version, rows, settings = server_facts(uri)
        print(f"PostgreSQL {version}, {rows:,} requests ({how}); {settings}", flush=True)
        work = Path(tempfile.mkdtemp(prefix="refaudit-bench-discover-"))
        found: list[float] = []
        audit: list[float] = []
        rss: list[int] = []
        for i in range(args.repeat):
            log = work / f"discover{i}.log"
            wall, code, peak, _ = run_child(
                ["-m", "refaudit", "discover", "--db", uri, "--out", str(work / f"s{i}.yml")],
                log,
            )
            if code != 0:
                raise SystemExit(f"refaudit discover failed (exit {code}): {log.read_text()}")
            found.append(wall)
            rss.append(peak)
            wall = time_refaudit(uri, work / f"run{i}", "--no-history").wall_s
            audit.append(wall)
            print(f"  {i + 1}: discover {found[-1]:.1f} s, run {wall:.1f} s", flush=True)
        d, r = statistics.median(found), statistics.median(audit)
        ratio = d / r
        ok = "ok" if ratio <= TARGET_DISCOVER_RATIO else "MISSED"
        print(
            f"discover {d:.1f} s (min {min(found):.1f}, max {max(found):.1f}), run {r:.1f} s "
            f"(min {min(audit):.1f}, max {max(audit):.1f}): {ratio:.2f}x "
            f"[target <= {TARGET_DISCOVER_RATIO:.0f}x: {ok}]; discover peak RSS "
            f"{max(rss) // 1024} MB; suites in {work}"
        )


if __name__ == "__main__":
    main()
