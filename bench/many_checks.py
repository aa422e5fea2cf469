"""How `refaudit run` scales in the number of checks.

    python -m bench many-checks [--checks 1000 5000] [--rows 20000] [--server embedded|...|URL]
                                [--seed 7] [--pgdata DIR] [--profile]

Starts a throwaway server (or uses the one at a URL), builds one table of `--rows` rows with
twenty columns of mixed types and planted violations plus a small lookup table, and for each N
of `--checks` generates a suite of N checks mixing the kinds as a big real suite does (mostly
per-column checks: not_null, in_set, range, pattern, row_rule, expression; a few references,
unique keys and checks about the whole table: row_count, not_null_proportion, not_constant,
freshness). Each suite runs end to end as `python -m refaudit run --suite ... --no-history -v`
in a subprocess; the benchmark prints its wall time and where the time went (the stage and step
lines of `-v`). It first requires every check's count to equal the count computed for it
independently in SQL. With `--profile`, it also runs `run_audit` in-process under cProfile and
prints the functions that took the most time.

The issue's bounds: 1,000 checks <= 10 s and 5,000 checks <= 60 s on 20,000 rows.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg2
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from refaudit.embedded import create_database  # noqa: E402
from refaudit.servers import SERVER_KINDS, throwaway_server  # noqa: E402

TARGETS_S = {1000: 10.0, 5000: 60.0}
TABLE = "wide_facts"
LOOKUP = "lookup_codes"
STATUSES = ["new", "open", "closed", "held"]

SCHEMA = f"""
CREATE TABLE {LOOKUP} (code integer PRIMARY KEY, label text NOT NULL);
CREATE TABLE {TABLE} (
    id integer PRIMARY KEY,
    code integer,
    status text,
    region text,
    email text,
    phone text,
    qty integer,
    price numeric(10, 2),
    discount numeric(5, 2),
    score double precision,
    weight real,
    rank smallint,
    flag boolean,
    created_at timestamptz,
    updated_at timestamptz,
    due_on date,
    serial bigint,
    note text,
    ref_a integer,
    ref_b integer
);
"""

# Rows derived from `i` (and the seed), so the data is the same on every run; about one row in
# 50 to 200 breaks each kind of check.
FILL = f"""
INSERT INTO {LOOKUP} SELECT c, 'code ' || c FROM generate_series(1, 50) c;
INSERT INTO {TABLE}
SELECT i,
       CASE WHEN i % 97 = 0 THEN 50 + i % 7 ELSE 1 + (i * %(seed)s) % 50 END,
       CASE WHEN i % 113 = 0 THEN 'lost' WHEN i % 89 = 0 THEN NULL
            ELSE (ARRAY['new', 'open', 'closed', 'held'])[1 + (i * %(seed)s) % 4] END,
       (ARRAY['north', 'south', 'east', 'west', NULL])[1 + i % 5],
       CASE WHEN i % 71 = 0 THEN 'user' || i || '.example.org' ELSE 'user' || i || '@example.org'
       END,
       CASE WHEN i % 59 = 0 THEN '12-34' ELSE '+2519' || lpad((i * 7919 % 100000000)::text, 8,
            '0') END,
       CASE WHEN i % 83 = 0 THEN -i % 10 ELSE 1 + (i * %(seed)s) % 500 END,
       ((i * 31) % 100000) / 100.0,
       CASE WHEN i % 67 = 0 THEN 150 ELSE (i % 50) END,
       (i % 1000) / 10.0,
       (i % 300) / 3.0,
       (i % 30)::smallint,
       CASE WHEN i % 3 = 0 THEN NULL ELSE i % 2 = 0 END,
       timestamptz '2026-01-01' + (i % 5000) * interval '1 hour',
       timestamptz '2026-01-01' + (i % 5000) * interval '1 hour'
           + CASE WHEN i % 61 = 0 THEN interval '-2 hours' ELSE interval '3 hours' END,
       date '2026-01-01' + i % 400,
       CASE WHEN i % 101 = 0 THEN i - 1 ELSE i END::bigint * 1000,
       CASE WHEN i % 7 = 0 THEN NULL ELSE 'note ' || i END,
       CASE WHEN i % 131 = 0 THEN 999 ELSE 1 + i % 50 END,
       CASE WHEN i % 11 = 0 THEN NULL ELSE 1 + i % 50 END
FROM generate_series(1, %(rows)s) i;
"""

# Per column: the bounds its values keep, but for the planted rows.
RANGES = {"qty": (0, 500), "price": (0, 1000), "discount": (0, 100), "score": (0, 100),
          "weight": (0, 100), "rank": (0, 29), "serial": (1, 20_000_000_000), "code": (1, 50)}
NUMERIC = list(RANGES)
# Columns where NULL is rare (a planted violation); flag, region, note and ref_b are often NULL.
NULLABLE = ["status", "email", "phone", "qty", "price", "discount", "score", "weight", "rank",
            "created_at", "updated_at", "due_on", "serial", "ref_a", "code"]
PATTERNS = {"email": r"^[^@[:space:]]+@[^@[:space:]]+\.[a-z]+$", "phone": r"^\+2519[0-9]{8}$",
            "note": r"^note [0-9]+$"}
IN_SETS = {"status": STATUSES, "region": ["north", "south", "east", "west"]}
ORDERED_PAIRS = [("updated_at", "created_at"), ("serial", "id")]
UNIQUES = [["serial"], ["email"], ["code", "due_on"], ["region", "rank", "due_on"]]


def _lit(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(value)


@dataclass(frozen=True)
class Generated:
    check: dict[str, Any]
    count_sql: str  # the check's count (a unique key: the rows after the first), in plain SQL


def one_check(i: int) -> Generated:
    """The i-th check of a generated suite: kinds in the proportions of a big real suite,
    with parameters that vary with `i` so that no two checks are the same."""
    slot = i % 100
    cid = f"c{i:05d}"
    t = TABLE
    if slot < 22:
        col = NULLABLE[i % len(NULLABLE)]
        return Generated({"id": cid, "kind": "not_null", "table": t, "columns": [col]},
                         f"SELECT count(*) FROM {t} WHERE {col} IS NULL")
    if slot < 36:
        col = list(IN_SETS)[i % len(IN_SETS)]
        values = [*IN_SETS[col], f"other{i}"]
        listed = ", ".join(_lit(v) for v in values)
        return Generated({"id": cid, "kind": "in_set", "table": t, "column": col,
                          "values": values},
                         f"SELECT count(*) FROM {t} WHERE {col} NOT IN ({listed})")
    if slot < 56:
        col = NUMERIC[i % len(NUMERIC)]
        low, high = RANGES[col][0] - i % 3, RANGES[col][1] + (i // 8) % 10
        return Generated({"id": cid, "kind": "range", "table": t, "column": col, "min": low,
                          "max": high},
                         f"SELECT count(*) FROM {t} WHERE {col} < {low} OR {col} > {high}")
    if slot < 66:
        col = list(PATTERNS)[i % len(PATTERNS)]
        regex = PATTERNS[col] if i % 2 else f"^(zz{i})?" + PATTERNS[col][1:]
        return Generated({"id": cid, "kind": "pattern", "table": t, "column": col,
                          "regex": regex},
                         f"SELECT count(*) FROM {t} WHERE {col} !~ {_lit(regex)}")
    if slot < 78:
        high, low = ORDERED_PAIRS[i % len(ORDERED_PAIRS)]
        status = STATUSES[i % len(STATUSES)]
        return Generated(
            {"id": cid, "kind": "row_rule", "table": t,
             "where": {"column": "status", "eq": status},
             "require": {"column": high, "ge": {"column": low}}},
            f"SELECT count(*) FROM {t} WHERE status = {_lit(status)} AND {high} < {low}",
        )
    if slot < 86:
        bound = 530 + i % 400
        expr = f"qty + rank < {bound}"
        return Generated({"id": cid, "kind": "expression", "table": t, "expression": expr},
                         f"SELECT count(*) FROM {t} WHERE ({expr}) IS false")
    if slot < 88:
        col = ["code", "ref_a", "ref_b"][i % 3]
        return Generated(
            {"id": cid, "kind": "reference", "table": t, "column": col,
             "target": {"table": LOOKUP, "column": "code"}},
            f"SELECT count(*) FROM {t} f WHERE f.{col} IS NOT NULL AND NOT EXISTS "
            f"(SELECT 1 FROM {LOOKUP} l WHERE l.code = f.{col})",
        )
    if slot < 89:
        cols = UNIQUES[i % len(UNIQUES)]
        listed = ", ".join(cols)
        nonnull = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        return Generated(
            {"id": cid, "kind": "unique", "table": t, "columns": cols},
            f"SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) n FROM {t} WHERE {nonnull} "
            f"GROUP BY {listed} HAVING count(*) > 1) d",
        )
    kind = ["row_count", "not_null_proportion", "not_constant", "freshness"][i % 4]
    if kind == "row_count":
        status = STATUSES[i % len(STATUSES)]
        high = 3000 + (i * 37) % 4000
        return Generated(
            {"id": cid, "kind": "row_count", "table": t, "max": high,
             "where": {"column": "status", "eq": status}},
            f"SELECT (count(*) > {high})::int FROM {t} WHERE status = {_lit(status)}",
        )
    if kind == "not_null_proportion":
        col = NULLABLE[i % len(NULLABLE)]
        share = round(0.5 + (i % 50) / 100, 2)
        return Generated(
            {"id": cid, "kind": "not_null_proportion", "table": t, "column": col,
             "at_least": share},
            f"SELECT (count({col})::float8 / nullif(count(*), 0) < {share})::int FROM {t}",
        )
    if kind == "not_constant":
        col = NULLABLE[i % len(NULLABLE)]
        return Generated(
            {"id": cid, "kind": "not_constant", "table": t, "column": col},
            f"SELECT (count(DISTINCT {col}) < 2)::int FROM {t}",
        )
    hours = 24 * (1 + i % 400)
    return Generated(
        {"id": cid, "kind": "freshness", "table": t, "column": "created_at",
         "max_age": f"{hours} hours"},
        f"SELECT (max(created_at) < now() - interval '{hours} hours')::int FROM {t}",
    )


def generate_suite(n: int) -> tuple[dict[str, Any], dict[str, str]]:
    """A suite of `n` checks and, per check id, the SQL that counts its findings."""
    made = [one_check(i) for i in range(n)]
    suite = {
        "suite": f"many_checks_{n}",
        "tables": {TABLE: {"key": "id"}, LOOKUP: {"key": "code"}},
        "checks": [g.check for g in made],
    }
    return suite, {g.check["id"]: g.count_sql for g in made}


def build_database(server_uri: str, rows: int, seed: int) -> str:
    """A fresh database `many_checks` with the benchmark's two tables."""
    uri = create_database(server_uri, "many_checks")
    fill_database(uri, rows, seed)
    return uri


def fill_database(uri: str, rows: int, seed: int) -> None:
    """The benchmark's two tables, in the empty database at `uri`."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(SCHEMA)
            cur.execute(FILL.replace("%(seed)s", str(seed)).replace("%(rows)s", str(rows)))
        conn.commit()
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute("VACUUM (ANALYZE)")
    finally:
        conn.close()


def expected_counts(uri: str, count_sql: dict[str, str]) -> dict[str, int]:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            found = {}
            for cid, sql in count_sql.items():
                cur.execute(sql)
                found[cid] = int(cur.fetchone()[0] or 0)
            return found
    finally:
        conn.close()


STEP_LINE = re.compile(r"(?P<what>.+?)\s+(?P<secs>[0-9]+(?:\.[0-9]+)?)\s*s\b")


@dataclass
class Run:
    wall_s: float
    exit_code: int
    counts: dict[str, int]
    stderr: str


def run_suite(uri: str, suite_path: Path, out: Path) -> Run:
    """`python -m refaudit run` on the generated suite, end to end, in a subprocess."""
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "refaudit", "run", "--suite", str(suite_path), "--db", uri,
         "--out", str(out), "--no-history", "-v"],
        cwd=ROOT, capture_output=True, text=True,
    )
    wall = time.perf_counter() - started
    if done.returncode not in (0, 1):
        raise SystemExit(f"refaudit run failed (exit {done.returncode}):\n{done.stderr[-3000:]}")
    doc = json.loads((out / "results.json").read_text())
    counts = {c["id"]: c["violations"] for c in doc["checks"]}
    return Run(wall, done.returncode, counts, done.stderr)


def disagreement(expected: dict[str, int], counts: dict[str, int]) -> dict[str, tuple[Any, int]]:
    """{check id: (refaudit's count, the independent count)} where they differ."""
    return {k: (counts.get(k), v) for k, v in expected.items() if counts.get(k) != v}


@contextmanager
def bench_database(server: str, pgdata: Path | None, rows: int, seed: int) -> Iterator[str]:
    if server in SERVER_KINDS:
        with throwaway_server(server, pgdata) as server_uri:
            yield build_database(server_uri, rows, seed)
    else:
        yield build_database(server, rows, seed)


def write_suite(directory: Path, n: int) -> tuple[Path, dict[str, str]]:
    suite, count_sql = generate_suite(n)
    path = directory / f"suite_{n}.yml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path, count_sql


def profile(uri: str, suite_path: Path, out: Path, top: int = 25) -> None:
    """`run_audit` in-process under cProfile: the functions with the most cumulative time."""
    import cProfile
    import pstats

    from refaudit.audit import AuditOptions, run_audit
    from refaudit.db import resolve_url
    from refaudit.suite import load_suite

    prof = cProfile.Profile()
    loaded = load_suite(suite_path)
    prof.enable()
    run_audit(resolve_url(uri), loaded, out, options=AuditOptions(record_history=False))
    prof.disable()
    pstats.Stats(prof).sort_stats("cumulative").print_stats(top)
    pstats.Stats(prof).sort_stats("tottime").print_stats(top)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench many-checks",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--checks", type=int, nargs="+", default=[1000, 5000])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--server", default="embedded",
                        help=f"{'|'.join(SERVER_KINDS)} (a throwaway server) or a URL")
    parser.add_argument("--pgdata", type=Path, default=None,
                        help="data directory of the throwaway server (default: a new one)")
    parser.add_argument("--profile", action="store_true",
                        help="also profile run_audit in-process (cProfile)")
    args = parser.parse_args(argv)
    with (
        bench_database(args.server, args.pgdata, args.rows, args.seed) as uri,
        tempfile.TemporaryDirectory(prefix="refaudit-bench-many-") as tmp,
    ):
        work = Path(tmp)
        print(f"{TABLE}: {args.rows:,} rows, 20 columns; {LOOKUP}: 50 rows", flush=True)
        results: list[tuple[int, float]] = []
        for n in args.checks:
            suite_path, count_sql = write_suite(work, n)
            run = run_suite(uri, suite_path, work / f"out{n}")
            differ = disagreement(expected_counts(uri, count_sql), run.counts)
            if differ:
                raise SystemExit(f"{len(differ)} counts differ {{check: (refaudit, SQL)}}: "
                                 f"{dict(list(differ.items())[:10])}")
            findings = sum(run.counts[c] for c in count_sql)
            print(f"\n{n:,} checks: {run.wall_s:.1f} s wall (exit {run.exit_code}; "
                  f"{findings:,} findings, each check's count = its SQL count)")
            for line in run.stderr.splitlines():
                if STEP_LINE.search(line):
                    print(f"    {line.strip()}")
            results.append((n, run.wall_s))
            if args.profile:
                profile(uri, suite_path, work / f"profile{n}")
        print()
        for n, wall in results:
            target = TARGETS_S.get(n)
            verdict = "" if target is None else (
                f"  (target <= {target:.0f} s: {'ok' if wall <= target else 'MISSED'})")
            print(f"{n:>6,} checks: {wall:6.1f} s{verdict}")


if __name__ == "__main__":
    main()
