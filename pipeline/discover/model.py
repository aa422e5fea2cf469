"""What discovery works with and returns: tables and columns as the catalog gives them, how a
column fits a key (`Candidate`), the checks it proposes (`Proposal`) and the whole result
(`Discovery`); the thresholds every stage shares, and small SQL helpers."""

from __future__ import annotations

import itertools
import math
import re
import string
from dataclasses import dataclass, field
from typing import Any, Literal

from .. import sqltext
from ..checks.model import Check
from ..limits import DEFAULT_LOCK_TIMEOUT_S, DEFAULT_STATEMENT_TIMEOUT_S
from .names import NAME_VOUCHES, tokens

DEFAULT_MIN_CONFIDENCE = 0.5
SOLE_NAME = 0.7
"""A weak name that only one of the keys holding the values shares scales the confidence
by this (`ship_via` -> `shippers.shipper_id`)."""
SPREAD_ONLY = 0.55
"""The confidence of a reference no name fits, whose values are many (SPREAD_VALUES),
all keys of the one key that holds them, and spread over its range (`bunched` above
SPREAD)."""
SPREAD_VALUES = 20
SPREAD = -1.0
BY_NAME = 0.6
"""The confidence of a reference proposed on its name alone (no value to test)."""
BUNCHED = -4.0
"""Below this `Candidate.bunched` (a chance of 1 in 10,000), values are no reference
unless their name vouches for it."""


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


_FAMILIES = {"N": "number", "S": "text", "U": "uuid", "D": "time", "B": "bool"}


_INTEGER_TYPES = {"smallint", "integer", "bigint"}


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
    inherits: list[str] = field(default_factory=list)
    """The tables this one inherits from (`INHERITS`, a partition's parent): a child's rows
    are its parent's rows too, never references to them."""
    inferred: list[str] = field(default_factory=list)
    """A key the rows hold where the catalog declares none (`keys.infer_key`): columns
    NOT NULL and unique together on every row."""
    inferred_alternates: list[str] = field(default_factory=list)
    """The other single columns its rows hold unique and NOT NULL (a natural key beside a
    surrogate `id`): keys a reference may name too."""

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
        return self.inferred[0] if len(self.inferred) == 1 else None

    def kin(self, other: TableInfo) -> bool:
        """One of the two inherits from the other."""
        return other.name in self.inherits or self.name in other.inherits

    def all_uniques(self) -> list[list[str]]:
        """UNIQUE constraints, then unique indexes."""
        return [*self.uniques, *(c for c in self.unique_indexes.values() if c not in self.uniques)]

    def single_keys(self) -> list[str]:
        """Columns whose values are unique by the catalog (primary key, UNIQUE and unique
        indexes)."""
        keys = [self.primary_key[0]] if len(self.primary_key) == 1 else []
        keys += [cols[0] for cols in self.all_uniques() if len(cols) == 1 and cols[0] not in keys]
        if len(self.inferred) == 1 and self.inferred[0] not in keys:
            keys.append(self.inferred[0])
        keys += [c for c in self.inferred_alternates if c not in keys]
        return keys

    def composite_keys(self) -> list[list[str]]:
        """Keys of several columns: the primary key, UNIQUE constraints, unique indexes."""
        keys = [list(self.primary_key)] if len(self.primary_key) > 1 else []
        keys += [c for c in self.all_uniques() if len(c) > 1 and c not in keys]
        if len(self.inferred) > 1 and self.inferred not in keys:
            keys.append(list(self.inferred))
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
    same_type: bool = True
    """The column's type is the key's (lengths and precisions aside): a foreign key's
    column is declared as its key is, by hand and by every framework."""
    spread_known: bool = False
    """`bunched` was measured (numbers against a key whose range is known)."""
    bunched: float = 0.0
    """log10 of the chance that as many keys drawn at random span as narrow a band of the
    key's range as the values do (`narrow_band`): far below 0 for measures (lengths,
    durations, counts) that fall into a dense key by accident."""

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
    """One check the discovered suite holds, with why it is there. The check is its kind's
    own model (`refaudit.checks`), so a wrong key or value fails where it is proposed."""

    model: Check
    source: Source
    confidence: float
    evidence: list[str] = field(default_factory=list)
    alternatives: list[str] = field(default_factory=list)
    violations: int | None = None
    """Rows the check flags by the data read (None where not measured: catalog checks)."""

    @property
    def check(self) -> dict[str, Any]:
        """The check as the suite file writes it (a copy: change it with `revise`)."""
        return self.model.written()

    @property
    def kind(self) -> str:
        return self.model.family

    @property
    def table(self) -> str:
        return self.model.table

    def revise(self, **changes: Any) -> None:
        """Set keys of the check, validated again as its kind's model."""
        given = {k: getattr(self.model, k) for k in self.model.model_fields_set}
        self.model = type(self.model).model_validate(given | changes)


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
                and (column is None or getattr(p.model, "column", None) == column)
            ):
                return p
        return None


@dataclass(frozen=True)
class DiscoverOptions:
    schemas: tuple[str, ...] = ()
    """Schemas to read; empty: those of the search path (`current_schemas(false)`)."""
    statement_timeout_s: float = DEFAULT_STATEMENT_TIMEOUT_S
    lock_timeout_s: float = DEFAULT_LOCK_TIMEOUT_S


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


def _pct(share: float) -> str:
    return f"{100 * share:.1f}%"


def check_id(*parts: str) -> str:
    return ".".join(re.sub(r"[^A-Za-z0-9_:-]+", "_", p).strip("_") or "_" for p in parts)


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


def _normal(name: str) -> str:
    """A table's name as words joined by `_`, singular and plural alike (`Shop.Articles`,
    `shop_article` -> `shop_article`)."""
    return "_".join(tokens(name))


def _ranked(cands: list[Candidate]) -> list[Candidate]:
    """The candidates that hold at least MIN_COVERAGE of the rows, the best score first;
    without a name that vouches for it, none whose values bunch in a band of the key's
    range that keys drawn at random would almost never span (`Candidate.bunched`), and
    none of another type than the key's (a smallint of flags is no integer id)."""
    return sorted(
        (
            x
            for x in cands
            if x.coverage >= MIN_COVERAGE
            and (x.name >= NAME_VOUCHES or (x.bunched > BUNCHED and x.same_type))
        ),
        key=lambda x: -x.score,
    )


def base_type(declared: str) -> str:
    """A column's type without its length or precision (`character varying(20)` ->
    `character varying`)."""
    return re.sub(r"\(.*?\)", "", declared).strip()


def narrow_band(values: int, low: Any, high: Any, keys: int, klow: Any, khigh: Any) -> float:
    """log10 of the chance that `values` keys drawn at random from `keys` keys spread
    evenly over `klow..khigh` span no more of that range than `low..high` does (an upper
    bound: the band's start times the ways to pick them all inside it). References spread
    over the keys they name; a measure (a film's length in minutes, a rental's duration in
    days) that lands in a dense id range by accident bunches in a narrow band of it: the
    randomness test of Zhang et al. (VLDB 2010), on ranges. 0 where it says nothing."""
    try:
        width, kwidth = float(high) - float(low), float(khigh) - float(klow)
    except (TypeError, ValueError):
        return 0.0
    if values < 3 or keys <= values or kwidth <= 0:
        return 0.0
    span = max(values, min(keys, round(width / kwidth * (keys - 1)) + 1))

    def log_choose(n: int, k: int) -> float:
        return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)

    chance = math.log(keys - span + 1) + log_choose(span, values) - log_choose(keys, values)
    return min(0.0, chance / math.log(10))


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
    the same words agree (and an enum is not comparable with text as it is). An empty
    string is no value: two agree on nothing (a form's unfilled fields)."""
    exprs = []
    for mine, theirs in pairs:
        te, oa = f"t.{_q(mine)}::text", f"{other}.{_q(theirs)}::text"
        exprs += [  # NULL <> '' is not true: a NULL is not set either
            f"count(*) FILTER (WHERE {te} <> '' AND {oa} <> '')",
            f"count(*) FILTER (WHERE {te} = {oa} AND {te} <> '')",
        ]
    return exprs


def _composite_key(t: TableInfo) -> list[str] | None:
    """A table's composite key, as the suite writes it (`key: [a, b]`): its primary key,
    else a UNIQUE (or unique index) of NOT NULL columns, else the composite key its rows
    hold (`keys.infer_key`)."""
    if len(t.primary_key) > 1:
        return list(t.primary_key)
    if t.primary_key:
        return None
    for cols in t.all_uniques():
        if len(cols) > 1 and all(t.columns[c].not_null for c in cols):
            return list(cols)
    return list(t.inferred) if len(t.inferred) > 1 else None


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
