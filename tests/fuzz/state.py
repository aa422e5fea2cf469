"""What the fuzzer observes of a database, and the invariants it holds the repair to.

A `Snapshot` is every row of every table of schema public (each table on its own, `FROM
ONLY`: an inheritance child is not its parent), as text and as jsonb, grouped by key; every
row kept in the repair schema (the backup tables' rows, the quarantine's `row_data`); the
constraints and triggers; every role's attributes and memberships; and every object's owner.
Each invariant raises `Broken`, whose `kind` names the class of counterexample.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psycopg2

REPAIR_SCHEMA = "refaudit"


class Broken(AssertionError):
    def __init__(self, kind: str, message: str) -> None:
        super().__init__(f"[{kind}] {message}")
        self.kind = kind
        self.message = message


@dataclass
class Snapshot:
    rows: dict[str, Counter[str]]
    keyed: dict[str, dict[str, Counter[str]]]
    as_json: dict[str, dict[str, dict[str, Any]]]
    kept: list[dict[str, Any]]
    repair_rows: dict[str, Counter[str]]
    catalog: list[tuple[Any, ...]]
    roles: list[tuple[Any, ...]]
    owners: dict[tuple[str, str], str] = field(default_factory=dict)

    def data(self) -> tuple[Any, ...]:
        """Everything a failed step must leave as it found it."""
        return (self.rows, self.repair_rows, self.catalog, self.roles, self.owners)


def _q(cur: Any, sql: str) -> list[tuple[Any, ...]]:
    cur.execute(sql)
    return list(cur.fetchall())


def snapshot(uri: str, key_of: Callable[[str], list[str] | None]) -> Snapshot:
    conn = psycopg2.connect(uri)
    try:
        conn.set_session(readonly=True, isolation_level="REPEATABLE READ")
        with conn.cursor() as cur:
            rels = _q(
                cur,
                "SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                f"AND n.nspname IN ('public', '{REPAIR_SCHEMA}') ORDER BY 1, 2",
            )
            rows: dict[str, Counter[str]] = {}
            keyed: dict[str, dict[str, Counter[str]]] = {}
            as_json: dict[str, dict[str, dict[str, Any]]] = {}
            kept: list[dict[str, Any]] = []
            repair_rows: dict[str, Counter[str]] = {}
            for schema, name in rels:
                qualified = f'"{schema}"."{name}"'
                if schema == REPAIR_SCHEMA:
                    cols = {
                        c
                        for (c,) in _q(
                            cur,
                            f"SELECT attname FROM pg_attribute "
                            f"WHERE attrelid = '{qualified}'::regclass AND attnum > 0",
                        )
                    }
                    # a backup row without the row's text as the repair left it (a column
                    # of refaudit's own, after the table's)
                    data = (
                        "x.row_data"
                        if "row_data" in cols
                        else "pg_catalog.to_jsonb(x) - 'refaudit_repaired_row'"
                    )
                    got = _q(cur, f"SELECT x::text, {data} FROM ONLY {qualified} x")
                    repair_rows[name] = Counter(t for t, _ in got)
                    kept += [j for _, j in got if isinstance(j, dict)]
                    continue
                key = key_of(name)
                key_sql = (
                    " || ',' || ".join(f"coalesce(x.{k}::text, 'NULL')" for k in key)
                    if key
                    else "x::text"
                )
                got = _q(
                    cur,
                    f"SELECT x::text, pg_catalog.to_jsonb(x), {key_sql} FROM ONLY {qualified} x",
                )
                rows[name] = Counter(t for t, _, _ in got)
                as_json[name] = {t: j for t, j, _ in got}
                by_key: dict[str, Counter[str]] = {}
                for t, _, k in got:
                    by_key.setdefault(k, Counter())[t] += 1
                keyed[name] = by_key
            catalog = sorted(
                _q(
                    cur,
                    "SELECT 'constraint', conrelid::regclass::text, conname, "
                    "pg_get_constraintdef(oid), convalidated::text FROM pg_constraint "
                    "WHERE connamespace = 'public'::regnamespace UNION ALL "
                    "SELECT 'trigger', tgrelid::regclass::text, tgname, tgenabled::text, '' "
                    "FROM pg_trigger WHERE NOT tgisinternal",
                )
            )
            roles = _q(
                cur,
                "SELECT rolname::text, rolsuper, rolinherit, rolcreaterole, rolcreatedb, "
                "rolcanlogin, rolreplication, rolbypassrls, rolconnlimit FROM pg_roles ORDER BY 1",
            ) + _q(
                cur,
                "SELECT 'member', roleid::regrole::text, member::regrole::text, admin_option "
                "FROM pg_auth_members ORDER BY 2, 3",
            )
            owners = {
                (kind, name): owner
                for kind, name, owner in _q(
                    cur,
                    "SELECT 'rel:' || c.relkind::text, n.nspname || '.' || c.relname, "
                    "pg_get_userbyid(c.relowner) FROM pg_class c JOIN pg_namespace n ON "
                    "n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', "
                    "'information_schema', 'pg_toast') AND n.nspname NOT LIKE 'pg_temp%' "
                    "AND n.nspname NOT LIKE 'pg_toast_temp%' "
                    "UNION ALL SELECT 'schema', nspname, pg_get_userbyid(nspowner) "
                    "FROM pg_namespace WHERE nspname !~ '^pg_(toast_)?temp_' UNION ALL "
                    "SELECT 'function', p.oid::regprocedure::text, "
                    "pg_get_userbyid(p.proowner) FROM pg_proc p WHERE p.pronamespace NOT IN "
                    "('pg_catalog'::regnamespace, 'information_schema'::regnamespace) "
                    "UNION ALL SELECT 'database', datname, pg_get_userbyid(datdba) "
                    "FROM pg_database WHERE datname = current_database()",
                )
            }
        conn.rollback()
    finally:
        conn.close()
    return Snapshot(rows, keyed, as_json, kept, repair_rows, catalog, roles, owners)


# ---------------------------------------------------------------------- invariants
def _is_kept(
    row: dict[str, Any], kept: Iterable[dict[str, Any]], live: Iterable[dict[str, Any]] = ()
) -> bool:
    """`row` is whole in `kept` (a backup row or a quarantined row_data): every column it
    has. A backup of an inheritance parent has the parent's columns only: the child's own
    columns count as kept where a live row of the same key still holds them (a row updated
    in place)."""
    live = list(live)
    for d in kept:
        if not set(d) <= set(row) or any(d[c] != row[c] for c in d):
            continue
        rest = set(row) - set(d)
        if not rest or any(all(r.get(c) == row[c] for c in rest) for r in live):
            return True
    return False


def _live(snap: Snapshot, table: str, text: str, like: Snapshot) -> list[dict[str, Any]]:
    """The rows of `snap` in `table` with the key of the row `text` of `like`."""
    key = next((k for k, rows in like.keyed.get(table, {}).items() if text in rows), None)
    texts = snap.keyed.get(table, {}).get(key, Counter()) if key is not None else Counter()
    return [snap.as_json[table][t] for t in texts]


def no_row_lost(
    before: Snapshot, after: Snapshot, step: str, exempt: dict[str, Counter[str]] | None = None
) -> None:
    """Every row of `before` is in its table, a backup table or the quarantine (whole,
    every column, as jsonb) in `after`; `exempt` rows may go (a repair's own product, which
    a rollback replaces)."""
    for table, had in before.rows.items():
        missing = had - after.rows.get(table, Counter()) - (exempt or {}).get(table, Counter())
        for text in missing:
            live = _live(after, table, text, before)
            if not _is_kept(before.as_json[table][text], after.kept, live):
                raise Broken(
                    "lost-row",
                    f"after {step}: the row {text} of {table} is in no table, backup or quarantine",
                )


def roles_and_owners_unchanged(before: Snapshot, after: Snapshot, step: str) -> None:
    if before.roles != after.roles:
        gone = sorted(set(before.roles) - set(after.roles), key=repr)
        new = sorted(set(after.roles) - set(before.roles), key=repr)
        raise Broken("role-changed", f"after {step}: roles changed: {gone} -> {new}")
    changed = {
        k: (v, after.owners[k])
        for k, v in before.owners.items()
        if k in after.owners and after.owners[k] != v
    }
    if changed:
        raise Broken("owner-changed", f"after {step}: owners changed: {changed}")


def unchanged(before: Snapshot, after: Snapshot, step: str, kind: str) -> None:
    """A step that raised (or that should change nothing) left everything as it was."""
    if before.data() != after.data():
        what = [
            name
            for name, a, b in zip(
                ("rows", "repair schema rows", "constraints/triggers", "roles", "owners"),
                before.data(),
                after.data(),
                strict=True,
            )
            if a != b
        ]
        diff = {
            t: (
                sorted((before.rows.get(t, Counter()) - after.rows.get(t, Counter())).elements()),
                sorted((after.rows.get(t, Counter()) - before.rows.get(t, Counter())).elements()),
            )
            for t in set(before.rows) | set(after.rows)
            if before.rows.get(t) != after.rows.get(t)
        }
        raise Broken(kind, f"{step} changed {', '.join(what)}: {json.dumps(diff)}")


def rollback_exact(
    audited: Iterable[str], a: Snapshot, b: Snapshot, c: Snapshot, e: Snapshot
) -> None:
    """a: before repair, b: after it, c: before rollback (b plus what others did since),
    e: after rollback. A key that nobody touched since the repair is back exactly as in
    `a`; one that others touched keeps their rows (in the table, or set aside: kept)."""
    for table in audited:
        ka, kb, kc, ke = (s.keyed.get(table, {}) for s in (a, b, c, e))
        for key in sorted(set(ka) | set(kb) | set(kc) | set(ke)):
            ra, rb, rc, re_ = (m.get(key, Counter()) for m in (ka, kb, kc, ke))
            if rb == rc:
                if re_ != ra:
                    raise Broken(
                        "rollback-inexact",
                        f"{table} key {key}: rollback left {sorted(re_.elements())}, "
                        f"before the repair it was {sorted(ra.elements())}",
                    )
                continue
            for text in rc - rb - re_:
                live = [e.as_json[table][t] for t in re_]
                if not _is_kept(c.as_json[table][text], e.kept, live):
                    raise Broken(
                        "rollback-lost",
                        f"{table} key {key}: the row {text}, written after the repair, is "
                        "gone after rollback and kept nowhere",
                    )
