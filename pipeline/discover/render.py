"""Stage 8, render: the discovered suite as YAML whose comments carry the evidence, which
`refaudit run --suite` runs as it is, and a one-screen summary."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

from .. import sqltext
from ..errors import UsageError
from ..suite import Suite
from ..words import plural
from .model import DEFAULT_MIN_CONFIDENCE, Discovery, _composite_key, check_id


def render_suite(found: Discovery, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> str:
    """The discovery as suite YAML: the checks at or above `min_confidence`, each under
    comments that give its evidence, confidence and alternatives."""
    kept = [p for p in found.proposals if p.confidence >= min_confidence]
    if not kept:
        raise UsageError(
            f"no check of {found.database} reaches confidence {min_confidence}; lower "
            "--min-confidence or pass the --schema that holds the tables"
        )
    used_spaces = {p.check["mis_key"]["key_space"] for p in kept if "mis_key" in p.check}
    lines = [
        f"# Suite discovered by refaudit discover from {_comment(found.database)}",
        f"# snapshot {found.snapshot_taken_at}, PostgreSQL {_comment(found.server_version)}, "
        f"schemas: {_comment(', '.join(found.schemas))}",
        f"# {len(kept)} checks with confidence >= {min_confidence} "
        f"({len(found.proposals) - len(kept)} below it left out). Review before relying on it:",
        "# `catalog` checks state what the catalog declares; `data` checks are inferred from",
        "# the rows and carry their evidence. Confidence: 1.0 declared, lower when inferred.",
    ]
    for note in found.notes:
        lines.append(f"# note: {_comment(note)}")
    tables = {
        name: {"key": t.key or _composite_key(t) or next(iter(t.columns), "id")}
        for name, t in found.tables.items()
    }
    head: dict[str, Any] = {"suite": check_id(found.database_name or "discovered")}
    head["tables"] = tables
    if used_spaces:
        head["key_spaces"] = {k: v for k, v in found.key_spaces.items() if k in used_spaces}
    lines.append(_dump(head).rstrip())
    lines.append("checks:")
    for p in kept:
        lines.append("")
        lines.append(
            f"  # {p.source}, confidence {p.confidence:.2f}"
            + (f", {plural(p.violations, 'violating row')}" if p.violations is not None else "")
        )
        for e in p.evidence:
            lines.append(f"  #   {_comment(e)}")
        for a in p.alternatives:
            lines.append(f"  #   alternative: {_comment(a)}")
        if _quarantines(p.check):
            lines.append(
                "  #   --repair: a row naming nothing is quarantined (deleted into the repair"
                " schema); add `on_orphan: set_null` or `on_orphan: report` to keep it"
            )
        body = _dump([p.check]).rstrip().splitlines()
        lines += [f"  {line}" for line in body]
    text = "\n".join(lines) + "\n"
    try:
        Suite.model_validate(yaml.safe_load(text))
    except Exception as exc:  # a bug: never write a suite `run` cannot load
        raise AssertionError(f"the discovered suite does not validate: {exc}") from exc
    return text


def _quarantines(check: dict[str, Any]) -> bool:
    """Whether `check` would have repair.sql quarantine its orphans: a single-column reference
    of severity error that says nothing else (the kinds' defaults)."""
    return (
        check.get("kind") in ("reference", "conditional_reference")
        and "columns" not in check
        and check.get("on_orphan", "quarantine") == "quarantine"
        and check.get("severity", "error") == "error"
        and check.get("repair", "propose") == "propose"
    )


def _comment(text: str) -> str:
    return sqltext.comment(text)


def _dump(data: Any) -> str:
    return yaml.safe_dump(
        data, sort_keys=False, default_flow_style=None, allow_unicode=False, width=100
    )


def write_suite(
    found: Discovery, path: Path, min_confidence: float = DEFAULT_MIN_CONFIDENCE
) -> str:
    """Write the suite YAML to `path` (beside it first, then renamed into place)."""
    text = render_suite(found, min_confidence)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(path)
    except OSError as exc:
        tmp.unlink(missing_ok=True)
        raise UsageError(
            f"cannot write {path}: {exc.strerror}; pass --out to a writable file"
        ) from None
    return text


def summary(found: Discovery, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> str:
    kept = [p for p in found.proposals if p.confidence >= min_confidence]
    refs = [p for p in kept if p.kind in ("reference", "conditional_reference")]
    inferred = [p for p in refs if p.source == "data"]
    conditional = [p for p in refs if p.kind == "conditional_reference"]
    mis = [p for p in refs if "mis_key" in p.check]
    return (
        f"{len(kept)} checks on {len(found.tables)} tables: {len(refs)} references "
        f"({len(inferred)} inferred from the data, {len(conditional)} conditional, "
        f"{len(mis)} with a mis-key)"
    )


MAX_EXPLAINED = 3


def thin_result(found: Discovery, min_confidence: float = DEFAULT_MIN_CONFIDENCE) -> list[str]:
    """Why no reference was inferred from the data, when none was: the best candidates left
    below `min_confidence` (and how to keep them), or that no column's values fit a key,
    with the database's size (a handful of rows tells little)."""
    refs = [p for p in found.proposals if p.kind in ("reference", "conditional_reference")]
    if any(p.source == "data" and p.confidence >= min_confidence for p in refs):
        return []
    rows = sum(t.rows for t in found.tables.values())
    below = sorted(
        (p for p in refs if p.source == "data" and p.confidence < min_confidence),
        key=lambda p: -p.confidence,
    )
    if below:
        out = [
            f"no reference inferred from the data reaches confidence {min_confidence}; "
            f"the best below it (keep them with --min-confidence):"
        ]
        for p in below[:MAX_EXPLAINED]:
            target = p.check.get("target") or {}
            where = f" -> {target.get('table')}.{target.get('column')}" if target else ""
            why = p.evidence[0] if p.evidence else ""
            out.append(f"  {p.table}.{p.check.get('column')}{where} at {p.confidence:.2f}: {why}")
        return out
    return [
        f"no reference inferred from the data: no column's values fit a key of another table "
        f"({len(found.tables)} tables, {rows} rows in all"
        + ("; with so few rows the values tell little" if rows < 100 else "")
        + "); declare the references in the suite by hand, or run discover on fuller data"
    ]
