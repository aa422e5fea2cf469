"""Schema checks answered from `pg_catalog`: expected constraints exist, point at the right
table and are validated; expected indexes and triggers exist.

The catalog is read (`refaudit.checks.relations`, every table at once) into plain facts per
table (`CatalogFacts`), so the same checks can be answered from a live database or from a
snapshot's manifest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator
from sqlalchemy.engine import Connection

from .. import sqltext
from ..sqltext import comment, ident, object_name, table
from .base import ColumnType
from .ddl import (
    AuditedConstraint,
    DdlContext,
    add_unless_exists,
    columns_sql,
    conditional_reference_triggers,
    constraint_definition,
    drop_constraint,
    guarded_drop,
    readd,
)
from .model import Check, Model, TableName
from .reference import ConditionalReferenceCheck
from .relations import NO_DEFINITION, ON_DELETE, Relation, read_relations, unique_proof
from .stage import CATALOG, Stage


class _CatalogCheck(Check):
    stage: ClassVar[Stage] = CATALOG

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        return {}  # answered from pg_catalog: no row is read

    def gx_unsupported(self) -> str | None:
        return (
            "catalog check: GX has no expectation on constraints, indexes or triggers; "
            "refaudit run answers it"
        )

    def ddl_section(self, ctx: DdlContext) -> str | None:
        if self.table in ctx.views:
            return (
                f"-- {comment(self.id)}: {comment(self.table)} is a view, not a table; "
                "constraints, indexes and\n-- triggers belong on the tables it reads from: "
                "nothing is generated for it"
            )
        return self._section(ctx.facts.get(self.table, CatalogFacts(exists=False)), ctx)

    def _section(self, facts: CatalogFacts, ctx: DdlContext) -> str:
        """constraints.sql's section for the check on a table, given its catalog facts."""
        raise NotImplementedError


class ConstraintRefSpec(Model):
    table: TableName
    columns: list[str] = Field(default_factory=lambda: ["id"])


class ConstraintCheck(_CatalogCheck):
    """`constraint`: a constraint of `type` (`foreign_key`, `check`, `unique`,
    `primary_key`) on `columns` exists, validated, with the right `references: {table,
    columns}` and `on_delete`; `name` is what constraints.sql creates. With `absent: true`
    it must not exist (a foreign key to the wrong key space). `for_check: <id>` names the row
    check a CHECK enforces: what the CHECK allows is compared with what the rule allows."""

    written_order = (
        "name", "type", "columns", "references", "on_delete", "validated", "absent", "for_check",
        "description",
    )
    kind: Literal["constraint"]
    name: str | None = None
    type: Literal["foreign_key", "check", "unique", "primary_key"]
    columns: list[str] = Field(min_length=1)
    references: ConstraintRefSpec | None = None
    on_delete: Literal["cascade", "set_null", "restrict", "no_action", "set_default"] | None = None
    validated: bool = True
    absent: bool = False
    """True: the constraint must NOT exist (a foreign key no longer wanted, e.g. one to the
    wrong key space); any constraint of this type on these columns is a finding."""
    for_check: str | None = None

    @model_validator(mode="after")
    def _fk_needs_target(self) -> ConstraintCheck:
        if self.type == "foreign_key" and self.references is None and not self.absent:
            raise ValueError("a foreign_key constraint needs `references: {table, columns}`")
        return self

    def column_list(self) -> list[str]:
        return list(self.columns)

    def tables(self) -> list[str]:
        return [self.table, *([self.references.table] if self.references else [])]

    def _section(self, facts: CatalogFacts, ctx: DdlContext) -> str:
        """Add the constraint `NOT VALID` and validate it, dropping first one that differs
        (while it is still what the audit saw); with `absent`, drop what should not exist."""
        if self.absent:
            unwanted = unwanted_constraints(self, facts)
            ctx.owned |= {(self.table, c["conname"]) for c in unwanted}
            return self._drop_unwanted(unwanted, ctx)
        found = find_constraint(self, facts) if facts.exists else None
        ctx.owned.add((self.table, found["conname"] if found else self.name or ""))
        return self._enforce(found, facts, ctx)

    def _enforce(self, found: dict[str, Any] | None, facts: CatalogFacts, ctx: DdlContext) -> str:
        head = "-- " + comment(
            f"{self.id}: {self.type.replace('_', ' ')} on {self.table}({','.join(self.columns)})"
        )
        problems = [f.problem for f in check_constraint(self, facts)]
        name = self.name or (found["conname"] if found else None)
        if name is None:
            name = object_name(
                self.table,
                *self.columns,
                {"foreign_key": "fkey", "check": "check", "unique": "key", "primary_key": "pkey"}[
                    self.type
                ],
            )
        if not problems:
            return f"{head}\n--   present and validated at the audit: nothing to do"
        definition = constraint_definition(ctx.suite, self, ctx)
        if definition is None:
            return f"{head}\n--   {comment('; '.join(problems))}\n--   no definition can be derived"
        lines = [head, f"--   at the audit: {comment('; '.join(problems))}"]
        tbl = ctx.name(self.table)  # with its schema, as the audit found it
        audited = (
            AuditedConstraint(
                self.table, found["conname"], found["definition"], tuple(found["columns"])
            )
            if found
            else None
        )
        only_unvalidated = found is not None and not self._differs(found)
        if audited is not None and not only_unvalidated:
            lines.append(guarded_drop(replace(audited, table=tbl)))
        not_valid = self.type in ("foreign_key", "check")
        if not only_unvalidated:
            lines.append(add_unless_exists(tbl, name, definition, not_valid))
        if not_valid:
            lines.append(f"ALTER TABLE {table(tbl)} VALIDATE CONSTRAINT {ident(name)};")
        # rollback: what these statements did would reject the restored rows; put back the audit's
        ctx.plan.undo_before.append(drop_constraint(tbl, name))
        if audited is not None:
            ctx.plan.undo_after.extend(readd(replace(audited, table=tbl)))
        return "\n".join(lines)

    def _drop_unwanted(self, found: list[dict[str, Any]], ctx: DdlContext) -> str:
        kind = self.type.replace("_", " ")
        head = "-- " + comment(f"{self.id}: no {kind} on {self.table}({','.join(self.columns)})")
        if not found:
            return f"{head}\n--   absent at the audit: nothing to do"
        lines = [head]
        if self.description:
            lines.append(f"--   {comment(self.description)}")
        for c in found:
            audited = AuditedConstraint(
                self.table, c["conname"], c["definition"], tuple(c["columns"])
            )
            lines.append(f"--   at the audit: {comment(c['conname'] + ' ' + c['definition'])}")
            qualified = replace(audited, table=ctx.name(self.table))
            lines.append(guarded_drop(qualified))
            ctx.plan.undo_after.extend(readd(qualified))
        return "\n".join(lines)

    def _differs(self, found: dict[str, Any]) -> bool:
        """The catalog's constraint is another one than the suite expects (type, columns,
        target, ON DELETE), not merely unvalidated."""
        if found["type"] != self.type or found["columns"] != self.columns:
            return True
        if found.get(DISAGREES):  # a CHECK that allows other values than the suite's rule
            return True
        if self.type == "foreign_key" and self.references is not None:
            if bare_name(found["target"]) != bare_name(self.references.table):
                return True
            if found["target_columns"] != self.references.columns:
                return True
            if self.on_delete is not None and found["on_delete"] != self.on_delete:
                return True
        return False


class IndexCheck(_CatalogCheck):
    """`index`: an index `name` exists (on `columns`, when given) and is valid."""

    written_order = ("name", "columns")
    kind: Literal["index"]
    name: str
    columns: list[str] | None = None

    def column_list(self) -> list[str]:
        return list(self.columns or [])

    def _section(self, facts: CatalogFacts, ctx: DdlContext) -> str:
        """Build the index `CONCURRENTLY`, rebuild it when invalid, replace it when it covers
        other columns."""
        head = "-- " + comment(
            f"{self.id}: index {self.name} on {self.table}({','.join(self.columns or [])})"
        )
        problems = [f.problem for f in check_index(self, facts)]
        if not problems:
            return f"{head}\n--   present at the audit: nothing to do"
        lines = [head, f"--   at the audit: {comment('; '.join(problems))}"]
        if not self.columns:
            return "\n".join([*lines, "--   the suite names no columns: build it by hand"])
        tbl = ctx.name(self.table)  # with its schema, as the audit found it
        # an index lives in its table's schema: CREATE INDEX takes no schema, the others do
        index = table(sqltext.join_name(sqltext.split_name(tbl)[0], self.name))
        create = (
            f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {ident(self.name)} "
            f"ON {table(tbl)} ({columns_sql(self.columns)});"
        )
        found = next((i for i in facts.indexes if i["name"] == self.name), None)
        if found is not None and found["columns"] != self.columns:
            lines.append(f"DROP INDEX CONCURRENTLY IF EXISTS {index};")
            lines.append(create)
        elif found is not None:
            lines.append(f"REINDEX INDEX CONCURRENTLY {index};")
        else:
            lines.append(create)
        return "\n".join(lines)


class TriggerCheck(_CatalogCheck):
    """`trigger`: a trigger `name` exists on the table and is enabled; `for_check: <id>` of
    a `conditional_reference` lets constraints.sql create it."""

    kind: Literal["trigger"]
    name: str
    for_check: str | None = None

    def _section(self, facts: CatalogFacts, ctx: DdlContext) -> str:
        """Enable the trigger when disabled; create the conditional reference's enforcement
        triggers (`for_check`) when missing."""
        head = "-- " + comment(f"{self.id}: trigger {self.name} on {self.table}")
        problems = [f.problem for f in check_trigger(self, facts)]
        if not problems:
            return f"{head}\n--   present and enabled at the audit: nothing to do"
        lines = [head, f"--   at the audit: {comment('; '.join(problems))}"]
        found = next((t for t in facts.triggers if t["name"] == self.name), None)
        if found is not None:  # present but disabled
            tbl = table(ctx.name(self.table))
            lines.append(f"ALTER TABLE {tbl} ENABLE TRIGGER {ident(self.name)};")
            ctx.plan.undo_before.append(f"ALTER TABLE {tbl} DISABLE TRIGGER {ident(self.name)};")
            return "\n".join(lines)
        ref = None
        if self.for_check is not None:
            try:
                ref = ctx.suite.check(self.for_check)
            except KeyError:
                ref = None
        if not isinstance(ref, ConditionalReferenceCheck):
            by_hand = "--   no enforcement can be derived for it: write it by hand"
            return "\n".join([*lines, by_hand])
        statements, undo = conditional_reference_triggers(ref, self.name, ctx)
        ctx.plan.undo_before.extend(undo)
        return "\n".join([*lines, *statements])


def column_types(conn: Connection, tables: Iterable[str]) -> dict[tuple[str, str], ColumnType]:
    """(table, column) -> type of every column of `tables`, in one catalog read."""
    return relation_types(read_relations(conn, tables, {"columns"}, NO_DEFINITION))


def relation_types(found: Mapping[str, Relation]) -> dict[tuple[str, str], ColumnType]:
    """(table, column) -> type of every column of relations already read with their
    columns (`read_relations`)."""
    return {
        (t, c.name): ColumnType(c.type, c.category) for t, rel in found.items() for c in rel.columns
    }


_CONTYPES = {"f": "foreign_key", "c": "check", "u": "unique", "p": "primary_key"}


@dataclass
class CatalogFacts:
    """What the catalog says about one table."""

    exists: bool
    constraints: list[dict[str, Any]] = field(default_factory=list)
    indexes: list[dict[str, Any]] = field(default_factory=list)
    triggers: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def catalog_facts(rel: Relation | None) -> CatalogFacts:
    """The facts the catalog checks compare, from what `read_relations` read of a table
    (None: the table does not exist)."""
    if rel is None:
        return CatalogFacts(exists=False)
    cons = [
        {
            "conname": c.name,
            "convalidated": c.validated,
            "target": c.target,
            "definition": c.definition,
            "columns": list(c.columns),
            "target_columns": list(c.target_columns),
            "on_delete": ON_DELETE.get(c.on_delete),
            "type": _CONTYPES.get(c.type, "other"),
        }
        for c in rel.constraints
    ]
    idx = [
        {"name": i.name, "valid": i.valid, "columns": list(i.columns), "definition": i.definition}
        for i in rel.indexes
    ]
    trg = [{"name": t.name, "enabled": t.enabled} for t in rel.triggers]
    return CatalogFacts(exists=True, constraints=cons, indexes=idx, triggers=trg)


def read_catalogs(conn: Connection, tables: Iterable[str]) -> dict[str, CatalogFacts]:
    """table -> its `CatalogFacts`, for every table of `tables`, read together."""
    names = list(dict.fromkeys(tables))
    found = read_relations(conn, names, parts={"constraints", "indexes", "triggers"})
    return {t: catalog_facts(found.get(t)) for t in names}


def read_catalog(conn: Connection, table: str) -> CatalogFacts:
    return read_catalogs(conn, [table])[table]


@dataclass(frozen=True)
class CatalogFinding:
    key: str
    column: str
    value: str
    problem: str


def bare_name(name: str) -> str:
    """A table name without schema or quotes, as the catalog and the suite compare them."""
    return sqltext.split_name(name)[1]


def find_constraint(check: ConstraintCheck, facts: CatalogFacts) -> dict[str, Any] | None:
    """The catalog's constraint for `check`: by name, else the same type on the same columns."""
    if check.name is not None:
        found = next((c for c in facts.constraints if c["conname"] == check.name), None)
        if found is not None:
            return found
    return next(
        (c for c in facts.constraints if c["type"] == check.type and c["columns"] == check.columns),
        None,
    )


def unwanted_constraints(check: ConstraintCheck, facts: CatalogFacts) -> list[dict[str, Any]]:
    """The catalog's constraints that an `absent: true` check says must not exist: of its
    type, with its name or on its columns."""
    if not facts.exists:
        return []
    return [
        c
        for c in facts.constraints
        if c["type"] == check.type and (c["conname"] == check.name or c["columns"] == check.columns)
    ]


def check_constraint(check: ConstraintCheck, facts: CatalogFacts) -> list[CatalogFinding]:
    cols = ",".join(check.columns)
    expected = check.name or f"{check.type} on {check.table}({cols})"
    if not facts.exists:
        return [CatalogFinding(expected, cols, "missing", f"table {check.table} does not exist")]
    if check.absent:
        return [
            CatalogFinding(
                c["conname"],
                cols,
                c["definition"],
                f"should not exist: {check.description or 'unwanted constraint'}",
            )
            for c in unwanted_constraints(check, facts)
        ]
    found = find_constraint(check, facts)
    if found is None:
        return [
            CatalogFinding(
                expected,
                cols,
                "missing",
                f"no {check.type.replace('_', ' ')} constraint on {check.table}({cols})",
            )
        ]
    key = found["conname"]
    problems: list[str] = []
    if found["type"] != check.type:
        problems.append(f"is a {found['type']} constraint, expected {check.type}")
    if found["columns"] != check.columns:
        problems.append(f"covers ({','.join(found['columns'])}), expected ({cols})")
    if check.references is not None and found["type"] == "foreign_key":
        want = f"{check.references.table}({','.join(check.references.columns)})"
        got = f"{bare_name(found['target'])}({','.join(found['target_columns'])})"
        if (
            bare_name(found["target"]) != bare_name(check.references.table)
            or found["target_columns"] != check.references.columns
        ):
            problems.append(f"references {got}, expected {want}")
    if (
        check.on_delete is not None
        and found["type"] == "foreign_key"
        and found["on_delete"] != check.on_delete
    ):
        problems.append(f"ON DELETE {found['on_delete']}, expected {check.on_delete}")
    if found.get(DISAGREES):  # see `annotate_check_constraints`
        problems.append(str(found[DISAGREES]))
    if check.validated and not found["convalidated"]:
        problems.append("is NOT VALID (never validated)")
    return _one_finding(key, cols, found["definition"], problems)


def _one_finding(key: str, cols: str, definition: str, problems: list[str]) -> list[CatalogFinding]:
    """All problems of one catalog object make one violation line."""
    return [CatalogFinding(key, cols, definition, "; ".join(problems))] if problems else []


def check_index(check: IndexCheck, facts: CatalogFacts) -> list[CatalogFinding]:
    cols = ",".join(check.columns or [])
    if not facts.exists:
        return [CatalogFinding(check.name, cols, "missing", f"table {check.table} does not exist")]
    found = next((i for i in facts.indexes if i["name"] == check.name), None)
    if found is None:
        return [CatalogFinding(check.name, cols, "missing", f"index {check.name} does not exist")]
    problems = []
    if check.columns is not None and found["columns"] != check.columns:
        problems.append(f"covers ({','.join(found['columns'])}), expected ({cols})")
    if not found["valid"]:
        problems.append("is INVALID (a failed concurrent build)")
    return _one_finding(check.name, cols, found["definition"], problems)


def check_trigger(check: TriggerCheck, facts: CatalogFacts) -> list[CatalogFinding]:
    if facts.exists:
        found = next((t for t in facts.triggers if t["name"] == check.name), None)
        if found is not None and found["enabled"]:
            return []
        if found is not None:
            return [CatalogFinding(check.name, "", "disabled", f"trigger {check.name} is disabled")]
    return [CatalogFinding(check.name, "", "missing", f"no trigger {check.name} on {check.table}")]


def catalog_findings(check: Any, facts: CatalogFacts) -> list[CatalogFinding]:
    if isinstance(check, ConstraintCheck):
        return check_constraint(check, facts)
    if isinstance(check, IndexCheck):
        return check_index(check, facts)
    if isinstance(check, TriggerCheck):
        return check_trigger(check, facts)
    raise TypeError(f"not a catalog check: {check!r}")


DISAGREES = "disagrees"
"""The key of a CHECK constraint's facts that says how it differs from the suite's rule."""


def annotate_check_constraints(
    conn: Connection, suite: Any, checks: list[Any], facts: dict[str, CatalogFacts]
) -> None:
    """Compare each CHECK constraint the suite expects with the rule it stands for (see
    `refaudit.checks.allows`), on `conn`, and note the difference in its facts, where
    `check_constraint` finds it."""
    from .allows import disagreements

    for check in checks:
        if not isinstance(check, ConstraintCheck) or check.type != "check" or check.absent:
            continue
        table_facts = facts.get(check.table)
        found = find_constraint(check, table_facts) if table_facts and table_facts.exists else None
        if found is not None and DISAGREES not in found:
            found[DISAGREES] = disagreements(conn, suite, check, found)


def unique_columns(conn: Connection, tables: Iterable[str]) -> set[tuple[str, str]]:
    """(table, column) pairs that a single-column unique index guarantees to be unique."""
    return relation_unique_columns(read_relations(conn, tables, {"indexes"}, NO_DEFINITION))


def relation_unique_columns(found: Mapping[str, Relation]) -> set[tuple[str, str]]:
    """`unique_columns` of relations already read with their indexes (`read_relations`)."""
    return {
        (t, i.key_columns[0])
        for t, rel in found.items()
        for i in rel.indexes
        if len(i.key_columns) == 1 and unique_proof(rel, i.key_columns)
    }
