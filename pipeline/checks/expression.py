"""SQL expressions a suite writes over the columns of one row (`lower(name)`), made safe to
run inside the audit and to put into DDL.

Two gates, the second on the server:

1. `parse_expression` reads the text with PostgreSQL's own parser (pglast) and accepts only
   an allow-list of node types: columns of the row's own table (a bare name, never
   `other.col`, never `*`), constants, operators, function calls (plain ones: no `*`,
   `DISTINCT`, `ORDER BY`, `FILTER`, `OVER`, named or `VARIADIC` arguments), `CASE`,
   `COALESCE`, `NULLIF`, `IN (...)`, `BETWEEN`, `LIKE`/`ILIKE`, `IS [NOT] DISTINCT FROM`,
   `AND`/`OR`/`NOT`, `IS [NOT] NULL`, `IS [NOT] TRUE/FALSE/UNKNOWN`, `COLLATE` and type
   casts. Anything else (a subquery, another table, a parameter, an array, a row, a
   subscript) is refused with a one-line message. The SQL refaudit runs is PostgreSQL's
   reading of the text written back (`RawStream`), never the text itself, so no comment or
   trailing statement survives.

2. `volatility_problem` asks the server which functions the expression calls and how
   volatile each is, against the audited table, inside the audit's snapshot, without
   running anything: the expression's every sub-expression is selected from the table
   with `LIMIT 0` (planned, never evaluated: no row is read, no function called) and the
   row description gives each one's type. With the types, each call is resolved as
   PostgreSQL resolves it:

   - a function or operator with a candidate whose argument types are exactly the
     arguments' (the first such one along `search_path`, or in the named schema) is that
     candidate: PostgreSQL takes an exact match before anything else, so a `public.lower
     (varchar)` shadowing `pg_catalog.lower(text)` for a varchar column is found (for an
     untyped literal operand of an operator, the other operand's type, as PostgreSQL
     assumes; a function of that name with defaults or VARIADIC, which could hide the
     exact match, sends it to the next case);
   - otherwise (an untyped literal argument, an argument PostgreSQL must convert) refaudit
     does not repeat the server's choice among candidates: every function or operator of
     that name along the path that the arguments can reach by implicit conversion must be
     within the bound, and so must the `pg_cast` function of each such conversion. Sound,
     and stricter than the server: cast the arguments to the exact types of an immutable
     candidate;
   - an explicit cast (`x::text`) runs the `pg_cast` function from the argument's type to
     the target, or the two types' output and input functions (timestamptz's output is
     stable); only plain types are cast targets (no domain, no array);
   - the branches of `CASE`/`COALESCE` converted to the result type likewise;
   - `CURRENT_DATE` and the other SQL value functions are stable.

   Every function so found must be at most as volatile as the bound: `immutable` for what
   an index needs (`unique`), `immutable` or `stable` for a row expression. Aggregates,
   window functions, procedures and set-returning functions are refused whatever the bound.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .. import sqltext

Volatility = Literal["immutable", "stable", "volatile"]
_CODE = {"i": "immutable", "s": "stable", "v": "volatile"}
_RANK = {"immutable": 0, "stable": 1, "volatile": 2}


class ExpressionError(ValueError):
    """An expression refaudit does not run: not one expression, or one holding a node
    outside the allow-list."""


@dataclass(frozen=True)
class SqlExpression:
    """A parsed, allow-listed expression over the columns of one row.

    `text`: PostgreSQL's reading of it written back (`lower(name)`); `columns`: the columns
    it reads, in order of first appearance."""

    text: str
    columns: tuple[str, ...]
    _source: str = field(repr=False, compare=False)

    def sql(self, alias: str | None = None) -> str:
        """The expression as SQL, each column qualified with `alias` when given."""
        from pglast.stream import RawStream

        node = _parse(self._source)
        if alias is not None:
            for ref in _nodes(node, "ColumnRef"):
                ref.fields = (_string(alias), *ref.fields)
        return str(RawStream()(node))

    def element(self, alias: str | None = None) -> Any:
        """The expression as a SQLAlchemy column element (its SQL is the parser's own)."""
        return sa.literal_column(f"({self.sql(alias)})")


def _string(value: str) -> Any:
    from pglast import ast

    return ast.String(sval=value)


# SelectStmt fields that a bare `SELECT <expression>` leaves at their defaults
_SELECT_DEFAULTS = {"op", "all", "groupDistinct", "limitOption", "targetList"}

_A_EXPR_KINDS = {
    "AEXPR_OP",
    "AEXPR_DISTINCT",
    "AEXPR_NOT_DISTINCT",
    "AEXPR_NULLIF",
    "AEXPR_IN",
    "AEXPR_LIKE",
    "AEXPR_ILIKE",
    "AEXPR_BETWEEN",
    "AEXPR_NOT_BETWEEN",
    "AEXPR_BETWEEN_SYM",
    "AEXPR_NOT_BETWEEN_SYM",
}
_REFUSED = {
    "SubLink": "a subquery",
    "SelectStmt": "a subquery",
    "RangeVar": "another table",
    "A_Star": "`*`",
    "ParamRef": "a parameter ($1)",
    "A_ArrayExpr": "an array constructor",
    "A_Indirection": "a subscript or field selection",
    "RowExpr": "a row constructor",
    "NamedArgExpr": "a named argument",
    "MinMaxExpr": "GREATEST/LEAST",
    "GroupingFunc": "GROUPING",
    "SetToDefault": "DEFAULT",
}
_ALLOWED = {
    "ColumnRef",
    "String",
    "A_Const",
    "Integer",
    "Float",
    "Boolean",
    "BitString",
    "A_Expr",
    "FuncCall",
    "CaseExpr",
    "CaseWhen",
    "CoalesceExpr",
    "TypeCast",
    "TypeName",
    "BoolExpr",
    "NullTest",
    "BooleanTest",
    "CollateClause",
    "SQLValueFunction",
}


def _children(node: Any) -> list[Any]:
    """The nodes directly under `node` (tuples flattened)."""
    from pglast import ast

    out: list[Any] = []
    for name in node.__slots__:
        value = getattr(node, name, None)
        items = value if isinstance(value, tuple) else (value,)
        out.extend(v for v in items if isinstance(v, ast.Node))
    return out


def _walk(node: Any) -> list[Any]:
    out = [node]
    for child in _children(node):
        out.extend(_walk(child))
    return out


def _nodes(node: Any, kind: str) -> list[Any]:
    return [n for n in _walk(node) if type(n).__name__ == kind]


def _parse(text: str) -> Any:
    """The expression node of `SELECT <text>`, or ExpressionError if that is not one
    expression."""
    import pglast
    from pglast import ast
    from pglast.parser import ParseError

    if not text.strip():
        raise ExpressionError("is empty; write an SQL expression such as lower(name)")
    try:
        parsed = pglast.parse_sql(f"SELECT {text}")
    except ParseError as exc:
        said = sqltext.comment(str(exc))  # one line, whatever the text held
        raise ExpressionError(f"is not an SQL expression PostgreSQL can read ({said})") from None
    if len(parsed) != 1 or not isinstance(parsed[0].stmt, ast.SelectStmt):
        raise ExpressionError("is not one expression (it holds more than one statement)")
    stmt: Any = parsed[0].stmt
    extra = [n for n in stmt.__slots__ if n not in _SELECT_DEFAULTS and getattr(stmt, n, None)]
    if extra or len(stmt.targetList or ()) != 1 or stmt.targetList[0].name:
        raise ExpressionError(
            "is not one expression (write only the expression: no FROM, WHERE, AS or comma)"
        )
    return stmt.targetList[0].val


def _refusal(node: Any) -> str | None:
    """Why `node` is outside the allow-list, or None."""
    from pglast import ast

    kind = type(node).__name__
    if kind in _REFUSED:
        return f"holds {_REFUSED[kind]}, which a suite expression may not"
    if kind not in _ALLOWED:
        return f"holds {kind}, which a suite expression may not"
    if isinstance(node, ast.ColumnRef):
        fields = node.fields or ()
        if any(isinstance(f, ast.A_Star) for f in fields):
            return "holds `*`, which a suite expression may not; name the columns"
        if len(fields) != 1:
            shown = sqltext.comment(".".join(str(getattr(f, "sval", "?")) for f in fields))
            return (
                f"names `{shown}`: only columns of the check's own table, unqualified "
                "(another table, or a qualified name, may not appear)"
            )
    kind_name = getattr(getattr(node, "kind", None), "name", "")
    if isinstance(node, ast.A_Expr) and kind_name not in _A_EXPR_KINDS:
        return f"holds {kind_name.removeprefix('AEXPR_')}, which a suite expression may not"
    if isinstance(node, ast.FuncCall):
        shown = sqltext.comment(".".join(s.sval for s in node.funcname or ()))
        if node.agg_star or node.agg_distinct or node.agg_order or node.agg_filter:
            return f"calls {shown} as an aggregate, which a suite expression may not"
        if node.over is not None or node.agg_within_group:
            return f"calls {shown} as a window function, which a suite expression may not"
        if node.func_variadic:
            return f"calls {shown} with VARIADIC, which a suite expression may not"
    if isinstance(node, ast.TypeName):
        if node.setof or node.pct_type:
            return "casts to a %TYPE or SETOF type, which a suite expression may not"
        if node.arrayBounds:
            return "casts to an array type; cast to a plain type"
    return None


@functools.lru_cache(maxsize=1024)
def parse_expression(text: str) -> SqlExpression:
    """`text` as an allow-listed expression (see the module), or ExpressionError saying why
    not, in one line."""
    node = _parse(text)
    for n in _walk(node):
        why = _refusal(n)
        if why is not None:
            raise ExpressionError(why)
    from pglast.stream import RawStream

    columns = tuple(dict.fromkeys(ref.fields[0].sval for ref in _nodes(node, "ColumnRef")))
    return SqlExpression(str(RawStream()(node)), columns, text)


# --------------------------------------------------------------------------- the server
@dataclass(frozen=True)
class _Proc:
    label: str
    volatility: Volatility
    kind: str
    retset: bool


UNKNOWN = 0
"""The type of an untyped literal (`'abc'`, NULL): PostgreSQL decides it from the context."""


def volatility_problem(
    conn: Connection, table: str, expr: SqlExpression, bound: Volatility
) -> str | None:
    """What PostgreSQL says is wrong with `expr` over `table`: it cannot run it (an unknown
    function, types that do not fit), or it calls a function more volatile than `bound`
    (see the module for how calls are resolved); None when it is fine. Runs nothing: the
    expression is planned with `LIMIT 0`, never evaluated, and the catalog read."""
    from pglast import ast
    from pglast.stream import RawStream

    root = _parse(expr._source)
    for ref in _nodes(root, "ColumnRef"):
        ref.fields = (_string("t"), *ref.fields)
    typed = [
        n
        for n in _walk(root)
        if type(n).__name__ not in ("String", "TypeName", "CaseWhen", "Integer", "Float",
                                    "Boolean", "BitString")
    ]  # fmt: skip
    checker = _Checker(conn, bound)
    for call in _nodes(root, "FuncCall"):  # before the server's own, more obscure message
        problem = checker.aggregate([s.sval for s in call.funcname])
        if problem is not None:
            return problem
    types = _types(conn, table, [str(RawStream()(n)) for n in typed])
    if isinstance(types, str):
        return types
    for node, oid in zip(typed, types, strict=True):
        untyped = isinstance(node, ast.A_Const) and (
            node.isnull or isinstance(node.val, ast.String)
        )
        checker.type_of[id(node)] = UNKNOWN if untyped else oid
    for node in _walk(root):
        problem = checker.node(node)
        if problem is not None:
            return problem
    return None


_PROC_LABEL = (
    "(SELECT CASE WHEN n.nspname = 'pg_catalog' OR pg_catalog.starts_with("
    "p.oid::pg_catalog.regprocedure::pg_catalog.text, pg_catalog.quote_ident(n.nspname) || '.') "
    "THEN '' ELSE pg_catalog.quote_ident(n.nspname) || '.' END "
    "|| p.oid::pg_catalog.regprocedure::pg_catalog.text "
    "FROM pg_catalog.pg_namespace n WHERE n.oid = p.pronamespace)"
)
"""SQL: the function `p` as messages name it, with its schema unless it is pg_catalog's."""


def _types(conn: Connection, table: str, items: list[str]) -> list[int] | str:
    """The type of each SQL expression in `items` over `table AS t`, or PostgreSQL's message
    when it cannot run them: `SELECT items FROM table AS t LIMIT 0`, whose row description
    names each column's type. PostgreSQL plans it but evaluates nothing (a LIMIT 0 returns
    before its scan starts; planning folds only immutable calls with constant arguments)."""
    from sqlalchemy import exc as sa_exc

    select = ", ".join(f"({s})" for s in items)
    statement = f"SELECT {select} FROM {sqltext.table(table)} AS t LIMIT 0"
    raw: Any = conn.connection.driver_connection
    try:
        with conn.begin_nested():
            cursor = raw.cursor()
            cursor.execute(statement)  # no parameters: no `%` to escape
            return [int(column.type_code) for column in cursor.description]
    except (sa_exc.DBAPIError, conn.dialect.loaded_dbapi.Error) as exc:
        orig = getattr(exc, "orig", exc)
        diag = getattr(orig, "diag", None)
        message = getattr(diag, "message_primary", None) or str(orig).splitlines()[0]
        return f"PostgreSQL cannot run it: {' '.join(str(message).split())}"


_MEMO: ContextVar[dict[tuple[str, str], list[Any]] | None] = ContextVar(
    "catalog_memo", default=None
)


@contextmanager
def catalog_memo() -> Iterator[None]:
    """Within it, `volatility_problem` asks the catalog each distinct question once (the
    catalog does not change within the audit's snapshot): a suite of thousands of
    expressions reads the same operators and types again and again."""
    token = _MEMO.set({})
    try:
        yield
    finally:
        _MEMO.reset(token)


@dataclass(frozen=True)
class _Rows:
    """Rows read once, answering as the result of `Connection.execute` does."""

    rows: list[Any]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.rows)

    def all(self) -> list[Any]:
        return list(self.rows)

    def first(self) -> Any:
        return self.rows[0] if self.rows else None

    def scalar(self) -> Any:
        return self.rows[0][0] if self.rows else None


class _Checker:
    """Resolves each call of an expression as the server would and says which one is more
    volatile than the bound (see the module)."""

    def __init__(self, conn: Connection, bound: Volatility) -> None:
        self.conn = conn
        self.bound = bound
        self.type_of: dict[int, int] = {}  # id(node) -> its type
        self._kinds: dict[int, tuple[str, int, str]] = {}  # typtype, typbasetype, category
        self._implicit: dict[int, set[int]] = {}  # type -> what it converts to implicitly
        self.path = [
            (int(oid), str(name))
            for oid, name in self._read(
                sa.text(
                    "SELECT n.oid, n.nspname FROM pg_catalog.unnest("
                    "pg_catalog.current_schemas(true)) WITH ORDINALITY AS s(name, pos) "
                    "JOIN pg_catalog.pg_namespace n ON n.nspname = s.name "
                    "WHERE s.name !~ '^pg_temp' ORDER BY s.pos"
                )
            )
        ]

    def _read(self, stmt: Any, params: dict[str, Any] | None = None) -> Any:
        """A catalog read; within `catalog_memo`, each distinct one is asked once."""
        memo = _MEMO.get()
        if memo is None:
            return self.conn.execute(stmt, params)
        key = (str(stmt), repr(sorted((params or {}).items())))
        if key not in memo:
            memo[key] = list(self.conn.execute(stmt, params).all())
        return _Rows(memo[key])

    def _t(self, node: Any) -> int:
        return self.type_of.get(id(node), UNKNOWN) if node is not None else UNKNOWN

    def _needs(self, what: str) -> str:
        if self.bound == "immutable":
            return f"{what}; a unique index needs immutable functions only"
        return f"{what}; an expression here may call immutable or stable functions only"

    def _first_too_volatile(self, rows: Sequence[Any], called: str, also: str = "") -> str | None:
        """`_too_volatile` of the first of `rows` (provolatile, prokind, proretset, label)
        that may not run here, or None."""
        for r in rows:
            proc = _Proc(r[3], _CODE[r[0]], r[1], r[2])  # type: ignore[arg-type]
            if (problem := self._too_volatile(proc, called, also)) is not None:
                return problem
        return None

    def _too_volatile(self, proc: _Proc, called: str, also: str = "") -> str | None:
        """Why `proc` may not run here, or None. `called`: what runs it ("" for a call of
        the function itself; "the cast to date", "the operator ||")."""
        what = f"{called} runs {proc.label}, which" if called else proc.label
        if proc.kind != "f":
            kinds = {"a": "an aggregate", "w": "a window function", "p": "a procedure"}
            return f"{what} is {kinds.get(proc.kind, 'not a plain function')}"
        if proc.retset:
            return f"{what} returns a set, which an expression may not"
        if _RANK[proc.volatility] > _RANK[self.bound]:
            return self._needs(f"{what} is {proc.volatility}{also}")
        return None

    def _schemas(self, qualified: list[str]) -> list[tuple[int, str]] | str:
        """Where a name is looked up: its schema, or the path."""
        if len(qualified) == 1:
            return self.path
        schema = qualified[0]
        if schema.startswith("pg_temp"):
            return "names a function or operator of a temporary schema, which may not appear"
        oid = self._read(
            sa.text("SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = :n"), {"n": schema}
        ).scalar()
        return [(int(oid), schema)] if oid is not None else []

    # ----------------------------------------------------------------- functions
    def aggregate(self, qualified: list[str]) -> str | None:
        """A name that calls an aggregate or window function (`sum`, `row_number`)."""
        schemas = self._schemas(qualified)
        if isinstance(schemas, str):
            return schemas
        label = self._read(
            sa.text(
                "SELECT " + _PROC_LABEL + ", p.prokind "
                "FROM pg_catalog.pg_proc p WHERE p.proname = :name "
                "AND p.pronamespace = ANY(:schemas) AND p.prokind IN ('a', 'w') LIMIT 1"
            ),
            {"name": qualified[-1], "schemas": [oid for oid, _n in schemas]},
        ).first()
        if label is None:
            return None
        kind = "an aggregate" if label[1] == "a" else "a window function"
        return f"{label[0]} is {kind}, which an expression over one row may not call"

    def function(self, qualified: list[str], args: list[int]) -> str | None:
        name = qualified[-1]
        schemas = self._schemas(qualified)
        if isinstance(schemas, str):
            return schemas
        order = {oid: i for i, (oid, _n) in enumerate(schemas)}
        rows = self._read(
            sa.text(
                "SELECT p.pronamespace, p.proargtypes::pg_catalog.oid[], p.provolatile, "
                "p.prokind, p.proretset, " + _PROC_LABEL + ", "
                "p.pronargs, p.pronargdefaults, p.provariadic::pg_catalog.oid "
                "FROM pg_catalog.pg_proc p WHERE p.proname = :name "
                "AND p.pronamespace = ANY(:schemas)"
            ),
            {"name": name, "schemas": list(order)},
        ).all()
        n = len(args)

        def takes(r: Any) -> bool:
            """Whether a call with n arguments may be this candidate (defaults, VARIADIC)."""
            nargs, defaults, variadic = int(r[6]), int(r[7]), int(r[8])
            return nargs - defaults <= n <= nargs or (variadic != 0 and n >= nargs - 1)

        called = ""
        candidates = sorted((r for r in rows if takes(r)), key=lambda r: order[int(r[0])])
        exact = [r for r in candidates if [int(t) for t in r[1]] == args]
        # a candidate with defaults or VARIADIC in an earlier schema would hide an exact
        # match of a later one: then refaudit does not decide, every candidate counts
        plain = all(int(r[6]) == n and int(r[8]) == 0 for r in candidates)
        if UNKNOWN not in args and exact and plain:
            return self._too_volatile(_proc(exact[0]), called)
        candidates = [
            r for r in candidates if self.accepts(list(zip(args, map(int, r[1]), strict=False)))
        ]
        for r in candidates:
            problem = self._too_volatile(
                _proc(r),
                called,
                f" (one of the functions named {name}: refaudit cannot tell which one "
                "PostgreSQL calls here; cast the arguments to the exact types of an "
                "immutable one)",
            )
            if problem is not None:
                return problem
        if len(args) == 1:  # `text(x)`, `int4(x)`: a function-style cast
            target = self._read(
                sa.text("SELECT pg_catalog.to_regtype(:t)::pg_catalog.oid"),
                {"t": ".".join(sqltext.ident(q) for q in qualified)},
            ).scalar()
            if target is not None:
                problem = self.coercion(args[0], int(target), f"{name}()")
                if problem is not None:
                    return problem
        pairs = [(a, int(p)) for r in candidates for a, p in zip(args, r[1], strict=False)]
        return self.implicit_casts(pairs, called)

    # ----------------------------------------------------------------- operators
    def operator(self, qualified: list[str], left: int | None, right: int) -> str | None:
        """`left` None: a prefix operator."""
        name = qualified[-1]
        schemas = self._schemas(qualified)
        if isinstance(schemas, str):
            return schemas
        order = {oid: i for i, (oid, _n) in enumerate(schemas)}
        rows = self._read(
            sa.text(
                "SELECT o.oprnamespace, o.oprleft::pg_catalog.oid, o.oprright::pg_catalog.oid, "
                "p.provolatile, p.prokind, p.proretset, "
                "o.oid::pg_catalog.regoperator::pg_catalog.text || ' calls ' || "
                + _PROC_LABEL
                + " "
                "FROM pg_catalog.pg_operator o JOIN pg_catalog.pg_proc p ON p.oid = o.oprcode "
                "WHERE o.oprname = :name AND o.oprnamespace = ANY(:schemas)"
            ),
            {"name": name, "schemas": list(order)},
        ).all()
        prefix = left is None
        candidates = sorted(
            (r for r in rows if (int(r[1]) == 0) == prefix), key=lambda r: order[int(r[0])]
        )
        # an untyped literal on one side is taken to be of the other side's type first
        lt = 0 if left is None else left
        if not prefix and lt == UNKNOWN and right != UNKNOWN:
            lt = right
        rt = lt if (not prefix and right == UNKNOWN) else right
        called = f"the operator {'.'.join(qualified)}"
        exact = [r for r in candidates if (int(r[1]), int(r[2])) == (lt, rt)]
        if exact and rt != UNKNOWN and (prefix or lt != UNKNOWN):
            r = exact[0]
            return self._too_volatile(_Proc(r[6], _CODE[r[3]], r[4], r[5]), called)  # type: ignore[arg-type]
        candidates = [
            r
            for r in candidates
            if self.accepts([(right, int(r[2])), *([(left, int(r[1]))] if left else [])])
        ]
        for r in candidates:
            problem = self._too_volatile(
                _Proc(r[6], _CODE[r[3]], r[4], r[5]),  # type: ignore[arg-type]
                called,
                " (one of the operators of that name: refaudit cannot tell which one "
                "PostgreSQL uses here; cast the operands to the exact types of an "
                "immutable one)",
            )
            if problem is not None:
                return problem
        pairs = [(right, int(r[2])) for r in candidates]
        if left is not None:
            pairs += [(left, int(r[1])) for r in candidates]
        return self.implicit_casts(pairs, called)

    # ----------------------------------------------------------------- conversions
    def accepts(self, pairs: list[tuple[int, int]]) -> bool:
        """Whether PostgreSQL may convert each argument type to the parameter type of a
        candidate, `(argument, parameter)`, without an explicit cast: the candidates it
        chooses among. Generous where unsure (a pseudo-type, a domain or an array
        parameter accepts anything), so no candidate it may call is left out."""
        known = {t for pair in pairs for t in pair if t != UNKNOWN}
        self._load_types(known)
        for arg, param in pairs:
            if arg in (UNKNOWN, param):
                continue
            ptype, _pbase, pcategory = self._kinds.get(param, ("p", 0, ""))
            atype, abase, acategory = self._kinds.get(arg, ("p", 0, ""))
            if ptype in ("p", "d") or (pcategory == "A" and acategory == "A"):
                continue
            source = abase if atype == "d" else arg
            if source == param or param in self._implicit.get(source, set()):
                continue
            return False
        return True

    def _load_types(self, oids: set[int]) -> None:
        """Reads the types and implicit casts `accepts` needs (once per type)."""
        missing = sorted(oids - set(self._kinds))
        if not missing:
            return
        for oid, typtype, base, category in self._read(
            sa.text(
                "SELECT oid, typtype, typbasetype, typcategory FROM pg_catalog.pg_type "
                "WHERE oid = ANY(:oids)"
            ),
            {"oids": missing},
        ):
            self._kinds[int(oid)] = (str(typtype), int(base), str(category))
        sources = sorted({o if self._kinds[o][0] != "d" else self._kinds[o][1] for o in missing
                          if o in self._kinds})  # fmt: skip
        for source, target in self._read(
            sa.text(
                "SELECT castsource, casttarget FROM pg_catalog.pg_cast "
                "WHERE castcontext = 'i' AND castsource = ANY(:sources)"
            ),
            {"sources": sources},
        ):
            self._implicit.setdefault(int(source), set()).add(int(target))

    def implicit_casts(self, pairs: list[tuple[int, int]], called: str) -> str | None:
        """Converting each argument's type to a candidate's parameter type, `(source,
        target)`, calls only functions within the bound (the conversion PostgreSQL inserts
        to call a candidate that is not an exact match: a `pg_cast` function; a binary
        coercible pair, a polymorphic parameter or an untyped literal calls none)."""
        wanted = sorted({(s, t) for s, t in pairs if UNKNOWN not in (s, t) and s != t})
        found: list[Any] = []
        for source, target in wanted:
            found += self._read(
                sa.text(
                    "SELECT p.provolatile, p.prokind, p.proretset, " + _PROC_LABEL + " "
                    "FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc "
                    "JOIN pg_catalog.pg_type s ON s.oid = :s "
                    "WHERE c.castcontext = 'i' AND c.casttarget = :t AND c.castsource = "
                    "CASE WHEN s.typtype = 'd' THEN s.typbasetype ELSE s.oid END"
                ),
                {"s": source, "t": target},
            ).all()
        return self._first_too_volatile(
            found,
            f"an implicit cast PostgreSQL may insert for {called or 'a call'}",
            " (cast the arguments to the exact types of an immutable function)",
        )

    def coercion(self, source: int, target: int, what: str) -> str | None:
        """Converting a `source` value to `target` (a cast, a branch of CASE) calls only
        functions within the bound."""
        if source == UNKNOWN or target == UNKNOWN:
            return None  # an untyped literal is read by the type's input function once
        info = self._type_info([source, target])
        base = info[source][0] or source  # a domain converts as its base type
        if base == target:
            return None
        cast = self._read(
            sa.text(
                "SELECT c.castmethod, p.provolatile, p.prokind, p.proretset, " + _PROC_LABEL + " "
                "FROM pg_catalog.pg_cast c LEFT JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc "
                "WHERE c.castsource = :s AND c.casttarget = :t"
            ),
            {"s": base, "t": target},
        ).first()
        if cast is not None and cast[0] == "f":
            return self._too_volatile(_Proc(cast[4], _CODE[cast[1]], cast[2], cast[3]), what)  # type: ignore[arg-type]
        if cast is not None and cast[0] == "b":
            return None
        # an I/O conversion: the source's output function, then the target's input function
        io = self._read(
            sa.text(
                "SELECT p.provolatile, p.prokind, p.proretset, "
                + _PROC_LABEL
                + " FROM pg_catalog.pg_type s, "
                "pg_catalog.pg_type d, pg_catalog.pg_proc p "
                "WHERE s.oid = :s AND d.oid = :t AND p.oid IN (s.typoutput, d.typinput)"
            ),
            {"s": base, "t": target},
        ).all()
        return self._first_too_volatile(
            io, f"{what} (converting {info[source][2]} to {info[target][2]} through text)"
        )

    def _type_info(self, oids: list[int]) -> dict[int, tuple[int, str, str]]:
        """oid -> (base type oid of a domain else 0, typtype, format_type)."""
        rows = self._read(
            sa.text(
                "SELECT oid, typbasetype, typtype, pg_catalog.format_type(oid, NULL), "
                "typcategory FROM pg_catalog.pg_type WHERE oid = ANY(:oids)"
            ),
            {"oids": oids},
        ).all()
        out = {int(r[0]): (int(r[1]), str(r[2]), str(r[3])) for r in rows}
        self._category = {int(r[0]): str(r[4]) for r in rows}
        return out

    def cast(self, node: Any) -> str | None:
        """An explicit cast: to a plain type, through functions within the bound."""
        target = self._t(node)
        info = self._type_info([target])
        shown = info.get(target, (0, "", "?"))[2]
        typtype = info.get(target, (0, "", ""))[1]
        if typtype == "d":
            return f"casts to the domain {shown}; cast to a plain type (its base type)"
        if typtype not in ("b", "e", "r", "m") or self._category.get(target) == "A":
            return f"casts to {shown}; cast to a plain type"
        problem = self.coercion(self._t(node.arg), target, f"the cast to {shown}")
        if problem is not None:
            return problem
        if node.typeName.typmods:  # a length coercion: varchar(10), numeric(8, 2)
            return self.coercion_to_length(target, shown)
        return None

    def coercion_to_length(self, target: int, shown: str) -> str | None:
        row = self._read(
            sa.text(
                "SELECT p.provolatile, p.prokind, p.proretset, " + _PROC_LABEL + " "
                "FROM pg_catalog.pg_cast c JOIN pg_catalog.pg_proc p ON p.oid = c.castfunc "
                "WHERE c.castsource = :t AND c.casttarget = :t"
            ),
            {"t": target},
        ).first()
        if row is None:
            return None
        return self._too_volatile(
            _Proc(row[3], _CODE[row[0]], row[1], row[2]),  # type: ignore[arg-type]
            f"the cast to {shown}",
        )

    # ----------------------------------------------------------------- one node
    def node(self, node: Any) -> str | None:
        from pglast import ast

        if isinstance(node, ast.FuncCall):
            return self.function(
                [s.sval for s in node.funcname or ()], [self._t(a) for a in node.args or ()]
            )
        if isinstance(node, ast.A_Expr):
            return self.a_expr(node)
        if isinstance(node, ast.TypeCast):
            return self.cast(node)
        if isinstance(node, ast.SQLValueFunction):
            shown = (
                getattr(node.op, "name", "")
                .removeprefix("SVFOP_")
                .replace("_N", "")
                .replace("_", " ")
            )
            if _RANK["stable"] > _RANK[self.bound]:
                return self._needs(f"{shown} is stable (it depends on the connection's settings)")
            return None
        if isinstance(node, ast.CaseExpr):
            result = self._t(node)
            branches = [w.result for w in node.args or ()]
            if node.defresult is not None:
                branches.append(node.defresult)
            for w in node.args or ():
                if node.arg is not None:  # CASE x WHEN v: x = v
                    problem = self.operator(["="], self._t(node.arg), self._t(w.expr))
                    if problem is not None:
                        return problem
            return self._branches(branches, result, "CASE")
        if isinstance(node, ast.CoalesceExpr):
            return self._branches(list(node.args or ()), self._t(node), "COALESCE")
        return None

    def _branches(self, branches: list[Any], result: int, what: str) -> str | None:
        for b in branches:
            problem = self.coercion(self._t(b), result, f"a branch of {what}")
            if problem is not None:
                return problem
        return None

    def a_expr(self, node: Any) -> str | None:
        kind = node.kind.name
        name = [s.sval for s in node.name]
        left = self._t(node.lexpr) if node.lexpr is not None else None
        if kind == "AEXPR_OP":
            return self.operator(name, left, self._t(node.rexpr))
        pairs: list[tuple[list[str], Any]] = []
        if kind in ("AEXPR_DISTINCT", "AEXPR_NOT_DISTINCT", "AEXPR_NULLIF"):
            pairs = [(["="], node.rexpr)]
        elif kind in ("AEXPR_LIKE", "AEXPR_ILIKE"):
            pairs = [(name, node.rexpr)]
        elif kind == "AEXPR_IN":
            pairs = [(name, r) for r in node.rexpr]
        elif kind in ("AEXPR_BETWEEN", "AEXPR_BETWEEN_SYM"):
            pairs = [([">="], node.rexpr[0]), (["<="], node.rexpr[1])]
            if kind == "AEXPR_BETWEEN_SYM":
                pairs += [([">="], node.rexpr[1]), (["<="], node.rexpr[0])]
        elif kind in ("AEXPR_NOT_BETWEEN", "AEXPR_NOT_BETWEEN_SYM"):
            pairs = [(["<"], node.rexpr[0]), ([">"], node.rexpr[1])]
            if kind == "AEXPR_NOT_BETWEEN_SYM":
                pairs += [(["<"], node.rexpr[1]), ([">"], node.rexpr[0])]
        for op, right in pairs:
            problem = self.operator(op, left, self._t(right))
            if problem is not None:
                return problem
        if kind == "AEXPR_IN" and left is not None:  # the list may be converted to one type
            types = {left, *(self._t(r) for r in node.rexpr)}
            return self.implicit_casts([(a, b) for a in types for b in types], "IN (...)")
        return None


def _proc(row: Any) -> _Proc:
    """A pg_proc row (namespace, argtypes, provolatile, prokind, proretset, label)."""
    return _Proc(str(row[5]), _CODE[str(row[2])], str(row[3]), bool(row[4]))  # type: ignore[arg-type]
