"""The declarative suite: YAML in `expectations/`, validated on load.

A suite names the audited tables, the key spaces a mis-keyed value may come from, and the
checks. Every check is one pydantic model, chosen by its `kind`. A mistake in the file is
reported with the file, the key path and what to write instead.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from pipeline.errors import SuiteError

# The Astegni suite ships as package data of `expectations` (beside `pipeline` in the wheel and
# in the checkout): found through importlib.resources, never through a path from __file__.
DEFAULT_SUITE = Path(str(importlib.resources.files("expectations") / "astegni" / "suite.yml"))

Severity = Literal["error", "warn"]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ----------------------------------------------------------------------- conditions
class Operand(_Model):
    """The other side of a comparison when it is a column of the same row."""

    column: str


Comparand = Annotated[str | int | float | bool | Operand, Field(union_mode="left_to_right")]


class Condition(_Model):
    """A predicate over one row: a leaf on one column, or `all` / `any` / `not` of conditions.

    Leaves: `{column: c, eq|ne|gt|ge|lt|le: value-or-{column: other}}`,
    `{column: c, in: [...]}`, `{column: c, not_in: [...]}`, `{column: c, is_null: true|false}`.
    """

    column: str | None = None
    eq: Comparand | None = None
    ne: Comparand | None = None
    gt: Comparand | None = None
    ge: Comparand | None = None
    lt: Comparand | None = None
    le: Comparand | None = None
    in_: list[str | int | float] | None = Field(default=None, alias="in")
    not_in: list[str | int | float] | None = None
    is_null: bool | None = None
    all: list[Condition] | None = None
    any: list[Condition] | None = None
    not_: Condition | None = Field(default=None, alias="not")

    @model_validator(mode="after")
    def _one_shape(self) -> Condition:
        ops = [
            n
            for n in ("eq", "ne", "gt", "ge", "lt", "le", "in_", "not_in", "is_null")
            if getattr(self, n) is not None
        ]
        groups = [n for n in ("all", "any", "not_") if getattr(self, n) is not None]
        if groups and (ops or self.column):
            raise ValueError("a condition is either a column test or one of all/any/not, not both")
        if len(groups) > 1:
            raise ValueError("use only one of all/any/not in one condition; nest them instead")
        if not groups:
            if self.column is None:
                raise ValueError("a condition needs `column:` (or all/any/not)")
            if len(ops) != 1:
                raise ValueError(
                    "a column test takes exactly one of eq, ne, gt, ge, lt, le, in, not_in, is_null"
                )
        return self

    def columns(self) -> list[str]:
        """The columns the condition reads, in order of first appearance."""
        cols: list[str] = [self.column] if self.column else []
        for op in ("eq", "ne", "gt", "ge", "lt", "le"):
            v = getattr(self, op)
            if isinstance(v, Operand):
                cols.append(v.column)
        for sub in (self.all or []) + (self.any or []) + ([self.not_] if self.not_ else []):
            cols.extend(sub.columns())
        return list(dict.fromkeys(cols))


# ------------------------------------------------------------------------ building blocks
class TableSpec(_Model):
    key: str = "id"


class ColumnRef(_Model):
    table: str
    column: str = "id"


class KeySpace(_Model):
    """Another key space a reference value may wrongly come from (e.g. `users.id`)."""

    table: str
    key: str = "id"
    attributes: list[str] = Field(default_factory=list)


class AttributeEvidence(_Model):
    column: str
    key_space_column: str


class ViaEvidence(_Model):
    column: str
    table: str
    key: str = "id"
    target_column: str


class Evidence(_Model):
    """One piece of a row's own evidence about which key space its value belongs to."""

    attribute: AttributeEvidence | None = None
    via: ViaEvidence | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Evidence:
        if (self.attribute is None) == (self.via is None):
            raise ValueError("an evidence item is either `attribute:` or `via:`")
        return self


class MisKey(_Model):
    """How a value from another key space maps to the intended key: a `key_space` value v
    stands for the target row whose `through` column equals v (`tutor_profiles.user_id = v`).
    `evidence` lists what in the row itself can confirm or contradict that reading."""

    key_space: str
    through: str = "user_id"
    evidence: list[Evidence] = Field(default_factory=list)


# What a repair does with a row whose reference nothing maps: move it to the quarantine table
# and delete it, set the reference to NULL, or only list it (rows other tables point at).
OnOrphan = Literal["quarantine", "set_null", "report"]


class Threshold(_Model):
    """How many violations a check tolerates before it fails."""

    max_count: int | None = Field(default=None, ge=0)
    max_rate: float | None = Field(default=None, ge=0, le=1)


class _Check(_Model):
    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    table: str
    severity: Severity = "error"
    threshold: Threshold = Threshold()
    description: str | None = None

    @property
    def family(self) -> str:
        return str(getattr(self, "kind"))  # noqa: B009  (every subclass has `kind`)

    def column_list(self) -> list[str]:
        return []


class ReferenceCheck(_Check):
    kind: Literal["reference"]
    column: str
    target: ColumnRef
    mis_key: MisKey | None = None
    on_orphan: OnOrphan = "quarantine"

    def column_list(self) -> list[str]:
        return [self.column]


class ConditionalReferenceCheck(_Check):
    kind: Literal["conditional_reference"]
    column: str
    discriminator: str
    targets: dict[str, ColumnRef]
    mis_key: MisKey | None = None
    on_orphan: OnOrphan = "quarantine"

    def column_list(self) -> list[str]:
        return [self.column, self.discriminator]


class MatchPair(_Model):
    column: str
    target_column: str


class ConsistencyCheck(_Check):
    kind: Literal["consistency"]
    column: str
    target: ColumnRef
    match: list[MatchPair] = Field(min_length=1)

    def column_list(self) -> list[str]:
        return [self.column, *(m.column for m in self.match)]


class NotNullCheck(_Check):
    kind: Literal["not_null"]
    columns: list[str] = Field(min_length=1)

    def column_list(self) -> list[str]:
        return list(self.columns)


class InSetCheck(_Check):
    kind: Literal["in_set"]
    column: str
    values: list[str | int] = Field(min_length=1)

    def column_list(self) -> list[str]:
        return [self.column]


class PatternCheck(_Check):
    kind: Literal["pattern"]
    column: str
    regex: str

    def column_list(self) -> list[str]:
        return [self.column]


class RowRuleCheck(_Check):
    kind: Literal["row_rule"]
    require: Condition
    where: Condition | None = None
    columns: list[str] | None = None

    def column_list(self) -> list[str]:
        if self.columns:
            return list(self.columns)
        where = self.where.columns() if self.where else []
        return list(dict.fromkeys([*where, *self.require.columns()]))


class UniqueCheck(_Check):
    kind: Literal["unique"]
    columns: list[str] = Field(min_length=1)
    where: Condition | None = None
    nulls: Literal["distinct", "equal"] = "distinct"
    """`distinct` (PostgreSQL's UNIQUE): a row with a NULL in any of the columns duplicates
    no other; `equal` (`UNIQUE NULLS NOT DISTINCT`, `GROUP BY`): NULLs match NULLs."""

    def column_list(self) -> list[str]:
        return list(self.columns)


class ConstraintRefSpec(_Model):
    table: str
    columns: list[str] = Field(default_factory=lambda: ["id"])


class ConstraintCheck(_Check):
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


class IndexCheck(_Check):
    kind: Literal["index"]
    name: str
    columns: list[str] | None = None

    def column_list(self) -> list[str]:
        return list(self.columns or [])


class TriggerCheck(_Check):
    kind: Literal["trigger"]
    name: str
    for_check: str | None = None


Check = Annotated[
    ReferenceCheck
    | ConditionalReferenceCheck
    | ConsistencyCheck
    | NotNullCheck
    | InSetCheck
    | PatternCheck
    | RowRuleCheck
    | UniqueCheck
    | ConstraintCheck
    | IndexCheck
    | TriggerCheck,
    Field(discriminator="kind"),
]

ROW_KINDS = frozenset(
    {
        "reference",
        "conditional_reference",
        "consistency",
        "not_null",
        "in_set",
        "pattern",
        "row_rule",
    }
)
SET_KINDS = frozenset({"unique"})
CATALOG_KINDS = frozenset({"constraint", "index", "trigger"})
CHECK_KINDS = ROW_KINDS | SET_KINDS | CATALOG_KINDS


class Suite(_Model):
    suite: str
    description: str | None = None
    demo: str | None = None
    tables: dict[str, TableSpec] = Field(min_length=1)
    key_spaces: dict[str, KeySpace] = Field(default_factory=dict)
    checks: list[Check] = Field(min_length=1)
    path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _cross_references(self) -> Suite:
        seen: set[str] = set()
        for i, check in enumerate(self.checks):
            where = f"checks[{i}]"
            if check.id in seen:
                raise ValueError(f"{where}.id: `{check.id}` is used twice; check ids are unique")
            seen.add(check.id)
            for table in _tables_of(check):
                if table not in self.tables:
                    raise ValueError(
                        f"{where}: table `{table}` is not declared under `tables:`; "
                        f"add `{table}: {{key: id}}` there"
                    )
            mis_key = getattr(check, "mis_key", None)
            if mis_key is not None and mis_key.key_space not in self.key_spaces:
                raise ValueError(
                    f"{where}.mis_key.key_space: `{mis_key.key_space}` is not declared under "
                    f"`key_spaces:`"
                )
            if mis_key is not None:
                space = self.key_spaces[mis_key.key_space]
                for j, ev in enumerate(mis_key.evidence):
                    if ev.attribute and ev.attribute.key_space_column not in space.attributes:
                        raise ValueError(
                            f"{where}.mis_key.evidence[{j}].attribute.key_space_column: "
                            f"`{ev.attribute.key_space_column}` is not an attribute of key space "
                            f"`{mis_key.key_space}`; add it to its `attributes:`"
                        )
                    if ev.via and ev.via.table not in self.tables:
                        raise ValueError(
                            f"{where}.mis_key.evidence[{j}].via: table `{ev.via.table}` is not "
                            f"declared under `tables:`"
                        )
        return self

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def key_of(self, table: str) -> str:
        return self.tables[table].key

    @property
    def demo_path(self) -> Path | None:
        if self.demo is None or self.path is None:
            return None
        return self.path.parent / self.demo


def _tables_of(check: Any) -> list[str]:
    tables = [check.table]
    for attr in ("target",):
        ref = getattr(check, attr, None)
        if ref is not None:
            tables.append(ref.table)
    for ref in (getattr(check, "targets", None) or {}).values():
        tables.append(ref.table)
    refs = getattr(check, "references", None)
    if refs is not None:
        tables.append(refs.table)
    return tables


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            # discriminated unions add the tag ("reference") to the path: it is not a key
            if part in CHECK_KINDS:
                continue
            out += f".{part}" if out else str(part)
    return out or "(top level)"


def _message(err: dict[str, Any]) -> str:
    kind = err["type"]
    if kind == "missing":
        return "is required but missing"
    if kind == "extra_forbidden":
        return "is not a known key (check its spelling)"
    if kind == "union_tag_invalid":
        return "unknown kind; use one of: " + ", ".join(sorted(CHECK_KINDS))
    if kind == "union_tag_not_found":
        return "needs `kind:` (reference, conditional_reference, consistency, ...)"
    msg = str(err["msg"])
    return msg.removeprefix("Value error, ")


def load_suite(path: Path | str | None = None) -> Suite:
    """Read and validate a suite file; raise SuiteError naming file, key path and the fix."""
    p = Path(path) if path is not None else DEFAULT_SUITE
    if p.is_dir():
        p = p / "suite.yml"
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SuiteError(
            f"suite file {p} does not exist; pass --suite PATH to a suite YAML"
        ) from None
    except OSError as exc:
        raise SuiteError(f"cannot read suite file {p}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise SuiteError(f"{p}{where}: {problem}; fix the YAML syntax there") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{p}: a suite is a mapping with `suite:`, `tables:` and `checks:`")
    try:
        suite = Suite.model_validate(data)
    except ValidationError as exc:
        # every mistake at once, so one edit fixes them all
        found = list(dict.fromkeys(f"{_loc(e['loc'])}: {_message(dict(e))}" for e in exc.errors()))
        listed = found[0] if len(found) == 1 else f"{len(found)} mistakes: " + "; ".join(found)
        raise SuiteError(f"{p}: {listed}") from None
    return suite.model_copy(update={"path": p.resolve()})
