"""References: a column must name an existing row of a target table.

`reference` has one target. `conditional_reference` chooses the target per row from a
discriminator column (`requester_type = 'student'` -> `student_profiles`), a reference no
foreign key can express; a row whose discriminator names no target is its own finding.

With a `mis_key` in the suite a reference also catches *hidden* mis-keys: the value exists
in the target, but the row's own evidence says it is a key of another key space (a
`users.id`). The scan flags candidates cheaply (the evidence disagrees with the referenced
row); the diagnosis (`pipeline/checks/diagnosis.py`) confirms them on the flagged rows only.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

import sqlalchemy as sa
from pydantic import PrivateAttr, field_validator, model_validator

from .base import (
    Diagnoser,
    RowRule,
    TableScan,
    as_text,
    equal_as,
    is_true,
    not_one_of,
    one_of,
)
from .diagnosis import (
    CompositeDiagnoser,
    DiscriminatorDiagnoser,
    ReferenceDiagnoser,
    Target,
    match,
)
from .model import (
    Check,
    ColumnRef,
    Filtered,
    KeySpace,
    Lookup,
    MisKey,
    OnOrphan,
    RepairChoice,
    key_form_problem,
)
from .text_ids import key_form

DISCRIMINATOR_SUFFIX = ".discriminator"
LOOKUP_SUFFIX = ".lookup"
"""The finding of a `lookup`'s type table itself: a target name it does not hold, a stale type
(`refaudit.lookups`)."""


class Reference(Filtered, Check):
    """What every reference kind is: the row names a target row through `column`."""

    repairs: ClassVar[bool] = True
    written_order = (
        "column", "columns", "discriminator", "lookup", "target", "targets", "mis_key", "where",
        "severity", "on_orphan", "repair",
    )

    column: str = ""
    columns: list[str] | None = None
    mis_key: MisKey | None = None
    on_orphan: OnOrphan = "quarantine"
    repair: RepairChoice | None = None

    def proposes(self) -> bool:
        """Whether repair.sql plans changes for the check's findings: `repair: propose`, or
        no `repair` and neither `severity: warn` nor `on_orphan: report` (a check that only
        warns, or that keeps its orphans, changes nothing unless the suite says so)."""
        if self.repair is not None:
            return self.repair == "propose"
        return self.severity == "error" and self.on_orphan != "report"

    @model_validator(mode="before")
    @classmethod
    def _composite_is_reported(cls, data: Any) -> Any:
        """A composite reference's orphans are listed for review (repair.sql changes no
        composite reference): `on_orphan` defaults to `report` for it."""
        if isinstance(data, dict) and data.get("columns") and "on_orphan" not in data:
            return {**data, "on_orphan": "report"}
        return data

    @model_validator(mode="after")
    def _one_form(self) -> Reference:
        if bool(self.column) == bool(self.columns):
            raise ValueError("a reference names `column:` or (a composite key) `columns:`")
        if self.columns:
            key_form_problem(self.columns, self.refs())
            if self.mis_key is not None:
                raise ValueError("`mis_key` is for single-column references")
            if self.on_orphan != "report":
                raise ValueError(
                    f"`on_orphan: {self.on_orphan}` is for single-column references: a "
                    "composite reference's orphans are listed for review; leave `on_orphan` "
                    "out or write `report`"
                )
            if self.repair == "propose":
                raise ValueError(
                    "`repair: propose` is for single-column references: repair.sql lists a "
                    "composite reference's findings for review; leave `repair` out or write "
                    "`review`"
                )
        else:
            for ref in self.refs():
                if ref.columns:
                    raise ValueError(
                        f"`column: {self.column}` names one column but the target {ref.table} "
                        f"names `columns: [{', '.join(ref.columns)}]`; give the target "
                        "`column:`, or the reference `columns: [...]` as many"
                    )
        return self

    def written(self) -> dict[str, Any]:
        """As `Check.written`; a composite reference's `on_orphan: report`, its only
        choice, goes without saying."""
        data = super().written()
        if self.columns and data.get("on_orphan") == "report":
            del data["on_orphan"]
        return data

    def key_of_row(self) -> list[str]:
        """The referencing columns: `[column]` or `columns`."""
        return list(self.columns) if self.columns else [self.column]

    def refs(self) -> list[ColumnRef]:
        raise NotImplementedError

    def choices(self) -> list[tuple[str | None, ColumnRef]]:
        """(discriminator value, target) pairs; the value is None for a plain reference."""
        raise NotImplementedError

    def discriminator_column(self) -> str | None:
        return None

    def row_columns(self) -> list[str]:
        """The row's columns the check and its diagnosis read (a repair's guard)."""
        return list(
            dict.fromkeys(
                [
                    *self.column_list(),
                    *(self.mis_key.row_columns() if self.mis_key else []),
                    *(self.where.columns() if self.where else []),
                ]
            )
        )

    def tables(self) -> list[str]:
        return [self.table, *(r.table for r in self.refs())]

    def target_filters(self) -> list[tuple[str, Any]]:
        return [(r.table, r.where) for r in self.refs() if r.where is not None]

    def problems(self, tables: Any, key_spaces: dict[str, KeySpace]) -> list[str]:
        return self.mis_key.problems(tables, key_spaces) if self.mis_key else []

    def reads(self, key_spaces: dict[str, KeySpace]) -> dict[str, set[str]]:
        need: dict[str, set[str]] = {self.table: set(self.row_columns())}
        for ref in self.refs():
            kept = ref.where.columns() if ref.where else []
            need.setdefault(ref.table, set()).update({*ref.key_columns(), *kept})
        if self.mis_key is not None:
            for table, cols in self.mis_key.reads(self.refs(), key_spaces).items():
                need.setdefault(table, set()).update(cols)
        return need


class ReferenceCheck(Reference):
    """`reference`: `column` must name a row of `target: {table, column}` (column default
    `id`); NULL names nothing and passes. With `mis_key` (see Diagnosis and repair) a value
    that exists in the target but that the row's own evidence says is a key of another key
    space is flagged too (a hidden mis-key). `on_orphan` (`quarantine`, `set_null`,
    `report`) says what repair.sql does with a row whose value nothing maps. `repair`
    (`propose`, `review`) says whether repair.sql plans the changes the diagnoses propose or
    lists every finding for review; left out, a check of `severity: warn` or with
    `on_orphan: report` is `review`, any other `propose`. `where` limits
    the rows checked; a `where` in the target (`target: {table, column, where}`, dbt-utils'
    `relationships_where`) limits the target rows that count. A text id against a number or uuid
    key passes when it is the key's text exactly (`'42'`, a lowercase hyphenated uuid); one
    that only reads as a key (`' 42 '`, `'0042'`, an uppercase uuid) is `malformed`, the
    key's text proposed (`refaudit.checks.text_ids`). A composite
    reference names `columns: [org_id, project_no]` and `target: {table, columns: [...]}`
    as many (as a foreign key MATCH SIMPLE: a NULL in any column names nothing); its
    findings are `orphan` or `filtered_out`, its value a JSON array of the columns, and
    repair.sql lists them for review (`on_orphan: report`, its only choice)."""

    kind: Literal["reference"]
    target: ColumnRef

    @classmethod
    def propose(
        cls,
        id: str,
        table: str,
        columns: list[str],
        target: str,
        target_columns: list[str],
        *,
        mis_key: MisKey | dict[str, Any] | None = None,
    ) -> Self:
        """`columns` of `table` naming `target_columns` of `target`, as a suite writes it:
        `column:` and `target: {table, column}` for one column, `columns:` and `target:
        {table, columns}` for a composite key."""
        data: dict[str, Any] = {"id": id, "kind": "reference", "table": table}
        if len(columns) == 1:
            data |= {"column": columns[0], "target": {"table": target, "column": target_columns[0]}}
        else:
            data |= {"columns": columns, "target": {"table": target, "columns": target_columns}}
        if mis_key is not None:
            data["mis_key"] = mis_key
        return cls.model_validate(data)

    def refs(self) -> list[ColumnRef]:
        return [self.target]

    def choices(self) -> list[tuple[str | None, ColumnRef]]:
        return [(None, self.target)]

    def column_list(self) -> list[str]:
        return self.key_of_row()

    def rules(self, scan: TableScan) -> list[RowRule]:
        if self.columns:
            return [composite_rules(self, scan, [Target(None, self.target)], None)]
        return reference_rules(self, scan)


class ConditionalReferenceCheck(Reference):
    """`conditional_reference`: `column` must name a row of the table its `discriminator`
    chooses, `targets: {value: {table, column}}` (a polymorphic association, which no foreign
    key can express). Several values may name one table (single-table inheritance). A NULL
    or unknown discriminator is its own finding, `<id>.discriminator`, unless the id is NULL
    too (the row names nothing: Rails' optional association). A target's `where`
    tells values naming one table apart (`User: {table: users, where: {column: type, eq:
    User}}`). `where`, `mis_key`, `on_orphan` and `repair` as for `reference`. A row whose id is
    not in the table its discriminator names but is in another target is `wrong_type` (that
    target's value proposed) only when chance cannot explain the hit: where that target's
    integer ids are dense around the value (more than 1% of the ids within 500 of it), a
    random id would hit it too, and the row is `ambiguous`, for review, unless the mis-key's
    `attribute` evidence agrees with that target's row. A discriminator value
    that an enum column cannot hold is exit 2 before the audit. A composite key names
    `columns: [tenant_id, target_id]` (the discriminator is not one of them) and each target
    `{table, columns: [...], where?}` as many, as a composite `reference` does: a NULL in
    any column names nothing, a finding is `orphan`, `wrong_type` (another target holds the
    key), `filtered_out` or `ambiguous`, proposes nothing and is listed for review. With
    `lookup: {table, key, name, separator}` the discriminator holds the key of a row of a
    type table (Django's `content_type_id`; `name: [app_label, model]` joined by `.`), and
    `targets` are written by what that row says (`shop.article: {table: shop_article}`): the
    audit reads the table in its snapshot, so one suite holds on every database of a project
    whatever ids each gave its types; evidence speaks in those names. A row whose type no
    target maps is `unknown_type` (its id is no type row), `stale_type` (a type row after
    which no table is named: its name's parts joined with `_`, or that plus `s`) or
    `unmapped_type` (a type the suite does not list). The type table's own problems are
    findings of `<id>.lookup`: `unknown_name`, a target name no row says, with the closest
    one (an error whatever the check's severity: the suite is wrong), and `stale_type`, a
    stale type the check's rows name, with their count. A target key written as a
    number (`19:`) is that value as text."""

    kind: Literal["conditional_reference"]
    discriminator: str
    targets: dict[str, ColumnRef]
    lookup: Lookup | None = None
    _labels: dict[str, str] = PrivateAttr(default_factory=dict)
    """With `lookup`, once resolved in the audit's snapshot (`refaudit.lookups`): every
    discriminator value the type table holds -> the name its row says."""
    _stale: set[str] = PrivateAttr(default_factory=set)
    _findings: list[Any] = PrivateAttr(default_factory=list)

    @property
    def labels(self) -> dict[str, str]:
        return self._labels

    @property
    def stale(self) -> set[str]:
        """With `lookup`, once resolved: the ids of stale types (`refaudit.lookups`)."""
        return self._stale

    @property
    def lookup_findings(self) -> list[Any]:
        """With `lookup`, once resolved: the `<id>.lookup` findings (`Violation`s) the type
        table gave (an unknown target name, a stale type)."""
        return self._findings

    def resolved(
        self,
        targets: dict[str, ColumnRef],
        labels: dict[str, str],
        stale: set[str],
        findings: list[Any],
    ) -> Self:
        """This check with `targets` keyed by the type table's ids, its rows' `labels`, the
        ids of `stale` types and its `<id>.lookup` `findings` (not validated again: a check
        none of whose names the table holds keeps no target, and then flags every row that
        has a type as naming none)."""
        copy = self.model_copy(update={"targets": targets})
        copy._labels = dict(labels)
        copy._stale = set(stale)
        copy._findings = list(findings)
        return copy

    @field_validator("targets", mode="before")
    @classmethod
    def _values_as_text(cls, data: Any) -> Any:
        """A YAML key written as a number (`19: {table: shop_article}`) is the value as
        text; a key YAML reads as true/false or null is no value (quote it)."""
        if not isinstance(data, dict):
            return data
        out = {}
        for key, ref in data.items():
            if isinstance(key, bool) or key is None:
                raise ValueError(
                    f"the target key `{key}` reads as {'null' if key is None else 'a boolean'} "
                    f"in YAML; quote it (`'{key}': ...`) to mean the discriminator value"
                )
            out[str(key) if isinstance(key, int) else key] = ref
        return out

    @model_validator(mode="after")
    def _discriminator_apart(self) -> ConditionalReferenceCheck:
        if self.discriminator in self.key_of_row():
            raise ValueError(
                f"the discriminator `{self.discriminator}` is one of the reference's columns; "
                "it names the target table, the reference's columns name the target row"
            )
        if not self.targets:
            raise ValueError("`targets:` is empty; map each discriminator value to a target")
        return self

    def refs(self) -> list[ColumnRef]:
        return list(self.targets.values())

    def choices(self) -> list[tuple[str | None, ColumnRef]]:
        return list(self.targets.items())

    def tables(self) -> list[str]:
        return [*super().tables(), *([self.lookup.table] if self.lookup else [])]

    def reads(self, key_spaces: dict[str, KeySpace]) -> dict[str, set[str]]:
        need = super().reads(key_spaces)
        if self.lookup is not None:
            need.setdefault(self.lookup.table, set()).update(
                {self.lookup.key, *self.lookup.name_columns()}
            )
        return need

    def label(self, value: str | None) -> str:
        """` (shop.article)`: what the type table's row of a resolved discriminator value
        says, for evidence; '' without a lookup."""
        name = self.labels.get(value or "")
        return f" ({name})" if name else ""

    def discriminator_column(self) -> str | None:
        return self.discriminator

    def column_list(self) -> list[str]:
        return [*self.key_of_row(), self.discriminator]

    def rules(self, scan: TableScan) -> list[RowRule]:
        return conditional_reference_rules(self, scan)

    def value_tests(self, scan: Any) -> list[Any]:
        disc = scan.col(self.discriminator)
        return [disc == sa.literal(value) for value in self.targets]


def _target_join(
    scan: TableScan,
    column: str,
    target: ColumnRef,
    chosen: sa.ColumnElement[bool] | None,
    key: tuple[Any, ...],
) -> Any:
    """LEFT JOIN the target on its key = the row's `column` (and the row's discriminator
    choosing it), compared as text when the two types do not compare (`comparable`)."""
    here, there = (scan.table, column), (target.table, target.column)
    same = scan.comparable(here, there)

    def on(alias: Any) -> sa.ColumnElement[bool]:
        # exactly the key's text: a spelling that only reads as a key is `malformed`
        cond = equal_as(same, alias.c[target.column], scan.col(column))
        return sa.and_(chosen, cond) if chosen is not None else cond

    return scan.join(target.table, target.column, on, (column, *key), keep=target.where)


def by_target(targets: list[Target]) -> list[tuple[ColumnRef, list[Target]]]:
    """The targets grouped by the table, key and filter they name: under single-table
    inheritance several discriminator values (`User`, `AdminUser`) may name one table."""
    groups: dict[str, tuple[ColumnRef, list[Target]]] = {}
    for t in targets:
        groups.setdefault(t.ref.ref_key(), (t.ref, []))[1].append(t)
    return list(groups.values())


def _hidden_candidates(
    scan: TableScan,
    column: str,
    mis_key: MisKey,
    joins: list[tuple[Target, Any]],
) -> sa.ColumnElement[bool]:
    """Rows whose value exists in the target but whose evidence disagrees with the row it
    references: a cheap superset of the hidden mis-keys, confirmed by the diagnosis.

    `attribute` evidence: the row's column differs from that attribute of the referenced
    row's key-space row (its user). `via` evidence: the row's via-row points at another
    target row than the value (the package belongs to another tutor).
    """
    ref = scan.col(column)
    exists = sa.or_(*(j.c[t.ref.column].is_not(None) for t, j in joins))
    throughs = [j.c[mis_key.through] for _, j in joins]
    referenced = throughs[0] if len(throughs) == 1 else sa.func.coalesce(*throughs)
    space = scan.key_spaces[mis_key.key_space]
    through_same = all(
        scan.comparable((t.ref.table, mis_key.through), (space.table, space.key)) for t, _ in joins
    )
    parts: list[sa.ColumnElement[bool]] = []
    for ev in mis_key.evidence:
        if ev.attribute is not None:
            user = scan.join(
                space.table,
                space.key,
                lambda a: equal_as(through_same, a.c[space.key], referenced),
                ("referenced", column),
            )
            own = scan.col(ev.attribute.column)
            parts.append(
                sa.and_(
                    own.is_not(None), own.is_distinct_from(user.c[ev.attribute.key_space_column])
                )
            )
        elif ev.via is not None:
            via = ev.via
            row = scan.join(
                via.table,
                via.key,
                match(via.key, scan.col(via.column)),
                (via.column, ""),
            )
            points = row.c[via.target_column]
            pair = ((via.table, via.target_column), (scan.table, column))
            same, fold = scan.comparable(*pair), scan.folds(*pair)
            parts.append(
                sa.and_(points.is_not(None), sa.not_(equal_as(same, points, ref, fold)))
            )
    if not parts:
        return sa.false()
    return sa.and_(ref.is_not(None), exists, sa.or_(*parts))


def _rules(
    check: ReferenceCheck | ConditionalReferenceCheck,
    scan: TableScan,
    targets: list[Target],
    discriminator: str | None,
) -> RowRule:
    ref = scan.col(check.column)
    disc = scan.col(discriminator) if discriminator else None
    joins: list[tuple[Target, Any]] = []
    missing_parts = []
    for target_ref, group in by_target(targets):
        values = [t.value for t in group]
        chosen = one_of(disc, values) if disc is not None else None
        key = ("for", *values) if disc is not None else ("",)
        j = _target_join(scan, check.column, target_ref, chosen, key)
        joins.extend((t, j) for t in group)
        absent = j.c[target_ref.column].is_(None)
        missing_parts.append(sa.and_(chosen, absent) if chosen is not None else absent)
    missing = sa.and_(ref.is_not(None), sa.or_(*missing_parts))
    flag: sa.ColumnElement[bool] = missing
    if check.mis_key is not None:
        flag = sa.or_(missing, _hidden_candidates(scan, check.column, check.mis_key, joins))
    space = scan.key_spaces[check.mis_key.key_space] if check.mis_key else None
    return RowRule(
        check.id,
        check,
        check.column,
        flag,
        as_text(ref),
        carry={"missing": is_true(missing)},
        columns=check.row_columns(),
        diagnoser=ReferenceDiagnoser(
            column=check.column,
            targets=targets,
            discriminator=discriminator,
            mis_key=check.mis_key,
            key_space=space,
            on_orphan=check.on_orphan,
            same=value_compares(scan, check.column, targets, check.mis_key),
            forms=value_forms(scan, check.column, targets),
        ),
    )


def value_compares(
    scan: TableScan, column: str, targets: list[Target], mis_key: MisKey | None
) -> bool:
    """Whether the reference's value compares as it is with everything its diagnosis
    compares it with: the targets' keys and, for mis-keys, their `through` columns, the key
    space's key and the `via` rows' target columns. False: all of it is compared as text."""
    here = (scan.table, column)
    others = [(t.ref.table, t.ref.column) for t in targets]
    if mis_key is not None:
        space = scan.key_spaces[mis_key.key_space]
        others += [(t.ref.table, mis_key.through) for t in targets]
        others.append((space.table, space.key))
        others += [(ev.via.table, ev.via.target_column) for ev in mis_key.evidence if ev.via]
    return all(scan.comparable(here, other) for other in others)


def key_compares(scan: TableScan, columns: list[str], target: ColumnRef) -> list[tuple[bool, bool]]:
    """Per (row column, target key column) pair of a composite reference: whether the two
    compare as they are, and whether compared as text they fold case (see `comparable`)."""
    return [
        (
            scan.comparable((scan.table, col), (target.table, key)),
            scan.folds((scan.table, col), (target.table, key)),
        )
        for col, key in zip(columns, target.key_columns(), strict=True)
    ]


def composite_rules(
    check: ReferenceCheck | ConditionalReferenceCheck,
    scan: TableScan,
    targets: list[Target],
    discriminator: str | None,
) -> RowRule:
    """A composite reference (`columns: [a, b]` -> `target: {table, columns: [x, y]}`, or
    per discriminator value for a conditional one), as a foreign key MATCH SIMPLE: a row
    with a NULL in any of the columns names nothing; any other must name a row of its
    target with all of them. The value is a JSON array of the row's columns; the diagnosis
    labels the finding (orphan, wrong_type, filtered_out, ambiguous) and proposes nothing:
    repair.sql lists composite references for review."""
    columns = check.key_of_row()
    disc = scan.col(discriminator) if discriminator else None
    missing_parts = []
    for target_ref, group in by_target(targets):
        values = [t.value for t in group]
        chosen = one_of(disc, values) if disc is not None else None
        keys = target_ref.key_columns()
        compares = key_compares(scan, columns, target_ref)

        def on(
            alias: Any,
            keys: list[str] = keys,
            compares: list[tuple[bool, bool]] = compares,
            chosen: Any = chosen,
        ) -> sa.ColumnElement[bool]:
            cond = sa.and_(
                *(
                    equal_as(same, alias.c[key], scan.col(col), fold)
                    for key, col, (same, fold) in zip(keys, columns, compares, strict=True)
                )
            )
            return sa.and_(chosen, cond) if chosen is not None else cond

        key = ("for", *values) if disc is not None else ()
        j = scan.join(target_ref.table, tuple(keys), on, (*columns, *key), keep=target_ref.where)
        absent = j.c[keys[0]].is_(None)
        missing_parts.append(sa.and_(chosen, absent) if chosen is not None else absent)
    named = sa.and_(*(scan.col(c).is_not(None) for c in columns))
    flag = sa.and_(named, sa.or_(*missing_parts))
    value = sa.cast(sa.func.json_build_array(*(scan.col(c) for c in columns)), sa.Text)
    return RowRule(
        check.id,
        check,
        ",".join(columns),
        flag,
        value,
        columns=check.row_columns(),
        diagnoser=CompositeDiagnoser(
            columns=columns,
            targets=targets,
            discriminator=discriminator,
            compares=[key_compares(scan, columns, t.ref) for t in targets],
        ),
    )


def value_forms(scan: TableScan, column: str, targets: list[Target]) -> list[str | None]:
    """Per target, the key type a text id is read as to find its `malformed` spellings
    (`refaudit.checks.text_ids.key_form`)."""
    here = scan.types.get((scan.table, column))
    return [key_form(here, scan.types.get((t.ref.table, t.ref.column))) for t in targets]


def reference_rules(check: ReferenceCheck, scan: TableScan) -> list[RowRule]:
    return [_rules(check, scan, [Target(None, check.target)], None)]


def conditional_reference_rules(check: ConditionalReferenceCheck, scan: TableScan) -> list[RowRule]:
    disc = scan.col(check.discriminator)
    targets = [
        Target(value, ref, check.labels.get(value, "")) for value, ref in check.targets.items()
    ]
    # a row whose id is NULL names nothing, whatever its discriminator (Rails' optional
    # polymorphic association leaves both NULL), as constraints.sql's trigger lets it pass
    named = sa.and_(*(scan.col(c).is_not(None) for c in check.key_of_row()))
    unknown = sa.and_(named, sa.or_(disc.is_(None), not_one_of(disc, check.targets)))
    value = sa.func.coalesce(as_text(disc), sa.literal("NULL"))
    diagnoser: Diagnoser
    if check.columns:
        rule = composite_rules(check, scan, targets, check.discriminator)
        diagnoser = CompositeDiagnoser(
            columns=check.columns,
            targets=targets,
            discriminator=check.discriminator,
            compares=[key_compares(scan, check.columns, t.ref) for t in targets],
            unknown_discriminator=True,
        )
    else:
        rule = _rules(check, scan, targets, check.discriminator)
        diagnoser = DiscriminatorDiagnoser(
            column=check.column,
            targets=targets,
            discriminator=check.discriminator,
            mis_key=check.mis_key,
            key_space=scan.key_spaces[check.mis_key.key_space] if check.mis_key else None,
            same=value_compares(scan, check.column, targets, check.mis_key),
            forms=value_forms(scan, check.column, targets),
            types=check.labels,
            type_table=check.lookup.table if check.lookup else "",
            stale=check.stale,
        )
    unknown_rule = RowRule(
        check.id + DISCRIMINATOR_SUFFIX,
        check,
        check.discriminator,
        unknown,
        value,
        columns=check.row_columns(),
        diagnoser=diagnoser,
    )
    return [rule, unknown_rule]
