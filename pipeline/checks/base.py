"""What a check family gives the engine.

Row families (references, consistency, domain rules) compile into *row rules*: a boolean SQL
flag evaluated on every row of one table. The engine puts all rules of a table into one
statement, so the table is scanned once whatever the number of checks. Set families
(uniqueness) and catalog families run a query of their own.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import TableClause


def table_clause(name: str, columns: list[str] | tuple[str, ...] = ()) -> TableClause:
    """A lightweight table for SQL generation; `schema.table` names are split."""
    schema, _, bare = name.rpartition(".")
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
    ) -> None:
        """`columns` maps every table the scan may touch to the columns the suite reads;
        `unique` lists the (table, column) pairs the catalog guarantees to be unique."""
        self.table = table
        self._columns = {name: sorted(cols) for name, cols in columns.items()}
        self._unique = set(unique)
        self.t = table_clause(table, self._columns[table]).alias("t")
        self._joins: dict[tuple[Any, ...], tuple[Any, ColumnElement[bool]]] = {}

    def col(self, name: str) -> ColumnElement[Any]:
        return self.t.c[name]

    def join(
        self,
        table: str,
        by: str,
        on: Callable[[Any], ColumnElement[bool]],
        key: tuple[Any, ...] = (),
    ) -> Any:
        """LEFT JOIN `table` matched on its column `by`, with condition `on(alias)`.

        `key` tells joins of the same table and column apart (a conditional reference joins
        once per discriminator value). Unless the catalog says `by` is unique, the join goes
        through `SELECT DISTINCT ON (by)`, so that duplicate target keys never multiply rows.
        """
        full_key = (table, by, *key)
        if full_key not in self._joins:
            name = f"j{len(self._joins) + 1}"
            target = table_clause(table, self._columns.get(table, [by]))
            if (table, by) in self._unique:
                alias: Any = target.alias(name)
            else:
                alias = (
                    sa.select(*target.c)
                    .ext(distinct_on(target.c[by]))
                    .order_by(target.c[by])
                    .subquery(name)
                )
            self._joins[full_key] = (alias, on(alias))
        return self._joins[full_key][0]

    def from_clause(self) -> Any:
        clause: Any = self.t
        for alias, on in self._joins.values():
            clause = clause.outerjoin(alias, on)
        return clause


@dataclass
class RowRule:
    """One boolean test on every row of a table.

    `flag` is TRUE exactly for violating rows (NULL counts as passing). `value` is what
    violations.csv shows in its `value` column; `column` names the column(s) it is about.
    """

    rule_id: str
    check: Any
    column: str
    flag: ColumnElement[bool]
    value: ColumnElement[Any]
    extra: dict[str, ColumnElement[Any]] = field(default_factory=dict)


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


def as_text(expr: ColumnElement[Any]) -> ColumnElement[str]:
    return sa.cast(expr, sa.Text)
