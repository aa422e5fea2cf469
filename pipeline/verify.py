"""Checks of a suite against a database before the audit reads a row: every table and column
exists, every regex and value is one PostgreSQL can run on the columns' types."""

from __future__ import annotations

import difflib
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.engine import Connection

from .checks.base import (
    ColumnTypes,
    compile_condition,
)
from .checks.catalog import (
    column_types,
    relation_types,
)
from .checks.expression import catalog_memo
from .checks.relations import NO_DEFINITION, read_relations
from .errors import DatabaseError, SuiteError
from .plan import MAX_STATEMENT_COLUMNS, required_columns
from .suite import Suite


def verify_schema(conn: Connection, suite: Suite) -> ColumnTypes:
    """Fail with one clear line when the suite names a table or column the database lacks.
    Returns the column types of the suite's tables, read in the same catalog read (what
    `verify_values` takes)."""
    required = sorted(required_columns(suite).items())
    names = list(dict.fromkeys([*suite.tables, *(t for t, _cols in required)]))
    found = read_relations(conn, names, {"columns"}, NO_DEFINITION)
    for table, cols in required:
        if table not in found:
            raise DatabaseError(
                f"table {table} named by suite {suite.suite} does not exist in the database"
                f"{_did_you_mean(table, _table_names(conn))} - check --db and --suite"
            )
        present = {c.name for c in found[table].columns}
        missing = sorted(cols - present)
        if missing:
            raise DatabaseError(
                f"column {table}.{missing[0]} named by suite {suite.suite} does not exist in the "
                f"database{_did_you_mean(missing[0], present)} - check the suite against the "
                "schema"
            )
    return relation_types({t: found[t] for t in suite.tables if t in found})


def _did_you_mean(name: str, names: Iterable[str]) -> str:
    """`; did you mean 'x'?` for the closest of `names`, or nothing."""
    close = difflib.get_close_matches(name, sorted(names), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def _table_names(conn: Connection) -> list[str]:
    """The tables and views the connection can see, as a suite would name them: unqualified
    where the search path finds them, else schema-qualified (read only for an error)."""
    rows = conn.execute(
        sa.text(
            "SELECT n.nspname, c.relname, pg_catalog.pg_table_is_visible(c.oid)"
            " FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n"
            " ON n.oid = c.relnamespace"
            " WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')"
            " AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
            " AND n.nspname NOT LIKE 'pg\\_toast%'"
        )
    )
    return [name if visible else f"{schema}.{name}" for schema, name, visible in rows]


# What PostgreSQL says when a suite's value does not fit its column: a data exception
# (class 22: invalid input for the type or enum, out of range, invalid regular expression),
# an operator that does not exist for the two types, or mismatched types.
_VALUE_ERROR_CLASS = "22"
_VALUE_ERRORS = frozenset({"42883", "42804"})


def _value_error(exc: sa_exc.DBAPIError) -> str | None:
    """PostgreSQL's message when `exc` says a value does not fit; None for any other error."""
    orig: Any = exc.orig
    code = getattr(orig, "pgcode", None) or ""
    if not (code.startswith(_VALUE_ERROR_CLASS) or code in _VALUE_ERRORS):
        return None
    diag = getattr(orig, "diag", None)
    message = getattr(diag, "message_primary", None) or str(orig).strip().splitlines()[0]
    return " ".join(str(message).split())


def _probe(conn: Connection, stmt: Any) -> str | None:
    """Run `stmt` in a savepoint; PostgreSQL's message if a value did not fit, else None (any
    other error is raised)."""
    try:
        with conn.begin_nested():
            conn.execute(stmt)
    except sa_exc.DBAPIError as exc:
        message = _value_error(exc)
        if message is None:
            raise
        return message
    return None


class _TypedNulls:
    """Stands in for a table's scan: each column is a NULL of the column's type, so a rule's
    SQL can be planned without the table (no lock, no row) and PostgreSQL still converts
    every value to the type it is compared with."""

    def __init__(self, types: dict[str, str]) -> None:
        self._types = types

    def col(self, name: str) -> Any:
        return sa.literal_column(f"CAST(NULL AS {self._types[name]})")


def verify_values(
    conn: Connection, suite: Suite, types: ColumnTypes | None = None
) -> ColumnTypes:
    """Fail with a SuiteError naming the check when a check cannot run in PostgreSQL as
    written: a `regex` that PostgreSQL's `~` rejects, a value its column's type (or enum)
    cannot hold or be compared with, or an expression the server cannot run or that calls
    a function more volatile than the check allows (`Check.sql_problem`). The server
    decides, on the rules' own SQL with each column a NULL of its type (no table is read or
    locked); one statement per table unless something is wrong. `types`: the suite tables'
    column types when already read (`verify_schema` returns them). Returns those column
    types (the audit compares keys with them)."""
    where = str(suite.path) if suite.path else f"suite {suite.suite}"
    probes = [(check, stmt, explain) for check in suite.checks
              for stmt, explain in check.probes()]
    # probes that read no table (a regex) run together, one statement per bounded batch;
    # only a batch PostgreSQL rejects is run again probe by probe, to name the check
    alone = {id(stmt) for _c, stmt, _e in probes if stmt.get_final_froms()}
    batched = [stmt for _c, stmt, _e in probes if id(stmt) not in alone]
    failing = False
    for start in range(0, len(batched), MAX_STATEMENT_COLUMNS):
        chunk = batched[start : start + MAX_STATEMENT_COLUMNS]
        cols = [c for stmt in chunk for c in stmt.selected_columns]
        if _probe(conn, sa.select(*cols)) is not None:
            failing = True
    with catalog_memo():
        for check in suite.checks:
            problem = check.sql_problem(conn)
            if problem is not None:
                raise SuiteError(f"{where}: check {check.id}: {problem}")
    for check, stmt, explain in probes:
        if failing or id(stmt) in alone:
            message = _probe(conn, stmt)
            if message is not None:
                raise SuiteError(f"{where}: check {check.id}: {explain(message)}")
    by_table: dict[str, list[tuple[Any, list[Any]]]] = defaultdict(list)
    # every table a check names is declared
    every_type = column_types(conn, suite.tables) if types is None else types
    typed: dict[str, _TypedNulls] = {}
    for (table, column), kind in every_type.items():
        typed.setdefault(table, _TypedNulls({}))._types[column] = kind.name
    for check in suite.checks:
        nulls = typed.setdefault(check.table, _TypedNulls({}))
        tests = check.value_tests(nulls)
        kept = check.row_filter()
        if kept is not None:
            tests = [*tests, compile_condition(kept, nulls.col)]
        for table, target_where in check.target_filters():  # values of a target's `where`
            there = typed.setdefault(table, _TypedNulls({}))
            tests = [*tests, compile_condition(target_where, there.col)]
        if tests:
            by_table[check.table].append((check, tests))
    for checks in by_table.values():
        every = [t for _check, tests in checks for t in tests]
        for start in range(0, len(every), MAX_STATEMENT_COLUMNS):
            if _probe(conn, sa.select(*every[start : start + MAX_STATEMENT_COLUMNS])) is None:
                continue
            for check, tests in checks:
                message = _probe(conn, sa.select(*tests))
                if message is not None:
                    columns = ", ".join(f"{check.table}.{c}" for c in check.column_list())
                    raise SuiteError(
                        f"{where}: check {check.id}: {message} ({columns}); write values the "
                        "column can hold in the check"
                    )
    return every_type
