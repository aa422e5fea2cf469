"""Where the audit's findings go: violations.csv (or lines PostgreSQL wrote), counts per
check, samples for the report, the keys the history compares, the baseline's known rows."""

from __future__ import annotations

import csv
import operator
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .baseline import BASELINE_COLUMN, KNOWN, NEW, Baseline, csv_reader
from .checks.base import (
    CUT_MARK,
    VALUE_CHARS,
    VIOLATION_FIELDS,
    Violation,
)
from .history import Pairs, pair

SAMPLE_SIZE = 20
SAMPLE_CHARS = 120
"""How much of a long field a sample keeps (report.html, junit.xml); violations.csv has it all."""


def shorten(text: str, limit: int = SAMPLE_CHARS) -> str:
    """`text`, or its first `limit` characters and a visible note of how long it is (and,
    for a value the audit cut, how much of it violations.csv has)."""
    if len(text) <= limit:
        return text
    cut = CUT_MARK.search(text)
    if cut is not None:
        return (
            f"{text[:limit]}… [{cut.group(1)} characters; the first {VALUE_CHARS:,} in "
            "violations.csv]"
        )
    return f"{text[:limit]}… [{len(text):,} characters; whole in violations.csv]"


def sample_item(fields: dict[str, str]) -> dict[str, str]:
    """A violation as a sample keeps it: every field shortened (a sample stays small, however
    long the values)."""
    return {name: shorten(value) for name, value in fields.items()}


_violation_fields = operator.attrgetter(*VIOLATION_FIELDS)  # one C call per violation
_LAST = len(VIOLATION_FIELDS) - 1  # the evidence: the field most often quoted
_CHECK, _KEY, _COLUMN, _DIAGNOSIS, _CONFIDENCE = (
    VIOLATION_FIELDS.index(f) for f in ("check", "key", "column", "diagnosis", "confidence")
)
assert max(_CHECK, _KEY, _COLUMN, _DIAGNOSIS, _CONFIDENCE) < _LAST, "the evidence comes last"


def history_keys(violations: Path) -> dict[str, Pairs]:
    """Per check, the `pair(key, column)` of every violation in a violations.csv: what a sink
    keeps (`keys`) when the audit is told a history will be recorded."""
    keys: dict[str, Pairs] = defaultdict(list)
    with violations.open(encoding="utf-8", newline="") as handle:
        lines = csv_reader(handle)
        next(lines)
        for fields in lines:
            keys[fields[_CHECK]].append(pair(fields[_KEY], fields[_COLUMN]))
    return keys


class ViolationSink:
    """Streams violations to violations.csv, counting per rule and per diagnosis and keeping a
    small sample; `tap`, when given, sees every violation too (the repair planner).

    With a baseline, every line gets a `baseline` column (known|new, after the standard
    columns), counts are kept per rule for known and new violations, and the sample shows new
    violations first.
    """

    def __init__(
        self,
        handle: TextIO,
        baseline: Baseline | None = None,
        tap: Callable[[Violation], None] | None = None,
        *,
        keep_keys: bool = False,
    ) -> None:
        self._handle = handle
        self.keys: dict[str, list[str]] | None = defaultdict(list) if keep_keys else None
        """With `keep_keys`: per check, every violation's `history.pair(key, column)`."""
        self._writer = csv.writer(handle, lineterminator="\n")
        self.baseline = baseline
        self._tap = tap
        self._writer.writerow(VIOLATION_FIELDS + ((BASELINE_COLUMN,) if baseline else ()))
        self.counts: dict[str, int] = defaultdict(int)
        self.known: dict[str, int] = defaultdict(int)
        self.diagnoses: dict[tuple[str, str, str], int] = defaultdict(int)
        self._samples: dict[str, list[dict[str, str]]] = defaultdict(list)
        self._known_samples: dict[str, list[dict[str, str]]] = defaultdict(list)

    @property
    def takes_lines(self) -> bool:
        """Whether violations may come as ready-made violations.csv lines (`add_line`), i.e.
        nothing here needs each one as a `Violation` (a baseline and a tap do)."""
        return self.baseline is None and self._tap is None

    def add_line(self, line: str) -> None:
        """One violation as its violations.csv line, written by PostgreSQL (COPY ... csv):
        what `add` writes, without building it in Python."""
        self._handle.write(line)
        # Every line needs the fields before the last (evidence); only a line with a quote
        # before the last field needs the csv module for them (most quoted lines quote only
        # their evidence). A sample needs every field.
        fields = line.split(",", _LAST)
        if len(fields) <= _LAST or 0 <= line.find('"') < len(line) - len(fields[_LAST]):
            fields = next(csv_reader([line]))
        check = fields[_CHECK]
        self.counts[check] += 1
        if self.keys is not None:
            self.keys[check].append(pair(fields[_KEY], fields[_COLUMN]))
        diagnosis = fields[_DIAGNOSIS]
        if diagnosis and diagnosis != "catalog":
            self.diagnoses[(check, diagnosis, fields[_CONFIDENCE])] += 1
        sample = self._samples[check]
        if len(sample) < SAMPLE_SIZE:
            whole = next(csv_reader([line])) if '"' in line else line[:-1].split(",")
            sample.append(sample_item(dict(zip(VIOLATION_FIELDS, whole, strict=True))))

    def add(self, v: Violation) -> None:
        row: tuple[str, ...] = _violation_fields(v)
        sample = self._samples[v.check]
        if self.baseline is not None:
            known = self.baseline.is_known(v)
            row += (KNOWN if known else NEW,)
            if known:
                self.known[v.check] += 1
                sample = self._known_samples[v.check]
        self._writer.writerow(row)
        self.counts[v.check] += 1
        if self.keys is not None:
            self.keys[v.check].append(pair(v.key, v.column))
        if v.diagnosis and v.diagnosis != "catalog":
            self.diagnoses[(v.check, v.diagnosis, v.confidence)] += 1
        if len(sample) < SAMPLE_SIZE:
            item = sample_item({f: getattr(v, f) for f in VIOLATION_FIELDS})
            if self.baseline is not None:
                item[BASELINE_COLUMN] = row[-1]
            sample.append(item)
        if self._tap is not None:
            self._tap(v)

    def diagnosis_summary(self) -> list[dict[str, Any]]:
        """[{check, diagnosis, confidence, rows}], for results.json and the report."""
        return [
            {"check": check, "diagnosis": diagnosis, "confidence": confidence, "rows": n}
            for (check, diagnosis, confidence), n in sorted(self.diagnoses.items())
        ]

    @property
    def samples(self) -> dict[str, list[dict[str, str]]]:
        """Up to SAMPLE_SIZE violations per rule, new ones first."""
        rules = set(self._samples) | set(self._known_samples)
        return {
            r: (self._samples.get(r, []) + self._known_samples.get(r, []))[:SAMPLE_SIZE]
            for r in rules
        }
