"""Baselines: the violations an earlier run found, accepted as known so that only new ones fail.

A baseline is an earlier run's `violations.csv` (or the directory holding it). A violation is
*known* when the baseline has a line with the same check, table, key, column and value:

- the same row failing the same check on the same column is the same defect;
- a row whose wrong value changed since the baseline counts as *new*: somebody wrote a new
  wrong value, which is exactly what a gate should catch;
- a baseline file without a `value` column (hand-made) matches on check, table, key and
  column only.

The file is read line by line; memory holds one compact entry per baseline line (the key and
an 8-byte digest of the value), never the file itself.
"""

from __future__ import annotations

import csv
import hashlib
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .checks.base import Violation
from .errors import UsageError

BASELINE_FILE = "violations.csv"
IDENTITY_FIELDS = ("check", "table", "key", "column")
BASELINE_COLUMN = "baseline"
"""The column of violations.csv that says, when the run had a baseline, known or new."""
KNOWN = "known"
NEW = "new"

_Group = tuple[str, str, str]  # (check, table, column)


def _value_digest(value: str) -> bytes:
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest()


@dataclass
class Baseline:
    """The violations of an earlier run, grouped by (check, table, column)."""

    path: Path
    match_value: bool = True
    lines: int = 0
    _entries: dict[_Group, set[bytes]] = field(default_factory=lambda: defaultdict(set))

    def _entry(self, key: str, value: str) -> bytes:
        raw = key.encode("utf-8", "surrogatepass")
        return raw + b"\x00" + _value_digest(value) if self.match_value else raw

    def add(self, check: str, table: str, key: str, column: str, value: str) -> None:
        self._entries[(check, table, column)].add(self._entry(key, value))
        self.lines += 1

    def is_known(self, v: Violation) -> bool:
        entries = self._entries.get((v.check, v.table, v.column))
        return entries is not None and self._entry(v.key, v.value) in entries

    def count(self, check: str) -> int:
        """Distinct baseline violations of one check."""
        return sum(len(s) for (c, _t, _col), s in self._entries.items() if c == check)

    def checks(self) -> set[str]:
        return {c for c, _t, _col in self._entries}


def resolve_baseline_path(path: Path) -> Path:
    """`path` itself, or the `violations.csv` inside it when it is a run's directory."""
    if path.is_dir():
        path = path / BASELINE_FILE
    if not path.is_file():
        raise UsageError(
            f"--baseline {path} does not exist; pass an earlier run's violations.csv "
            "or its output directory"
        )
    return path


FIELD_LIMIT = 2**31 - 1
"""The longest CSV field refaudit reads back: more than PostgreSQL's largest text value (1 GB).
The csv module's default (128 KiB) would reject a long violating value it wrote itself."""


def csv_reader(lines: Iterable[str]) -> Iterator[list[str]]:
    """`csv.reader` for violations.csv lines, however long their fields."""
    if csv.field_size_limit() < FIELD_LIMIT:
        csv.field_size_limit(FIELD_LIMIT)
    return csv.reader(lines)


def _rows(path: Path) -> Iterator[list[str]]:
    try:
        with path.open(encoding="utf-8", newline="") as handle:
            yield from csv_reader(handle)
    except UnicodeDecodeError:
        raise UsageError(
            f"--baseline {path} is not a UTF-8 CSV file; pass an earlier run's violations.csv"
        ) from None
    except csv.Error as exc:
        raise UsageError(f"--baseline {path} is not a readable CSV file: {exc}") from None
    except OSError as exc:
        raise UsageError(f"cannot read --baseline {path}: {exc.strerror}") from None


def load_baseline(path: Path) -> Baseline:
    """Read a baseline file line by line."""
    path = resolve_baseline_path(path)
    rows = _rows(path)
    header = next(rows, None)
    missing = [f for f in IDENTITY_FIELDS if header is None or f not in header]
    if header is None or missing:
        raise UsageError(
            f"--baseline {path} is not a refaudit violations.csv: it lacks the column(s) "
            f"{', '.join(missing)}"
        )
    idx = [header.index(f) for f in IDENTITY_FIELDS]
    value_idx = header.index("value") if "value" in header else None
    baseline = Baseline(path=path, match_value=value_idx is not None)
    width = max([*idx, value_idx or 0]) + 1
    for lineno, row in enumerate(rows, start=2):
        if not row:
            continue
        if len(row) < width:
            raise UsageError(
                f"--baseline {path}:{lineno} has {len(row)} fields, expected {len(header)}; "
                "is the file complete?"
            )
        check, table, key, column = (row[i] for i in idx)
        baseline.add(check, table, key, column, row[value_idx] if value_idx is not None else "")
    return baseline
