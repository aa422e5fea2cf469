"""Stage 1, the catalog: tables, columns, primary keys, UNIQUE, NOT NULL, foreign keys, CHECK
value lists and indexes, each turned into the check that states it."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from .. import sqltext
from ..checks import ConstraintCheck, IndexCheck, InSetCheck, NotNullCheck, UniqueCheck
from ..checks.relations import Definitions, read_schema_tables
from .context import Discoverer
from .model import (
    _INTEGER_TYPES,
    ColumnInfo,
    DeclaredReference,
    Proposal,
    TableInfo,
    _check_values,
    _family,
    check_id,
)


def read_catalog(ctx: Discoverer) -> None:
    schemas = ctx.found.schemas
    relations = read_schema_tables(
        ctx.conn,
        schemas,
        {"columns", "constraints", "indexes"},
        Definitions(frozenset({"p", "u", "f", "c"}), indexes=False),
    )
    for rel in relations:
        # the suite's spelling: a part holding a dot in double quotes
        name = sqltext.join_name(None if rel.current_schema else rel.schema, rel.relname)
        info = TableInfo(name=name, schema=rel.schema, relname=rel.relname, columns={})
        ctx.tables[name] = info
        ctx.by_oid[rel.oid] = info
        for col in rel.columns:
            info.columns[col.name] = ColumnInfo(
                col.name,
                col.type,
                _family(col.base_category, col.base_typtype),
                col.not_null,
                col.base_typtype == "e",
            )
    by_oid = sorted(relations, key=lambda r: r.oid)
    if ctx.by_oid:
        for child, parent in ctx.conn.execute(
            sa.text(
                "WITH RECURSIVE up(child, parent) AS (SELECT inhrelid, inhparent "
                "FROM pg_inherits WHERE inhrelid = ANY(:oids) UNION "
                "SELECT up.child, i.inhparent FROM up "
                "JOIN pg_inherits i ON i.inhrelid = up.parent) "
                "SELECT child::bigint, parent::bigint FROM up"
            ),
            {"oids": list(ctx.by_oid)},
        ):
            if child in ctx.by_oid and parent in ctx.by_oid:
                ctx.by_oid[child].inherits.append(ctx.by_oid[parent].name)
    for rel in by_oid:
        table = ctx.by_oid[rel.oid]
        for con in rel.constraints:
            cols = list(con.columns)
            if con.type == "p":
                table.primary_key = cols
            elif con.type == "u":
                table.uniques.append(cols)
                if "NULLS NOT DISTINCT" in con.definition:
                    ctx.nulls_equal.add((table.name, tuple(cols)))
            elif con.type == "f":
                target = ctx.by_oid.get(con.target_oid)
                if target is None:
                    ctx.found.notes.append(
                        f"foreign key {con.name} of {table.name} references a table "
                        f"outside the schemas read ({', '.join(schemas)}): not checked"
                    )
                    continue
                ctx.declared.append(
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
                    ctx.checks_in[table.name].append(values)
    for rel in by_oid:
        for index in rel.indexes:
            if index.backs_constraint:
                continue
            index_cols = list(index.columns) if index.plain and not index.partial else None
            ctx.indexes.append((ctx.by_oid[rel.oid].name, index.name, index_cols))
            if index.unique and index.valid and index_cols:
                # a unique index backing no constraint is a key too (a foreign key may
                # reference one)
                ctx.by_oid[rel.oid].unique_indexes[index.name] = index_cols


def catalog_proposals(ctx: Discoverer) -> None:
    for t in ctx.tables.values():
        keyed = t.key is not None
        if not keyed:
            ctx.found.notes.append(
                f"table {t.name} has no single-column key (primary key, NOT NULL UNIQUE, "
                "unique index, or a column its rows hold unique): only its catalog is checked"
            )
        if t.primary_key:
            add_constraint(
                ctx, t, "primary_key", t.primary_key, f"PRIMARY KEY ({', '.join(t.primary_key)})"
            )
            if keyed:
                add_unique(ctx, t, t.primary_key, "PRIMARY KEY")
        for cols in t.uniques:
            add_constraint(ctx, t, "unique", cols, f"UNIQUE ({', '.join(cols)})")
            if keyed:
                add_unique(ctx, t, cols, "UNIQUE")
        for name, cols in t.unique_indexes.items():
            if keyed and cols not in t.uniques and cols != t.primary_key:
                add_unique(ctx, t, cols, f"UNIQUE INDEX {name}")
        required = [c.name for c in t.columns.values() if c.not_null and c.name != t.key]
        if required and keyed:
            ctx.add(
                Proposal(
                    NotNullCheck.propose(check_id(t.name, "not_null"), t.name, required),
                    "catalog",
                    1.0,
                    [f"NOT NULL in the catalog: {', '.join(required)}"],
                )
            )
        for column, values in ctx.checks_in.get(t.name, []):
            if not keyed:
                continue
            typed: list[str | int] = list(values)
            if t.columns[column].type in _INTEGER_TYPES and all(
                re.fullmatch(r"-?\d+", v) for v in values
            ):
                typed = [int(v) for v in values]
            ctx.add(
                Proposal(
                    InSetCheck.model_validate(
                        {
                            "id": check_id(t.name, column, "in_set"),
                            "kind": "in_set",
                            "table": t.name,
                            "column": column,
                            "values": typed,
                        }
                    ),
                    "catalog",
                    1.0,
                    [f"CHECK in the catalog: {column} IN ({', '.join(values)})"],
                )
            )
    for table, name, index_columns in ctx.indexes:
        check: dict[str, Any] = {
            "id": check_id("catalog", table, name),
            "kind": "index",
            "table": table,
            "name": name,
        }
        if index_columns:
            check["columns"] = index_columns
        ctx.add(
            Proposal(
                IndexCheck.model_validate(check), "catalog", 1.0, [f"index {name} in the catalog"]
            )
        )


def add_constraint(ctx: Discoverer, t: TableInfo, kind: str, cols: list[str], what: str) -> None:
    ctx.add(
        Proposal(
            ConstraintCheck.model_validate(
                {
                    "id": check_id("catalog", t.name, kind, *cols),
                    "kind": "constraint",
                    "table": t.name,
                    "type": kind,
                    "columns": cols,
                }
            ),
            "catalog",
            1.0,
            [f"{what} in the catalog"],
        )
    )


def add_unique(ctx: Discoverer, t: TableInfo, cols: list[str], what: str) -> None:
    check = UniqueCheck.propose(
        check_id(t.name, *cols, "unique"),
        t.name,
        cols,
        nulls_equal=(t.name, tuple(cols)) in ctx.nulls_equal,  # UNIQUE NULLS NOT DISTINCT
    )
    ctx.add(
        Proposal(
            check,
            "catalog",
            1.0,
            [f"{what} ({', '.join(cols)}) in the catalog"],
        )
    )
