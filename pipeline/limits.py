"""How long an audit may wait, in one place (imported by the CLI without loading SQLAlchemy).

The audit's statements are one scan per table plus a few small queries: at 1M rows a scan
takes seconds, so ten minutes stops only a runaway (a missing index on a huge target, a server
under pressure). Locks: the audit takes only ACCESS SHARE locks, which wait only behind DDL
(ALTER TABLE, VACUUM FULL, a migration); five seconds keeps a queued audit from blocking the
sessions that queue behind it.
"""

from __future__ import annotations

DEFAULT_STATEMENT_TIMEOUT_S = 600.0
DEFAULT_LOCK_TIMEOUT_S = 5.0
CONNECT_TIMEOUT_S = 10
MAX_TIMEOUT_S = 86_400.0
"""One day: PostgreSQL takes timeouts in milliseconds as a 32-bit integer."""

DEFAULT_REPAIR_SCHEMA = "refaudit"
"""The schema a repair plan keeps its backup and quarantine tables in (`--repair-schema`)."""
