"""What a check family gives the engine.

Row families (references, consistency, domain rules) compile into *row rules*: a boolean SQL
flag evaluated on every row of one table. The engine puts all rules of a table into one
statement, so the table is scanned once whatever the number of checks. Set families
(uniqueness) and catalog families run a query of their own.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.sql.elements import ColumnElement, Grouping
from sqlalchemy.sql.selectable import TableClause

from .. import sqltext
from .model import Condition, Operand


@dataclass(frozen=True)
class ColumnType:
    """A column's type as the catalog gives it: `format_type` and `pg_type.typcategory`."""

    name: str
    category: str


ColumnTypes = Mapping[tuple[str, str], ColumnType]
"""(table, column) -> its type, for the tables a suite names
(`refaudit.checks.catalog.column_types`)."""



def is_true(expr: Any) -> Any:
    """`(expr) IS true`: TRUE or FALSE, never NULL. Parenthesised whatever `expr` is, so a
    negated condition cannot bind tighter than intended: SQLAlchemy writes `NOT x IS true`
    for `not_(x).is_(true())`, which PostgreSQL reads as `NOT (x IS true)`, TRUE for a NULL
    `x`; `(NOT x) IS true` is not."""
    return Grouping(expr).is_(sa.true())


def comparable(a: ColumnType | None, b: ColumnType | None) -> bool:
    """Whether PostgreSQL compares the two types with `=` as they are: the same type, or two
    numbers, or two strings. Anything else (a text polymorphic id against a bigint or uuid
    key) is compared as text. Unknown types are compared as written."""
    if a is None or b is None:
        return True
    return a.name == b.name or (a.category == b.category and a.category in ("N", "S"))


def folds(a: ColumnType | None, b: ColumnType | None) -> bool:
    """Whether a comparison as text folds case: when one side is a uuid, whose text is
    lowercase while PostgreSQL reads an uppercase spelling as the same uuid."""
    return any(t is not None and t.name == "uuid" for t in (a, b))


def equal_as(same: bool, a: Any, b: Any, fold: bool = False) -> ColumnElement[bool]:
    """`a = b`, or `a::text = b::text` when the types do not compare (`same` False): a key's
    text is its type's canonical output, so a text id equals the key it spells (with `fold`,
    compared in lower case: a text id spelling a uuid in capitals is that uuid)."""
    if same:
        return a == b
    if fold:
        return sa.func.lower(sa.cast(a, sa.Text)) == sa.func.lower(sa.cast(b, sa.Text))
    return sa.cast(a, sa.Text) == sa.cast(b, sa.Text)


def table_clause(name: str, columns: list[str] | tuple[str, ...] = ()) -> TableClause:
    """A lightweight table for SQL generation; `schema.table` names are split."""
    schema, bare = sqltext.split_name(name)
    return sa.table(bare, *(sa.column(c) for c in dict.fromkeys(columns)), schema=schema or None)


class TableScan:
    """The FROM clause of one table's scan: the table as `t` plus the LEFT JOINs rules ask for.

    Joins are shared: two rules that need the same target with the same condition get the
    same alias, so adding a check does not add a join that is already there.
    """

    def __init__(
        self,
        table: str,
        columns: Mapping[str, Iterable[str]],
        unique: Iterable[tuple[str, str]] = (),
        key_spaces: Mapping[str, Any] | None = None,
        types: ColumnTypes | None = None,
    ) -> None:
        """`columns` maps every table the scan may touch to the columns the suite reads;
        `unique` lists the (table, column) pairs the catalog guarantees to be unique;
        `key_spaces` are the suite's key spaces (for rules that diagnose mis-keyed values);
        `types` the columns' types, where known (see `comparable`)."""
        self.table = table
        self.types: ColumnTypes = dict(types or {})
        self._columns = {name: sorted(cols) for name, cols in columns.items()}
        self._unique = set(unique)
        self.key_spaces = dict(key_spaces or {})
        self.t = table_clause(table, self._columns[table]).alias("t")
        self._joins: dict[tuple[Any, ...], tuple[Any, ColumnElement[bool]]] = {}

    def col(self, name: str) -> ColumnElement[Any]:
        return self.t.c[name]

    def comparable(self, a: tuple[str, str], b: tuple[str, str]) -> bool:
        """Whether the columns `(table, column)` a and b compare with `=` as they are."""
        return comparable(self.types.get(a), self.types.get(b))

    def folds(self, a: tuple[str, str], b: tuple[str, str]) -> bool:
        """Whether comparing the columns as text folds case (see `folds`)."""
        return folds(self.types.get(a), self.types.get(b))

    def join(
        self,
        table: str,
        by: str | tuple[str, ...],
        on: Callable[[Any], ColumnElement[bool]],
        key: tuple[Any, ...] = (),
        keep: Condition | None = None,
    ) -> Any:
        """LEFT JOIN `table` matched on its column `by`, with condition `on(alias)`; with
        `keep`, only the target rows it keeps (see `lookup`).

        `key` tells joins of the same table and column apart (a conditional reference joins
        once per discriminator value). Unless the catalog says `by` is unique, the join goes
        through `SELECT DISTINCT ON (by)`, so that duplicate target keys never multiply rows.
        """
        full_key = (table, by, *key, condition_key(keep))
        if full_key not in self._joins:
            name = f"j{len(self._joins) + 1}"
            columns = self._columns.get(table, [by] if isinstance(by, str) else list(by))
            alias = lookup(table, by, columns, self._unique, name, keep)
            self._joins[full_key] = (alias, on(alias))
        return self._joins[full_key][0]

    def from_clause(self) -> Any:
        clause: Any = self.t
        for alias, on in self._joins.values():
            clause = clause.outerjoin(alias, on)
        return clause


def lookup(
    table: str,
    by: str | tuple[str, ...],
    columns: Iterable[str],
    unique: set[tuple[str, str]],
    name: str,
    keep: Condition | None = None,
) -> Any:
    """`table` (with `columns`) as a join target matched on `by`: the table itself when the
    catalog says `by` is unique, else `SELECT DISTINCT ON (by)`, so that duplicate keys never
    multiply the rows they are joined to. With `keep` (a target's `where`), only the rows it
    keeps count: filtered before DISTINCT ON, so a kept row is found whatever its duplicates."""
    keys = [by] if isinstance(by, str) else list(by)
    target = table_clause(table, [*keys, *columns, *(keep.columns() if keep else [])])
    if keep is None and (table, by) in unique:
        return target.alias(name)
    rows = sa.select(*target.c)
    if keep is not None:
        rows = rows.where(compile_condition(keep, lambda c: target.c[c]))
        if (table, by) in unique:
            return rows.subquery(name)
    on = [target.c[k] for k in keys]
    return rows.ext(distinct_on(*on)).order_by(*on).subquery(name)


class DiagnosisScope:
    """The second stage of a table's statement, where a rule explains its violations.

    `v` holds the violating rows of the table's scan (a MATERIALIZED CTE: the scan runs
    once); `rows` says which of them the rule flags. Every join made here touches those
    rows only, never the whole table. Joins are shared by `key`, as in `TableScan`.
    """

    def __init__(self, v: Any, scan: TableScan, rows: Any = None) -> None:
        self.v = v
        self.rows = rows if rows is not None else sa.true()  # which rows of `v` are diagnosed
        self.key_spaces = scan.key_spaces
        self.types = scan.types
        self._unique = scan._unique
        self._joins: dict[tuple[Any, ...], tuple[Any, ColumnElement[bool]]] = {}

    def column(self, name: str) -> ColumnElement[Any]:
        """A column of the audited row, carried from the scan (see `RowRule.columns`)."""
        return self.v.c[f"c_{name}"]

    def unique(self, table: str, column: str) -> bool:
        """Whether a unique index of `table` on `column` alone says its values are unique."""
        return (table, column) in self._unique

    def lookup(
        self,
        table: str,
        by: str,
        columns: Iterable[str],
        on: Callable[[Any], ColumnElement[bool]],
        key: tuple[Any, ...],
        keep: Condition | None = None,
    ) -> Any:
        """LEFT JOIN `table` matched on its column `by` with condition `on(alias)`; with
        `keep`, only the target rows it keeps.

        When a unique index covers `by`, the join is a LATERAL probe of that index per
        diagnosed row (`OFFSET 0` keeps the planner from flattening it into a hash join of
        the whole table): the planner cannot know how few rows `v` holds and would otherwise
        hash or sort entire tables for a few of their rows. Same rows either way."""
        full_key = ("lookup", table, by, *key, condition_key(keep))
        if (table, by) not in self._unique:
            return self.join(
                full_key,
                lambda name: lookup(table, by, columns, self._unique, name, keep),
                on,
            )

        def probe(name: str) -> Any:
            kept = keep.columns() if keep else []
            inner = table_clause(table, [by, *columns, *kept]).alias(f"{name}_t")
            found = sa.select(*inner.c).where(on(inner))
            if keep is not None:
                found = found.where(compile_condition(keep, lambda c: inner.c[c]))
            return found.offset(0).lateral(name)

        return self.join(full_key, probe, lambda _alias: sa.true())

    def join(
        self,
        key: tuple[Any, ...],
        make: Callable[[str], Any],
        on: Callable[[Any], ColumnElement[bool]],
    ) -> Any:
        """LEFT JOIN the selectable `make(alias_name)` with condition `on(alias)`."""
        if key not in self._joins:
            alias = make(f"d{len(self._joins) + 1}")
            self._joins[key] = (alias, on(alias))
        return self._joins[key][0]

    def from_clause(self) -> Any:
        clause: Any = self.v
        for alias, on in self._joins.values():
            clause = clause.outerjoin(alias, on)
        return clause


@dataclass
class Diagnosis:
    """Why one row violates a rule, as SQL over the facts a `Diagnoser` gathered.

    `diagnosis`, `proposed`, `confidence` and `evidence` become the columns of
    violations.csv; `repair_column` names the column a repair would change (the engine adds
    the audited values of every column the diagnosis read, the repair's guard). `flag`,
    when given, replaces the rule's flag: the scan may select candidate rows that only the
    diagnosis can confirm.
    """

    diagnosis: ColumnElement[Any]
    proposed: ColumnElement[Any]
    confidence: ColumnElement[Any]
    evidence: ColumnElement[Any]
    repair_column: ColumnElement[Any] | None = None
    flag: ColumnElement[bool] | None = None


Facts = Mapping[str, Any]
Step = Callable[[Facts, Callable[[str], Any]], dict[str, Any]]


class Diagnoser(Protocol):
    """Explains a rule's violations in set-based steps over the violating rows only:
    `facts` (LEFT JOINs on the rows of `v`, e.g. the profile a users.id maps to), then each
    of `steps()` (named expressions over the facts so far, e.g. "the evidence supports the
    users.id reading", then the label), then `conclude` (the violations.csv columns).
    Every step is one subquery level, so later steps name earlier results instead of
    repeating their SQL."""

    def facts(self, scope: DiagnosisScope, carried: Facts) -> dict[str, Any]: ...

    def steps(self) -> list[Step]: ...

    def conclude(self, facts: Facts, column: Callable[[str], Any]) -> Diagnosis: ...


@dataclass
class RowRule:
    """One boolean test on every row of a table.

    `flag` is TRUE exactly for violating rows (NULL counts as passing). `value` is what
    violations.csv shows in its `value` column; `column` names the column(s) it is about.
    A rule with a `diagnoser` also carries `carry` (scan expressions, e.g. "is the value
    missing") and the table's `columns` it needs into the diagnosis stage.
    """

    rule_id: str
    check: Any
    column: str
    flag: ColumnElement[bool]
    value: ColumnElement[Any]
    extra: dict[str, ColumnElement[Any]] = field(default_factory=dict)
    carry: dict[str, ColumnElement[Any]] = field(default_factory=dict)
    columns: list[str] = field(default_factory=list)
    diagnoser: Diagnoser | None = None


@dataclass(frozen=True)
class Violation:
    """One line of violations.csv."""

    check: str
    table: str
    key: str
    column: str
    value: str
    diagnosis: str = ""
    proposed_value: str = ""
    confidence: str = ""
    evidence: str = ""
    # not in violations.csv: what a repair of this row would change, and the audited value
    # of every column of the row the diagnosis read, a JSON object of texts (NULL as null):
    # the repair changes the row only while all of them still hold (see pipeline/repair/)
    repair_column: str = ""
    repair_guard: str | None = None

    def guard(self) -> dict[str, Any]:
        """The audited values of the columns the diagnosis read: texts (None for NULL), or
        for a long one its length and SHA-256 (see `guard_value`)."""
        import json

        return dict(json.loads(self.repair_guard)) if self.repair_guard else {}


VALUE_CHARS = 1 << 20
"""The most characters of a value (and of an evidence text) a violation carries into
violations.csv and everything made from it: a longer one is cut there, and says so
(`CUT_MARK`). One huge value then costs the run a few MB, not ten times its size. A repair
still compares such a value whole: its guard holds the value's length and SHA-256
(`guard_text`), computed by PostgreSQL."""

CUT_MARK = re.compile(r"… \[cut: ([\d,]+) characters in all\]$")
"""How a cut value ends: the first VALUE_CHARS characters, then this."""


def cut_text(expr: Any) -> ColumnElement[Any]:
    """SQL: `expr` as text, cut to VALUE_CHARS characters with a note of its whole length
    when it is longer (see `CUT_MARK`)."""
    text = sa.cast(expr, sa.Text)
    length = sa.func.length(text)
    return sa.case(
        (
            length > VALUE_CHARS,
            sa.func.concat(
                sa.func.left(text, VALUE_CHARS),
                sa.literal("… [cut: ", sa.Text),
                sa.func.to_char(length, sa.literal("FM999,999,999,999", sa.Text)),
                sa.literal(" characters in all]", sa.Text),
            ),
        ),
        else_=text,
    )


def sha256_hex(text: Any) -> ColumnElement[Any]:
    """SQL: the SHA-256 of `text`'s UTF-8 bytes, in hex (the same whatever the server's
    encoding)."""
    return sa.func.encode(
        sa.func.sha256(sa.func.convert_to(text, sa.literal("UTF8", sa.Text))),
        sa.literal("hex", sa.Text),
    )


def guard_value(expr: Any) -> ColumnElement[Any]:
    """SQL: the audited value of a guard column as JSON: its text, or for a value longer than
    VALUE_CHARS `{"length": n, "sha256": hex}` (see `guard_text`)."""
    text = sa.cast(expr, sa.Text)
    length = sa.func.length(text)
    return sa.case(
        (
            length > VALUE_CHARS,
            sa.func.json_build_object(
                sa.literal("length", sa.Text), length,
                sa.literal("sha256", sa.Text), sha256_hex(text),
            ),
        ),
        else_=sa.func.to_json(text),
    )  # fmt: skip


HASHED_GUARD = "refaudit-sha256:"


def guard_text(value: Any, nonce: str) -> str | None:
    """A guard column's audited value as a plan stores it: its text, or for a value the
    audit hashed (`guard_value`) `refaudit-sha256:<nonce>:<length>:<hex>`, which the plan
    compares with the length and SHA-256 of the row's current value."""
    if isinstance(value, dict):
        return f"{HASHED_GUARD}{nonce}:{int(value['length'])}:{value['sha256']}"
    return None if value is None else str(value)


VIOLATION_FIELDS = (
    "check",
    "table",
    "key",
    "column",
    "value",
    "diagnosis",
    "proposed_value",
    "confidence",
    "evidence",
)


def one_of(expr: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    """`expr IN (v1, v2, ...)` with one plain parameter per value. (An expanding IN would
    take its parameter's name from the column's, which SQLAlchemy cannot expand when the
    name holds whitespace.)"""
    return expr.in_([sa.literal(v) for v in values])


def not_one_of(expr: ColumnElement[Any], values: Iterable[Any]) -> ColumnElement[bool]:
    return expr.not_in([sa.literal(v) for v in values])


def as_text(expr: ColumnElement[Any]) -> ColumnElement[str]:
    return sa.cast(expr, sa.Text)


_COMPARISONS = {
    "eq": lambda a, b: a == b,
    "ne": lambda a, b: a != b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
}


def compile_condition(cond: Condition, col: Any) -> sa.ColumnElement[bool]:
    """A suite condition as SQL over the columns `col(name)`; values become bound parameters."""
    if cond.all is not None:
        return sa.and_(*(compile_condition(c, col) for c in cond.all))
    if cond.any is not None:
        return sa.or_(*(compile_condition(c, col) for c in cond.any))
    if cond.not_ is not None:
        return sa.not_(compile_condition(cond.not_, col))
    assert cond.column is not None
    left = col(cond.column)
    for op, fn in _COMPARISONS.items():
        right = getattr(cond, op)
        if right is not None:
            return fn(left, col(right.column) if isinstance(right, Operand) else sa.literal(right))
    if cond.in_ is not None:
        return one_of(left, cond.in_)
    if cond.not_in is not None:
        return not_one_of(left, cond.not_in)
    return left.is_(None) if cond.is_null else left.is_not(None)


def check_rules(check: Any, scan: TableScan) -> list[RowRule]:
    """A row check's rules over `scan`, each flag limited to the rows the check's `where`
    keeps (`row_filter`): what the engine runs and the GX export exports."""
    rules = check.rules(scan)
    kept = check.row_filter()
    if kept is None:
        return list(rules)
    keep = compile_condition(kept, scan.col)
    if check.may_raise:  # CASE: a row `where` leaves out never evaluates the rule at all
        return [replace(r, flag=sa.case((keep, r.flag), else_=sa.false())) for r in rules]
    return [replace(r, flag=sa.and_(keep, r.flag)) for r in rules]


def condition_key(cond: Condition | None) -> str:
    """A condition as a key: "" for none."""
    return "" if cond is None else cond.model_dump_json(by_alias=True, exclude_none=True)


def filter_key(check: Any) -> str:
    """Tells the row sets of a table's checks apart: "" for every row, else the filter."""
    return condition_key(check.row_filter())


Key = str | tuple[str, ...]
"""A table's key: one column, or the columns of a composite key."""


def key_columns(key: Key) -> list[str]:
    return [key] if isinstance(key, str) else list(key)


def key_value(col: Callable[[str], Any], key: Key) -> Any:
    """The key of a row as violations.csv writes it: the column's value, or for a composite
    key a JSON array of the columns' values as text (`[7, "EU"]`)."""
    if isinstance(key, str):
        return col(key)
    return sa.cast(sa.func.json_build_array(*(col(c) for c in key)), sa.Text)


def key_order(col: Callable[[str], Any], key: Key) -> list[Any]:
    """ORDER BY of rows in key order."""
    return [col(c) for c in key_columns(key)]
