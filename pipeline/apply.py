"""`refaudit apply`: run a plan file (repair.sql, rollback.sql, or constraints.sql) and report
what it changed.

A file wrapped in `BEGIN; ... COMMIT;` (repair.sql, rollback.sql) runs as one transaction on
one connection: everything or nothing; `dry_run` rolls it back at the end instead of
committing, so the counts are real but nothing stays. Any other file (constraints.sql, which
builds indexes CONCURRENTLY) runs statement by statement, as psql would.

What changed is read from the plan's own `RAISE NOTICE 'refaudit: ...'` lines.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from pipeline.db import create_engine, database_error
from pipeline.errors import DatabaseError, UsageError
from pipeline.sqltext import code_of, split_statements

_STEP = re.compile(
    r"refaudit: step=(?P<step>\d+) table=(?P<table>\S+) column=(?P<column>\S+) "
    r"action=(?P<action>\S+) diagnosis=\S+ confidence=\S+ planned=(?P<planned>\d+) "
    r"changed=(?P<changed>\d+) already=(?P<already>\d+) skipped=(?P<skipped>\d+)"
)
_ROLLBACK = re.compile(
    r"refaudit: rollback table=(?P<table>\S+) restored=(?P<restored>\d+) "
    r"reinserted=(?P<reinserted>\d+) unquarantined=(?P<unquarantined>\d+)"
)


@dataclass
class ApplyResult:
    path: Path
    dry_run: bool
    transactional: bool
    statements: int = 0
    messages: list[str] = field(default_factory=list)  # every `refaudit:` notice, in order
    totals: dict[str, int] = field(default_factory=dict)

    def add_notice(self, raw: str) -> None:
        text = raw.strip()
        text = re.sub(r"^(NOTICE|INFO|WARNING):\s+", "", text)
        if not text.startswith("refaudit:"):
            return
        self.messages.append(text)
        m = _STEP.search(text)
        if m:
            action = m["action"]
            counts = {
                "updated" if action == "update" else action: int(m["changed"]),
                "already": int(m["already"]),
                "skipped": int(m["skipped"]),
            }
            for k, n in counts.items():
                self.totals[k] = self.totals.get(k, 0) + n
        m = _ROLLBACK.search(text)
        if m:
            for k in ("restored", "reinserted", "unquarantined"):
                self.totals[k] = self.totals.get(k, 0) + int(m[k])

    def summary(self) -> str:
        t = self.totals
        parts = []
        for key, words in (
            ("updated", "updated"),
            ("set_null", "set to NULL"),
            ("quarantine", "quarantined"),
            ("restored", "restored"),
            ("reinserted", "re-inserted"),
            ("unquarantined", "released from quarantine"),
            ("already", "already done"),
            ("skipped", "skipped (changed since the audit)"),
        ):
            if key in t:
                parts.append(f"{t[key]} {words}")
        what = ", ".join(parts) or f"{self.statements} statements"
        if self.dry_run:
            return f"dry run of {self.path.name}: {what}; rolled back, nothing changed"
        return f"applied {self.path.name}: {what}"


def _is(statement: str, *words: str) -> bool:
    return code_of(statement).upper() in words


def apply_plan(
    url: URL,
    path: Path,
    *,
    dry_run: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Run the plan at `path` against `url`; `echo` sees every `refaudit:` notice as it comes."""
    try:
        script = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot read {path}: {exc.strerror}; pass the path of a plan file"
        ) from None
    statements = split_statements(script)
    transactional = (
        len(statements) >= 2
        and _is(statements[0], "BEGIN", "BEGIN TRANSACTION", "START TRANSACTION")
        and _is(statements[-1], "COMMIT", "END", "COMMIT TRANSACTION")
    )
    if dry_run and not transactional:
        raise UsageError(
            f"{path.name} is not one transaction (no BEGIN ... COMMIT around it), so it cannot "
            "be dry-run; run it without --dry-run"
        )
    body = statements[1:-1] if transactional else statements
    result = ApplyResult(path=path, dry_run=dry_run, transactional=transactional)
    engine = create_engine(url)
    doing = f"connecting to apply {path.name}"
    try:
        raw: Any = engine.raw_connection()
        try:
            conn = raw.driver_connection
            conn.notices = []
            conn.autocommit = not transactional
            with conn.cursor() as cur:
                for number, statement in enumerate(body, start=1):
                    doing = f"applying {path.name} (statement {number}: {_first_line(statement)})"
                    try:
                        cur.execute(statement)
                    finally:
                        for notice in conn.notices:
                            before = len(result.messages)
                            result.add_notice(notice)
                            if echo is not None and len(result.messages) > before:
                                echo(result.messages[-1])
                        conn.notices.clear()
                    result.statements = number
            if transactional:
                if dry_run:
                    conn.rollback()
                else:
                    conn.commit()
        except BaseException:
            if transactional:
                raw.driver_connection.rollback()
            raise
        finally:
            raw.close()
    except (sa_exc.SQLAlchemyError, _psycopg_error()) as exc:
        err = database_error(exc, url, doing=doing)
        tail = (
            "; nothing was applied"
            if transactional
            else f"; the {result.statements} statements before it were applied"
        )
        raise DatabaseError(str(err) + tail) from None
    finally:
        engine.dispose()
    return result


def _psycopg_error() -> type[BaseException]:
    import psycopg2

    return psycopg2.Error


def _first_line(statement: str) -> str:
    for line in statement.splitlines():
        line = line.strip()
        if line and not line.startswith("--"):
            return line[:60] + ("..." if len(line) > 60 else "")
    return ""
