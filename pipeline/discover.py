"""`refaudit discover`: a suite for a database nobody described.

Stages, in order, all in one read-only snapshot with the audit's timeouts:

1. the catalog: tables, columns, primary keys, UNIQUE, NOT NULL, foreign keys, CHECK value
   lists and indexes, each turned into the check that states it;
2. column profiles: row counts, NULLs, min/max (one aggregate scan per table) and which text
   columns have few values (`pg_stats.n_distinct` where ANALYZE has run, else a bounded
   DISTINCT);
3. undeclared references: inclusion dependencies between columns and keys, computed in
   PostgreSQL (one grouped statement per column that joins its distinct values to every
   surviving key, or tests a dense integer key's range); candidates are pruned by type, range
   and distinct count first;
4. conditional references: the same per value of a low-cardinality text column beside the id
   column (`*_type`/`*_id`, or any other naming); and generic relations through a type table
   (Django's `content_type_id`): a small table whose rows' text columns, joined, name tables,
   a column holding its keys, and beside it the id column whose values, for the rows of each
   type, are keys of the table the type names (`pipeline.discover_generic`);
5. mis-keys: a reference whose violating values are keys of another key space that map
   through a column of the target (`users.id` -> `tutor_profiles.user_id`), with the
   row's columns that agree with that key space's attributes as evidence;
6. rules: what the rows almost always obey (NOT NULL, value sets, unique and consistent
   references), row rules between two columns (`updated_at >= created_at`, `responded_at`
   set exactly for some statuses), e-mail and shape patterns, and the reference columns
   unique together (among all rows, or those of one status), each with its violations.

`discover(...)` returns a `Discovery` (typed proposals with evidence, confidence and
alternatives); `render_suite(...)` turns it into suite YAML whose comments carry the evidence,
and which `refaudit run --suite` runs as it is.
"""

from __future__ import annotations

import itertools
import os
import re
import string
import threading
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import psycopg2
import sqlalchemy as sa
import yaml
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import URL, Connection

from pipeline import sqltext
from pipeline.checks.relations import Definitions, read_schema_tables
from pipeline.db import companion, create_engine, database_error, describe, read_only_snapshot
from pipeline.discover_generic import (
    MAX_NAME_COLUMNS,
    MAX_TYPE_ROWS,
    MAX_TYPES_USED,
    TypeCount,
    TypeTable,
    relation_sql,
    type_table,
)
from pipeline.errors import UsageError
from pipeline.jobs import tune_session
from pipeline.limits import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from pipeline.progress import ProgressLike, as_progress
from pipeline.suite import Suite

DEFAULT_MIN_CONFIDENCE = 0.5
MIN_COVERAGE = 0.8
"""A column whose values are at least this share (of its non-NULL rows) of a key's values is
proposed as a reference to it; the rest are its violations."""
MAX_DISCRIMINATOR_VALUES = 20
PREFIX_ROWS = 10_000
"""Rows read to rule out text columns with many values before reading a whole column."""
HASH_KEYS_BELOW = 1_000_000
"""Keys of tables with fewer rows are tested by hashing the key table once (`IN (SELECT
...)`, a hashed subplan); larger ones by an index probe per value (`EXISTS`)."""
MAX_KEYS_PER_COLUMN = 12
"""At most this many candidate keys are tested for one column (the best by name and range)."""
RARE_VALUE_SHARE = 0.01
"""A discriminator value below this share of the rows is only a target when its name fits."""
MIN_RULE_ROWS = 20
"""Row rules, patterns and conditional uniques are proposed on at least this many rows."""
RULE_HOLDS = 0.95
"""A row rule (ordering, set exactly when) is proposed when this share of its rows hold."""
SHAPE_SHARE = 0.9
"""A pattern is proposed when this share of the column's non-NULL values match it."""
SAMPLE_SHAPE_SHARE = 0.8
"""... and a shape (or e-mail) is counted over the table when this share of the first
PREFIX_ROWS values have it."""
MAX_SHAPE_LENGTH = 64
MAX_ORDERED_COLUMNS = 8
"""Date and timestamp columns of a table compared pairwise (the first ones)."""
MAX_RULE_GROUPS = 4096
MAX_LABEL_LENGTH = 32
"""The rule counts of a table are grouped by few-valued columns of at most this many groups."""
MAX_UNIQUE_VALUES = 10
MAX_UNIQUE_COUNTS = 24
"""Conditional uniques: values of columns of at most MAX_UNIQUE_VALUES values, at most
MAX_UNIQUE_COUNTS values per table."""
UNIQUE_DUPLICATES = 0.02
"""A conditional unique is proposed when at most this share of its rows repeat another."""
EMAIL_REGEX = r"^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$"
"""A plausible e-mail address (the regex of the Astegni suite)."""
_SHAPE_FROM = string.digits + string.ascii_lowercase + string.ascii_uppercase
_SHAPE_TO = "9" * 10 + "a" * 26 + "A" * 26
_SHAPE_CLASSES = {"9": "[0-9]", "a": "[a-z]", "A": "[A-Z]"}

Source = Literal["catalog", "data"]

# type families whose values can be compared with `=` across types
_FAMILIES = {"N": "number", "S": "text", "U": "uuid", "D": "time", "B": "bool"}
_INTEGER_TYPES = {"smallint", "integer", "bigint"}


# ============================================================================ the result
@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # format_type(), e.g. `integer`, `character varying(20)`
    family: str  # number, text, uuid, time, bool, other
    not_null: bool
    enum: bool = False


@dataclass
class TableInfo:
    """One table of the audited schemas, as the suite names it."""

    name: str  # as the suite writes it: `t`, or `schema.t` outside the first schema
    schema: str
    relname: str
    columns: dict[str, ColumnInfo]
    primary_key: list[str] = field(default_factory=list)
    uniques: list[list[str]] = field(default_factory=list)
    unique_indexes: dict[str, list[str]] = field(default_factory=dict)
    """Unique indexes that back no constraint (`CREATE UNIQUE INDEX`), by name: plain
    columns, not partial. Keys as UNIQUE constraints are."""
    rows: int = 0

    @property
    def sql(self) -> str:
        return sqltext.qualified(self.schema, self.relname)

    @property
    def key(self) -> str | None:
        """The single column that identifies a row: the primary key, else a NOT NULL UNIQUE."""
        if len(self.primary_key) == 1:
            return self.primary_key[0]
        for cols in self.all_uniques():
            if len(cols) == 1 and self.columns[cols[0]].not_null:
                return cols[0]
        return None

    def all_uniques(self) -> list[list[str]]:
        """UNIQUE constraints, then unique indexes."""
        return [*self.uniques, *(c for c in self.unique_indexes.values() if c not in self.uniques)]

    def single_keys(self) -> list[str]:
        """Columns whose values are unique by the catalog (primary key, UNIQUE and unique
        indexes)."""
        keys = [self.primary_key[0]] if len(self.primary_key) == 1 else []
        keys += [cols[0] for cols in self.all_uniques() if len(cols) == 1 and cols[0] not in keys]
        return keys

    def composite_keys(self) -> list[list[str]]:
        """Keys of several columns: the primary key, UNIQUE constraints, unique indexes."""
        keys = [list(self.primary_key)] if len(self.primary_key) > 1 else []
        keys += [c for c in self.all_uniques() if len(c) > 1 and c not in keys]
        return keys


@dataclass(frozen=True)
class Candidate:
    """How well the values of a column (or of its rows with one discriminator value) fit a key."""

    table: str
    column: str
    rows: int  # non-NULL rows tested
    distinct: int
    missing_rows: int  # rows whose value the key lacks
    missing_distinct: int
    key_rows: int
    name: float  # how well the name fits the table, 0..1
    through: str | None = None
    """Set when the values are not the table's keys but values of its `through` column (a
    mis-keyed reference): `missing_rows` then counts the values `through` lacks."""

    @property
    def coverage(self) -> float:
        return 1 - self.missing_rows / self.rows if self.rows else 0.0

    @property
    def distinct_coverage(self) -> float:
        return 1 - self.missing_distinct / self.distinct if self.distinct else 0.0

    @property
    def fill(self) -> float:
        """The share of the key's rows the values use (tighter keys fit better)."""
        return (
            min(1.0, (self.distinct - self.missing_distinct) / self.key_rows)
            if self.key_rows
            else 0
        )

    @property
    def score(self) -> float:
        s = self.coverage + 0.25 * self.name + 0.05 * self.fill
        return s - 0.1 if self.through else s

    def describe(self) -> str:
        where = f"{self.table}.{self.through}" if self.through else f"{self.table}.{self.column}"
        fit = f", name fits {self.name:.1f}" if self.name else ", name does not fit"
        return (
            f"{where} ({_pct(self.coverage)} of {self.rows} rows, "
            f"{self.distinct - self.missing_distinct} of {self.distinct} values{fit})"
        )


@dataclass
class Proposal:
    """One check the discovered suite holds, with why it is there."""

    check: dict[str, Any]
    source: Source
    confidence: float
    evidence: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)
    violations: int | None = None
    """Rows the check flags by the data read (None where not measured: catalog checks)."""

    @property
    def kind(self) -> str:
        return str(self.check["kind"])

    @property
    def table(self) -> str:
        return str(self.check["table"])


@dataclass
class Discovery:
    database: str
    database_name: str
    snapshot_taken_at: str
    server_version: str
    schemas: list[str]
    tables: dict[str, TableInfo]
    key_spaces: dict[str, dict[str, Any]] = field(default_factory=dict)
    proposals: list[Proposal] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    """What the suite cannot express yet (composite references), written as comments."""

    def references(self) -> list[Proposal]:
        return [p for p in self.proposals if p.kind in ("reference", "conditional_reference")]

    def find(self, kind: str, table: str, column: str | None = None) -> Proposal | None:
        for p in self.proposals:
            if (
                p.kind == kind
                and p.table == table
                and (column is None or p.check.get("column") == column)
            ):
                return p
        return None


@dataclass(frozen=True)
class DiscoverOptions:
    schemas: tuple[str, ...] = ()
    """Schemas to read; empty: those of the search path (`current_schemas(false)`)."""
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S


# ============================================================================ entry point
def discover(
    url: URL, options: DiscoverOptions | None = None, *, progress: ProgressLike = None
) -> Discovery:
    """Read the catalog and the data of the database at `url` (read-only, one snapshot) and
    propose a suite for it."""
    opts = options or DiscoverOptions()
    prog = as_progress(progress)
    engine = create_engine(
        url, statement_timeout_s=opts.statement_timeout_s, lock_timeout_s=opts.lock_timeout_s
    )
    doing = "connecting"
    try:
        prog.stage("snapshot", 1)
        prog.step(f"connecting to {describe(url)}")
        with read_only_snapshot(engine) as (conn, snap):
            tune_session(conn)
            doing = "reading the catalog and the data"
            schemas = _schemas(conn, opts.schemas)
            found = Discovery(
                database=describe(url),
                database_name=snap.database,
                snapshot_taken_at=snap.taken_at,
                server_version=snap.server_version,
                schemas=schemas,
                tables={},
            )
            with companion(conn) as other:  # a second connection in the same snapshot
                if other is not None:
                    tune_session(other)
                _Discoverer(conn, found, prog, other).run()
    except (sa_exc.SQLAlchemyError, psycopg2.Error) as exc:
        raise database_error(exc, url, doing=doing) from None
    finally:
        engine.dispose()
    prog.done()
    return found


def _schemas(conn: Connection, wanted: tuple[str, ...]) -> list[str]:
    if not wanted:
        return list(conn.execute(sa.text("SELECT unnest(current_schemas(false))::text")).scalars())
    present = set(
        conn.execute(
            sa.text("SELECT nspname::text FROM pg_namespace WHERE nspname = ANY(:s)"),
            {"s": list(wanted)},
        ).scalars()
    )
    missing = [s for s in wanted if s not in present]
    if missing:
        raise UsageError(f"--schema {missing[0]} does not exist in the database; check its name")
    return list(dict.fromkeys(wanted))


# ============================================================================ the catalog
@dataclass(frozen=True)
class DeclaredReference:
    table: str
    columns: list[str]
    target: str
    target_columns: list[str]
    name: str
    on_delete: str | None
    validated: bool


def _family(category: str, typtype: str) -> str:
    if typtype == "e":
        return "text"
    return _FAMILIES.get(category, "other")


def _check_values(definition: str) -> tuple[str, list[str]] | None:
    """(column, values) when a CHECK is `column IN (...)` / `column = ANY (ARRAY[...])` (or
    one `column = value`) as `pg_get_constraintdef` writes it; None for any other CHECK."""
    import pglast
    from pglast import ast
    from pglast.enums.parsenodes import A_Expr_Kind

    body = re.match(r"^CHECK \((?P<body>.*)\)(?: NO INHERIT)?(?: NOT VALID)?$", definition, re.S)
    if body is None:
        return None
    try:
        parsed: Any = pglast.parse_sql(f"SELECT {body['body']}")
        node: Any = parsed[0].stmt.targetList[0].val
    except Exception:  # a CHECK pglast cannot read is just not a value list
        return None

    def strip(n: Any) -> Any:
        while isinstance(n, ast.TypeCast):
            n = n.arg
        return n

    def constant(n: Any) -> str | None:
        n = strip(n)
        if isinstance(n, ast.A_Const) and not n.isnull and n.val is not None:
            val = n.val
            for attr in ("sval", "ival", "fval"):
                if hasattr(val, attr):
                    return str(getattr(val, attr))
        return None

    if not isinstance(node, ast.A_Expr):
        return None
    expr: Any = node
    if [getattr(s, "sval", "") for s in expr.name] != ["="]:
        return None
    column: Any = strip(expr.lexpr)
    if not isinstance(column, ast.ColumnRef) or len(column.fields or ()) != 1:
        return None
    name = getattr((column.fields or (None,))[0], "sval", None)
    if name is None:
        return None
    kind = expr.kind
    if kind == A_Expr_Kind.AEXPR_IN:
        elements = list(expr.rexpr)
    elif kind == A_Expr_Kind.AEXPR_OP_ANY and isinstance(strip(expr.rexpr), ast.A_ArrayExpr):
        elements = list(strip(expr.rexpr).elements or [])
    elif kind == A_Expr_Kind.AEXPR_OP:
        elements = [expr.rexpr]
    else:
        return None
    values = [constant(e) for e in elements]
    if not values or any(v is None for v in values):
        return None
    return name, [v for v in values if v is not None]


# ============================================================================ names
_STOP = {"id", "fk", "key", "ref", "uuid", "no", "num", "cod", "typ", "kind"}


def _stem(word: str) -> str:
    """One form for singular and plural (`warehouse`, `warehouses` -> `warehous`; `category`,
    `categories` -> `category`): the same on both sides of a comparison is all that counts."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


_NAME_LIKE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,62}$")
_HIERARCHY = {
    _stem(w)
    for w in (
        "parent",
        "manager",
        "boss",
        "supervisor",
        "predecessor",
        "successor",
        "previous",
        "next",
        "original",
        "root",
        "superior",
        "mentor",
        "referrer",
        "replaced",
        "merged",
    )
}


def tokens(name: str) -> list[str]:
    """The words of a name (`TutorProfile`, `tutor_profiles`, `tutor-profile` -> tutor,
    profile), lower case, singular and plural alike (see `_stem`)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [_stem(w) for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def name_fit(word: str, table: str) -> float:
    """How well `word` (a column's stem, a discriminator value) names `table`: 1 the same
    words, 0.9 the table's leading or trailing words (`tutor` -> `tutor_profiles`), 0.6 a
    shared word, 0.4 an abbreviation (`cust` -> `customers`), 0 otherwise."""
    w = [t for t in tokens(word) if t not in _STOP]
    t = tokens(table.rpartition(".")[2])
    if not w or not t:
        return 0.0
    if w == t:
        return 1.0
    if w == t[: len(w)] or w == t[-len(w) :]:
        return 0.9
    if set(w) & set(t):
        return 0.6
    if len(w[0]) >= 3 and t[0].startswith(w[0]):
        return 0.4
    return 0.0


def column_stem(column: str, key: str) -> str:
    """A reference column's name without its key suffix (`tutor_id` -> `tutor`)."""
    for suffix in (key, "id", "uuid", "key", "fk", "ref", "code", "no"):
        for sep in ("_", ""):
            tail = sep + suffix
            if len(column) > len(tail) and column.lower().endswith(tail.lower()):
                return column[: -len(tail)].rstrip("_")
    return column


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def check_id(*parts: str) -> str:
    return ".".join(re.sub(r"[^A-Za-z0-9_:-]+", "_", p).strip("_") or "_" for p in parts)


# ============================================================================ discovery
@dataclass
class _Profile:
    rows: int
    nonnull: int
    low: Any
    high: Any
    values: list[str] | None = None
    """The distinct values of a text column that has few (a discriminator candidate)."""

    @property
    def distinct(self) -> int | None:
        return None if self.values is None else len(self.values)


@dataclass
class _Reference:
    """A reference the discovery settled on (declared, or found in the data)."""

    table: str
    column: str
    target: str
    target_column: str
    declared: bool
    best: Candidate | None = None
    alternatives: list[Candidate] = field(default_factory=list)


@dataclass(frozen=True)
class _TypeWhere:
    """How the ids of one discriminator value fall in the rows of one type of their table."""

    column: str  # the target's type column
    found: int  # rows whose id is a row of the target
    typed: int  # ... of the value's type
    base: float  # the share of the target's rows of that type

    @property
    def wrong(self) -> int:
        return self.found - self.typed

    @property
    def ok(self) -> bool:
        return (
            self.found > 0
            and self.base < 0.99
            and self.typed >= 0.9 * self.found
            and self.wrong <= 0.25 * (1 - self.base) * self.found
        )

    def describe(self, table: str, value: str) -> str:
        return (
            f"where {table}.{self.column} = {value!r}: {self.typed} of the {self.found} ids "
            f"found in {table} are rows of that {self.column} ({_pct(self.typed / self.found)}; "
            f"{_pct(self.base)} of its rows are)"
        )


class _Discoverer:
    def __init__(
        self, conn: Connection, found: Discovery, prog: Any, other: Connection | None = None
    ) -> None:
        self._main = conn
        self._other = other
        self._local = threading.local()
        self.found = found
        self.prog = prog
        self.tables: dict[str, TableInfo] = {}
        self.by_oid: dict[int, TableInfo] = {}
        self.declared: list[DeclaredReference] = []
        self.checks_in: dict[str, list[tuple[str, list[str]]]] = defaultdict(list)
        self.indexes: list[tuple[str, str, list[str] | None]] = []
        self.profiles: dict[tuple[str, str], _Profile] = {}
        self.references: dict[tuple[str, str], _Reference] = {}
        self.ids: set[str] = set()
        self.nulls_equal: set[tuple[str, tuple[str, ...]]] = set()
        self.nonnull: dict[tuple[str, str], int] = {}
        self.shapes: dict[tuple[str, str], tuple[int, int]] = {}
        """(non-NULL rows, distinct values) of each column tested for inclusion."""
        self.value_counts: dict[tuple[str, str], dict[str, int]] = {}
        self._collations: dict[str, dict[str, tuple[int, str]]] = {}
        """Rows per value of the text columns of few values (as `few_values` read them)."""

    @property
    def conn(self) -> Connection:
        """The connection of the running thread: the snapshot's, or its companion's."""
        return getattr(self._local, "conn", self._main)

    def each(
        self, items: list[Any], work: Callable[[Any], Any], step: Callable[[Any], str]
    ) -> list[Any]:
        """`work(item)` for every item, results in item order: on the snapshot's connection
        and, when there is one, on a second connection in the same snapshot at the same time
        (each item's statements read only; what they record is keyed by the item)."""
        if self._other is None or len(items) < 2:
            out = []
            for item in items:
                self.prog.step(step(item))
                out.append(work(item))
            return out
        pending = list(enumerate(items))
        results: dict[int, Any] = {}
        lock = threading.Lock()

        def take() -> tuple[int, Any] | None:
            with lock:
                return pending.pop(0) if pending else None

        def side() -> None:
            self._local.conn = self._other
            while (got := take()) is not None:
                results[got[0]] = work(got[1])

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="refaudit-discover") as pool:
            helper = pool.submit(side)
            try:
                while (got := take()) is not None:
                    self.prog.step(step(got[1]))
                    results[got[0]] = work(got[1])
            finally:
                with lock:
                    pending.clear()  # on an error here, the other thread stops too
                helper.result()
        return [results[i] for i in range(len(items))]

    def plannable(
        self,
        what: str,
        keys: list[tuple[TableInfo, str]],
        statement: Callable[[list[tuple[TableInfo, str]]], Any],
    ) -> list[tuple[TableInfo, str]]:
        """The keys whose statement PostgreSQL plans (`EXPLAIN`, nothing runs), when one of
        several candidate keys made a statement fail: those it refuses (a comparison of
        types with no operator) are dropped with a note, the rest tested together again."""
        return [
            (u, k)
            for u, k in keys
            if self.attempt(
                f"{what} -> {u.name}.{k}", sa.text(f"EXPLAIN {statement([(u, k)]).text}")
            )
            is not None
        ]

    def attempt(
        self, what: str, stmt: Any, params: dict[str, Any] | None = None, note: bool = True
    ) -> list[Any] | None:
        """The rows of one candidate's statement, or None when PostgreSQL refuses it (types
        it cannot compare, a value it cannot cast, the statement timeout): the statement runs
        in a savepoint, so the snapshot's transaction survives, and the candidate is dropped
        with a note. A lost connection or a cancel asked by the user still ends discovery."""
        conn = self.conn
        try:
            with conn.begin_nested():
                return list(conn.execute(stmt, params or {}).all())
        except sa_exc.DBAPIError as exc:
            message = str(getattr(exc.orig, "pgerror", None) or exc.orig or exc).strip()
            if exc.connection_invalidated or "due to user request" in message:
                raise
            first = message.splitlines()[0] if message else type(exc.orig).__name__
            if note:
                self.found.notes.append(
                    f"{what}: not tested, PostgreSQL refused its statement ({first})"
                )
            return None

    # ---------------------------------------------------------------- running
    def run(self) -> None:
        self.prog.stage("catalog", 1)
        self.prog.step("tables, keys, constraints and indexes")
        self.read_catalog()  # and the unique indexes that back no constraint
        self.found.tables = self.tables
        self.catalog_proposals()
        keyed = [t for t in self.tables.values() if t.key is not None]
        self.prog.stage("profiles", len(self.tables))
        self.each(list(self.tables.values()), self.profile, lambda t: t.name)
        families = {u.columns[k].family for u in self.tables.values() for k in u.single_keys()}
        # a table keyed by a composite primary key references too (its rows have a key)
        sources = [t for t in self.tables.values() if t.key or _composite_key(t)]
        dependents = [
            (t, c)
            for t in sources
            for c in t.columns.values()
            if c.family in families and self.is_dependent(t, c)
        ]
        composites = self.composite_candidates()
        self.prog.stage("references", len(dependents) + len(composites))
        found = self.each(
            dependents, lambda tc: self.inclusion(*tc), lambda tc: f"{tc[0].name}.{tc[1].name}"
        )
        unconditional: dict[tuple[str, str], list[Candidate]] = {
            (t.name, c.name): got for (t, c), got in zip(dependents, found, strict=True)
        }
        composite_found = self.each(
            composites,
            self.composite_inclusion,
            lambda c: f"{c[0].name}({', '.join(c[1])})",
        )
        self.preliminary_references(dependents, unconditional)
        pairs = self.discriminator_pairs(keyed, unconditional)
        self.prog.stage("conditional", len(pairs))
        conditional: dict[tuple[str, str], Proposal] = {}
        for table, column, disc in pairs:
            self.prog.step(f"{table.name}.{column.name} by {disc}")
            best = unconditional.get((table.name, column.name), [])
            got = self.conditional(table, column, disc, best)
            key = (table.name, column.name)
            if got is not None and (
                key not in conditional or got.confidence > conditional[key].confidence
            ):
                conditional[key] = got
        self.prog.stage("generic", 1)
        self.prog.step("type tables and the generic relations through them")
        generic = self.generic_relations(unconditional)
        self.prog.stage("mis-keys", 1)
        self.prog.step("references whose values come from another key space")
        self.settle(dependents, unconditional, {**conditional, **generic})
        for (t, cols, _targets), cands in zip(composites, composite_found, strict=True):
            self.propose_inferred_composite(t, cols, cands)
        self.prog.stage("rules", len(keyed))
        for t in keyed:
            self.prog.step(t.name)
            self.rules(t, conditional)

    # ---------------------------------------------------------------- catalog
    def read_catalog(self) -> None:
        schemas = self.found.schemas
        relations = read_schema_tables(
            self.conn,
            schemas,
            {"columns", "constraints", "indexes"},
            Definitions(frozenset({"p", "u", "f", "c"}), indexes=False),
        )
        for rel in relations:
            # the suite's spelling: a part holding a dot in double quotes
            name = sqltext.join_name(None if rel.current_schema else rel.schema, rel.relname)
            info = TableInfo(name=name, schema=rel.schema, relname=rel.relname, columns={})
            self.tables[name] = info
            self.by_oid[rel.oid] = info
            for col in rel.columns:
                info.columns[col.name] = ColumnInfo(
                    col.name,
                    col.type,
                    _family(col.base_category, col.base_typtype),
                    col.not_null,
                    col.base_typtype == "e",
                )
        by_oid = sorted(relations, key=lambda r: r.oid)
        for rel in by_oid:
            table = self.by_oid[rel.oid]
            for con in rel.constraints:
                cols = list(con.columns)
                if con.type == "p":
                    table.primary_key = cols
                elif con.type == "u":
                    table.uniques.append(cols)
                    if "NULLS NOT DISTINCT" in con.definition:
                        self.nulls_equal.add((table.name, tuple(cols)))
                elif con.type == "f":
                    target = self.by_oid.get(con.target_oid)
                    if target is None:
                        self.found.notes.append(
                            f"foreign key {con.name} of {table.name} references a table "
                            f"outside the schemas read ({', '.join(schemas)}): not checked"
                        )
                        continue
                    self.declared.append(
                        DeclaredReference(
                            table.name,
                            cols,
                            target.name,
                            list(con.target_columns),
                            con.name,
                            con.on_delete_action,
                            con.validated,
                        )
                    )
                elif con.type == "c":
                    values = _check_values(con.definition)
                    if values is not None and values[0] in table.columns:
                        self.checks_in[table.name].append(values)
        for rel in by_oid:
            for index in rel.indexes:
                if index.backs_constraint:
                    continue
                index_cols = list(index.columns) if index.plain and not index.partial else None
                self.indexes.append((self.by_oid[rel.oid].name, index.name, index_cols))
                if index.unique and index.valid and index_cols:
                    # a unique index backing no constraint is a key too (a foreign key may
                    # reference one)
                    self.by_oid[rel.oid].unique_indexes[index.name] = index_cols

    def add(self, proposal: Proposal) -> None:
        base = str(proposal.check["id"])
        cid, n = base, 1
        while cid in self.ids:
            n += 1
            cid = f"{base}-{n}"
        self.ids.add(cid)
        proposal.check = {"id": cid, **{k: v for k, v in proposal.check.items() if k != "id"}}
        self.found.proposals.append(proposal)

    def catalog_proposals(self) -> None:
        for t in self.tables.values():
            keyed = t.key is not None
            if not keyed:
                self.found.notes.append(
                    f"table {t.name} has no single-column key (primary key, or NOT NULL "
                    "UNIQUE or unique index): only its catalog is checked"
                )
            if t.primary_key:
                self.add_constraint(
                    t, "primary_key", t.primary_key, f"PRIMARY KEY ({', '.join(t.primary_key)})"
                )
                if keyed:
                    self.add_unique(t, t.primary_key, "PRIMARY KEY")
            for cols in t.uniques:
                self.add_constraint(t, "unique", cols, f"UNIQUE ({', '.join(cols)})")
                if keyed:
                    self.add_unique(t, cols, "UNIQUE")
            for name, cols in t.unique_indexes.items():
                if keyed and cols not in t.uniques and cols != t.primary_key:
                    self.add_unique(t, cols, f"UNIQUE INDEX {name}")
            required = [c.name for c in t.columns.values() if c.not_null and c.name != t.key]
            if required and keyed:
                self.add(
                    Proposal(
                        {
                            "id": check_id(t.name, "not_null"),
                            "kind": "not_null",
                            "table": t.name,
                            "columns": required,
                        },
                        "catalog",
                        1.0,
                        [f"NOT NULL in the catalog: {', '.join(required)}"],
                    )
                )
            for column, values in self.checks_in.get(t.name, []):
                if not keyed:
                    continue
                typed: list[str | int] = list(values)
                if t.columns[column].type in _INTEGER_TYPES and all(
                    re.fullmatch(r"-?\d+", v) for v in values
                ):
                    typed = [int(v) for v in values]
                self.add(
                    Proposal(
                        {
                            "id": check_id(t.name, column, "in_set"),
                            "kind": "in_set",
                            "table": t.name,
                            "column": column,
                            "values": typed,
                        },
                        "catalog",
                        1.0,
                        [f"CHECK in the catalog: {column} IN ({', '.join(values)})"],
                    )
                )
        for table, name, index_columns in self.indexes:
            check: dict[str, Any] = {
                "id": check_id("catalog", table, name),
                "kind": "index",
                "table": table,
                "name": name,
            }
            if index_columns:
                check["columns"] = index_columns
            self.add(Proposal(check, "catalog", 1.0, [f"index {name} in the catalog"]))

    def add_constraint(self, t: TableInfo, kind: str, cols: list[str], what: str) -> None:
        self.add(
            Proposal(
                {
                    "id": check_id("catalog", t.name, kind, *cols),
                    "kind": "constraint",
                    "table": t.name,
                    "type": kind,
                    "columns": cols,
                },
                "catalog",
                1.0,
                [f"{what} in the catalog"],
            )
        )

    def add_unique(self, t: TableInfo, cols: list[str], what: str) -> None:
        check: dict[str, Any] = {
            "id": check_id(t.name, *cols, "unique"),
            "kind": "unique",
            "table": t.name,
            "columns": cols,
        }
        if (t.name, tuple(cols)) in self.nulls_equal:
            check["nulls"] = "equal"  # UNIQUE NULLS NOT DISTINCT
        self.add(
            Proposal(
                check,
                "catalog",
                1.0,
                [f"{what} ({', '.join(cols)}) in the catalog"],
            )
        )

    # ---------------------------------------------------------------- profiles
    def profile(self, t: TableInfo) -> None:
        """Rows, non-NULL counts and min/max of every comparable column in one scan; small
        distinct counts of text columns (discriminator candidates)."""
        cols = [c for c in t.columns.values() if c.family in ("number", "text", "uuid")]
        exprs = ["count(*)"]
        for c in cols:
            q = _q(c.name)
            cast = "::text" if c.enum else ""
            exprs.append(f"count({q})")
            if c.family == "uuid":
                exprs += [f"min({q}::text)", f"max({q}::text)"]
            else:
                exprs += [f"min({q}{cast})", f"max({q}{cast})"]
        others = [c for c in t.columns.values() if c not in cols]
        exprs += [f"count({_q(c.name)})" for c in others]
        row = self.conn.execute(sa.text(f"SELECT {', '.join(exprs)} FROM {_q_table(t)}")).one()
        t.rows = int(row[0])
        for i, c in enumerate(cols):
            prof = _Profile(t.rows, int(row[1 + 3 * i]), row[2 + 3 * i], row[3 + 3 * i])
            self.profiles[(t.name, c.name)] = prof
        for i, c in enumerate(others):
            self.nonnull[(t.name, c.name)] = int(row[1 + 3 * len(cols) + i])
        for c in cols:
            self.nonnull[(t.name, c.name)] = self.profiles[(t.name, c.name)].nonnull
        texts = [
            c
            for c in cols
            if c.family == "text" and c.name != t.key and self.profiles[(t.name, c.name)].nonnull
        ]
        for c, values in zip(texts, self.few_values(t, texts), strict=True):
            self.profiles[(t.name, c.name)].values = values

    def n_distinct(self, t: TableInfo) -> dict[str, float]:
        rows = self.conn.execute(
            sa.text(
                "SELECT attname::text, n_distinct FROM pg_stats "
                "WHERE schemaname = :s AND tablename = :t AND NOT inherited"
            ),
            {"s": t.schema, "t": t.relname},
        )
        return {r[0]: float(r[1]) for r in rows}

    def few_values(self, t: TableInfo, columns: list[ColumnInfo]) -> list[list[str] | None]:
        """Per column, its distinct values when there are at most MAX_DISCRIMINATOR_VALUES,
        else None. Columns with many values are ruled out without a full read: by
        `pg_stats.n_distinct` where ANALYZE has run, else by the first PREFIX_ROWS rows; the
        rest are read in one scan."""
        if not columns:
            return []
        stats = self.n_distinct(t)
        limit = MAX_DISCRIMINATOR_VALUES
        candidates = []
        for c in columns:
            estimate = stats.get(c.name)
            n = None if estimate is None else (-estimate * t.rows if estimate < 0 else estimate)
            candidates.append(n is None or n <= 3 * limit)
        probe = [c for c, ok in zip(columns, candidates, strict=True) if ok]
        if probe:
            counts = ", ".join(f"count(DISTINCT {_q(c.name)})" for c in probe)
            names = ", ".join(_q(c.name) for c in probe)
            row = self.conn.execute(
                sa.text(
                    f"SELECT {counts} FROM (SELECT {names} FROM {_q_table(t)} "
                    f"LIMIT {PREFIX_ROWS}) p"
                )
            ).one()
            probe = [c for c, n in zip(probe, row, strict=True) if n <= limit]
        found: dict[str, list[str] | None] = {}
        if probe:
            # one hashed pass for every column (GROUPING SETS), at most limit + 1 values each
            exprs = [f"{_q(c.name)}::text" for c in probe]
            which = " ".join(f"WHEN GROUPING({e}) = 0 THEN {i}" for i, e in enumerate(exprs))
            grouped = (
                f"SELECT CASE {which} END AS i, coalesce({', '.join(exprs)}) AS value, "
                f"count(*) AS n FROM {_q_table(t)} "
                f"GROUP BY GROUPING SETS ({', '.join(f'({e})' for e in exprs)})"
            )
            values: dict[int, dict[str, int]] = defaultdict(dict)
            for i, value, n in self.conn.execute(
                sa.text(
                    f"SELECT i, value, n FROM (SELECT g.*, row_number() OVER (PARTITION BY i) "
                    f"AS r FROM ({grouped}) g WHERE value IS NOT NULL) w WHERE r <= {limit + 1}"
                )
            ):
                values[int(i)][str(value)] = int(n)
            for i, c in enumerate(probe):
                held = values.get(i, {})
                found[c.name] = sorted(held) if len(held) <= limit else None
                if len(held) <= limit:
                    self.value_counts[(t.name, c.name)] = held
        return [found.get(c.name) for c in columns]

    # ---------------------------------------------------------------- inclusion
    def is_dependent(self, t: TableInfo, c: ColumnInfo) -> bool:
        """A column that may reference a key: comparable, not all NULL, not its table's own
        `id`-like key (a key named after another table, `user_id`, may)."""
        if c.family not in ("number", "text", "uuid"):
            return False
        if c.family == "number" and not c.type.startswith(
            ("smallint", "integer", "bigint", "numeric")
        ):
            return False
        if c.name in t.single_keys() and not any(
            name_fit(column_stem(c.name, "id"), o.name) >= 0.9
            for o in self.tables.values()
            if o is not t
        ):
            return False
        prof = self.profiles.get((t.name, c.name))
        return prof is not None and prof.nonnull > 0

    def keys_for(
        self, t: TableInfo, c: ColumnInfo, disc: str | None = None
    ) -> list[tuple[TableInfo, str]]:
        """The keys `c`'s values may be: same type family, overlapping range; the best
        MAX_KEYS_PER_COLUMN by name (the column's, or a discriminator value's), then by how
        closely the key's range matches the values' (a few orphans beyond it do not matter)."""
        prof = self.profiles[(t.name, c.name)]
        values = (self.profiles[(t.name, disc)].values or []) if disc is not None else []
        out: list[tuple[tuple[float, float], TableInfo, str]] = []
        for u in self.tables.values():
            for k in u.single_keys():
                kc = u.columns[k]
                if (u is t and k == c.name) or kc.family != c.family:
                    continue
                kp = self.profiles.get((u.name, k))
                if kp is None or not kp.nonnull:
                    continue
                if not _overlaps(prof.low, prof.high, kp.low, kp.high):
                    continue
                fit = max(
                    [self.column_fit(t, c.name, u, k)]
                    + [self.value_fit(v, u, t, disc) for v in values if disc is not None]
                )
                out.append(((-fit, -_range_jaccard(prof.low, prof.high, kp.low, kp.high)), u, k))
        out.sort(key=lambda x: x[0])
        return [(u, k) for _, u, k in out[:MAX_KEYS_PER_COLUMN]]

    def inclusion(
        self, t: TableInfo, c: ColumnInfo, keys: list[tuple[TableInfo, str]] | None = None
    ) -> list[Candidate]:
        """How many of `c`'s values (rows and distinct) each candidate key lacks: one
        statement, the distinct values grouped once and joined to every key (`_probes`)."""
        keys = self.keys_for(t, c) if keys is None else keys
        if not keys:
            return []
        what = f"{t.name}.{c.name}"
        got = self.attempt(what, self._inclusion_sql(t, c.name, keys), note=len(keys) == 1)
        if got is None and len(keys) > 1:
            keys = self.plannable(what, keys, lambda ks: self._inclusion_sql(t, c.name, ks))
            got = self.attempt(what, self._inclusion_sql(t, c.name, keys)) if keys else None
        if not got:
            return []
        rows = got[0]
        self.shapes[(t.name, c.name)] = (int(rows[1] or 0), int(rows[0] or 0))
        return [
            Candidate(
                u.name,
                k,
                int(rows[1] or 0),
                int(rows[0] or 0),
                int(rows[2 + 2 * i] or 0),
                int(rows[3 + 2 * i] or 0),
                u.rows,
                self.column_fit(t, c.name, u, k),
            )
            for i, (u, k) in enumerate(keys)
        ]

    def _dense(self, c: ColumnInfo, u: TableInfo, key: str) -> tuple[int, int] | None:
        """(low, high) when the integer key `u.key` holds every integer from its min to its
        max (as many distinct values as the range is wide; a key's values are distinct) and
        `c` is an integer column too: a value is then a key exactly when it lies in the
        range, and no key table need be read."""
        kp = self.profiles.get((u.name, key))
        if (
            c.type not in _INTEGER_TYPES
            or u.columns[key].type not in _INTEGER_TYPES
            or kp is None
            or kp.low is None
            or kp.high is None
        ):
            return None
        low, high = int(kp.low), int(kp.high)
        return (low, high) if kp.nonnull == high - low + 1 else None

    def _probes(self, c: ColumnInfo, keys: list[tuple[TableInfo, str]]) -> tuple[str, str]:
        """SQL: a LEFT JOIN of the distinct values `v` of `c` to every key (a key matches a
        value at most once), and per key the rows and values it lacks. The planner hashes
        each key table once (or probes its index); a dense integer key is a range test."""
        joins, lacks = [], []
        for i, (u, k) in enumerate(keys):
            dense = self._dense(c, u, k)
            if dense is not None:
                lacks.append(f"v.v NOT BETWEEN {dense[0]} AND {dense[1]}")
                continue
            q = _q(k)
            joins.append(f"LEFT JOIN {_q_table(u)} k{i} ON k{i}.{q} = v.v")
            lacks.append(f"k{i}.{q} IS NULL")
        misses = ", ".join(
            f"sum(v.n) FILTER (WHERE {lack}), count(*) FILTER (WHERE {lack})" for lack in lacks
        )
        return " ".join(joins), misses

    def _inclusion_sql(self, t: TableInfo, column: str, keys: list[tuple[TableInfo, str]]) -> Any:
        q = _q(column)
        joins, misses = self._probes(t.columns[column], keys)
        return sa.text(
            f"WITH v AS MATERIALIZED (SELECT {q} AS v, count(*) AS n FROM {_q_table(t)} "
            f"WHERE {q} IS NOT NULL GROUP BY {q}) "
            f"SELECT count(*), sum(v.n), {misses} FROM v {joins}"
        )

    # ---------------------------------------------------------------- composite
    def composite_candidates(
        self,
    ) -> list[tuple[TableInfo, list[str], list[tuple[TableInfo, list[str]]]]]:
        """(table, its columns, the composite keys they may be) to test for inclusion: only
        keys of several columns the catalog declares (primary key, UNIQUE, unique index);
        per key column, a column of the row of the same type family whose name is the key
        column's (`tenant_id`) or names the key's table (`order_id` -> `orders(tenant_id,
        id)`), never the row's own single key by name alone, and not the row's own key
        as a whole by names alone; ranges that overlap; nothing a foreign key declares."""
        declared = {(d.table, tuple(d.columns)) for d in self.declared}
        found: dict[tuple[str, tuple[str, ...]], list[tuple[TableInfo, list[str]]]] = {}
        for u in self.tables.values():
            for key in u.composite_keys():
                if len(key) > 4:
                    continue
                for t in self.tables.values():
                    if t is u or (t.key is None and _composite_key(t) is None):
                        continue
                    for cols, named in self.composite_columns(t, u, key):
                        own = any(set(cols) == set(k) for k in [t.primary_key, *t.all_uniques()])
                        if (t.name, tuple(cols)) in declared or (own and not named):
                            continue
                        targets = found.setdefault((t.name, tuple(cols)), [])
                        if (u, key) not in targets:
                            targets.append((u, key))
        return [
            (self.tables[table], list(cols), targets[:MAX_KEYS_PER_COLUMN])
            for (table, cols), targets in sorted(found.items())
        ]

    def composite_columns(
        self, t: TableInfo, u: TableInfo, key: list[str]
    ) -> list[tuple[list[str], bool]]:
        """The columns of `t` that may hold `u`'s composite `key` (see
        `composite_candidates`), with whether a column names `u`."""
        options: list[list[tuple[str, bool]]] = []
        for k in key:
            kc, kp = u.columns[k], self.profiles.get((u.name, k))
            here = []
            for a in t.columns.values():
                prof = self.profiles.get((t.name, a.name))
                if a.family != kc.family or kp is None or prof is None or not prof.nonnull:
                    continue
                if not _overlaps(prof.low, prof.high, kp.low, kp.high):
                    continue
                named = name_fit(column_stem(a.name, k), u.name) >= 0.9
                if named or (a.name == k and a.name not in t.single_keys()):
                    here.append((a.name, named))
            if not here:
                return []
            options.append(here)
        out = []
        for combo in itertools.product(*options):
            cols = [a for a, _ in combo]
            if len(set(cols)) == len(cols):
                out.append((cols, any(n for _, n in combo)))
        return out[:4]

    def composite_inclusion(
        self, item: tuple[TableInfo, list[str], list[tuple[TableInfo, list[str]]]]
    ) -> list[Candidate]:
        """How many of the rows' value tuples (every column set: MATCH SIMPLE) each
        candidate composite key lacks: one statement, as for one column."""
        t, cols, targets = item
        names = [_q(c) for c in cols]
        vs = [f"v.v{i}" for i in range(len(cols))]
        probes = ", ".join(
            f"{_member_tuple(vs, u, key)} AS h{i}" for i, (u, key) in enumerate(targets)
        )
        misses = ", ".join(
            f"sum(v.n) FILTER (WHERE NOT x.h{i}), count(*) FILTER (WHERE NOT x.h{i})"
            for i in range(len(targets))
        )
        picked = ", ".join(f"{q} AS v{i}" for i, q in enumerate(names))
        got = self.attempt(
            f"{t.name}({', '.join(cols)})",
            sa.text(
                f"WITH v AS MATERIALIZED (SELECT {picked}, count(*) AS n FROM {_q_table(t)} "
                f"WHERE {' AND '.join(f'{q} IS NOT NULL' for q in names)} "
                f"GROUP BY {', '.join(names)}) "
                f"SELECT count(*), sum(v.n), {misses} FROM v, LATERAL (SELECT {probes}) x"
            ),
        )
        if not got:
            return []
        row = got[0]
        return [
            Candidate(
                u.name,
                ", ".join(key),
                int(row[1] or 0),
                int(row[0] or 0),
                int(row[2 + 2 * i] or 0),
                int(row[3 + 2 * i] or 0),
                u.rows,
                max(name_fit(column_stem(c, k), u.name) for c, k in zip(cols, key, strict=True)),
            )
            for i, (u, key) in enumerate(targets)
        ]

    def propose_inferred_composite(
        self, t: TableInfo, cols: list[str], cands: list[Candidate]
    ) -> None:
        """A composite reference the data holds (at least MIN_COVERAGE of the rows whose
        columns are all set), to the best-fitting key."""
        ranked = _ranked(cands)
        if not ranked:
            return
        best, rest = ranked[0], ranked[1:]
        confidence = best.coverage * (1.0 if best.name >= 0.9 else 0.9)
        if best.distinct < 10:
            confidence *= 0.5
        if any(x.score > best.score - 0.05 for x in rest):
            confidence *= 0.8
        key = best.column.split(", ")
        self.add(
            Proposal(
                {
                    "id": check_id(t.name, "_".join(cols), "reference"),
                    "kind": "reference",
                    "table": t.name,
                    "columns": cols,
                    "target": {"table": best.table, "columns": key},
                },
                "data",
                round(confidence, 3),
                [
                    f"({', '.join(cols)}): {best.table}({best.column}) "
                    f"({_pct(best.coverage)} of {best.rows} rows with every column set, "
                    f"{best.distinct - best.missing_distinct} of {best.distinct} value tuples"
                    + (f", name fits {best.name:.1f})" if best.name else ")"),
                    f"no foreign key declares it; {best.table}({best.column}) is a declared key",
                ],
                [f"{x.table}({x.column}) ({_pct(x.coverage)} of {x.rows} rows)" for x in rest[:3]],
                best.missing_rows,
            )
        )

    # ---------------------------------------------------------------- conditional
    def discriminator_pairs(
        self, keyed: list[TableInfo], unconditional: dict[tuple[str, str], list[Candidate]]
    ) -> list[tuple[TableInfo, ColumnInfo, str]]:
        """(table, id column, discriminator) to test: `x_type` beside `x_id` only, where
        there is one; else every low-cardinality text column whose values look like names
        (`student`, `TutorProfile`, `Admin::User`; not sentences) beside an id column that no
        key fits by name."""
        pairs = []
        for t in keyed:
            discs = [
                c.name
                for c in t.columns.values()
                if c.family == "text"
                and (p := self.profiles.get((t.name, c.name))) is not None
                and p.values is not None
                and 2 <= len(p.values) <= max(2, p.nonnull // 3)
                and sum(bool(_NAME_LIKE.match(v)) for v in p.values) >= 0.8 * len(p.values)
            ]
            for c in t.columns.values():
                cands = unconditional.get((t.name, c.name))
                if cands is None:
                    continue
                good = [x for x in cands if x.coverage >= MIN_COVERAGE]
                fits = any(x.name >= 0.9 and x.coverage >= 0.98 for x in good)
                stem = column_stem(c.name, "id")
                same = [d for d in discs if stem != c.name and column_stem(d, "type") == stem]
                if same:
                    pairs += [(t, c, d) for d in same]
                elif not fits:
                    pairs += [(t, c, d) for d in discs]
        return pairs

    def conditional(
        self, t: TableInfo, c: ColumnInfo, disc: str, unconditional: list[Candidate]
    ) -> Proposal | None:
        keys = self.keys_for(t, c, disc)
        if not keys:
            return None
        q, dq = _q(c.name), _q(disc)

        def statement(keys: list[tuple[TableInfo, str]]) -> Any:
            joins, misses = self._probes(c, keys)
            return sa.text(
                f"WITH v AS MATERIALIZED (SELECT {dq}::text AS d, {q} AS v, count(*) AS n "
                f"FROM {_q_table(t)} WHERE {q} IS NOT NULL AND {dq} IS NOT NULL "
                f"GROUP BY 1, 2) SELECT v.d, count(*), sum(v.n), {misses} "
                f'FROM v {joins} GROUP BY v.d ORDER BY v.d COLLATE "C"'
            )

        per_value: dict[str, list[Candidate]] = {}
        what = f"{t.name}.{c.name} by {disc}"
        rows = self.attempt(what, statement(keys), note=len(keys) == 1)
        if rows is None and len(keys) > 1:
            keys = self.plannable(what, keys, statement)
            rows = self.attempt(what, statement(keys)) if keys else None
        if rows is None:
            return None
        for row in rows:
            per_value[row[0]] = [
                Candidate(
                    u.name,
                    k,
                    int(row[2]),
                    int(row[1]),
                    int(row[3 + 2 * i] or 0),
                    int(row[4 + 2 * i] or 0),
                    u.rows,
                    self.value_fit(row[0], u, t, disc),
                )
                for i, (u, k) in enumerate(keys)
            ]
        total = sum(cs[0].rows for cs in per_value.values() if cs)
        if not total:
            return None
        # values that fit no key themselves: their ids may be keys of a key space that map
        # through a column of the table the value names (the seed's users.id requesters)
        targets: dict[str, Candidate] = {}
        others: dict[str, list[Candidate]] = {}
        normal = {v: " ".join(tokens(v)) for v in per_value}
        for value, cands in sorted(per_value.items(), key=lambda kv: -kv[1][0].rows):
            share = cands[0].rows / total
            through = self.through_candidates(t, c, cands, disc=disc, value=value)
            ranked = _ranked(cands + through)
            if not ranked:
                continue
            best = ranked[0]
            rival = next((x for x in ranked[1:] if x.table != best.table), None)
            duplicate = any(normal[v] == normal[value] for v in targets)
            if duplicate or (share < RARE_VALUE_SHARE and best.name < 0.6):
                continue  # a misspelling or a stray value: the discriminator finding's business
            if rival is not None and best.score - rival.score < 0.05:
                return None  # the values fit another table as well: nothing picks the target
            targets[value] = best
            others[value] = ranked[1:4]
        if len(targets) < 2 or len({x.table for x in targets.values()}) < 2:
            return None
        covered = sum(x.rows for x in targets.values())
        score = sum(x.score * x.rows for x in targets.values()) / covered
        plain = max(
            (x for x in unconditional if x.coverage >= MIN_COVERAGE),
            key=lambda x: x.score,
            default=None,
        )
        if plain is not None and score < plain.score + 0.05:
            return None
        coverage = sum(x.rows - x.missing_rows for x in targets.values()) / covered
        if column_stem(disc, "type") != column_stem(c.name, "id"):
            # no `x_type` beside `x_id`: the names of the values are not enough (a quantity
            # beside a discriminator fits its tables as well); the data must need them
            fill = sum(x.fill * x.rows for x in targets.values()) / covered
            if fill < 0.5 or (
                plain is not None and (plain.coverage >= 0.95 or coverage < plain.coverage + 0.05)
            ):
                return None
        named = sum(x.rows for x in targets.values() if x.name >= 0.6) / covered
        confidence = coverage * (0.75 + 0.25 * named)
        if covered < 0.95 * total:
            confidence *= 0.9
        violations = sum(x.rows if x.through else x.missing_rows for x in targets.values())
        violations += total - covered
        if any(x.through for x in targets.values()):
            confidence = min(confidence, 0.8)
        wheres = self.sti_wheres(t, c, disc, targets)
        violations += sum(w.wrong for w in wheres.values())
        check: dict[str, Any] = {
            "id": check_id(t.name, c.name, "reference"),
            "kind": "conditional_reference",
            "table": t.name,
            "column": c.name,
            "discriminator": disc,
            "targets": {
                v: {"table": x.table, "column": x.column}
                | ({"where": {"column": wheres[v].column, "eq": v}} if v in wheres else {})
                for v, x in targets.items()
            },
        }
        evidence = [
            f"{disc} = {v!r}: {x.describe()}"
            + (" [mis-keyed: values of the key space]" if x.through else "")
            + (f"; {wheres[v].describe(x.table, v)}" if v in wheres else "")
            for v, x in targets.items()
        ]
        unknown = sorted(set(per_value) - set(targets))
        if unknown:
            evidence.append(
                f"{total - covered} rows with other {disc} values "
                f"({', '.join(map(repr, unknown))}) are discriminator findings"
            )
        alternatives = [
            f"{disc} = {v!r}: {o.describe()}" for v, os_ in others.items() for o in os_[:2]
        ]
        if plain is not None:
            alternatives.insert(0, f"one target for every row: {plain.describe()}")
        return Proposal(check, "data", round(confidence, 3), evidence, alternatives, violations)

    def sti_wheres(
        self, t: TableInfo, c: ColumnInfo, disc: str, targets: dict[str, Candidate]
    ) -> dict[str, _TypeWhere]:
        """Single-table inheritance: where several discriminator values name one table and a
        few-valued text column of it holds those values (`users.type` in ('User',
        'AdminUser')), the target `where` of each value whose ids fall in rows of its own type
        (`{column: type, eq: AdminUser}`): at least 90% of the ids found in the table, and
        at most a quarter of the wrong-type ids that ids of any row would give (a type
        most rows have proves nothing). One join per such table and type column."""
        by_target: dict[tuple[str, str], list[str]] = defaultdict(list)
        for v, x in targets.items():
            if not x.through:
                by_target[(x.table, x.column)].append(v)
        out: dict[str, _TypeWhere] = {}
        for (table, key), values in sorted(by_target.items()):
            if len(values) < 2:
                continue
            u = self.tables[table]
            for col in u.columns.values():
                prof = self.profiles.get((u.name, col.name))
                if (
                    col.family != "text"
                    or (u is t and col.name == disc)
                    or prof is None
                    or prof.values is None
                    or self.is_polymorphic_type(u, col.name)
                ):
                    continue
                held = sorted(set(values) & set(prof.values))
                if not held:
                    continue
                got = self.type_counts(t, c.name, disc, u, key, col.name, held)
                for value, found in got.items():
                    if found.ok and (value not in out or found.typed > out[value].typed):
                        out[value] = found
        return out

    def type_counts(
        self,
        t: TableInfo,
        column: str,
        disc: str,
        u: TableInfo,
        key: str,
        type_column: str,
        values: list[str],
    ) -> dict[str, _TypeWhere]:
        """Per discriminator value: the rows whose id is a row of `u`, and how many of those
        rows have `type_column` = the value; with the share of `u`'s rows of that type (the
        rows per value the profile counted: `type_column` is a few-valued text column)."""
        q, dq, kq, tq = (_q(n) for n in (column, disc, key, type_column))
        rows = (
            self.attempt(
                f"{t.name}.{column} by {disc} in rows of {u.name}.{type_column}",
                sa.text(
                    f"SELECT t.{dq}::text, count(*), "
                    f"count(*) FILTER (WHERE k.{tq}::text = t.{dq}::text) "
                    f"FROM {_q_table(t)} t JOIN {_q_table(u)} k ON k.{kq} = t.{q} "
                    f"WHERE t.{dq}::text = ANY(:values) GROUP BY 1"
                ),
                {"values": values},
            )
            or []
        )
        base = self.value_counts[(u.name, type_column)]
        return {
            str(value): _TypeWhere(
                type_column, int(found), int(typed), int(base.get(value, 0)) / (u.rows or 1)
            )
            for value, found, typed in rows
        }

    def value_fit(self, value: str, u: TableInfo, t: TableInfo, disc: str) -> float:
        """How well a discriminator value names table `u`: by name (`student` ->
        `student_profiles`, `TutorProfile` -> `tutor_profiles`), or, for single-table
        inheritance, 0.9 when a low-cardinality column of `u` holds the value itself
        (`commentable_type = 'Admin'` and `users.type = 'Admin'`)."""
        fit = name_fit(value, u.name)
        for c in u.columns.values():
            if (u is t and c.name == disc) or self.is_polymorphic_type(u, c.name):
                continue
            prof = self.profiles.get((u.name, c.name))
            if prof is not None and prof.values is not None and value in prof.values:
                return max(fit, 0.9)
        return fit

    @staticmethod
    def is_polymorphic_type(u: TableInfo, column: str) -> bool:
        """`x_type` beside `x_id`: the discriminator of a reference of `u`, not its class."""
        stem = column_stem(column, "type")
        return stem != column and any(
            other != column and column_stem(other, "id") == stem for other in u.columns
        )

    def column_fit(self, t: TableInfo, column: str, u: TableInfo, key: str) -> float:
        """How well a column's name names table `u`; halved when `u` has a column of the same
        name (`tutor_packages.tutor_id`): a table that references the same thing is its
        sibling, not its target."""
        stem = column_stem(column, key)
        fit = name_fit(stem, u.name)
        if u is not t and column in u.columns:
            fit *= 0.5
        if u is t and set(tokens(stem)) & _HIERARCHY:
            fit = max(fit, 0.8)  # parent_id, manager_id: the table's own rows
        return fit

    # ---------------------------------------------------------------- generic relations
    def generic_relations(
        self, unconditional: dict[tuple[str, str], list[Candidate]]
    ) -> dict[tuple[str, str], Proposal]:
        """Generic relations through every type table (see `pipeline.discover_generic`), by
        (table, id column)."""
        declared = {(d.table, d.columns[0]): d for d in self.declared if len(d.columns) == 1}
        out: dict[tuple[str, str], Proposal] = {}
        for types in self.type_tables():
            for t in self.tables.values():
                if t.name == types.table or t.key is None:
                    continue
                holders = {
                    c.name: how
                    for c in t.columns.values()
                    if (how := self.holds_types(t, c, types, declared, unconditional))
                }
                for column, how in holders.items():
                    got = self.generic(t, column, types, how, set(holders), declared)
                    if got is not None:
                        key = (t.name, str(got.check["column"]))
                        if key not in out or got.confidence > out[key].confidence:
                            out[key] = got
        return out

    def type_tables(self) -> list[TypeTable]:
        """The small tables keyed by one integer column whose rows' text columns, joined
        with `_`, name tables (`shop` + `article`: `shop_article`)."""
        names: dict[str, str] = {}
        for u in self.tables.values():
            for form in (u.name, u.relname):
                names.setdefault(_normal(form), u.name)
        out = []
        for t in self.tables.values():
            key = t.key
            if key is None or t.columns[key].type not in _INTEGER_TYPES:
                continue
            if not 2 <= t.rows <= MAX_TYPE_ROWS:
                continue
            texts = [
                c.name
                for c in t.columns.values()
                if c.family == "text" and c.name != key and self.nonnull.get((t.name, c.name))
            ][:MAX_NAME_COLUMNS]
            if not texts:
                continue
            picked = ", ".join(f"{_q(c)}::text" for c in [key, *texts])
            rows = self.attempt(
                f"{t.name} as a type table", sa.text(f"SELECT {picked} FROM {_q_table(t)}")
            )
            if rows:
                got = type_table(t.name, key, texts, [tuple(r) for r in rows], names, _normal)
                if got is not None:
                    out.append(got)
        return out

    def holds_types(
        self,
        t: TableInfo,
        c: ColumnInfo,
        types: TypeTable,
        declared: dict[tuple[str, str], DeclaredReference],
        unconditional: dict[tuple[str, str], list[Candidate]],
    ) -> str | None:
        """How an integer column holds keys of the type table (a foreign key, or the data: at
        least MIN_COVERAGE of its rows, by a name that fits or as the best key for them), or
        None."""
        if c.type not in _INTEGER_TYPES:
            return None
        d = declared.get((t.name, c.name))
        if d is not None:
            if d.target == types.table and d.target_columns[0] == types.key:
                return f"FOREIGN KEY {d.name} -> {types.table}({types.key}) in the catalog"
            return None
        ranked = _ranked(unconditional.get((t.name, c.name), []))
        for n, x in enumerate(ranked):
            mine = x.table == types.table and x.column == types.key and not x.through
            if mine and (x.name >= 0.6 or n == 0):
                return f"{c.name} holds keys of {x.describe()}; no foreign key declares it"
        return None

    def generic(
        self,
        t: TableInfo,
        column: str,
        types: TypeTable,
        how: str,
        holders: set[str],
        declared: dict[tuple[str, str], DeclaredReference],
    ) -> Proposal | None:
        """The generic relation of `t` whose type is `column` (keys of `types`): the id
        column beside it whose values, for the rows of each type, are keys of the table that
        type names, for at least MIN_COVERAGE of the rows of types that name a table (and
        those are MIN_COVERAGE of the rows). Targets by the type rows' names."""
        used_rows = self.attempt(
            f"{t.name}.{column} as types of {types.table}",
            sa.text(
                f"SELECT {_q(column)}::text, count(*) FROM {_q_table(t)} "
                f"WHERE {_q(column)} IS NOT NULL GROUP BY 1"
            ),
        )
        if not used_rows or len(used_rows) > MAX_TYPES_USED:
            return None
        used = {str(r[0]): int(r[1]) for r in used_rows}
        targets: dict[str, tuple[str, str, tuple[int, int] | None]] = {}
        for type_id in used:
            name = types.tables.get(type_id)
            u = self.tables.get(name) if name is not None else None
            if u is None or u.key is None:
                continue
            kp = self.profiles.get((u.name, u.key))
            span = None
            if (
                u.columns[u.key].type in _INTEGER_TYPES
                and kp is not None
                and kp.low is not None
                and kp.high is not None
            ):
                span = (int(kp.low), int(kp.high))
            targets[type_id] = (_q_table(u), u.key, span)
        if not targets:
            return None
        stem = column_stem(column_stem(column, "id"), "type")
        best: tuple[float, str, dict[str, TypeCount]] | None = None
        for a in t.columns.values():
            if not self.may_be_object_id(t, a, holders, declared):
                continue
            rows = self.attempt(
                f"{t.name}.{a.name} by {column}",
                sa.text(relation_sql(_q_table(t), column, a.name, targets)),
            )
            if not rows:
                continue
            counts = {
                str(r[0]): TypeCount(
                    int(r[1]), int(r[2] or 0), int(r[3]), int(r[4] or 0), int(r[5] or 0)
                )
                for r in rows
            }
            typed = sum(x.rows for x in counts.values())
            mapped = [x for d, x in counts.items() if d in targets]
            rows_mapped = sum(x.rows for x in mapped)
            if not rows_mapped or rows_mapped < MIN_COVERAGE * typed:
                continue
            coverage = sum(x.found for x in mapped) / rows_mapped
            if coverage < MIN_COVERAGE:
                continue
            named = 1.0 if column_stem(a.name, "id") == stem and stem != a.name else 0.0
            # a handful of small numbers (a flag, a count) is found in every dense key; the
            # ids of objects are many for their rows, or cover much of their tables
            sizes = sum(self.tables[types.tables[d]].rows for d in counts if d in targets)
            fill = min(1.0, sum(x.distinct_found for x in mapped) / sizes) if sizes else 0.0
            spread = max(fill, sum(x.distinct for x in mapped) / rows_mapped)
            score = coverage + 0.25 * named + 0.5 * spread
            if best is None or score > best[0]:
                best = (score, a.name, counts)
        if best is None:
            return None
        return self.generic_proposal(t, column, best[1], types, how, targets, best[2])

    def may_be_object_id(
        self,
        t: TableInfo,
        a: ColumnInfo,
        holders: set[str],
        declared: dict[tuple[str, str], DeclaredReference],
    ) -> bool:
        """A column that may hold the ids of a generic relation's objects: integer, text or
        uuid, set in some rows, not its table's key, nor a type column, nor a reference
        declared or named after a table (`user_id`)."""
        if a.name in holders or a.name in t.single_keys() or (t.name, a.name) in declared:
            return False
        if not (a.type in _INTEGER_TYPES or a.family in ("text", "uuid")):
            return False
        if not self.nonnull.get((t.name, a.name)):
            return False
        ref = self.references.get((t.name, a.name))
        return not (ref is not None and ref.best is not None and ref.best.name >= 0.9)

    def generic_proposal(
        self,
        t: TableInfo,
        column: str,
        id_column: str,
        types: TypeTable,
        how: str,
        targets: dict[str, tuple[str, str, tuple[int, int] | None]],
        counts: dict[str, TypeCount],
    ) -> Proposal:
        """The conditional reference through `types`, its targets by name (sorted by name:
        the same text whatever ids a database gave its types)."""
        by_name: dict[str, tuple[str, str, TypeCount]] = {}
        for type_id, x in counts.items():
            if type_id not in targets:
                continue
            name = types.names[type_id]
            u = self.tables[types.tables[type_id]]
            key = u.key or "id"
            if name in by_name:  # two type rows of one name (a duplicate): one target
                old = by_name[name][2]
                x = TypeCount(
                    old.rows + x.rows,
                    old.found + x.found,
                    old.distinct + x.distinct,
                    old.distinct_found + x.distinct_found,
                    old.gaps + x.gaps,
                )
            by_name[name] = (u.name, key, x)
        typed = sum(x.rows for x in counts.values())
        mapped = sum(x.rows for _, _, x in by_name.values())
        found = sum(x.found for _, _, x in by_name.values())
        missing = mapped - found
        gaps = sum(x.gaps for _, _, x in by_name.values())
        coverage = found / mapped
        confidence = coverage * (mapped / typed)
        if sum(x.distinct for _, _, x in by_name.values()) < 10:
            confidence *= 0.5  # a few ids fit any key by chance
        if how.startswith("FOREIGN KEY"):
            evidence = [f"{column}: {how}"]
        else:
            evidence = [how]
            confidence *= 0.9
        label = ", ".join(types.name)
        evidence.append(
            f"{types.table} is a type table: {len(types.tables)} of its "
            f"{types.rows} rows name a table by {label}"
            + (f" (joined with {types.separator!r})" if len(types.name) > 1 else "")
        )
        for name, (table, key, x) in sorted(by_name.items()):
            evidence.append(
                f"{column} = {name}: {x.found} of {x.rows} rows' {id_column} are "
                f"{table}.{key} ({_pct(x.coverage)}, {x.distinct_found} of {x.distinct} values)"
            )
        other = typed - mapped
        if other:
            evidence.append(
                f"{other} rows have a {column} whose {types.table} row names no table: "
                "discriminator findings"
            )
        check: dict[str, Any] = {
            "id": check_id(t.name, id_column, "reference"),
            "kind": "conditional_reference",
            "table": t.name,
            "column": id_column,
            "discriminator": column,
            "lookup": types.lookup(),
            "targets": {
                name: {"table": table} | ({"column": key} if key != "id" else {})
                for name, (table, key, _) in sorted(by_name.items())
            },
        }
        if missing > RARE_VALUE_SHARE * mapped and gaps == missing:
            # every id not found lies within its target's key: objects since deleted, whose
            # rows the table keeps (versions, an admin log): reported, never repaired
            check["severity"] = "warn"
            check["on_orphan"] = "report"
            evidence.append(
                f"each of the {missing} rows whose object is not found has an id within its "
                "target's key range (an object since deleted, that the table keeps rows "
                "of): a warning, reported, not repaired"
            )
        return Proposal(check, "data", round(confidence, 3), evidence, [], missing + other)

    # ---------------------------------------------------------------- mis-keys
    def key_spaces_of(self, target: str) -> list[tuple[str, TableInfo, str]]:
        """(through, key-space table, its key): the target's columns that reference another
        key (declared or found), e.g. tutor_profiles.user_id -> users.id."""
        out = []
        for (table, column), ref in self.references.items():
            if table == target and ref.target != target:
                out.append((column, self.tables[ref.target], ref.target_column))
        for d in self.declared:
            if d.table == target and len(d.columns) == 1 and d.target != target:
                item = (d.columns[0], self.tables[d.target], d.target_columns[0])
                if item not in out:
                    out.append(item)
        return out

    def through_candidates(
        self,
        t: TableInfo,
        c: ColumnInfo,
        direct: list[Candidate],
        *,
        disc: str | None = None,
        value: str | None = None,
    ) -> list[Candidate]:
        """Targets whose *through* column holds the values: for every key table U whose name
        fits (the column's stem or the discriminator value) and that maps a key space the
        values belong to (the values are users.id and U.user_id holds them)."""
        out = []
        holders = {x.table for x in direct if x.coverage >= MIN_COVERAGE}
        for u in self.tables.values():
            if value is not None and disc is not None:
                fit = self.value_fit(value, u, t, disc)
            else:
                fit = self.column_fit(t, c.name, u, "id")
            if fit < 0.6 or u.key is None or u is t:
                continue
            for through, space, _space_key in self.key_spaces_of(u.name):
                if space.name not in holders or u.columns[through].family != c.family:
                    continue
                q = _q(c.name)
                where, params = _rows_of(c.name, disc, value)
                row = self.conn.execute(
                    sa.text(
                        f"WITH v AS MATERIALIZED (SELECT {q} AS v, count(*) AS n "
                        f"FROM {_q_table(t)} "
                        f"WHERE {where} GROUP BY {q}), "
                        # the test once per value (read twice below)
                        f"x AS MATERIALIZED (SELECT v.n, {_member('v.v', u, through)} AS h "
                        "FROM v) "
                        "SELECT count(*), sum(x.n), "
                        "sum(x.n) FILTER (WHERE NOT x.h), count(*) FILTER (WHERE NOT x.h) FROM x"
                    ),
                    params,
                ).one()
                out.append(
                    Candidate(
                        u.name,
                        u.key,
                        int(row[1] or 0),
                        int(row[0] or 0),
                        int(row[2] or 0),
                        int(row[3] or 0),
                        u.rows,
                        fit,
                        through=through,
                    )
                )
        return out

    def mis_key(
        self,
        t: TableInfo,
        column: str,
        targets: list[tuple[str | None, str]],
        disc: str | None,
    ) -> tuple[dict[str, Any], list[str]] | None:
        """A `mis_key` for the reference from `t.column` to `targets` ((discriminator value
        or None, target table)): a key space whose keys most violating values are and that
        maps through one column of every target; with the row's columns that agree with the
        key space's attributes as evidence."""
        options: dict[tuple[str, str], list[str]] = {}
        for _value, target in targets:
            for through, space, space_key in self.key_spaces_of(target):
                options.setdefault((through, f"{space.name}\0{space_key}"), []).append(target)
        for (through, space_ref), holders in options.items():
            if len(holders) < len(targets):
                continue
            space_name, _, space_key = space_ref.partition("\0")
            space = self.tables[space_name]
            violating = mapped = 0
            for value, target in targets:
                u = self.tables[target]
                assert u.key is not None
                q = _q(column)
                where, params = _rows_of(column, disc, value, "t.")
                # per distinct value, not per row: the violating values are few, and the
                # key-space and `through` tests become semi-joins over those values only
                row = self.conn.execute(
                    sa.text(
                        f"WITH v AS MATERIALIZED (SELECT t.{q} AS v, count(*) AS n "
                        f"FROM {_q_table(t)} t WHERE {where} GROUP BY 1), "
                        "missing AS MATERIALIZED (SELECT v.v, v.n FROM v WHERE NOT EXISTS "
                        f"(SELECT FROM {_q_table(u)} k WHERE k.{_q(u.key)} = v.v)), "
                        f"spaced AS (SELECT DISTINCT s.{_q(space_key)} AS v "
                        f"FROM {_q_table(space)} s WHERE s.{_q(space_key)} IN "
                        "(SELECT v FROM missing)), "
                        f"mapped AS (SELECT DISTINCT m.{_q(through)} AS v "
                        f"FROM {_q_table(u)} m WHERE m.{_q(through)} IN "
                        "(SELECT v FROM missing)) "
                        "SELECT coalesce(sum(missing.n), 0), coalesce(sum(missing.n) FILTER "
                        "(WHERE sp.v IS NOT NULL AND mp.v IS NOT NULL), 0) FROM missing "
                        "LEFT JOIN spaced sp ON sp.v = missing.v "
                        "LEFT JOIN mapped mp ON mp.v = missing.v"
                    ),
                    params,
                ).one()
                violating += int(row[0])
                mapped += int(row[1])
            if not mapped or mapped < 0.5 * violating:
                continue
            attributes = self.attribute_evidence(
                t, column, targets, disc, through, space, space_key
            )
            mis_key: dict[str, Any] = {
                "key_space": self.key_space(space, space_key, attributes),
                "through": through,
            }
            vias = self.via_evidence(t, column, targets[0][1]) if disc is None else []
            items: list[dict[str, Any]] = [
                {"attribute": {"column": e, "key_space_column": a}} for e, a, _ in attributes
            ]
            items += [{"via": via} for via, _ in vias]
            if items:
                mis_key["evidence"] = items
            evidence = (
                [
                    f"mis-key: {mapped} of {violating} violating rows hold a "
                    f"{space.name}.{space_key} that {'/'.join(sorted(set(holders)))}.{through} maps"
                ]
                + [
                    f"evidence: {e} agrees with {space.name}.{a} on {_pct(share)} of the rows "
                    "that reference correctly"
                    for e, a, share in attributes
                ]
                + [
                    f"evidence: {v['table']}.{v['target_column']} of the row's {v['column']} "
                    f"equals {column} on {_pct(share)} of the rows"
                    for v, share in vias
                ]
            )
            return mis_key, evidence
        return None

    def via_evidence(
        self, t: TableInfo, column: str, target: str
    ) -> list[tuple[dict[str, str], float]]:
        """Another reference of the row that names the same target row: the request's
        package (`package_id -> tutor_packages.id`) whose `tutor_id` references the same
        tutor_profiles as the request's `tutor_id`, on at least 80% of the rows."""
        out = []
        for (table, p), ref in sorted(self.references.items()):
            if table != t.name or p == column or ref.target == target:
                continue
            other = self.tables[ref.target]
            for (table2, q), ref2 in sorted(self.references.items()):
                if table2 != other.name or ref2.target != target:
                    continue
                tc, tp = _q(column), _q(p)
                row = self.conn.execute(
                    sa.text(
                        f"SELECT count(*) FILTER (WHERE o.{_q(q)} IS NOT NULL), "
                        f"count(*) FILTER (WHERE o.{_q(q)} = t.{tc}) "
                        f"FROM {_q_table(t)} t JOIN {_q_table(other)} o "
                        f"ON o.{_q(ref.target_column)} = t.{tp} "
                        f"WHERE t.{tc} IS NOT NULL"
                    )
                ).one()
                both, same = int(row[0]), int(row[1])
                if both >= 3 and same >= 0.8 * both:
                    via = {
                        "column": p,
                        "table": other.name,
                        "key": ref.target_column,
                        "target_column": q,
                    }
                    out.append((via, same / both))
        return out

    def key_space(
        self, space: TableInfo, key: str, attributes: list[tuple[str, str, float]]
    ) -> str:
        spaces = self.found.key_spaces
        name = check_id(space.name)
        entry = spaces.setdefault(name, {"table": space.name, "key": key, "attributes": []})
        for _, a, _share in attributes:
            if a not in entry["attributes"]:
                entry["attributes"].append(a)
        return name

    def disjoint_pairs(
        self, t: TableInfo, u: TableInfo, pairs: list[tuple[str, str]]
    ) -> set[tuple[str, str]]:
        """The pairs (column of `t`, column of `u`) of text columns whose values cannot be
        equal: their ranges (the profiles' min and max) do not overlap in the collation both
        columns have. Such a pair agrees on no row, so an agreement test can leave it out."""
        typed = ("text", "character varying")
        todo = []
        for e, a in pairs:
            ce, ca = t.columns.get(e), u.columns.get(a)
            pe, pa = self.profiles.get((t.name, e)), self.profiles.get((u.name, a))
            if (
                ce is not None
                and ca is not None
                and ce.type.startswith(typed)
                and ca.type.startswith(typed)
                and pe is not None
                and pa is not None
                and None not in (pe.low, pe.high, pa.low, pa.high)
            ):
                todo.append((e, a, pe, pa))
        if not todo:
            return set()
        tests: list[str] = []
        params: dict[str, Any] = {}
        asked: list[tuple[str, str]] = []
        for e, a, pe, pa in todo:
            ke, ka = self.collations(t).get(e), self.collations(u).get(a)
            if ke is None or ka is None or ke[0] != ka[0]:
                continue  # no one collation both columns compare in: not pruned
            i = len(asked)
            params |= {f"el{i}": pe.low, f"eh{i}": pe.high, f"al{i}": pa.low, f"ah{i}": pa.high}
            c = ke[1]
            tests.append(
                f"(CAST(:el{i} AS text) COLLATE {c} <= CAST(:ah{i} AS text) COLLATE {c} "
                f"AND CAST(:al{i} AS text) COLLATE {c} <= CAST(:eh{i} AS text) COLLATE {c})"
            )
            asked.append((e, a))
        if not asked:
            return set()
        row = self.conn.execute(sa.text(f"SELECT {', '.join(tests)}"), params).one()
        return {pair for pair, overlaps in zip(asked, row, strict=True) if overlaps is False}

    def collations(self, t: TableInfo) -> dict[str, tuple[int, str]]:
        """Column -> (oid, quoted name) of its collation, for the columns of `t` that have
        one; read once per table."""
        got = self._collations.get(t.name)
        if got is None:
            got = {}
            for name, oid, schema, collname in self.conn.execute(
                sa.text(
                    "SELECT a.attname::text, co.oid::bigint, n.nspname::text, co.collname::text "
                    "FROM pg_attribute a JOIN pg_collation co ON co.oid = a.attcollation "
                    "JOIN pg_namespace n ON n.oid = co.collnamespace "
                    "WHERE a.attrelid = CAST(:rel AS regclass) AND a.attnum > 0 "
                    "AND NOT a.attisdropped"
                ),
                {"rel": t.sql},
            ):
                # quoted here (quote_ident leaves a newline raw), a colon no bind parameter
                got[name] = (int(oid), sqltext.qualified(schema, collname).replace(":", "\\:"))
            self._collations[t.name] = got
        return got

    def attribute_evidence(
        self,
        t: TableInfo,
        column: str,
        targets: list[tuple[str | None, str]],
        disc: str | None,
        through: str,
        space: TableInfo,
        space_key: str,
    ) -> list[tuple[str, str, float]]:
        """(row column, key-space column, agreement) where the row's value equals the key
        space's attribute of the row it references correctly (`contact_email` =
        `users.email` of the requester's user) on at least 80% of such rows."""
        mine = [
            c.name
            for c in t.columns.values()
            if c.family == "text" and c.name not in (column, disc, t.key) and not c.enum
        ]
        theirs = [
            c.name
            for c in space.columns.values()
            if c.family == "text" and c.name != space_key and not c.enum
        ]
        pairs = [(e, a) for e in mine for a in theirs]
        if pairs:  # a pair that cannot agree on any row is not counted
            apart = self.disjoint_pairs(t, space, pairs)
            pairs = [p for p in pairs if p not in apart]
        if not pairs:
            return []
        both = [0] * len(pairs)
        same = [0] * len(pairs)
        for value, target in targets:
            u = self.tables[target]
            assert u.key is not None
            exprs = _agreement(pairs, "s")
            where = ""
            params: dict[str, Any] = {}
            if disc is not None:
                where = f"WHERE t.{_q(disc)}::text = :value"
                params["value"] = value
            row = self.conn.execute(
                sa.text(
                    f"SELECT {', '.join(exprs)} FROM {_q_table(t)} t "
                    f"JOIN {_q_table(u)} u ON u.{_q(u.key)} = t.{_q(column)} "
                    f"JOIN {_q_table(space)} s "
                    f"ON s.{_q(space_key)} = u.{_q(through)} "
                    f"{where}"
                ),
                params,
            ).one()
            for i in range(len(pairs)):
                both[i] += int(row[2 * i])
                same[i] += int(row[2 * i + 1])
        found = [
            (e, a, same[i] / both[i])
            for i, (e, a) in enumerate(pairs)
            if both[i] >= 3 and same[i] >= 0.8 * both[i]
        ]
        # one attribute per row column: the one it agrees with most
        best: dict[str, tuple[str, str, float]] = {}
        for e, a, share in found:
            if e not in best or share > best[e][2]:
                best[e] = (e, a, share)
        return list(best.values())

    def preliminary_references(
        self,
        dependents: list[tuple[TableInfo, ColumnInfo]],
        unconditional: dict[tuple[str, str], list[Candidate]],
    ) -> None:
        """The best plain target of every column, and the declared references: the key
        spaces that conditional targets and mis-keys may map through."""
        self.references.clear()
        for t, c in dependents:
            ranked = _ranked(unconditional.get((t.name, c.name), []))
            if ranked:
                best = ranked[0]
                self.references[(t.name, c.name)] = _Reference(
                    t.name, c.name, best.table, best.column, False, best
                )
        for d in self.declared:
            if len(d.columns) == 1:
                self.references[(d.table, d.columns[0])] = _Reference(
                    d.table, d.columns[0], d.target, d.target_columns[0], True
                )

    # ---------------------------------------------------------------- data rules
    def rules(self, t: TableInfo, conditional: dict[tuple[str, str], Proposal]) -> None:
        """What the rows of `t` almost always obey, proposed with the rows that do not: NOT
        NULL, a closed set of values, uniqueness of a reference, a referenced row that agrees."""
        self.rare_nulls(t)
        discriminators = {
            p.check["discriminator"]: list(p.check["targets"])
            for (table, _), p in conditional.items()
            if table == t.name
        }
        self.value_sets(t, discriminators)
        self.unique_references(t)
        self.consistencies(t)
        self.row_rules(t)
        self.conditional_uniques(t, conditional)

    def rare_nulls(self, t: TableInfo) -> None:
        if t.rows < 100:
            return
        rare = [
            (c.name, t.rows - self.nonnull[(t.name, c.name)])
            for c in t.columns.values()
            if not c.not_null and 0 < t.rows - self.nonnull[(t.name, c.name)] <= 0.01 * t.rows
        ]
        if not rare:
            return
        worst = max(n for _, n in rare) / t.rows
        self.add(
            Proposal(
                {
                    "id": check_id(t.name, "not_null", "inferred"),
                    "kind": "not_null",
                    "table": t.name,
                    "columns": [c for c, _ in rare],
                },
                "data",
                round(min(0.95, 1 - 10 * worst), 3),
                [f"{c} is NULL in {n} of {t.rows} rows ({_pct(n / t.rows)})" for c, n in rare],
                violations=sum(n for _, n in rare),
            )
        )

    def value_sets(self, t: TableInfo, discriminators: dict[str, list[str]]) -> None:
        """A text column of few values whose rare values (each under 1% of the rows, 2% in
        all) look like mistakes: the others are its set; a discriminator's set is its
        targets' values."""
        cols = [
            c
            for c in t.columns.values()
            if c.family == "text"
            and not c.enum
            and (p := self.profiles.get((t.name, c.name))) is not None
            and p.values is not None
            and not any(x[0] == c.name for x in self.checks_in.get(t.name, []))
        ]
        if not cols:
            return
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        # the profile counted the values of a text or character column already (grouped as
        # text: the same groups); other types (citext) group by their own equality
        for c in cols:
            known = self.value_counts.get((t.name, c.name))
            if known is not None and c.type.startswith(("text", "character")):
                counts[c.name] = dict(known)
        unread = [c for c in cols if c.name not in counts]
        if unread:
            sets = ", ".join(f"({_q(c.name)})" for c in unread)
            exprs = ", ".join(
                f"CASE WHEN GROUPING({q}) = 0 THEN {q}::text END"
                for q in (_q(c.name) for c in unread)
            )
            for row in self.conn.execute(
                sa.text(
                    f"SELECT {exprs}, count(*) FROM {_q_table(t)} GROUP BY GROUPING SETS ({sets})"
                )
            ):
                for c, value in zip(unread, row[:-1], strict=True):
                    if value is not None:
                        counts[c.name][value] = int(row[-1])
        for c in cols:
            values = counts.get(c.name, {})
            total = sum(values.values())
            if not total:
                continue
            if c.name in discriminators:
                allowed = discriminators[c.name]
                why = f"the values of the conditional reference's targets ({', '.join(allowed)})"
            else:
                allowed = [
                    v
                    for v, n in sorted(values.items(), key=lambda x: -x[1])
                    if n >= RARE_VALUE_SHARE * total
                ]
                why = f"each of these values is {_pct(RARE_VALUE_SHARE)} of the rows or more"
            rare = {v: n for v, n in values.items() if v not in allowed}
            share = sum(rare.values()) / total
            if len(allowed) < 2 or not rare or share > 0.02:
                continue
            self.add(
                Proposal(
                    {
                        "id": check_id(t.name, c.name, "in_set"),
                        "kind": "in_set",
                        "table": t.name,
                        "column": c.name,
                        "values": allowed,
                    },
                    "data",
                    round(min(0.9, 1 - 5 * share), 3),
                    [
                        why,
                        "rare values: "
                        + ", ".join(f"{v!r} ({n})" for v, n in sorted(rare.items())),
                    ],
                    violations=sum(rare.values()),
                )
            )

    def unique_references(self, t: TableInfo) -> None:
        """A reference whose values are (almost) all distinct: one row per referenced row
        (a user holds one profile of a role)."""
        declared = {tuple(cols) for cols in [t.primary_key, *t.all_uniques()]}
        for (table, column), ref in sorted(self.references.items()):
            if table != t.name or (column,) in declared:
                continue
            rows, distinct = self.shapes.get((table, column), (0, 0))
            if rows < 20 or distinct < 0.95 * rows:
                continue
            self.add(
                Proposal(
                    {
                        "id": check_id(t.name, column, "unique"),
                        "kind": "unique",
                        "table": t.name,
                        "columns": [column],
                    },
                    "data",
                    round(0.9 * min(1.0, (distinct / rows - 0.9) * 10), 3),
                    [
                        f"{column}: {distinct} distinct values in {rows} rows "
                        f"(references {ref.target}.{ref.target_column})"
                    ],
                    violations=rows - distinct,
                )
            )

    def consistencies(self, t: TableInfo) -> None:
        """For each reference of `t`: another reference of the row that the referenced row
        repeats (`tutor_packages.tutor_id` = the request's `tutor_id`), or a text column the
        referenced row repeats (`tutor_packages.name` = the request's `package_name`), on at
        least 90% of the rows where both are set."""
        refs = {
            col: ref
            for (table, col), ref in self.references.items()
            if table == t.name and ref.target != t.name
        }
        texts = [c.name for c in t.columns.values() if c.family == "text" and c.name != t.key]
        for column, ref in sorted(refs.items()):
            u = self.tables[ref.target]
            pairs: list[tuple[str, str]] = []
            for other, ref2 in sorted(refs.items()):
                if other == column:
                    continue
                for (table2, q), ref3 in sorted(self.references.items()):
                    if table2 == u.name and (ref3.target, ref3.target_column) == (
                        ref2.target,
                        ref2.target_column,
                    ):
                        pairs.append((other, q))
            named = [
                (e, a.name)
                for e in texts
                for a in u.columns.values()
                if a.family == "text" and a.name != ref.target_column
            ]
            if named:  # a pair that cannot agree on any row is not counted
                apart = self.disjoint_pairs(t, u, named)
                pairs += [p for p in named if p not in apart]
            if not pairs:
                continue
            exprs = _agreement(pairs, "u")
            row = self.conn.execute(
                sa.text(
                    f"SELECT {', '.join(exprs)} FROM {_q_table(t)} t JOIN {_q_table(u)} u "
                    f"ON u.{_q(ref.target_column)} = t.{_q(column)}"
                )
            ).one()
            for i, (e, a) in enumerate(pairs):
                both, same = int(row[2 * i]), int(row[2 * i + 1])
                if both < 20 or same < 0.9 * both:
                    continue
                self.add(
                    Proposal(
                        {
                            "id": check_id(t.name, column, e, "consistency"),
                            "kind": "consistency",
                            "table": t.name,
                            "column": column,
                            "target": {"table": u.name, "column": ref.target_column},
                            "match": [{"column": e, "target_column": a}],
                        },
                        "data",
                        round(0.9 * same / both, 3),
                        [
                            f"{u.name}.{a} of the row's {column} equals {e} on {same} of {both} "
                            f"rows ({_pct(same / both)})"
                        ],
                        violations=both - same,
                    )
                )

    # ---------------------------------------------------------------- row rules, patterns
    def row_rules(self, t: TableInfo) -> None:
        """Rules across the columns of a row and shapes of text columns, proposed with the
        rows that break them: one column later than another (`updated_at >= created_at`), a
        column set exactly for some values of a few-valued column (`responded_at` set iff
        `status` in (accepted, rejected)), and a regex that most values of a text column
        match (an e-mail address, or the dominant shape `+2519########`). The shapes are read
        from the first PREFIX_ROWS rows; everything proposed is counted over the whole table
        in one grouped statement (grouped by the few-valued columns)."""
        if t.rows < MIN_RULE_ROWS:
            return
        ordered = [
            c
            for c in t.columns.values()
            if c.family == "time"
            and c.type.startswith(("date", "timestamp"))
            and self.nonnull.get((t.name, c.name), 0) >= MIN_RULE_ROWS
        ][:MAX_ORDERED_COLUMNS]
        pairs = list(itertools.combinations(ordered, 2))
        discs = self.rule_discriminators(t)
        nullable = [
            c
            for c in t.columns.values()
            if 0 < self.nonnull.get((t.name, c.name), 0) < t.rows
            and c.name not in {d.name for d in discs}
        ]
        if not discs:
            nullable = []
        shapes = self.shape_candidates(t)
        if not (pairs or nullable or shapes):
            return
        aggs = ["count(*)"]
        params: dict[str, Any] = {}

        def agg(expr: str) -> int:
            aggs.append(expr)
            return len(discs) + len(aggs) - 1

        pair_at = []
        for a, b in pairs:
            qa, qb = _q(a.name), _q(b.name)
            pair_at.append(
                (
                    agg(f"count(*) FILTER (WHERE {qa} IS NOT NULL AND {qb} IS NOT NULL)"),
                    agg(f"count(*) FILTER (WHERE {qa} < {qb})"),
                    agg(f"count(*) FILTER (WHERE {qa} > {qb})"),
                )
            )
        null_at = [agg(f"count({_q(c.name)})") for c in nullable]
        shape_at = []
        for n, (c, regex, _) in enumerate(shapes):
            params[f"rr_{n}"] = regex
            shape_at.append(agg(f"count(*) FILTER (WHERE {_q(c.name)} ~ :rr_{n})"))
        group = [f"{_q(d.name)}::text" for d in discs]
        sql = f"SELECT {', '.join([*group, *aggs])} FROM {_q_table(t)}"
        if group:
            sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(group)))
        rows = [tuple(r) for r in self.conn.execute(sa.text(sql), params)]

        def total(i: int) -> int:
            return sum(int(r[i] or 0) for r in rows)

        for (a, b), (both_i, lt_i, gt_i) in zip(pairs, pair_at, strict=True):
            self.ordering(t, a.name, b.name, total(both_i), total(lt_i), total(gt_i))
        best: dict[str, Proposal] = {}
        for d_i, d in enumerate(discs):
            for c, at in zip(nullable, null_at, strict=True):
                counts: dict[str, list[int]] = defaultdict(lambda: [0, 0])
                for r in rows:
                    if r[d_i] is not None:
                        counts[r[d_i]][0] += int(r[len(discs)])
                        counts[r[d_i]][1] += int(r[at])
                got = self.set_when(t, c.name, d.name, counts)
                if got is not None and (
                    c.name not in best or got.violations < best[c.name].violations  # type: ignore[operator]
                ):
                    best[c.name] = got
        for c in nullable:
            if c.name in best:
                self.add(best[c.name])
        for (c, regex, shape), hit_i in zip(shapes, shape_at, strict=True):
            self.pattern(t, c.name, regex, shape, total(hit_i))

    def rule_discriminators(self, t: TableInfo) -> list[ColumnInfo]:
        """Few-valued text columns (not enums) whose values are labels (of at most
        MAX_LABEL_LENGTH characters, not sentences) to group a table's rule counts by, as
        many as keep the groups at most MAX_RULE_GROUPS (the fewest-valued first)."""
        found = sorted(
            (len(p.values), c.name)
            for c in t.columns.values()
            if c.family == "text"
            and not c.enum
            and c.name != t.key
            and (p := self.profiles.get((t.name, c.name))) is not None
            and p.values is not None
            and len(p.values) >= 2
            and max(map(len, p.values)) <= MAX_LABEL_LENGTH
        )
        kept, groups = [], 1
        for n, name in found:
            if groups * (n + 1) > MAX_RULE_GROUPS:
                break
            groups *= n + 1
            kept.append(t.columns[name])
        return sorted(kept, key=lambda c: list(t.columns).index(c.name))

    def shape_candidates(self, t: TableInfo) -> list[tuple[ColumnInfo, str, str | None]]:
        """Text columns of many values whose first PREFIX_ROWS rows are mostly e-mail
        addresses or mostly of one shape (`translate`d: digits 9, letters a / A), with the
        regex to count over the whole table (and the shape; None for e-mail addresses): one
        grouped statement over those rows. A shape's fixed prefix is what its 1st and 99th
        percentile values (in byte order) begin with, so a few stray values of the shape
        (`+2517...` among `+2519...`) do not shorten it."""
        cols = [
            c
            for c in t.columns.values()
            if c.family == "text"
            and not c.enum
            and c.type.startswith(("text", "character varying"))
            and self.nonnull.get((t.name, c.name), 0) >= MIN_RULE_ROWS
            and (p := self.profiles.get((t.name, c.name))) is not None
            and p.values is None
        ]
        if not cols:
            return []
        picked = ", ".join(f"{_q(c.name)}::text AS c{i}" for i, c in enumerate(cols))
        values = ", ".join(f"({i}, p.c{i})" for i in range(len(cols)))
        sql = (
            "SELECT i, shape, n, total, emails, low, high FROM ("
            f"SELECT i, {_shape_sql('v.v')} AS shape, count(*) AS n, "
            'percentile_disc(0.01) WITHIN GROUP (ORDER BY v.v COLLATE "C") AS low, '
            'percentile_disc(0.99) WITHIN GROUP (ORDER BY v.v COLLATE "C") AS high, '
            "sum(count(*)) OVER (PARTITION BY i) AS total, "
            "sum(count(*) FILTER (WHERE v.v ~ :email)) OVER (PARTITION BY i) AS emails, "
            "row_number() OVER (PARTITION BY i ORDER BY count(*) DESC, "
            f"{_shape_sql('v.v')}) AS rank "
            f"FROM (SELECT {picked} FROM {_q_table(t)} LIMIT {PREFIX_ROWS}) p "
            f"CROSS JOIN LATERAL (VALUES {values}) v(i, v) WHERE v.v IS NOT NULL "
            "GROUP BY 1, 2) s WHERE rank = 1 ORDER BY i"
        )
        out: list[tuple[ColumnInfo, str, str | None]] = []
        found = self.conn.execute(sa.text(sql), {"email": EMAIL_REGEX})
        for i, shape, n, total, email, low, high in found:
            tot, emails = int(total or 0), int(email or 0)
            if not tot:
                continue
            if emails >= SAMPLE_SHAPE_SHARE * tot:
                out.append((cols[i], EMAIL_REGEX, None))
                continue
            prefix = _common_prefix(low, high)
            if (
                n >= SAMPLE_SHAPE_SHARE * tot
                and len(shape) <= MAX_SHAPE_LENGTH
                and any(ch in _SHAPE_CLASSES for ch in shape[len(prefix) :])
            ):
                out.append((cols[i], shape_regex(shape, prefix), shape))
        return out

    def ordering(self, t: TableInfo, a: str, b: str, both: int, lt: int, gt: int) -> None:
        """`a >= b` (or `b >= a`) when it holds on nearly all rows with both set, and the
        later one is strictly later on more rows than it is earlier."""
        if both < MIN_RULE_ROWS:
            return
        if lt > gt:
            a, b, lt, gt = b, a, gt, lt
        equal = both - lt - gt
        if lt > (1 - RULE_HOLDS) * both or gt < max(5, 2 * lt):
            return
        share = lt / both
        self.add(
            Proposal(
                {
                    "id": check_id(t.name, a, "after_" + b),
                    "kind": "row_rule",
                    "table": t.name,
                    "columns": [a, b],
                    "description": f"{a} is never before {b}",
                    "require": {"column": a, "ge": {"column": b}},
                },
                "data",
                round(min(0.95, 1 - 5 * share), 3),
                [
                    f"{a} >= {b} on {both - lt} of the {both} rows with both set "
                    f"({_pct(1 - share)}; later on {gt}, equal on {equal})"
                ],
                violations=lt,
            )
        )

    def set_when(
        self, t: TableInfo, column: str, disc: str, counts: dict[str, list[int]]
    ) -> Proposal | None:
        """`column` set exactly for some values of `disc` (and NULL for the others), on
        nearly all rows of its values (rare values, under RARE_VALUE_SHARE of the rows, are
        left to `in_set`); `counts`: value -> [rows, rows with `column` set]."""
        every = sum(n for n, _ in counts.values())
        kept = {v: x for v, x in counts.items() if x[0] >= RARE_VALUE_SHARE * every}
        rows = sum(n for n, _ in kept.values())
        if rows < MIN_RULE_ROWS or len(kept) < 2:
            return None
        order = sorted(kept, key=lambda v: (-kept[v][0], v))
        set_values = [v for v in order if kept[v][1] * 2 > kept[v][0]]
        null_values = [v for v in order if v not in set_values]
        set_rows = sum(kept[v][0] for v in set_values)
        null_rows = sum(kept[v][0] for v in null_values)
        if not set_values or not null_values or min(set_rows, null_rows) < 5:
            return None
        unset = sum(kept[v][0] - kept[v][1] for v in set_values)
        stray = sum(kept[v][1] for v in null_values)
        violations = unset + stray
        if violations > (1 - RULE_HOLDS) * rows:
            return None
        share = violations / rows
        return Proposal(
            {
                "id": check_id(t.name, column, "matches_" + disc),
                "kind": "row_rule",
                "table": t.name,
                "columns": [disc, column],
                "description": f"{column} is set exactly when {disc} is one of "
                f"{', '.join(set_values)}",
                "where": {"column": disc, "in": order},
                "require": {
                    "any": [
                        {
                            "all": [
                                {"column": disc, "in": set_values},
                                {"column": column, "is_null": False},
                            ]
                        },
                        {
                            "all": [
                                {"column": disc, "in": null_values},
                                {"column": column, "is_null": True},
                            ]
                        },
                    ]
                },
            },
            "data",
            round(min(0.95, 1 - 5 * share), 3),
            [
                f"{column} is set on {set_rows - unset} of the {set_rows} rows whose {disc} is "
                f"{' or '.join(repr(v) for v in set_values)}",
                f"{column} is NULL on {null_rows - stray} of the {null_rows} rows whose {disc} "
                f"is {' or '.join(repr(v) for v in null_values)}",
            ]
            + (
                [f"rare {disc} values left to in_set: {', '.join(repr(v) for v in rare)}"]
                if (rare := sorted(set(counts) - set(kept)))
                else []
            ),
            violations=violations,
        )

    def pattern(self, t: TableInfo, column: str, regex: str, shape: str | None, hits: int) -> None:
        """A `pattern` when at least SHAPE_SHARE of the column's non-NULL values match
        `regex` (`hits` of them): the e-mail regex (`shape` None), or that of the dominant
        shape and its fixed prefix."""
        nonnull = self.nonnull.get((t.name, column), 0)
        if nonnull < MIN_RULE_ROWS or hits < SHAPE_SHARE * nonnull:
            return
        if shape is None:
            what = "a plausible e-mail address"
            evidence = f"{hits} of the {nonnull} values are e-mail addresses"
        else:
            what = f"values shaped {shape!r} (9 a digit, a / A a letter)"
            evidence = f"{hits} of the {nonnull} values have the shape {shape!r} and match"
        share = hits / nonnull
        self.add(
            Proposal(
                {
                    "id": check_id(t.name, column, "pattern"),
                    "kind": "pattern",
                    "table": t.name,
                    "column": column,
                    "regex": regex,
                    "description": what,
                },
                "data",
                round(min(0.95, 1 - 3 * (1 - share)), 3),
                [f"{evidence} ({_pct(share)})"],
                violations=nonnull - hits,
            )
        )

    def conditional_uniques(
        self, t: TableInfo, conditional: dict[tuple[str, str], Proposal]
    ) -> None:
        """The reference columns of `t` together (a conditional reference with its
        discriminator): unique among all rows but a few, or else among the rows of one value
        of a few-valued column (`status = 'pending'`): one grouped statement per table (one
        group per tuple of the columns), and only when they are not unique among all rows a
        second one that counts per group the rows of each value."""
        refs = {c for (table, c) in self.references if table == t.name}
        for (table, c), p in conditional.items():
            if table == t.name:
                refs |= {c, p.check["discriminator"]}
        columns = [c for c in t.columns if c in refs]
        if len(columns) < 2 or t.rows < MIN_RULE_ROWS or set(columns) & set(t.single_keys()):
            return
        full = " AND ".join(f"{_q(c)} IS NOT NULL" for c in columns)
        grouped = f"FROM {_q_table(t)} GROUP BY {', '.join(_q(c) for c in columns)}"
        overall, distinct = (
            int(x or 0)
            for x in self.conn.execute(
                sa.text(
                    "SELECT sum(n - 1), sum(n - 1) FILTER (WHERE complete) FROM ("
                    f"SELECT count(*) AS n, {full} AS complete {grouped}) g"
                )
            ).one()
        )
        if overall <= UNIQUE_DUPLICATES * t.rows:  # unique among all rows but a few
            self.composite_unique(t, columns, None, overall, distinct, t.rows, overall)
            return
        values = [
            (d.name, v)
            for d in self.rule_discriminators(t)
            if d.name not in refs
            and len(vals := self.profiles[(t.name, d.name)].values or []) <= MAX_UNIQUE_VALUES
            for v in vals
        ][:MAX_UNIQUE_COUNTS]
        if not values:
            return
        params = {f"uv_{i}": v for i, (_, v) in enumerate(values)}
        counts = "".join(
            f", count(*) FILTER (WHERE {_q(d)}::text = :uv_{i}) AS n{i}"
            for i, (d, _) in enumerate(values)
        )
        sums = "".join(
            f", sum(greatest(n{i} - 1, 0)), sum(greatest(n{i} - 1, 0)) FILTER (WHERE complete)"
            f", sum(n{i})"
            for i in range(len(values))
        )
        sql = f"SELECT {sums[2:]} FROM (SELECT {full} AS complete{counts} {grouped}) g"
        row = [int(x or 0) for x in self.conn.execute(sa.text(sql), params).one()]
        for i, (disc, value) in enumerate(values):
            equal, distinct, rows = row[3 * i : 3 + 3 * i]
            if rows >= MIN_RULE_ROWS and equal <= UNIQUE_DUPLICATES * rows:
                self.composite_unique(t, columns, (disc, value), equal, distinct, rows, overall)

    def composite_unique(
        self,
        t: TableInfo,
        columns: list[str],
        where: tuple[str, str] | None,
        equal: int,
        distinct: int,
        rows: int,
        overall: int,
    ) -> None:
        """A `unique` on `columns` (of the rows where `where` holds): `equal` and `distinct`
        of its `rows` repeat another's columns, NULLs compared equal or not; `nulls: equal`
        when NULLs would hide duplicates."""
        nulls = equal > distinct
        dups = equal if nulls else distinct
        names = ", ".join(columns)
        check: dict[str, Any] = {
            "id": check_id(t.name, *(where or ["_".join(columns)]), "unique"),
            "kind": "unique",
            "table": t.name,
            "columns": columns,
        }
        if where is not None:
            check["where"] = {"column": where[0], "eq": where[1]}
        if nulls:
            check["nulls"] = "equal"
        whose = f" whose {where[0]} is {where[1]!r}" if where else ""
        check["description"] = f"one row per {names}" + (
            f" where {where[0]} is {where[1]!r}" if where else ""
        )
        evidence = [
            f"{dups} of the {rows} rows{whose} repeat another's {names}"
            + (" (NULLs compared equal)" if nulls else "")
        ]
        if where:
            evidence.append(f"{overall} of all {t.rows} rows do")
        self.add(
            Proposal(
                check,
                "data",
                round(min(0.9, 1 - 10 * dups / rows), 3),
                evidence,
                violations=dups,
            )
        )

    # ---------------------------------------------------------------- settling
    def settle(
        self,
        dependents: list[tuple[TableInfo, ColumnInfo]],
        unconditional: dict[tuple[str, str], list[Candidate]],
        conditional: dict[tuple[str, str], Proposal],
    ) -> None:
        """Choose per column: declared, conditional or plain reference; key spaces (the
        references between key tables) first, so mis-keys can map through them."""
        declared = {(d.table, d.columns[0]): d for d in self.declared if len(d.columns) == 1}
        chosen: dict[tuple[str, str], tuple[Candidate, list[Candidate]]] = {}
        for t, c in dependents:
            key = (t.name, c.name)
            if key in conditional:
                continue
            ranked = _ranked(unconditional.get(key, []))
            if ranked:
                chosen[key] = (ranked[0], ranked[1:])
        for key in conditional:
            self.references.pop(key, None)
        # with the key spaces known: a better target through which the values map
        for t, c in dependents:
            key = (t.name, c.name)
            if key in conditional:
                continue
            direct = unconditional.get(key, [])
            through = self.through_candidates(t, c, direct)
            ranked = _ranked(direct + through)
            if ranked and ranked[0].through:
                chosen[key] = (ranked[0], ranked[1:])
        for (table, column), d in declared.items():
            if (table, column) not in conditional:
                self.propose_declared(d, chosen.get((table, column)))
        for d in self.declared:
            if len(d.columns) > 1:
                self.propose_composite(d)
        for key, (best, rest) in sorted(chosen.items()):
            if key in declared:
                continue
            self.propose_reference(self.tables[key[0]], key[1], best, rest)
        for key, proposal in sorted(conditional.items()):
            t = self.tables[key[0]]
            targets = [(v, x["table"]) for v, x in proposal.check["targets"].items()]
            # through a type table, the discriminator's values are ids, not the targets' names
            got = (
                None
                if "lookup" in proposal.check
                else self.mis_key(t, key[1], targets, proposal.check["discriminator"])
            )
            if got is not None:
                proposal.check["mis_key"], more = got
                proposal.evidence += more
            self.add(proposal)
            self.add(self.trigger_note(proposal, declared.get(key)))

    def trigger_note(self, proposal: Proposal, declared: DeclaredReference | None) -> Proposal:
        """No foreign key can hold a conditional reference: a declared one is questioned."""
        column = proposal.check["column"]
        check: dict[str, Any] = {
            "id": check_id("catalog", proposal.table, column, "no_foreign_key"),
            "kind": "constraint",
            "table": proposal.table,
        }
        evidence = ["a foreign key on a conditional reference can only point at one of its targets"]
        if declared is not None:
            check["name"] = declared.name
            evidence.append(
                f"declared: {declared.name} -> {declared.target}({declared.target_columns[0]})"
            )
        return Proposal(
            {
                **check,
                "type": "foreign_key",
                "columns": [column],
                "absent": True,
                "description": f"{column} is a conditional reference (by "
                f"{proposal.check['discriminator']}); a plain foreign key on it points at one "
                "table only",
            },
            "data",
            proposal.confidence,
            evidence,
        )

    def propose_reference(
        self,
        t: TableInfo,
        column: str,
        best: Candidate,
        rest: list[Candidate],
        declared: DeclaredReference | None = None,
    ) -> None:
        target = self.tables[best.table]
        self.references[(t.name, column)] = _Reference(
            t.name, column, target.name, best.column, declared is not None, best
        )
        check: dict[str, Any] = {
            "id": check_id(t.name, column, "reference"),
            "kind": "reference",
            "table": t.name,
            "column": column,
            "target": {"table": target.name, "column": best.column},
        }
        evidence = [f"{column}: {best.describe()}"]
        confidence = best.coverage
        if best.name < 0.6:
            # a handful of small numbers, or a narrow band of a big key (years, counts),
            # fits every dense key: without a name, the values must use much of the key
            confidence *= 0.85 * min(1.0, max(0.0, (best.fill - 0.3) / 0.5))
            if best.distinct < 10:
                confidence *= 0.5
        close = [x for x in rest if x.score > best.score - 0.05]
        if close:
            confidence *= 0.8
        violations = best.missing_rows
        if best.through:
            # the values are the key space's: every row violates the proposed reference
            violations = best.rows
            confidence = min(confidence, 0.8)
            evidence.append(
                f"the values are not {target.name}.{best.column} but {target.name}.{best.through} "
                "values: the column holds keys of another key space"
            )
        questioned = []
        if declared is not None:
            questioned.append(
                f"declared: {declared.name} -> {declared.target}({declared.target_columns[0]}); "
                f"the data and the name say {target.name}({best.column})"
            )
            evidence += questioned
        if best.through or best.missing_rows:
            got = self.mis_key(t, column, [(None, target.name)], None)
            if got is not None:
                check["mis_key"], more = got
                evidence += more
        self.add(
            Proposal(
                check,
                "data",
                round(confidence, 3),
                evidence,
                [x.describe() for x in rest[:3]],
                violations,
            )
        )
        if declared is not None:
            self.add(
                self.fk_proposal(declared, target.name, [best.column], confidence, questioned)
            )

    def fk_proposal(
        self,
        d: DeclaredReference,
        target: str,
        target_columns: list[str],
        confidence: float,
        evidence: list[str],
    ) -> Proposal:
        check: dict[str, Any] = {
            "id": check_id("catalog", d.name),
            "kind": "constraint",
            "table": d.table,
            "name": d.name,
            "type": "foreign_key",
            "columns": d.columns,
            "references": {"table": target, "columns": target_columns},
        }
        if d.on_delete is not None and d.on_delete != "no_action":
            check["on_delete"] = d.on_delete
        return Proposal(
            check,
            "catalog",
            round(confidence, 3),
            [f"FOREIGN KEY {d.name} in the catalog", *evidence],
        )

    def propose_declared(
        self, d: DeclaredReference, questioned: tuple[Candidate, list[Candidate]] | None
    ) -> None:
        t = self.tables[d.table]
        if (
            questioned is not None
            and (questioned[0].table != d.target or questioned[0].column != d.target_columns[0])
            and questioned[0].name > name_fit(column_stem(d.columns[0], "id"), d.target)
        ):
            self.propose_reference(t, d.columns[0], questioned[0], questioned[1], declared=d)
            return
        if t.key is not None and self.tables[d.target].key is not None:
            check = {
                "id": check_id(d.table, d.columns[0], "reference"),
                "kind": "reference",
                "table": d.table,
                "column": d.columns[0],
                "target": {"table": d.target, "column": d.target_columns[0]},
            }
            evidence = [f"FOREIGN KEY {d.name} in the catalog"]
            if not d.validated:
                evidence.append("NOT VALID: existing rows were never checked")
            self.add(Proposal(check, "catalog", 1.0, evidence))
        self.add(self.fk_proposal(d, d.target, d.target_columns[:1], 1.0, []))

    def propose_composite(self, d: DeclaredReference) -> None:
        self.add(self.fk_proposal(d, d.target, d.target_columns, 1.0, []))
        reference = {
            "id": check_id(d.table, "_".join(d.columns), "reference"),
            "kind": "reference",
            "table": d.table,
            "columns": d.columns,
            "target": {"table": d.target, "columns": d.target_columns},
        }
        evidence = [f"FOREIGN KEY {d.name} in the catalog (composite: MATCH SIMPLE)"]
        if not d.validated:
            evidence.append("NOT VALID: existing rows were never checked")
        self.add(Proposal(reference, "catalog", 1.0, evidence))


def _normal(name: str) -> str:
    """A table's name as words joined by `_`, singular and plural alike (`Shop.Articles`,
    `shop_article` -> `shop_article`)."""
    return "_".join(tokens(name))


def _ranked(cands: list[Candidate]) -> list[Candidate]:
    """The candidates that hold at least MIN_COVERAGE of the rows, the best score first."""
    return sorted((x for x in cands if x.coverage >= MIN_COVERAGE), key=lambda x: -x.score)


def _rows_of(
    column: str, disc: str | None, value: str | None, prefix: str = ""
) -> tuple[str, dict[str, Any]]:
    """SQL (and its parameters): the rows whose `column` is set and, for a conditional
    reference, whose discriminator is `value`."""
    where = f"{prefix}{_q(column)} IS NOT NULL"
    if disc is None:
        return where, {}
    return f"{where} AND {prefix}{_q(disc)}::text = :value", {"value": value}


def _agreement(pairs: list[tuple[str, str]], other: str) -> list[str]:
    """Per (row column, column of the joined row `other`): how many joined rows have both
    set, and how many agree. Compared as text: an enum, a varchar and a text column holding
    the same words agree (and an enum is not comparable with text as it is)."""
    exprs = []
    for mine, theirs in pairs:
        te, oa = f"t.{_q(mine)}", f"{other}.{_q(theirs)}"
        exprs += [
            f"count(*) FILTER (WHERE {te} IS NOT NULL AND {oa} IS NOT NULL)",
            f"count(*) FILTER (WHERE {te}::text = {oa}::text)",
        ]
    return exprs


def _composite_key(t: TableInfo) -> list[str] | None:
    """A table's composite primary key, as the suite writes it (`key: [a, b]`)."""
    return list(t.primary_key) if len(t.primary_key) > 1 else None


def _member(value: str, u: TableInfo, column: str) -> str:
    """SQL: `value` is a value of `u.column` (see HASH_KEYS_BELOW)."""
    q = _q(column)
    if u.rows < HASH_KEYS_BELOW:
        return f"{value} IN (SELECT k.{q} FROM {_q_table(u)} k WHERE k.{q} IS NOT NULL)"
    return f"EXISTS (SELECT FROM {_q_table(u)} k WHERE k.{q} = {value})"


def _member_tuple(values: list[str], u: TableInfo, columns: list[str]) -> str:
    """SQL: the tuple `values` is a row of `u.columns` (see HASH_KEYS_BELOW)."""
    qs = [_q(c) for c in columns]
    if u.rows < HASH_KEYS_BELOW:
        picked = ", ".join(f"k.{q}" for q in qs)
        return (
            f"({', '.join(values)}) IN (SELECT {picked} FROM {_q_table(u)} k "
            f"WHERE {' AND '.join(f'k.{q} IS NOT NULL' for q in qs)})"
        )
    on = " AND ".join(f"k.{q} = {v}" for q, v in zip(qs, values, strict=True))
    return f"EXISTS (SELECT FROM {_q_table(u)} k WHERE {on})"


def _range_jaccard(low: Any, high: Any, klow: Any, khigh: Any) -> float:
    """The overlap of two ranges of numbers over their union (1: the same range)."""
    try:
        inner = min(high, khigh) - max(low, klow)
        outer = max(high, khigh) - min(low, klow)
        return max(0.0, float(inner)) / float(outer) if outer else 1.0
    except TypeError:
        return 0.0


def _overlaps(low: Any, high: Any, klow: Any, khigh: Any) -> bool:
    if None in (low, high, klow, khigh):
        return False
    if isinstance(low, str):
        return True  # text sorts by the column's collation, not Python's
    try:
        return bool(low <= khigh and klow <= high)
    except TypeError:
        return True


def _q(name: str) -> str:
    """A quoted column name for `sa.text` (a colon in it is no bind parameter)."""
    return sqltext.ident(name).replace(":", "\\:")


def _q_table(t: TableInfo) -> str:
    return t.sql.replace(":", "\\:")


def _shape_sql(value: str) -> str:
    """SQL: the shape of a text value (ASCII digits 9, lowercase letters a, uppercase A)."""
    return f"translate({value}, '{_SHAPE_FROM}', '{_SHAPE_TO}')"


def shape_regex(shape: str, prefix: str) -> str:
    """The regex of the values of `shape` that begin with `prefix` (`+2519`, `+9999999999999`
    -> `^\\+2519[0-9]{8}$`): exactly the values of that shape and prefix."""
    out = ["^", _literal(prefix)]
    for ch, run in itertools.groupby(shape[len(prefix) :]):
        n = len(list(run))
        if ch in _SHAPE_CLASSES:
            out.append(_SHAPE_CLASSES[ch] + (f"{{{n}}}" if n > 1 else ""))
        else:
            out.append(_literal(ch) * n)
    return "".join(out) + "$"


def _common_prefix(low: str, high: str) -> str:
    """What the least and the greatest value (in byte order) begin with: every value between
    them begins with it too."""
    n = 0
    while n < min(len(low), len(high)) and low[n] == high[n]:
        n += 1
    return low[:n]


def _literal(text: str) -> str:
    """Text matched as it is by a PostgreSQL regex (ASCII punctuation escaped)."""
    return "".join("\\" + ch if ch in string.punctuation else ch for ch in text)


# ============================================================================ YAML
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
            + (f", {p.violations} violating rows" if p.violations is not None else "")
        )
        for e in p.evidence:
            lines.append(f"  #   {_comment(e)}")
        for a in p.alternatives:
            lines.append(f"  #   alternative: {_comment(a)}")
        body = _dump([p.check]).rstrip().splitlines()
        lines += [f"  {line}" for line in body]
    text = "\n".join(lines) + "\n"
    try:
        Suite.model_validate(yaml.safe_load(text))
    except Exception as exc:  # a bug: never write a suite `run` cannot load
        raise AssertionError(f"the discovered suite does not validate: {exc}") from exc
    return text


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
