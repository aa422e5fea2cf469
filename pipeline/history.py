"""Run history: every run of a database and suite, for trends and "what changed since last run".

The store is one SQLite file beside the reports (`reports/history.db` by default; with `--out
DIR` it is `history.db` in DIR's parent, so dated run directories under one root share it, or
in DIR when DIR is the current directory; `--history PATH` puts it anywhere). Runs are scoped
by the database's identity (its cluster's system identifier and its oid: the same however its
URL is spelled, through `.pgpass` or `PG*` variables; where the role cannot read it, by the
database as shown, password redacted) and the suite name, so two databases never mix. A
history kept by the shown name before is taken over by the first run kept by identity.

What it keeps:
- `runs` and `run_checks`: per run, the verdict and per check the status and violation count
  (small: one row per check per run), which draws the trends;
- `last_keys`: the violating (key, column) pairs of the *latest* run of each scope only, one
  row per check holding them sorted and compressed, so "new since last run" and "fixed since
  last run" are exact while the file stays the size of one run's violations (compressed),
  however many runs it has seen.

The comparison is per check: this run's pairs (collected by the `ViolationSink` as
violations.csv is written, then sorted) against the stored ones; equal lists (the usual night)
are compared as lists and stored again as they were. It holds one run's violation keys (not
table rows) in memory: ~70 bytes each, and a set of one check's stored pairs while comparing.
"""

from __future__ import annotations

import heapq
import json
import operator
import sqlite3
import zlib
from collections.abc import Mapping
from itertools import islice
from pathlib import Path
from typing import Any

from .db import mask_shown
from .errors import UsageError
from .results import AuditResult

HISTORY_FILE = "history.db"
TREND_RUNS = 20
SAMPLE_KEYS = 5
_SCHEMA_VERSION = 2

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    database TEXT NOT NULL,
    suite TEXT NOT NULL,
    started_at TEXT NOT NULL,
    snapshot_taken_at TEXT NOT NULL,
    verdict TEXT NOT NULL,
    failed INTEGER NOT NULL,
    violations INTEGER NOT NULL,
    out_dir TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_scope ON runs (database, suite, seq);
CREATE TABLE IF NOT EXISTS run_checks (
    run_seq INTEGER NOT NULL REFERENCES runs (seq) ON DELETE CASCADE,
    check_id TEXT NOT NULL,
    status TEXT NOT NULL,
    violations INTEGER NOT NULL,
    PRIMARY KEY (run_seq, check_id)
) WITHOUT ROWID;
"""
_LAST_KEYS = """
CREATE TABLE IF NOT EXISTS last_keys (
    database TEXT NOT NULL,
    suite TEXT NOT NULL,
    check_id TEXT NOT NULL,
    pairs INTEGER NOT NULL,
    keys BLOB NOT NULL,
    PRIMARY KEY (database, suite, check_id)
)"""

# a (key, column) pair as one string "key\0column" (PostgreSQL text never holds NUL): sorts
# like the pair, and costs one small object per violation
Pairs = list[str]
_SEP = "\0"


def pair(key: str, col: str) -> str:
    """A violation's (key, column) as the history keeps it (`ViolationSink` collects these)."""
    return f"{key}{_SEP}{col}"


def _pack(pairs: Pairs) -> bytes:
    """Sorted, distinct (key, column) pairs as compressed JSON."""
    return zlib.compress(json.dumps(pairs, separators=(",", ":")).encode(), 1)


def _unpack(blob: bytes) -> Pairs:
    pairs: Pairs = json.loads(zlib.decompress(blob))
    return pairs


def _sample_order(pair: str) -> tuple[int, str, str]:
    key, _, col = pair.partition(_SEP)
    return len(key), key, col


def _minus(left: Pairs, right: Pairs) -> tuple[int, list[str]]:
    """How many pairs of `left` are not in `right`, and the keys of the first few of them
    (ordered by key length, key, column)."""
    if right:
        others = set(right)
        missing = [p for p in left if p not in others]
    else:
        missing = left
    first = heapq.nsmallest(SAMPLE_KEYS, missing, key=_sample_order)
    keys: list[str] = []
    for pair in first:
        key = pair.partition(_SEP)[0]
        if key not in keys:
            keys.append(key)
    return len(missing), keys


def default_history_path(out: Path | None, reports_root: Path) -> Path:
    """`reports/history.db`; with `--out DIR`, `history.db` in DIR's parent directory (the
    runs written to `reports/<stamp>` share one), or in DIR itself when DIR is the current
    directory (`--out .` keeps it here, not in the directory above)."""
    if out is None:
        return reports_root / HISTORY_FILE
    if out.resolve() == Path.cwd().resolve():
        return out.absolute() / HISTORY_FILE
    return out.absolute().parent / HISTORY_FILE


class HistoryStore:
    """One history file. Open it before the audit so a bad path fails before any work."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            # transactions are explicit (see `record`)
            self._db = sqlite3.connect(path, timeout=30, isolation_level=None)
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            tables = self._db.execute("SELECT count(*) FROM sqlite_master").fetchone()[0]
            if version == 0 and tables == 0:
                self._db.executescript(
                    f"{_SCHEMA}{_LAST_KEYS};\nPRAGMA user_version = {_SCHEMA_VERSION};"
                )
            elif version == 1:
                self._migrate_from_1()
            elif version != _SCHEMA_VERSION:
                raise UsageError(
                    f"{path} is not a refaudit history file (or one of another version); "
                    "pass --history to another path or --no-history"
                )
            self._db.execute("PRAGMA foreign_keys = ON")
            self._mask_stored_secrets()
        except sqlite3.DatabaseError as exc:
            raise UsageError(
                f"cannot use run history {path}: {exc}; pass --history to a writable file "
                "or --no-history"
            ) from None
        except OSError as exc:
            raise UsageError(
                f"cannot create run history {path}: {exc.strerror}; pass --history to a "
                "writable file or --no-history"
            ) from None

    def close(self) -> None:
        """Close the file; a run recorded but not committed is dropped."""
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")
        self._db.close()

    def _mask_stored_secrets(self) -> None:
        """Databases stored by a refaudit that showed secret connection parameters (an
        `sslpassword`) in clear are stored as they are shown now: the secret leaves the file
        (its pages are overwritten, `secure_delete`) and the history of that database goes
        on under the masked name. Where several stored names become one, the violation keys
        of the one with the latest run are kept."""
        db = self._db
        latest = dict(db.execute("SELECT database, max(seq) FROM runs GROUP BY database"))
        for (name,) in db.execute("SELECT DISTINCT database FROM last_keys"):
            latest.setdefault(name, -1)
        groups: dict[str, list[tuple[int, str]]] = {}
        for name, seq in latest.items():
            groups.setdefault(mask_shown(name), []).append((seq, name))
        if all(mask_shown(name) == name for name in latest):
            return
        db.execute("PRAGMA secure_delete = ON")
        db.execute("BEGIN IMMEDIATE")
        try:
            for masked, names in groups.items():
                names.sort()
                for _, name in names[:-1]:
                    db.execute("DELETE FROM last_keys WHERE database = ?", (name,))
                for _, name in names:
                    if name != masked:
                        db.execute(
                            "UPDATE runs SET database = ? WHERE database = ?", (masked, name)
                        )
                        db.execute(
                            "UPDATE last_keys SET database = ? WHERE database = ?", (masked, name)
                        )
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def _migrate_from_1(self) -> None:
        db = self._db
        db.execute("BEGIN IMMEDIATE")
        try:
            if db.execute("PRAGMA user_version").fetchone()[0] == 1:
                # version 1 kept one row per (check, key, column): the same pairs, unpacked
                db.execute("ALTER TABLE last_keys RENAME TO last_keys_v1")
                db.execute(_LAST_KEYS)
                scopes = db.execute(
                    "SELECT DISTINCT database, suite, check_id FROM last_keys_v1"
                ).fetchall()
                for scope in scopes:
                    rows = db.execute(
                        "SELECT DISTINCT key, col FROM last_keys_v1 "
                        "WHERE database = ? AND suite = ? AND check_id = ?",
                        scope,
                    )
                    pairs = sorted(pair(key, col) for key, col in rows)
                    db.execute(
                        "INSERT INTO last_keys VALUES (?, ?, ?, ?, ?)",
                        (*scope, len(pairs), _pack(pairs)),
                    )
                db.execute("DROP TABLE last_keys_v1")
                db.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        except BaseException:
            db.execute("ROLLBACK")
            raise
        db.execute("COMMIT")

    def record(self, result: AuditResult, keys: Mapping[str, Pairs]) -> dict[str, Any]:
        """Compare this run with the previous run of the same database and suite, append it,
        and return the comparison (it goes into results.json as `history`). `keys` holds, per
        check, this run's violations as `pair(key, column)`, in any order.

        The run is appended in a transaction that only `commit` ends (`close` rolls it back):
        a run that fails after this, while its files are written, never becomes the
        previous run of the next one."""
        try:
            # the write lock first: two runs of one database read and append one after another
            self._db.execute("BEGIN IMMEDIATE")
            try:
                return self._record(result, keys)
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            raise self._unwritable(exc) from None

    def commit(self) -> None:
        """Keep the run `record` appended."""
        try:
            if self._db.in_transaction:
                self._db.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            raise self._unwritable(exc) from None

    def _unwritable(self, exc: sqlite3.DatabaseError) -> UsageError:
        return UsageError(
            f"cannot write run history {self.path}: {exc}; pass --history to a writable "
            "file or --no-history"
        )

    def _record(self, result: AuditResult, keys: Mapping[str, Pairs]) -> dict[str, Any]:
        db = self._db
        run = result.run
        scope = (run.database_identity or run.database, run.suite)
        if run.database_identity:
            self._adopt(run.database, scope)
        previous = db.execute(
            "SELECT seq, run_id, started_at, snapshot_taken_at, verdict, violations, out_dir "
            "FROM runs WHERE database = ? AND suite = ? ORDER BY seq DESC LIMIT 1",
            scope,
        ).fetchone()
        prev_counts: dict[str, int] = {}
        if previous is not None:
            prev_counts = dict(
                db.execute(
                    "SELECT check_id, violations FROM run_checks WHERE run_seq = ?",
                    (previous[0],),
                ).fetchall()
            )

        current = [c.id for c in result.checks]
        pairs = _distinct_sorted(keys)
        previous_keys = {
            check_id: blob
            for check_id, blob in db.execute(
                "SELECT check_id, keys FROM last_keys WHERE database = ? AND suite = ?", scope
            )
        }
        new: dict[str, tuple[int, list[str]]] = {}
        fixed: dict[str, tuple[int, list[str]]] = {}
        kept: dict[str, bytes] = {}  # a check's stored pairs, where this run's are the same
        for check_id in current:
            if check_id not in prev_counts:
                continue
            ours = pairs.get(check_id, [])
            blob = previous_keys.get(check_id)
            theirs = _unpack(blob) if blob is not None else []
            if ours == theirs:  # the usual case: nothing new, nothing fixed
                if blob is not None:
                    kept[check_id] = blob
                continue
            for side, diff in ((new, _minus(ours, theirs)), (fixed, _minus(theirs, ours))):
                if diff[0]:
                    side[check_id] = diff
            del theirs

        db.execute("DELETE FROM last_keys WHERE database = ? AND suite = ?", scope)
        db.executemany(
            "INSERT INTO last_keys VALUES (?, ?, ?, ?, ?)",
            (
                (*scope, check_id, len(p), kept.get(check_id) or _pack(p))
                for check_id, p in pairs.items()
            ),
        )
        failed = sum(1 for c in result.checks if c.status == "failed")
        cursor = db.execute(
            "INSERT INTO runs (run_id, database, suite, started_at, snapshot_taken_at, verdict,"
            " failed, violations, out_dir) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                run.run_id,
                *scope,
                run.started_at,
                run.snapshot_taken_at,
                "failed" if failed else "passed",
                failed,
                result.total_violations,
                str(result.out_dir),
            ),
        )
        db.executemany(
            "INSERT INTO run_checks VALUES (?, ?, ?, ?)",
            [(cursor.lastrowid, c.id, c.status, c.violations) for c in result.checks],
        )
        return self._document(scope, previous, prev_counts, current, new, fixed)

    def _adopt(self, shown: str, scope: tuple[str, str]) -> None:
        """The first run kept by the database's identity takes over the runs kept by the
        name it is shown by (histories written before identities were kept, or by a role
        that could not read one): the trend and "new since last run" go on."""
        db = self._db
        identity, suite = scope
        if db.execute(
            "SELECT 1 FROM runs WHERE database = ? AND suite = ? LIMIT 1", scope
        ).fetchone():
            return
        for table in ("runs", "last_keys"):
            db.execute(
                f"UPDATE {table} SET database = ? WHERE database = ? AND suite = ?",
                (identity, shown, suite),
            )

    def _document(
        self,
        scope: tuple[str, str],
        previous: Any,
        prev_counts: dict[str, int],
        current: list[str],
        new: dict[str, tuple[int, list[str]]],
        fixed: dict[str, tuple[int, list[str]]],
    ) -> dict[str, Any]:
        runs = self._db.execute(
            "SELECT seq, run_id, started_at, violations, failed FROM runs "
            "WHERE database = ? AND suite = ? ORDER BY seq DESC LIMIT ?",
            (*scope, TREND_RUNS),
        ).fetchall()[::-1]
        seqs = [r[0] for r in runs]
        counts: dict[str, dict[int, int]] = {}
        marks = ",".join("?" * len(seqs))
        for seq, check_id, violations in self._db.execute(
            f"SELECT run_seq, check_id, violations FROM run_checks WHERE run_seq IN ({marks})",
            seqs,
        ):
            counts.setdefault(check_id, {})[seq] = violations
        total_runs = self._db.execute(
            "SELECT count(*) FROM runs WHERE database = ? AND suite = ?", scope
        ).fetchone()[0]
        checks: dict[str, Any] = {}
        for check_id in current:
            compared = check_id in prev_counts
            n_new, new_keys = new.get(check_id, (0, []))
            n_fixed, fixed_keys = fixed.get(check_id, (0, []))
            checks[check_id] = {
                "previous": prev_counts.get(check_id),
                "new": n_new if compared else None,
                "fixed": n_fixed if compared else None,
                "new_keys": new_keys,
                "fixed_keys": fixed_keys,
                "trend": [counts.get(check_id, {}).get(s) for s in seqs],
            }
        return {
            "store": str(self.path),
            "runs": total_runs,
            "previous": None
            if previous is None
            else {
                "run_id": previous[1],
                "started_at": previous[2],
                "snapshot_taken_at": previous[3],
                "verdict": previous[4],
                "violations": previous[5],
                "out_dir": previous[6],
            },
            "new": sum(n for n, _ in new.values()) if previous is not None else None,
            "fixed": sum(n for n, _ in fixed.values()) if previous is not None else None,
            "trend": [
                {"run_id": r[1], "started_at": r[2], "violations": r[3], "failed": r[4]}
                for r in runs
            ],
            "checks": checks,
        }


def _distinct_sorted(keys: Mapping[str, Pairs]) -> dict[str, Pairs]:
    """This run's distinct (key, column) pairs per check, sorted (the lists of `keys` are
    sorted in place: no second copy of a run's keys, unless one holds a pair twice)."""
    by_check: dict[str, Pairs] = {}
    for check_id, pairs in keys.items():
        pairs.sort()
        if any(map(operator.eq, pairs, islice(pairs, 1, None))):
            pairs = [p for i, p in enumerate(pairs) if i == 0 or pairs[i - 1] != p]
        by_check[check_id] = pairs
    return by_check
