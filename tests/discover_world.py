"""Generated databases for `refaudit discover`: random entity and fact tables whose foreign
keys are declared, filled with consistent rows, then dropped; a few orphans added after. The
ground truth is every reference the generator made (conditional ones per discriminator value)
and the suite a person would have written for it.

Ids are dense and most start at 1, so every small id is also a key of most other tables: the
names and the shape of the values have to pick the target. A third of the reference columns
are named after a role (`buyer`, `assignee_ref`) rather than their table, and the entity
tables carry numbers that are no references (ranks, years, amounts).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

import psycopg2

ENTITIES = [
    "customers",
    "products",
    "suppliers",
    "warehouses",
    "employees",
    "stores",
    "categories",
    "regions",
    "carriers",
    "brands",
    "projects",
    "teams",
]
FACTS = ["orders", "shipments", "reviews", "invoices", "tasks", "visits", "returns", "tickets"]
ROLES = ["buyer", "owner_ref", "assignee", "handled_by", "origin", "approver", "source_ref"]


def singular(table: str) -> str:
    if table.endswith("ies"):
        return table[:-3] + "y"
    return table[:-1]


def class_name(table: str) -> str:
    return "".join(w.capitalize() for w in singular(table).split("_"))


@dataclass
class Reference:
    table: str
    column: str
    target: str | None = None  # a plain reference
    discriminator: str | None = None
    targets: dict[str, str] = field(default_factory=dict)  # a conditional one: value -> table


@dataclass
class World:
    ddl: list[str] = field(default_factory=list)
    rows: dict[str, list[tuple[Any, ...]]] = field(default_factory=dict)
    columns: dict[str, list[str]] = field(default_factory=dict)
    references: list[Reference] = field(default_factory=list)
    orphans: list[str] = field(default_factory=list)
    ids: dict[str, list[int]] = field(default_factory=dict)

    def suite(self) -> dict[str, Any]:
        """The suite a person who knows the references would write."""
        checks: list[dict[str, Any]] = []
        for r in self.references:
            base = {"id": f"{r.table}.{r.column}.reference", "table": r.table, "column": r.column}
            if r.target is not None:
                checks.append(
                    {**base, "kind": "reference", "target": {"table": r.target, "column": "id"}}
                )
            else:
                targets = {v: {"table": t, "column": "id"} for v, t in r.targets.items()}
                checks.append(
                    {
                        **base,
                        "kind": "conditional_reference",
                        "discriminator": r.discriminator,
                        "targets": targets,
                    }
                )
        return {"suite": "truth", "tables": {t: {"key": "id"} for t in self.rows}, "checks": checks}


def generate(seed: int, entities: int = 9, facts: int = 6) -> World:
    rnd = random.Random(seed)
    world = World()
    chosen = rnd.sample(ENTITIES, entities)
    fks: list[str] = []
    for table in chosen:
        n = rnd.randint(40, 400)
        start = 1 if rnd.random() < 0.6 else rnd.choice([1000, 5000, 20000])
        ids = [start + i for i in range(n) if rnd.random() > 0.03]  # a few deleted rows
        world.ids[table] = ids
    # entity -> entity references (one self-reference among them)
    entity_refs: dict[str, list[tuple[str, str]]] = {t: [] for t in chosen}
    for table in chosen[1:5]:
        target = rnd.choice([t for t in chosen if t != table])
        entity_refs[table].append((f"{singular(target)}_id", target))
    entity_refs[chosen[0]].append(("parent_id", chosen[0]))
    for table in chosen:
        cols = ["id", "name", "status", "rank", "year", "amount"]
        defs = [
            "id integer PRIMARY KEY",
            "name text",
            "status text",
            "rank integer",
            "year integer",
            "amount integer",
        ]
        for column, target in entity_refs[table]:
            cols.append(column)
            defs.append(f"{column} integer")
            fks.append(f"ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES {target}(id)")
            world.references.append(Reference(table, column, target))
        world.ddl.append(f"CREATE TABLE {table} ({', '.join(defs)})")
        world.columns[table] = cols
    for table in chosen:
        rows = []
        for i in world.ids[table]:
            row: list[Any] = [
                i,
                f"{singular(table)} {i}",
                rnd.choice(["active", "archived"]),
                rnd.randint(1, 5),
                rnd.randint(2015, 2025),
                rnd.randint(100, 90000),
            ]
            for column, target in entity_refs[table]:
                pool = world.ids[target]
                value = rnd.choice(pool) if column != "parent_id" or rnd.random() < 0.7 else None
                if column == "parent_id" and value == i:
                    value = None
                row.append(value)
            rows.append(tuple(row))
        world.rows[table] = rows
    # fact tables: references by name and by role, one conditional reference
    for k, table in enumerate(rnd.sample(FACTS, facts)):
        n = rnd.randint(300, 1200)
        targets = rnd.sample(chosen, rnd.randint(2, 4))
        cols = ["id", "quantity", "note"]
        defs = ["id integer PRIMARY KEY", "quantity integer", "note text"]
        plan: list[tuple[str, str]] = []
        roles = iter(rnd.sample(ROLES, len(ROLES)))
        for target in targets:
            column = next(roles) if rnd.random() < 0.35 else f"{singular(target)}_id"
            if column in cols:
                column = f"{singular(target)}_id"
            if column in cols:
                continue
            cols.append(column)
            defs.append(f"{column} integer")
            plan.append((column, target))
            fks.append(f"ALTER TABLE {table} ADD FOREIGN KEY ({column}) REFERENCES {target}(id)")
            world.references.append(Reference(table, column, target))
        poly: dict[str, str] = {}
        if k < 2:
            members = rnd.sample([t for t in chosen if t not in targets], 3)
            poly = {class_name(t): t for t in members}
            cols += ["subject_type", "subject_id"]
            defs += ["subject_type text", "subject_id integer"]
            world.references.append(Reference(table, "subject_id", None, "subject_type", poly))
        world.ddl.append(f"CREATE TABLE {table} ({', '.join(defs)})")
        world.columns[table] = cols
        rows = []
        for i in range(1, n + 1):
            row = [i, rnd.randint(1, 20), rnd.choice(["", "rush", "gift", None])]
            for _column, target in plan:
                row.append(rnd.choice(world.ids[target]) if rnd.random() > 0.05 else None)
            if poly:
                value = rnd.choice(sorted(poly))
                row += [value, rnd.choice(world.ids[poly[value]])]
            rows.append(tuple(row))
        world.rows[table] = rows
        # orphans (after the foreign keys are dropped) in about half of the references
        for column, target in plan:
            if rnd.random() < 0.5:
                bad = max(world.ids[target]) + rnd.randint(1, 50)
                victims = rnd.sample(range(1, n + 1), rnd.randint(1, 4))
                world.orphans += [
                    f"UPDATE {table} SET {column} = {bad} WHERE id = {v}" for v in victims
                ]
    world.ddl += fks
    return world


def build(uri: str, world: World) -> None:
    """Create the tables with their foreign keys, load the rows, drop every foreign key, add
    the orphans, and ANALYZE half of the tables (discover must work with and without
    statistics)."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            for statement in world.ddl:
                if not statement.startswith("ALTER"):
                    cur.execute(statement)
            for table, rows in world.rows.items():
                if rows:
                    marks = ", ".join(["%s"] * len(rows[0]))
                    cur.executemany(
                        f"INSERT INTO {table} ({', '.join(world.columns[table])}) VALUES ({marks})",
                        rows,
                    )
            for statement in world.ddl:
                if statement.startswith("ALTER"):
                    cur.execute(statement)
            cur.execute(
                "SELECT conrelid::regclass::text, conname FROM pg_constraint WHERE contype = 'f'"
            )
            for table, name in cur.fetchall():
                cur.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
            for statement in world.orphans:
                cur.execute(statement)
            for table in list(world.rows)[::2]:
                cur.execute(f"ANALYZE {table}")
        conn.commit()
    finally:
        conn.close()
