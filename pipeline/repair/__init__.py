"""Repair planning: from diagnosed violations to repair.sql and rollback.sql.

While the audit streams its violations, `RepairPlan.add` (the `ViolationSink` tap) turns each
diagnosis into a planned change and spills it to disk, grouped into *steps* by table,
column, action, check, diagnosis and confidence; memory stays flat however many rows need
repair. After the audit `write_repair_sql` and `write_rollback_sql` render the plan.

What a diagnosis leads to:

| diagnosis (confidence) | action |
|---|---|
| mis_keyed, mis_keyed_hidden, wrong_type, malformed (high, medium) | UPDATE to the proposed value |
| orphan, `on_orphan: set_null` | UPDATE the column to NULL |
| orphan, `on_orphan: quarantine` | copy the row to `<schema>.quarantine`, then DELETE it |
| ambiguous (low), orphan with `on_orphan: report` | a comment listing the row, no statement |
| the type proposed for a NULL or unknown discriminator | a comment, for review |

Planning reads the catalog first (`read_repair_context`, in the audit's snapshot) and plans
only what will work and lose nothing: a change the catalog would refuse (NULL into a NOT
NULL column, a generated or identity column, a view) is listed for review with the reason.

repair.sql is one transaction, bound to the database it was made for (cluster system
identifier, database name and oid; an older copy that has not reached the audited snapshot
is refused too). Each step loads its rows (key, new value, the audited value of every column
the diagnosis read, evidence) into a temporary table, locks the rows and classifies each:
*repair* (every column the diagnosis read still holds its audited value; an orphan's value
is still missing; a new value names an existing target row), *held* (rows of other tables
reference it through a foreign key that the change would cascade to or be refused by),
*done* (it already holds the new value: a second run) or *skip* (it changed since the
audit). Only *repair* rows are backed up and changed, by set-based statements. The step then
asserts that it changed exactly those rows (and, for quarantine, that it kept as many rows
as it deleted) or raises, which aborts the whole transaction; it reports its counts and the
skipped and held keys with RAISE NOTICE. Before any step, repair.sql locks the tables it
changes and checks that they are as the audit saw them (`refaudit.drift`: foreign keys into
them, triggers, rules, policies, columns, inheritance children) and that the repair schema
and its tables are the applying role's own; a row that any reference of the suite names is
held like one a foreign key names, and a table whose key nothing proves unique is not
repaired. rollback.sql restores every backed-up row exactly, keeping a row changed since the
repair aside first, with every user trigger off, and puts back rows that broke a validated
foreign key with `session_replication_role = replica` where the role may (else it refuses).

The files are rendered from templates (`pipeline/templates/sql/`: repair.sql.j2, step.sql.j2,
rollback.sql.j2, preamble.sql.j2) by `refaudit.sqlrender`, through whose filters every name
and value reaches them quoted and on one line (a value that is not raises while rendering).
A row is named by its table's key, one column or several (`RowKey`). Backup, quarantine and
scratch tables live in refaudit's own schema or in `pg_temp`.

The package's modules are the stages: `context` (what the audited database says), `plan`
(collecting the changes), `render` (what the files share), `repair_sql`, `rollback_sql`.
"""

from __future__ import annotations

from .context import (
    ColumnInfo,
    DatabaseIdentity,
    InboundKey,
    RepairContext,
    TableInfo,
    key_proof,
    read_reference_facts,
    read_repair_context,
    table_info,
)
from .plan import CONFLICTS, DEFAULT_SCHEMA, QUARANTINE, RepairPlan
from .render import RowKey, plan_preamble
from .repair_sql import RepairSummary, write_repair_sql
from .rollback_sql import write_rollback_sql

__all__ = [
    "CONFLICTS",
    "DEFAULT_SCHEMA",
    "QUARANTINE",
    "ColumnInfo",
    "DatabaseIdentity",
    "InboundKey",
    "RepairContext",
    "RepairPlan",
    "RepairSummary",
    "RowKey",
    "TableInfo",
    "key_proof",
    "plan_preamble",
    "read_reference_facts",
    "read_repair_context",
    "table_info",
    "write_repair_sql",
    "write_rollback_sql",
]
