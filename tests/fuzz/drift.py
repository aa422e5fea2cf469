"""Drift: what others do to the database between the audit and `apply`, and between `apply`
and `rollback`. Each kind is one switch, so that a kind whose fix has not landed can be
kept out of the CI run; every statement a drift runs goes to the transcript, which a
failure prints as its reproduction."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

import psycopg2
from hypothesis import strategies as st

from tests.fuzz.world import ACTIONS, Fixed, World


class Drift(enum.Enum):
    # between the audit and apply
    ADD_FK = "add_fk"
    """A new table whose foreign key (any ON DELETE action) references every row of a
    planned table."""
    DROP_FK = "drop_fk"
    """One of the world's foreign keys is dropped."""
    ADD_LOG_TRIGGER = "add_log_trigger"
    """A trigger on a planned table that writes every change to a log table."""
    EDIT_ROW = "edit_row"
    """A planned row changes (its note or a reference)."""
    DELETE_ROW = "delete_row"
    """A planned row is deleted."""
    REINSERT_ROW = "reinsert_row"
    """A planned row is deleted and inserted again with the same key (same or other note)."""
    PRECREATE_SCHEMA = "precreate_schema"
    """Another role (CREATE on the database only) creates the repair schema first, with a
    quarantine or backup table carrying a trigger that tries to make that role superuser
    and empties the table."""
    CONCURRENT_WRITER = "concurrent_writer"
    """Another session updates a planned row, uncommitted, while apply starts; it commits a
    moment later."""
    # between apply and rollback
    EDIT_REPAIRED = "edit_repaired"
    """A row the repair changed is edited."""
    REUSE_QUARANTINED_KEY = "reuse_quarantined_key"
    """A new row takes the key of a row the repair removed."""
    ADD_STAMP_TRIGGER = "add_stamp_trigger"
    """A BEFORE INSERT OR UPDATE trigger that stamps the note of a repaired table."""
    ADD_FK_AFTER = "add_fk_after"
    """A new table whose foreign key references every row of a repaired table."""
    HOSTILE_SCHEMA_DROP = "hostile_schema_drop"
    """The role that pre-created the repair schema drops it (only after PRECREATE_SCHEMA)."""

    @property
    def after_apply(self) -> bool:
        return self in AFTER_APPLY


AFTER_APPLY = frozenset(
    {
        Drift.EDIT_REPAIRED,
        Drift.REUSE_QUARANTINED_KEY,
        Drift.ADD_STAMP_TRIGGER,
        Drift.ADD_FK_AFTER,
        Drift.HOSTILE_SCHEMA_DROP,
    }
)
ALL_DRIFTS = frozenset(Drift)


@dataclass
class Context:
    uri: str
    world: World | Fixed
    repair: dict[str, Any]
    findings: set[tuple[str, str]]  # (table, key) of the audit's findings
    mallory: str
    data: Any  # hypothesis' st.DataObject
    log: list[str]
    counter: int = 0
    concurrent: tuple[str, str] | None = None  # (table, UPDATE statement) for apply
    applied: dict[str, Any] = field(default_factory=dict)  # a, b snapshots after apply

    def run(self, sql: str, *, role: str | None = None) -> bool:
        """Run `sql` in one transaction (as `role`); log it. False if it failed."""
        conn = psycopg2.connect(self.uri)
        try:
            with conn.cursor() as cur:
                if role:
                    cur.execute(f'SET ROLE "{role}"')
                cur.execute(sql)
            conn.commit()
            self.log.append(f"{'SET ROLE ' + role + '; ' if role else ''}{sql}")
            return True
        except psycopg2.Error as exc:
            conn.rollback()
            first = str(exc).strip().splitlines()[0]
            self.log.append(f"-- refused ({first}): {sql}")
            return False
        finally:
            conn.close()

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        conn = psycopg2.connect(self.uri)
        try:
            with conn.cursor() as cur:
                cur.execute(sql)
                return list(cur.fetchall())
        finally:
            conn.rollback()
            conn.close()

    def draw(self, strategy: st.SearchStrategy[Any], label: str) -> Any:
        return self.data.draw(strategy, label=label)

    def name(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}{self.counter}"

    # ---------------------------------------------------------------- choices
    def planned_tables(self) -> list[str]:
        return sorted({s["table"] for s in self.repair.get("steps", [])})

    def where(self, table: str, key: str) -> str:
        cols = self.world.key_of(table)
        values = key.split(",")
        return " AND ".join(
            f"{c} IS NULL" if v == "NULL" else f"{c} = {v}"
            for c, v in zip(cols, values, strict=True)
        )

    def keys(self, table: str) -> list[str]:
        cols = self.world.key_of(table)
        expr = " || ',' || ".join(f"coalesce({c}::text, 'NULL')" for c in cols)
        return sorted({k for (k,) in self.query(f"SELECT {expr} FROM ONLY {table}")})

    def pick_row(self, label: str, tables: list[str] | None = None) -> tuple[str, str] | None:
        """A (table, key) of a planned table, rows with findings first."""
        tables = tables if tables is not None else self.planned_tables()
        rows = [(t, k) for t in tables for k in self.keys(t)]
        if not rows:
            return None
        rows.sort(key=lambda r: (r[1] not in {k for t, k in self.findings if t == r[0]}, r))
        picked: tuple[str, str] = self.draw(st.sampled_from(rows), label)
        return picked

    def pk_tables(self, tables: list[str]) -> list[str]:
        unique = self.world.unique_tables()
        return [t for t in tables if t in unique]


# ---------------------------------------------------------------------- drifts
def _add_fk(ctx: Context, tables: list[str], label: str) -> None:
    targets = ctx.pk_tables(tables)
    if not targets:
        return
    table = ctx.draw(st.sampled_from(targets), f"{label} table")
    action = ctx.draw(st.sampled_from(("CASCADE", *ACTIONS)), f"{label} action")
    child = ctx.name("dr_fk")
    ctx.run(
        f"CREATE TABLE {child} (id serial PRIMARY KEY, ref int REFERENCES {table} (id) "
        f"ON DELETE {action}, note text); "
        f"INSERT INTO {child} (ref, note) SELECT id, 'depends' FROM ONLY {table}"
    )


def add_fk(ctx: Context) -> None:
    _add_fk(ctx, ctx.planned_tables(), "add_fk")


def drop_fk(ctx: Context) -> None:
    fks = sorted(
        r[0] + "." + r[1]
        for r in ctx.query(
            "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f' "
            "AND connamespace = 'public'::regnamespace"
        )
    )
    if fks:
        table, con = ctx.draw(st.sampled_from(fks), "drop_fk").split(".")
        ctx.run(f"ALTER TABLE {table} DROP CONSTRAINT {con}")


LOG_FUNCTION = (
    "CREATE TABLE IF NOT EXISTS dr_log (tbl text, op text, r text); "
    "CREATE OR REPLACE FUNCTION dr_log_fn() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "INSERT INTO dr_log VALUES (TG_TABLE_NAME, TG_OP, CASE WHEN TG_OP = 'DELETE' "
    "THEN OLD::text ELSE NEW::text END); RETURN NULL; END $$; "
)


def add_log_trigger(ctx: Context) -> None:
    tables = ctx.planned_tables()
    if tables:
        table = ctx.draw(st.sampled_from(tables), "add_log_trigger")
        ctx.run(
            LOG_FUNCTION + f"CREATE TRIGGER {ctx.name('dr_log_t')} AFTER INSERT OR UPDATE OR "
            f"DELETE ON {table} FOR EACH ROW EXECUTE FUNCTION dr_log_fn()"
        )


def edit_row(ctx: Context) -> None:
    picked = ctx.pick_row("edit_row")
    if picked:
        table, key = picked
        cols = [c for c in ctx.query(
            f"SELECT attname FROM pg_attribute WHERE attrelid = '{table}'::regclass AND attnum > 0 "
            "AND NOT attisdropped AND attname ~ '^(r[0-9]|kind$|ref$)' ORDER BY attnum"
        )]  # fmt: skip
        options = ["note = 'edited'"] + [f"{c[0]} = NULL" for c in cols]
        change = ctx.draw(st.sampled_from(options), "edit_row change")
        ctx.run(f"UPDATE {table} SET {change} WHERE {ctx.where(table, key)}")


def delete_row(ctx: Context) -> None:
    picked = ctx.pick_row("delete_row")
    if picked:
        table, key = picked
        ctx.run(f"DELETE FROM ONLY {table} WHERE {ctx.where(table, key)}")


def reinsert_row(ctx: Context) -> None:
    picked = ctx.pick_row("reinsert_row")
    if picked:
        table, key = picked
        note = ctx.draw(st.sampled_from(["note", "'reinserted'"]), "reinsert_row note")
        tmp = ctx.name("dr_tmp")
        ctx.run(
            f"CREATE TEMP TABLE {tmp} AS SELECT * FROM ONLY {table} WHERE {ctx.where(table, key)}; "
            f"DELETE FROM ONLY {table} WHERE {ctx.where(table, key)}; "
            "SET LOCAL session_replication_role = replica; "
            f"UPDATE {tmp} SET note = {note}; INSERT INTO {table} SELECT * FROM {tmp}"
        )


def precreate_schema(ctx: Context) -> None:
    what = ctx.draw(st.sampled_from(["quarantine", "backup", "schema"]), "precreate_schema")
    db = ctx.query("SELECT current_database()")[0][0]
    m = ctx.mallory
    ctx.run(f'GRANT CREATE ON DATABASE "{db}" TO "{m}"')
    body = (
        "CREATE SCHEMA refaudit; "
        "CREATE FUNCTION refaudit.grab() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"BEGIN EXECUTE 'ALTER ROLE \"{m}\" SUPERUSER'; EXCEPTION WHEN OTHERS THEN NULL; END; "
        "EXECUTE format('DELETE FROM %I.%I', TG_TABLE_SCHEMA, TG_TABLE_NAME); "
        "RETURN NULL; END $$; "
    )
    if what == "quarantine":
        body += (
            "CREATE TABLE refaudit.quarantine (run_id text NOT NULL, table_name text NOT NULL, "
            "row_key text NOT NULL, reason text NOT NULL, row_data jsonb NOT NULL, "
            "quarantined_at timestamptz NOT NULL DEFAULT now()); "
            "CREATE TRIGGER grab AFTER INSERT ON refaudit.quarantine "
            "FOR EACH ROW EXECUTE FUNCTION refaudit.grab(); "
        )
    elif what == "backup" and ctx.repair.get("backup_tables"):
        backup = ctx.draw(st.sampled_from(sorted(ctx.repair["backup_tables"])), "backup table")
        name = backup.split(".", 1)[1]
        source = next(
            (t for t in ctx.planned_tables() if name.endswith("_" + t)), ctx.planned_tables()[0]
        )
        body += (
            f"CREATE TABLE refaudit.{name} (LIKE public.{source}); "
            f"CREATE TRIGGER grab AFTER INSERT ON refaudit.{name} "
            "FOR EACH ROW EXECUTE FUNCTION refaudit.grab(); "
        )
    ctx.run(body, role=m)


def concurrent_writer(ctx: Context) -> None:
    picked = ctx.pick_row("concurrent_writer")
    if picked:
        table, key = picked
        ctx.concurrent = (
            table,
            f"UPDATE ONLY {table} x SET note = 'concurrent' WHERE {ctx.where(table, key)} "
            "RETURNING x::text, pg_catalog.to_jsonb(x)",
        )


def _changed_keys(ctx: Context, removed_only: bool) -> list[tuple[str, str]]:
    a, b = ctx.applied["a"], ctx.applied["b"]
    out = []
    for table in sorted(a.keyed):
        if table not in ctx.world.planned_tables() and not table.endswith("_kid"):
            continue
        for key, rows in sorted(a.keyed[table].items()):
            now = b.keyed.get(table, {}).get(key)
            if (removed_only and not now) or (not removed_only and now and now != rows):
                out.append((table, key))
    return out


def edit_repaired(ctx: Context) -> None:
    keys = _changed_keys(ctx, removed_only=False)
    if keys:
        table, key = ctx.draw(st.sampled_from(keys), "edit_repaired")
        ctx.run(f"UPDATE ONLY {table} SET note = 'edited after' WHERE {ctx.where(table, key)}")


def reuse_quarantined_key(ctx: Context) -> None:
    keys = _changed_keys(ctx, removed_only=True)
    if keys:
        table, key = ctx.draw(st.sampled_from(keys), "reuse_quarantined_key")
        cols = ctx.world.key_of(table)
        values = key.split(",")
        ctx.run(
            f"INSERT INTO {table} ({', '.join(cols)}, note) "
            f"VALUES ({', '.join(values)}, 'newcomer')"
        )


def add_stamp_trigger(ctx: Context) -> None:
    tables = ctx.planned_tables()
    if tables:
        table = ctx.draw(st.sampled_from(tables), "add_stamp_trigger")
        ctx.run(
            "CREATE OR REPLACE FUNCTION dr_stamp() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
            "NEW.note := coalesce(NEW.note, '') || '+stamp'; RETURN NEW; END $$; "
            f"CREATE TRIGGER {ctx.name('dr_stamp_t')} BEFORE INSERT OR UPDATE ON {table} "
            "FOR EACH ROW EXECUTE FUNCTION dr_stamp()"
        )


def add_fk_after(ctx: Context) -> None:
    _add_fk(ctx, ctx.planned_tables(), "add_fk_after")


def hostile_schema_drop(ctx: Context) -> None:
    owner = ctx.query(
        "SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'refaudit'"
    )
    if owner and owner[0][0] == ctx.mallory:
        ctx.run("DROP SCHEMA refaudit CASCADE", role=ctx.mallory)


DRIFTS = {
    Drift.ADD_FK: add_fk,
    Drift.DROP_FK: drop_fk,
    Drift.ADD_LOG_TRIGGER: add_log_trigger,
    Drift.EDIT_ROW: edit_row,
    Drift.DELETE_ROW: delete_row,
    Drift.REINSERT_ROW: reinsert_row,
    Drift.PRECREATE_SCHEMA: precreate_schema,
    Drift.CONCURRENT_WRITER: concurrent_writer,
    Drift.EDIT_REPAIRED: edit_repaired,
    Drift.REUSE_QUARANTINED_KEY: reuse_quarantined_key,
    Drift.ADD_STAMP_TRIGGER: add_stamp_trigger,
    Drift.ADD_FK_AFTER: add_fk_after,
    Drift.HOSTILE_SCHEMA_DROP: hostile_schema_drop,
}
