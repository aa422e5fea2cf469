"""`refaudit apply`: run a plan file (repair.sql, rollback.sql, or constraints.sql) and report
what it changed.

The file is read as psql would read it (the psql commands plans start with are understood,
see `refaudit.sqltext.psql_lines`) and split into statements by PostgreSQL's own parser. A
file wrapped in `BEGIN; ... COMMIT;` (repair.sql, rollback.sql) runs as one transaction on
one connection: everything or nothing; `dry_run` rolls it back at the end instead of
committing, so the counts are real but nothing stays. Any other file (constraints.sql, which
builds indexes CONCURRENTLY) runs statement by statement, as psql would, and stops at the
first error.

Plans refuse to run on a database other than the one they were made for;
`allow_other_database` sets the plan's psql variable for a rehearsal on a copy.

What changed is read from the JSON the plan's own `RAISE NOTICE 'refaudit: ...'` lines carry
in their DETAIL.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL

from .db import create_engine, database_error, log_statement
from .errors import DatabaseError, UsageError
from .sqltext import ScriptError, comment, psql_lines, statements
from .words import plural

_DETAIL = "\nDETAIL:  "
"""libpq writes a notice's DETAIL on a line of its own: the plans put their counts there as
JSON (`RAISE NOTICE ... USING DETAIL = json_build_object(...)`), for programs to read."""


@dataclass
class ApplyResult:
    path: Path
    dry_run: bool
    transactional: bool
    statements: int = 0
    messages: list[str] = field(default_factory=list)  # every `refaudit:` notice, in order
    totals: dict[str, int] = field(default_factory=dict)

    def add_notice(self, raw: str) -> None:
        message, _, detail = raw.partition(_DETAIL)
        text = re.sub(r"^(NOTICE|INFO|WARNING):\s+", "", message.strip())
        if not text.startswith("refaudit:"):
            return
        # one line, whatever the keys in it hold
        self.messages.append(comment(text))
        try:
            counts = json.loads(detail) if detail.strip() else {}
        except ValueError:
            counts = {}
        if not isinstance(counts, dict):
            return
        if "action" in counts:  # a repair step
            action = str(counts["action"])
            counts = {
                "updated" if action == "update" else action: counts["changed"],
                "already": counts["already"],
                "skipped": counts["skipped"],
                "held": counts["held"],
            }
        for key in ("updated", "set_null", "quarantine", "already", "skipped", "held",
                    "restored", "reinserted", "unquarantined", "moved_aside"):  # fmt: skip
            if isinstance(counts.get(key), int):
                self.totals[key] = self.totals.get(key, 0) + counts[key]

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
            ("moved_aside", "kept aside (changed since the repair) before restoring"),
            ("already", "already done"),
            ("skipped", "skipped (changed since the audit)"),
            ("held", "held (referenced by rows of other tables)"),
        ):
            if key in t:
                parts.append(f"{t[key]} {words}")
        what = ", ".join(parts) or plural(self.statements, "statement")
        if self.dry_run:
            return f"dry run of {self.path.name}: {what}; rolled back, nothing changed"
        return f"applied {self.path.name}: {what}"


def apply_plan(
    url: URL,
    path: Path,
    *,
    dry_run: bool = False,
    allow_other_database: bool = False,
    echo: Callable[[str], None] | None = None,
) -> ApplyResult:
    """Run the plan at `path` against `url`; `echo` sees every `refaudit:` notice as it comes."""
    try:
        script = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "it is not UTF-8 text"
        raise UsageError(f"cannot read {path}: {why}; pass the path of a plan file") from None
    try:
        parsed = statements(psql_lines(script, allow_other_database=allow_other_database))
    except ScriptError as exc:
        raise UsageError(f"{path}: {exc}") from None
    # session settings may come before the transaction (the rehearsal setting does)
    lead = 0
    while lead < len(parsed) and parsed[lead].kind == "VariableSetStmt":
        lead += 1
    rest = parsed[lead:]
    transactional = (
        len(rest) >= 2
        and rest[0].transaction == "BEGIN"
        and rest[-1].transaction == "COMMIT"
        and all(s.transaction is None for s in rest[1:-1])
    )
    if dry_run and not transactional:
        raise UsageError(
            f"{path.name} is not one transaction (no BEGIN ... COMMIT around it), so it cannot "
            "be dry-run; run it without --dry-run"
        )
    chosen = [*parsed[:lead], *rest[1:-1]] if transactional else parsed
    body = [s.text for s in chosen]
    result = ApplyResult(path=path, dry_run=dry_run, transactional=transactional)
    engine = create_engine(url)
    doing = f"connecting to apply {path.name}"
    committing = False
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
                        log_statement(statement)
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
                    doing, committing = f"committing {path.name}", True
                    conn.commit()
        except BaseException:
            _release(raw, transactional)
            raise
        raw.close()
    except (sa_exc.SQLAlchemyError, _psycopg_error()) as exc:
        err = database_error(exc, url, doing=doing)
        if committing:
            tail = "; whether the server committed it is unknown: run the audit again to see"
        elif transactional:
            # a plan's own refusal says so already
            tail = "" if "nothing was changed" in str(err) else "; nothing was applied"
        else:
            tail = f"; the {result.statements} statements before it were applied"
        if "permission denied" in str(err).lower() or "must be owner" in str(err).lower():
            # the usual cause: the audit's read-only role, which no plan should run as
            tail = (
                " (a plan runs as a role that may change its tables: their owner, or one with"
                " SELECT, UPDATE, DELETE on them and CREATE on the database; pass its URL"
                " with --db)" + tail
            )
        raise DatabaseError(str(err) + tail) from None
    finally:
        engine.dispose()
    return result


def _release(raw: Any, transactional: bool) -> None:
    """Give back the connection of a failed plan without a second error: a live one rolls
    the transaction back (and goes back to the pool, which resets it); a dead one (the
    server restarted, the backend was terminated) is discarded, since rolling it back or
    resetting it would only fail again, and the pool would print that failure's traceback."""
    conn = raw.driver_connection
    if not conn.closed and transactional:
        with contextlib.suppress(_psycopg_error()):
            conn.rollback()
    if conn.closed:
        raw.invalidate()
    else:
        raw.close()


def _psycopg_error() -> type[BaseException]:
    import psycopg2

    return psycopg2.Error


def _first_line(statement: str) -> str:
    for line in statement.splitlines():
        line = line.strip()
        if line and not line.startswith("--"):
            return line[:60] + ("..." if len(line) > 60 else "")
    return ""
