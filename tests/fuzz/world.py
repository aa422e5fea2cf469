"""A random small database and a refaudit suite over it.

A world has 2-4 tables `t0..t3`, each keyed by `id` (a primary key), by `(id, g)` (a
composite primary key) or by an `id` that is not unique (no constraint). Table `ti` may
reference any earlier table `tj` through column `rj` (and `rjg` for a composite target):
with a declared foreign key (every ON DELETE action, sometimes DEFERRABLE INITIALLY
DEFERRED, sometimes NOT VALID), with a suite `reference` (on_orphan quarantine, set_null or
report), with both, or with neither. Optionally: a `poly` table with a
`conditional_reference` whose values name the tables (several values per table), and an
inheritance child `ti_kid` of a referencing table. Rows are few, ids small, so that orphans,
wrong types and collisions are common; rows that violate validated foreign keys are loaded
under `session_replication_role = replica`, as pg_restore --disable-triggers does.

What the generator may produce is switched by `Feature`s, so that a class of worlds whose
repair is known to break can be kept out of the CI run until the fix lands.
"""

from __future__ import annotations

import enum
import json
from dataclasses import dataclass, field
from typing import Any

from hypothesis import strategies as st


class Feature(enum.Enum):
    NONUNIQUE_KEY = "nonunique_key"
    """A table keyed by an `id` with no PRIMARY KEY/UNIQUE (duplicates possible)."""
    COMPOSITE_KEY = "composite_key"
    """A table keyed by (id, g); references into it are composite."""
    INHERITANCE = "inheritance"
    """An inheritance child of a referencing table, with rows of its own."""
    CONDITIONAL = "conditional"
    """A conditional_reference (poly.kind, poly.ref) with several values per target table."""
    REPLICA_VIOLATIONS = "replica_violations"
    """Rows that violate validated foreign keys (loaded with session_replication_role)."""
    SUITE_REF_INTO_PLANNED = "suite_ref_into_planned"
    """A suite reference (no foreign key) or a conditional reference into a table whose
    rows the plan may quarantine."""
    SET_DEFAULT_ORPHAN = "set_default_orphan"
    """ON DELETE SET DEFAULT whose default names no row."""


ALL_FEATURES = frozenset(Feature)
ACTIONS = ("CASCADE", "SET NULL", "SET DEFAULT", "RESTRICT", "NO ACTION")
MISSING = (7, 8, 9)  # ids no table holds


@dataclass(frozen=True)
class Fk:
    action: str
    deferrable: bool
    not_valid: bool


@dataclass(frozen=True)
class Edge:
    child: int
    parent: int
    fk: Fk | None
    on_orphan: str | None  # the suite reference's on_orphan, None: no suite check
    default: int | None  # the column's DEFAULT


@dataclass
class Table:
    name: str
    kind: str  # "pk" | "composite" | "nonunique"
    rows: list[dict[str, Any]] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # reference columns

    @property
    def key(self) -> list[str]:
        return ["id", "g"] if self.kind == "composite" else ["id"]


@dataclass
class World:
    tables: list[Table]
    edges: list[Edge]
    poly: dict[str, Any] | None = None  # {"targets": {value: table}, "on_orphan", "rows"}
    kid: dict[str, Any] | None = None  # {"parent": name, "rows": [...]}

    # ---------------------------------------------------------------- rendering
    def key_of(self, table: str) -> list[str]:
        """The key columns of any table of the world (a child has its parent's)."""
        if table == "poly":
            return ["id"]
        if self.kid and table == f"{self.kid['parent']}_kid":
            table = self.kid["parent"]
        for t in self.tables:
            if t.name == table:
                return t.key
        raise KeyError(table)

    def schema_sql(self) -> str:
        out: list[str] = []
        for t in self.tables:
            cols = ["id int NOT NULL" if t.kind != "nonunique" else "id int"]
            if t.kind == "composite":
                cols.append("g int NOT NULL")
            for e in self.edges:
                if e.child != self.tables.index(t):
                    continue
                p = self.tables[e.parent]
                default = f" DEFAULT {e.default}" if e.default is not None else ""
                cols.append(f"r{e.parent} int{default}")
                if p.kind == "composite":
                    cols.append(f"r{e.parent}g int{' DEFAULT 1' if default else ''}")
            cols.append("note text")
            if t.kind != "nonunique":
                cols.append(f"PRIMARY KEY ({', '.join(t.key)})")
            out.append(f"CREATE TABLE {t.name} ({', '.join(cols)});")
        if self.kid:
            out.append(
                f"CREATE TABLE {self.kid['parent']}_kid (extra text) "
                f"INHERITS ({self.kid['parent']});"
            )
        if self.poly:
            out.append("CREATE TABLE poly (id int PRIMARY KEY, kind text, ref int, note text);")
        for e in self.edges:
            if e.fk is None:
                continue
            c, p = self.tables[e.child], self.tables[e.parent]
            refs = f"r{e.parent}, r{e.parent}g" if p.kind == "composite" else f"r{e.parent}"
            out.append(
                f"ALTER TABLE {c.name} ADD CONSTRAINT fk_{e.child}_{e.parent} FOREIGN KEY ({refs}) "
                f"REFERENCES {p.name} ({', '.join(p.key)}) ON DELETE {e.fk.action}"
                + (" DEFERRABLE INITIALLY DEFERRED" if e.fk.deferrable else "")
                + (" NOT VALID" if e.fk.not_valid else "")
                + ";"
            )
        inserts = [ins for t in self.tables for ins in _inserts(t.name, t.rows)]
        if self.kid:
            inserts += _inserts(f"{self.kid['parent']}_kid", self.kid["rows"])
        if self.poly:
            inserts += _inserts("poly", self.poly["rows"])
        if inserts:
            out.append("SET session_replication_role = replica;")
            out += inserts
            out.append("RESET session_replication_role;")
        return "\n".join(out) + "\n"

    def suite(self) -> dict[str, Any]:
        tables: dict[str, Any] = {
            t.name: {"key": t.key if len(t.key) > 1 else t.key[0]} for t in self.tables
        }
        checks: list[dict[str, Any]] = []
        for e in self.edges:
            if e.on_orphan is None:
                continue
            c, p = self.tables[e.child], self.tables[e.parent]
            check: dict[str, Any] = {
                "id": f"{c.name}.r{e.parent}",
                "kind": "reference",
                "table": c.name,
            }
            if p.kind == "composite":
                check["columns"] = [f"r{e.parent}", f"r{e.parent}g"]
                check["target"] = {"table": p.name, "columns": p.key}
            else:
                check["column"] = f"r{e.parent}"
                check["target"] = {"table": p.name, "column": "id"}
            check["on_orphan"] = e.on_orphan
            checks.append(check)
        if self.poly:
            tables["poly"] = {"key": "id"}
            checks.append(
                {
                    "id": "poly.ref",
                    "kind": "conditional_reference",
                    "table": "poly",
                    "column": "ref",
                    "discriminator": "kind",
                    "targets": {
                        v: {"table": t, "column": "id"} for v, t in self.poly["targets"].items()
                    },
                    "on_orphan": self.poly["on_orphan"],
                }
            )
        return {"suite": "fuzz", "tables": tables, "checks": checks}

    def unique_tables(self) -> set[str]:
        """Tables whose `id` alone is unique (a foreign key can reference it)."""
        return {t.name for t in self.tables if t.kind == "pk"} | ({"poly"} if self.poly else set())

    def planned_tables(self) -> list[str]:
        """Tables the suite may repair (it checks a reference of theirs)."""
        names = {self.tables[e.child].name for e in self.edges if e.on_orphan is not None}
        if self.poly:
            names.add("poly")
        return sorted(names)

    def describe(self) -> str:
        return (
            "-- schema and rows\n" + self.schema_sql()
            + "-- suite\n" + json.dumps(self.suite(), indent=None)
        )  # fmt: skip


def _literal(v: Any) -> str:
    if v is None:
        return "NULL"
    if isinstance(v, int):
        return str(v)
    return "'" + str(v).replace("'", "''") + "'"


def _inserts(table: str, rows: list[dict[str, Any]]) -> list[str]:
    return [
        f"INSERT INTO {table} ({', '.join(r)}) "
        f"VALUES ({', '.join(_literal(v) for v in r.values())});"
        for r in rows
    ]


# -------------------------------------------------------------------- strategy
@st.composite
def worlds(draw: st.DrawFn, features: frozenset[Feature] = ALL_FEATURES) -> World:
    n = draw(st.integers(2, 4))
    kinds = ["pk"]
    allowed = ["pk"]
    if Feature.COMPOSITE_KEY in features:
        allowed.append("composite")
    if Feature.NONUNIQUE_KEY in features:
        allowed.append("nonunique")
    kinds += [draw(st.sampled_from(allowed)) for _ in range(n - 1)]
    tables = [Table(f"t{i}", k) for i, k in enumerate(kinds)]

    edges: list[Edge] = []
    for i in range(1, n):
        for j in range(i):
            first = (i, j) == (1, 0)  # always there, always checked: the suite has a check
            if not first and not draw(st.booleans()):
                continue
            target = kinds[j]
            fk = None
            if target != "nonunique" and draw(st.booleans()):
                action = draw(st.sampled_from(ACTIONS))
                fk = Fk(action, draw(st.booleans()), draw(st.booleans()))
            if target == "composite":
                on_orphan = draw(st.sampled_from([None, "report"]))
            else:
                # quarantine twice as likely: the promises under test are about removed rows
                orphan_choices: list[str | None] = [
                    "quarantine",
                    "quarantine",
                    "set_null",
                    "report",
                ]
                orphan_choices += [] if first else [None]
                on_orphan = draw(st.sampled_from(orphan_choices))
            default = None
            if fk is not None and fk.action == "SET DEFAULT":
                orphan = Feature.SET_DEFAULT_ORPHAN in features
                default = draw(st.sampled_from([None, MISSING[0]] if orphan else [None]))
            edges.append(Edge(i, j, fk, on_orphan, default))

    # keys
    keys: list[list[Any]] = []
    for t in tables:
        if t.kind == "pk":
            ids = draw(st.lists(st.integers(1, 6), unique=True, min_size=1, max_size=5))
            keys.append([(i,) for i in sorted(ids)])
        elif t.kind == "composite":
            pairs = draw(
                st.lists(
                    st.tuples(st.integers(1, 5), st.integers(1, 2)),
                    unique=True,
                    min_size=1,
                    max_size=5,
                )
            )
            keys.append(sorted(pairs))
        else:
            keys.append([(i,) for i in draw(st.lists(st.integers(1, 5), min_size=1, max_size=5))])

    # planned: tables whose rows a quarantine may remove
    planned = {e.child for e in edges if e.on_orphan == "quarantine"}
    poly: dict[str, Any] | None = None
    if Feature.CONDITIONAL in features and draw(st.booleans()):
        on_orphan = draw(st.sampled_from(["quarantine", "set_null", "report"]))
        candidates = [j for j, t in enumerate(tables) if t.kind != "composite"]
        if Feature.SUITE_REF_INTO_PLANNED not in features:
            candidates = [j for j in candidates if j not in planned]
        if candidates:
            chosen = draw(
                st.lists(st.sampled_from(candidates), min_size=1, max_size=2, unique=True)
            )
            targets: dict[str, str] = {}
            for j in chosen:
                for suffix in draw(st.sampled_from([("",), ("", "x")])):  # several values per table
                    targets[f"T{j}{suffix}"] = tables[j].name
            poly = {"targets": targets, "on_orphan": on_orphan, "rows": []}
    if Feature.SUITE_REF_INTO_PLANNED not in features:
        # a suite reference without a foreign key into a table the plan quarantines from
        # would be left dangling: keep such checks out
        edges = [
            e
            if e.parent not in planned or e.fk is not None or e.on_orphan is None
            else Edge(e.child, e.parent, e.fk, None, e.default)
            for e in edges
        ]

    def ref_values(e: Edge) -> st.SearchStrategy[tuple[Any, ...] | None]:
        target = keys[e.parent]
        valid = st.sampled_from(target) if target else st.nothing()
        width = 2 if tables[e.parent].kind == "composite" else 1
        missing = st.tuples(*[st.sampled_from(MISSING)] * width)
        may_violate = e.fk is None or e.fk.not_valid or Feature.REPLICA_VIOLATIONS in features
        options = [st.none(), valid] + ([missing] if may_violate else [])
        return st.one_of(*options)

    def row_for(i: int, key: tuple[Any, ...], table: Table) -> dict[str, Any]:
        row: dict[str, Any] = dict(zip(table.key, key, strict=True))
        for e in edges:
            if e.child != i:
                continue
            v = draw(ref_values(e))
            row[f"r{e.parent}"] = None if v is None else v[0]
            if tables[e.parent].kind == "composite":
                row[f"r{e.parent}g"] = None if v is None else v[1]
        row["note"] = draw(st.sampled_from(["a", "b", "it's", None]))
        return row

    for i, t in enumerate(tables):
        t.rows = [row_for(i, k, t) for k in keys[i]]

    kid: dict[str, Any] | None = None
    if Feature.INHERITANCE in features:
        children: list[int] = [
            i
            for i in range(1, n)
            if tables[i].kind != "composite" and any(e.child == i for e in edges)
        ]
        wanted: bool = draw(st.booleans())
        if children and wanted:
            parent = draw(st.sampled_from(children))
            kid_rows = [
                row_for(parent, (k,), tables[parent]) | {"extra": f"x{k}"}
                for k in draw(st.lists(st.integers(11, 13), unique=True, min_size=1, max_size=2))
            ]
            kid = {"parent": tables[parent].name, "rows": kid_rows}
    if poly is not None:
        values = [*poly["targets"], None, "zz"]
        ids = draw(st.lists(st.integers(1, 6), unique=True, min_size=1, max_size=5))
        poly["rows"] = [
            {
                "id": k,
                "kind": draw(st.sampled_from(values)),
                "ref": draw(st.one_of(st.none(), st.integers(1, 9))),
                "note": draw(st.sampled_from(["p", None])),
            }
            for k in ids
        ]
    return World(tables, edges, poly, kid)


@dataclass
class Fixed:
    """A world written by hand (a regression test's reproduction): its SQL, its suite and
    the key columns of its tables."""

    sql: str
    suite_doc: dict[str, Any]
    keys: dict[str, list[str]]
    unique: set[str] = field(default_factory=set)

    def key_of(self, table: str) -> list[str]:
        return self.keys[table]

    def schema_sql(self) -> str:
        return self.sql

    def suite(self) -> dict[str, Any]:
        return self.suite_doc

    def unique_tables(self) -> set[str]:
        return self.unique

    def planned_tables(self) -> list[str]:
        return sorted({c["table"] for c in self.suite_doc["checks"]})

    def describe(self) -> str:
        return "-- schema and rows\n" + self.sql + "-- suite\n" + json.dumps(self.suite_doc)


class Scripted:
    """Stands for hypothesis' `data` in a regression test: each draw takes the value given
    for its label (a drift list: the kinds in order), or the strategy's first example."""

    def __init__(self, **choices: Any) -> None:
        self.choices = choices

    def draw(self, strategy: st.SearchStrategy[Any], label: str | None = None) -> Any:
        if label in self.choices:
            return self.choices[label]
        raise KeyError(f"no scripted choice for the draw {label!r}")
