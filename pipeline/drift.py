"""What a repair plan assumes of a table's catalog, read the same way at the audit and when
the plan runs.

A plan is made from the catalog the audit saw; it runs later, on a database that lives. Some
changes in between would make a planned step do harm: a foreign key added since with `ON
DELETE CASCADE` (a quarantined row takes its new children with it), a trigger (it fires as
the DBA who applies the plan), a rule or a row-level security policy (the statements mean
something else), a column added, dropped or retyped (rows are backed up and compared as
text), an inheritance child (its rows come back into the parent). `FACTS_SQL` lists those
facts of one table as lines of text; the audit records them (`read_facts`), and repair.sql,
having locked its tables (a foreign key or trigger added now waits for its transaction),
runs the same statement again and refuses, changing nothing, if a line was added or is gone,
naming it.
"""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

RELATION = "{relation}"
"""Where `FACTS_SQL` names the table: an oid (`CAST(:oid AS oid)` at the audit, the table's
regclass in the plan)."""

FACTS_SQL = """
SELECT fact FROM (
  SELECT pg_catalog.format('column %I %s%s%s', a.attname,
           pg_catalog.format_type(a.atttypid, a.atttypmod),
           CASE WHEN a.attnotnull THEN ' not null' ELSE '' END,
           CASE WHEN a.attgenerated <> '' THEN ' generated'
                WHEN a.attidentity <> '' THEN ' identity ' || a.attidentity::text
                ELSE '' END) AS fact
  FROM pg_catalog.pg_attribute a
  WHERE a.attrelid = {relation} AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT pg_catalog.format('foreign key %I of %I.%I (%s) on delete %s on update %s%s',
           c.conname, n.nspname, r.relname,
           (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname::text), ', '
                                         ORDER BY k.ord)
            FROM pg_catalog.unnest(c.conkey) WITH ORDINALITY k(attnum, ord)
            JOIN pg_catalog.pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum),
           CASE c.confdeltype WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null'
                              WHEN 'd' THEN 'set default' WHEN 'r' THEN 'restrict'
                              ELSE 'no action' END,
           CASE c.confupdtype WHEN 'c' THEN 'cascade' WHEN 'n' THEN 'set null'
                              WHEN 'd' THEN 'set default' WHEN 'r' THEN 'restrict'
                              ELSE 'no action' END,
           CASE WHEN c.condeferrable THEN ' deferrable' ELSE '' END)
  FROM pg_catalog.pg_constraint c
  JOIN pg_catalog.pg_class r ON r.oid = c.conrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = r.relnamespace
  WHERE c.confrelid = {relation} AND c.contype = 'f'
  UNION ALL
  SELECT pg_catalog.format('trigger %I (%s)', t.tgname,
           CASE t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'A' THEN 'always'
                            WHEN 'R' THEN 'replica' ELSE 'enabled' END)
  FROM pg_catalog.pg_trigger t WHERE t.tgrelid = {relation} AND NOT t.tgisinternal
  UNION ALL
  SELECT pg_catalog.format('rule %I', w.rulename)
  FROM pg_catalog.pg_rewrite w WHERE w.ev_class = {relation} AND w.rulename <> '_RETURN'
  UNION ALL
  SELECT pg_catalog.format('row-level security policy %I', p.polname)
  FROM pg_catalog.pg_policy p WHERE p.polrelid = {relation}
  UNION ALL
  SELECT 'row-level security on' FROM pg_catalog.pg_class c
  WHERE c.oid = {relation} AND c.relrowsecurity
  UNION ALL
  SELECT pg_catalog.format('inheritance child %I.%I', n.nspname, c.relname)
  FROM pg_catalog.pg_inherits i
  JOIN pg_catalog.pg_class c ON c.oid = i.inhrelid
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE i.inhparent = {relation} AND NOT c.relispartition
) facts
"""


def facts_sql(relation: str) -> str:
    """`FACTS_SQL` for the table `relation` (SQL: an oid or a regclass expression)."""
    return FACTS_SQL.replace(RELATION, relation)


COLUMN_FACT = "column "
"""How the facts about the table's columns start."""

_AT_AUDIT = sa.text(facts_sql("CAST(:oid AS oid)"))


def read_facts(conn: Connection, oids: Iterable[int]) -> dict[int, tuple[str, ...]]:
    """oid -> the table's facts, sorted, as the audit's snapshot shows them."""
    return {
        oid: tuple(sorted(row[0] for row in conn.execute(_AT_AUDIT, {"oid": oid})))
        for oid in dict.fromkeys(oids)
    }
