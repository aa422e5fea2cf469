"""A finished run's findings as pandas DataFrames, for notebooks.

Each function reads one part of a run directory (what `refaudit run --out DIR` or
`run_audit` wrote) and returns it with stable columns and dtypes:

- `violations(run)`: every violating row (violations.csv);
- `checks(run)`: one row per check, its counts and status (results.json);
- `diagnoses(run)`: rows per check, diagnosis and confidence (results.json);
- `repair_steps(run)`: the steps of the repair plan of a run with `--repair` (results.json).

Needs pandas (the `dataframes` extra: `pip install 'refaudit[dataframes]'`); without it, each
function raises a `MissingExtra` naming it. Nothing here touches a database.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .baseline import BASELINE_COLUMN
from .checks.base import VIOLATION_FIELDS
from .errors import UsageError, needs_extra

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["checks", "diagnoses", "repair_steps", "violations"]

CONFIDENCES = ("low", "medium", "high")
"""The confidences a diagnosis may have, weakest first (an ordered categorical)."""

# columns that name one of few things: categorical
_CATEGORIES = ("check", "table", "column", "diagnosis", "action", "kind", "severity", "status")
# violations.csv columns an empty field means "none" in (the others are values as text)
_OPTIONAL = ("column", "diagnosis", "proposed_value", "confidence", "evidence", BASELINE_COLUMN)


def _pandas() -> Any:
    with needs_extra("refaudit.frames", "dataframes", "pandas", "numpy"):
        import pandas

    return pandas


def _results(run: Path | str) -> dict[str, Any]:
    path = Path(run) / "results.json"
    try:
        doc: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UsageError(
            f"{Path(run)} holds no results.json; pass the directory of a finished refaudit run"
        ) from None
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot read {path} ({exc}); pass a finished refaudit run") from None
    if doc.get("verdict") == "ERROR":
        raise UsageError(
            f"the run in {Path(run)} failed ({doc.get('error', 'no check concluded')}); "
            "it has no findings to read"
        )
    return doc


def _typed(pd: Any, frame: pd.DataFrame, ints: tuple[str, ...] = ()) -> pd.DataFrame:
    for name in frame.columns:
        if name in ints:
            frame[name] = frame[name].astype("Int64")
        elif name == "confidence":
            frame[name] = _confidence(pd, frame[name])
        elif name in _CATEGORIES:
            frame[name] = frame[name].astype("string").astype("category")
    return frame


def _confidence(pd: Any, column: pd.Series) -> pd.Series:
    text = column.astype("string")
    if set(text.dropna()) <= set(CONFIDENCES):
        return text.astype(pd.CategoricalDtype(CONFIDENCES, ordered=True))
    return text.astype("category")


def violations(run: Path | str) -> pd.DataFrame:
    """Every violating row of the run in `run` (its violations.csv), one row per line.

    Columns: check, table, key, column, value, diagnosis, proposed_value, confidence,
    evidence, and `baseline` (known/new) when the run had a baseline. `key`, `value` and
    `proposed_value` are text as the file has them (a composite key is a JSON array); an
    empty column (a finding about a table), diagnosis, proposal, confidence or evidence is
    <NA>. check, table, column and
    diagnosis are categorical; confidence is ordered low < medium < high.
    """
    pd = _pandas()
    doc = _results(run)
    path = Path(run) / doc.get("files", {}).get("violations", "violations.csv")
    try:
        frame = pd.read_csv(path, dtype="string", keep_default_na=False, na_filter=False)
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist; the run directory is incomplete") from None
    missing = [c for c in VIOLATION_FIELDS if c not in frame.columns]
    if missing:
        raise UsageError(f"{path} is not a refaudit violations.csv (no column {missing[0]})")
    for name in _OPTIONAL:
        if name in frame.columns:
            frame[name] = frame[name].replace("", pd.NA)
    if BASELINE_COLUMN in frame.columns:
        frame[BASELINE_COLUMN] = frame[BASELINE_COLUMN].astype("category")
    return _typed(pd, frame)


_CHECK_COLUMNS = [
    "id", "kind", "table", "columns", "severity", "status", "rows_checked", "violations",
    "rate", "max_count", "max_rate", "known", "new", "description",
]  # fmt: skip


def checks(run: Path | str) -> pd.DataFrame:
    """One row per check of the run in `run`: id, kind, table, columns (a list), severity,
    status, rows_checked, violations, rate, max_count, max_rate, known, new, description.

    Counts are nullable integers (known and new are <NA> without a baseline; a threshold not
    set is <NA>)."""
    pd = _pandas()
    doc = _results(run)
    rows = []
    for check in doc.get("checks", []):
        threshold = check.get("threshold") or {}
        rows.append(
            {
                "id": check["id"],
                "kind": check["kind"],
                "table": check["table"],
                "columns": list(check.get("columns", [])),
                "severity": check["severity"],
                "status": check["status"],
                "rows_checked": check["rows_checked"],
                "violations": check["violations"],
                "rate": check["rate"],
                "max_count": threshold.get("max_count"),
                "max_rate": threshold.get("max_rate"),
                "known": check.get("known"),
                "new": check.get("new"),
                "description": check.get("description", ""),
            }
        )
    frame = pd.DataFrame(rows, columns=_CHECK_COLUMNS)
    frame["id"] = frame["id"].astype("string")
    frame["description"] = frame["description"].astype("string")
    frame["rate"] = frame["rate"].astype("float64")
    frame["max_rate"] = frame["max_rate"].astype("Float64")
    return _typed(pd, frame, ints=("rows_checked", "violations", "max_count", "known", "new"))


def diagnoses(run: Path | str) -> pd.DataFrame:
    """Rows per (check, diagnosis, confidence) of the run in `run`: check, diagnosis,
    confidence, rows. Empty (with these columns) when nothing was diagnosed."""
    pd = _pandas()
    doc = _results(run)
    names = ["check", "diagnosis", "confidence", "rows"]
    frame = pd.DataFrame(doc.get("diagnoses") or [], columns=names)
    return _typed(pd, frame, ints=("rows",))


def repair_steps(run: Path | str) -> pd.DataFrame:
    """The steps of the repair plan of the run in `run` (made with `--repair`), in order:
    step, table, column, action (update, set_null or quarantine), check,
    diagnosis, confidence, guarded_on (a list of columns), rows."""
    pd = _pandas()
    doc = _results(run)
    if "repair" not in doc:
        raise UsageError(
            f"the run in {Path(run)} made no repair plan; run it again with refaudit run --repair"
        )
    names = ["step", "table", "column", "action", "check", "diagnosis", "confidence",
             "guarded_on", "rows"]  # fmt: skip
    steps = [{name: step.get(name) for name in names} for step in doc["repair"].get("steps", [])]
    frame = pd.DataFrame(steps, columns=names)
    return _typed(pd, frame, ints=("step", "rows"))
