"""What every check kind is made of: the suite's building blocks (conditions, targets, key
spaces, mis-key evidence, thresholds) and `Check`, the base of every kind's model.

A kind is one module of `refaudit.checks` (its model, documented by its docstring, and how
it compiles, exports and is enforced, as methods of the model), listed once in the registry
(`refaudit.checks.KINDS`). The engine, the outputs, repair and the GX export call the
methods; none of them branches on a kind's name.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StrictBool,
    StrictFloat,
    StrictInt,
    StrictStr,
    model_validator,
)

from ..sqltext import join_name
from .stage import AGGREGATE, ROW_SCAN, Scope, Stage

if TYPE_CHECKING:
    from sqlalchemy.sql.elements import ColumnElement

    from .base import RowRule, TableScan
    from .ddl import DdlContext
    from .relations import Relation

Severity = Literal["error", "warn"]


def _table_name(value: Any) -> Any:
    """`{schema, name}` (for names holding a dot) as the suite's spelling of the table."""
    if isinstance(value, dict) and set(value) <= {"schema", "name"} and "name" in value:
        return join_name(value.get("schema"), str(value["name"]))
    return value


TableName = Annotated[str, BeforeValidator(_table_name)]
"""A table: `table`, `schema.table`, `legacy."audit.log"` (double quotes around a part
holding a dot) or `{schema: legacy, name: audit.log}`, which means the same."""


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


# ----------------------------------------------------------------------- conditions
class Operand(Model):
    """The other side of a comparison when it is a column of the same row."""

    column: str


Scalar = StrictStr | StrictBool | StrictInt | StrictFloat
"""A value in a condition, as YAML wrote it (`true` stays a boolean, `1` an integer)."""
Comparand = Annotated[Scalar | Operand, Field(union_mode="left_to_right")]


class Condition(Model):
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
    in_: list[Scalar] | None = Field(default=None, alias="in")
    not_in: list[Scalar] | None = None
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
class TableSpec(Model):
    """An audited table: its primary `key`, one column (`id`) or several (`[org_id, id]`)."""

    key: str | list[str] = "id"

    def key_columns(self) -> list[str]:
        return [self.key] if isinstance(self.key, str) else list(self.key)


class ColumnRef(Model):
    """A target: `table` and its key `column` (default `id`); with `where`, only the target
    rows it keeps count (`{table: users, where: {column: type, eq: AdminUser}}`)."""

    table: TableName
    column: str = "id"
    columns: list[str] | None = None  # a composite key: `columns: [org_id, id]`
    where: Condition | None = None

    def key_columns(self) -> list[str]:
        """The target's key columns: `columns`, else `[column]`."""
        return list(self.columns) if self.columns else [self.column]

    def ref_key(self) -> str:
        """Tells targets apart (a dict key: a condition holds lists, which do not hash)."""
        return self.model_dump_json(exclude_none=True)


class Lookup(Model):
    """`lookup:` of a conditional reference whose discriminator holds the key of a row of a
    type table rather than a name: Django's `content_type_id` (a row `(app_label, model)` of
    `django_content_type`), a home-made `entity_type_id`. The suite names each target by
    what that row says (`shop.article`: the `name` columns' values joined by `separator`),
    and the audit reads the table in its snapshot to learn which ids those are, so one
    suite holds on every database of a project, whatever ids each has given its types."""

    table: TableName
    key: str = "id"
    name: str | list[str] = "name"
    separator: str = "."

    def name_columns(self) -> list[str]:
        return [self.name] if isinstance(self.name, str) else list(self.name)


def key_form_problem(columns: list[str], refs: list[ColumnRef]) -> None:
    """Raise what is wrong with a composite key `columns` and its targets, if anything: one
    column, a column named twice, a target with another number of key columns."""
    if len(columns) < 2:
        raise ValueError(
            f"`columns: [{', '.join(columns)}]` is a composite key of one column; "
            f"write `column: {columns[0] if columns else '...'}`"
        )
    twice = [c for c in dict.fromkeys(columns) if columns.count(c) > 1]
    if twice:
        raise ValueError(f"`columns:` names `{twice[0]}` twice; name each column once")
    for ref in refs:
        keys = ref.key_columns()
        if len(keys) != len(columns):
            raise ValueError(
                f"`columns:` has {len(columns)} columns but the target "
                f"{ref.table} has {len(keys)}; give `target: {{table, "
                "columns: [...]}` as many"
            )
        twice = [c for c in dict.fromkeys(keys) if keys.count(c) > 1]
        if twice:
            raise ValueError(
                f"the target {ref.table} names `{twice[0]}` twice in `columns:`; name each "
                "key column once"
            )


class KeySpace(Model):
    """Another key space a reference value may wrongly come from (e.g. `users.id`)."""

    table: TableName
    key: str = "id"
    attributes: list[str] = Field(default_factory=list)


class AttributeEvidence(Model):
    column: str
    key_space_column: str


class ViaEvidence(Model):
    column: str
    table: TableName
    key: str = "id"
    target_column: str


class Evidence(Model):
    """One piece of a row's own evidence about which key space its value belongs to."""

    attribute: AttributeEvidence | None = None
    via: ViaEvidence | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> Evidence:
        if (self.attribute is None) == (self.via is None):
            raise ValueError("an evidence item is either `attribute:` or `via:`")
        return self


class MisKey(Model):
    """How a value from another key space maps to the intended key: a `key_space` value v
    stands for the target row whose `through` column equals v (`tutor_profiles.user_id = v`).
    `evidence` lists what in the row itself can confirm or contradict that reading."""

    key_space: str
    through: str = "user_id"
    evidence: list[Evidence] = Field(default_factory=list)

    def problems(self, tables: Any, key_spaces: dict[str, KeySpace]) -> list[str]:
        """What the suite must declare for this mis-key, as `path: message` (from `mis_key`)."""
        if self.key_space not in key_spaces:
            return [f"mis_key.key_space: `{self.key_space}` is not declared under `key_spaces:`"]
        space, out = key_spaces[self.key_space], []
        for j, ev in enumerate(self.evidence):
            if ev.attribute and ev.attribute.key_space_column not in space.attributes:
                out.append(
                    f"mis_key.evidence[{j}].attribute.key_space_column: "
                    f"`{ev.attribute.key_space_column}` is not an attribute of key space "
                    f"`{self.key_space}`; add it to its `attributes:`"
                )
            if ev.via and ev.via.table not in tables:
                out.append(
                    f"mis_key.evidence[{j}].via: table `{ev.via.table}` is not declared under "
                    "`tables:`"
                )
        return out

    def reads(
        self, targets: list[ColumnRef], key_spaces: dict[str, KeySpace]
    ) -> dict[str, set[str]]:
        """What diagnosing the mis-key reads beyond the row: the targets' `through` column,
        the key space's key and attributes, the `via` tables."""
        need: dict[str, set[str]] = {}
        for ref in targets:
            need.setdefault(ref.table, set()).update({ref.column, self.through})
        space = key_spaces[self.key_space]
        need.setdefault(space.table, set()).update({space.key, *space.attributes})
        for ev in self.evidence:
            if ev.via is not None:
                need.setdefault(ev.via.table, set()).update({ev.via.key, ev.via.target_column})
        return need

    def row_columns(self) -> list[str]:
        """The columns of the audited row its evidence reads."""
        return [ev.attribute.column if ev.attribute else ev.via.column for ev in self.evidence]  # type: ignore[union-attr]


# What a repair does with a row whose reference nothing maps: move it to the quarantine table
# and delete it, set the reference to NULL, or only list it (rows other tables point at).
OnOrphan = Literal["quarantine", "set_null", "report"]

# Whether repair.sql plans the changes a check's diagnoses propose (`propose`) or lists all its
# findings for review (`review`); unset: `review` for a check of `severity: warn` or with
# `on_orphan: report`, else `propose`.
RepairChoice = Literal["propose", "review"]


class Threshold(Model):
    """How many violations a check tolerates before it fails: at most `max_count`, at most
    `max_rate` of the rows checked; with `min_count`, at least that many (dbt's
    `error_if: "<1"`: a check whose findings are expected, such as a known bad group), with
    `min_rate` at least that share of the rows checked (Soda's percent thresholds).
    Without any, one finding fails the check; with only minimums, only too few do."""

    max_count: int | None = Field(default=None, ge=0)
    max_rate: float | None = Field(default=None, ge=0, le=1)
    min_count: int | None = Field(default=None, ge=0)
    min_rate: float | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _consistent(self) -> Threshold:
        for what in ("count", "rate"):
            least, most = getattr(self, f"min_{what}"), getattr(self, f"max_{what}")
            if least is not None and most is not None and least > most:
                raise ValueError(
                    f"min_{what} {least} is above max_{what} {most}; no {what} passes - "
                    f"lower min_{what} or raise max_{what}"
                )
        return self


class MatchPair(Model):
    column: str
    target_column: str


class Filtered(Model):
    """A check with `where:`, the condition a row must meet to be checked at all (a row
    where it is false or NULL is not checked and not counted in `rows_checked`)."""

    where: Condition | None = None

    def row_filter(self) -> Condition | None:
        return self.where


@dataclass(frozen=True)
class TableFinding:
    """What an aggregate check found wrong with its table (or with one group of its rows):
    the measured `value` (violations.csv's `value`) and what was expected (`evidence`)."""

    value: str
    evidence: str


Metric = Any
"""An aggregate SQL expression (`count(col)`, `max(col)`) an aggregate kind asks for."""


@dataclass(frozen=True)
class Measure:
    """What an aggregate kind builds its metrics from: the table's columns `col(name)`;
    `kept(aggregate)`, the aggregate limited to the rows the check's `where` keeps (a
    FILTER clause); `now`, the time the rows stand for (a `timestamptz`: the snapshot's)."""

    col: Callable[[str], Any]
    kept: Callable[[Metric], Metric]
    now: Any


@dataclass(frozen=True)
class GxSpec:
    """One Great Expectations expectation a kind exports as itself (rather than as the
    engine's SQL in an `UnexpectedRowsExpectation`): its type, its kwargs, the column."""

    type: str
    kwargs: dict[str, Any] = field(default_factory=dict)
    column: str = ""


class Check(Model):
    """What every check has: `id` (unique in the suite), `table`, `severity` (error or warn),
    `threshold` (`max_count`, `max_rate`: how many findings it tolerates; `min_count`,
    `min_rate`: how many it expects at least, as dbt's `error_if: "<1"`; rates only for
    findings about rows) and an optional `description`."""

    stage: ClassVar[Stage] = ROW_SCAN
    """How the kind runs (`refaudit.checks.stage`)."""
    finding_scope: ClassVar[Scope | None] = None
    """What one finding is about, when not what the stage says (`Check.scope`)."""
    repairs: ClassVar[bool] = False
    """True: the kind's diagnoses propose repairs that repair.sql plans (references)."""
    may_raise: ClassVar[bool] = False
    """True: the kind's rules run SQL the suite wrote, which may raise on some rows' values
    (division by zero, a bad cast): the engine then finds those rows and reports each as a
    finding of the check (diagnosis `error`) instead of stopping the audit. Its rules read
    their own row only."""
    holds_values: ClassVar[bool] = False
    """True: the kind's rules hold values of the suite (a set, a regex, bounds, a rule's
    constants), which PostgreSQL checks against the columns' types before the audit."""

    written_order: ClassVar[tuple[str, ...]] = ()
    """The order a suite file gives the kind's keys after `id`, `kind` and `table` (see
    `written`); keys it leaves out follow in the model's order."""

    id: str = Field(pattern=r"^[A-Za-z0-9_.:-]+$")
    table: TableName
    severity: Severity = "error"
    threshold: Threshold = Threshold()
    description: str | None = None

    @property
    def family(self) -> str:
        return str(getattr(self, "kind"))  # noqa: B009  (every subclass has `kind`)

    @property
    def scope(self) -> Scope:
        """What one finding of the check is about: its stage's scope, unless the kind says
        otherwise."""
        return self.finding_scope or self.stage.scope

    @model_validator(mode="after")
    def _threshold_fits_scope(self) -> Check:
        rates = [k for k in ("max_rate", "min_rate") if getattr(self.threshold, k) is not None]
        if self.scope is Scope.TABLE and rates:
            count = rates[0].replace("rate", "count")
            raise ValueError(
                f"check {self.id}: `threshold.{rates[0]}` needs findings about rows, and a "
                f"{self.family} check's findings are about the table; use `{count}`"
            )
        return self

    def written(self) -> dict[str, Any]:
        """The check as a suite file writes it: the keys it was given (a default is written
        only where it was given), as YAML reads them back, `id`, `kind` and `table` first,
        then in `written_order`."""
        data = self.model_dump(mode="json", by_alias=True, exclude_unset=True)
        first = [k for k in ("id", "kind", "table", *self.written_order) if k in data]
        return {k: data[k] for k in first} | {k: v for k, v in data.items() if k not in first}

    def column_list(self) -> list[str]:
        """The columns of `table` the check is about (results, reports)."""
        return []

    def row_filter(self) -> Condition | None:
        """Which rows of `table` the check looks at (its `where`); None: every row. The
        engine applies it to every rule of the check and counts `rows_checked` with it."""
        return None

    def tables(self) -> list[str]:
        """Every table the check names (each must be declared under `tables:`)."""
        return [self.table]

    def problems(self, tables: Any, key_spaces: dict[str, KeySpace]) -> list[str]:
        """What the suite must declare beyond the tables, as `path: message`."""
        return []

    def reads(self, key_spaces: dict[str, KeySpace]) -> dict[str, set[str]]:
        """The columns the check reads beyond its table's key, per table."""
        return {self.table: set(self.column_list())}

    def rules(self, scan: TableScan) -> list[RowRule]:
        """A `row` kind's rules: boolean flags over the rows of `scan`."""
        raise NotImplementedError(f"{self.family} is not a row check")

    def query(self, key: Any) -> Any:
        """A `set` kind's query: (key, value, kept) of every finding, in key order."""
        raise NotImplementedError(f"{self.family} is not a set check")

    def evidence(self, kept: Any) -> str:
        """A `set` kind's evidence for a finding, given the `kept` column of its row."""
        return ""

    def proven_by(self, rel: Relation | None) -> str | None:
        """A `set` kind: what in the catalog of its table (`rel`, as the audit's snapshot
        reads it; None: not a relation) makes every row pass, in words (`unique index
        users_pkey`); the engine then reads none of its rows. None: the rows must be read."""
        return None

    def grouping(self) -> list[str]:
        """An `aggregate` kind's `group_by`: the columns whose every combination of values
        is judged on its own ([]: the table as a whole)."""
        return []

    def metrics(self, m: Measure) -> dict[str, Metric]:
        """An `aggregate` kind's metrics, by name: aggregate expressions over the columns
        `m.col(name)`, each aggregate call passed through `m.kept` (which adds the check's
        `where` as a FILTER clause). The engine computes every metric of a table in one
        statement (see `refaudit.checks.stage.AGGREGATE`), and `rows`, the rows the check
        looks at, for every check."""
        raise NotImplementedError(f"{self.family} is not an aggregate check")

    def judge(self, values: dict[str, Any]) -> TableFinding | None:
        """An `aggregate` kind's verdict on its metrics' values (`rows` among them) for the
        table or one group: what is wrong, or None when they pass."""
        raise NotImplementedError(f"{self.family} is not an aggregate check")

    def probes(self) -> list[tuple[Any, Callable[[str], str]]]:
        """Statements PostgreSQL must accept for the check to run (a regex), each with what
        to say, given the server's message, when it does not."""
        return []

    def sql_problem(self, conn: Any) -> str | None:
        """What the server says is wrong with SQL the suite wrote for the check (an
        expression it cannot run, a function more volatile than the check allows), asked on
        `conn` before the audit without reading a row; None: nothing (or no such SQL)."""
        return None

    def value_tests(self, scan: Any) -> list[ColumnElement[Any]]:
        """The expressions that hold the suite's values, for PostgreSQL to check against
        the columns' types before the audit (`scan` gives each column as a typed NULL):
        the rules themselves, for a kind that `holds_values`."""
        return [r.flag for r in self.rules(scan)] if self.holds_values else []

    def gx(self) -> list[GxSpec] | None:
        """The GX expectations this check exports as; None: the engine's own SQL (always
        used for a check with a `where`)."""
        return None

    def gx_unsupported(self) -> str | None:
        """Why Great Expectations cannot run this check, as manifest.json's `not_exported`
        says it; None: it exports (as `gx()`, or as the engine's SQL)."""
        return None

    def target_filters(self) -> list[tuple[str, Condition]]:
        """(table, where) of every target filter, for the server to check its values."""
        return []

    def probe_values(self) -> list[Any]:
        """Values worth trying on a CHECK constraint that claims to enforce the check."""
        return []

    def check_body(self, col: Any) -> ColumnElement[bool] | None:
        """The CHECK constraint that enforces it, over columns `col(name)`; None: none."""
        return None

    def ddl_section(self, ctx: DdlContext) -> str | None:
        """The check's section of constraints.sql, the DDL that makes a repair stick (adding
        to `ctx.plan` what rollback.sql must undo); None: the kind has none."""
        return None


class AggregateCheck(Filtered, Check):
    """What the aggregate kinds share: `where` (the rows measured; in the statement a FILTER
    clause on each of the check's aggregates) and `group_by` (columns whose every combination
    of values is judged on its own, a finding per failing group; a group none of whose rows
    `where` keeps is not judged)."""

    stage: ClassVar[Stage] = AGGREGATE

    group_by: list[str] | None = Field(default=None, min_length=1)

    def grouping(self) -> list[str]:
        return list(self.group_by or [])

    def column_list(self) -> list[str]:
        column = getattr(self, "column", None)
        return [column] if column else []

    def reads(self, key_spaces: Any) -> dict[str, set[str]]:
        return {self.table: {*self.column_list(), *self.grouping()}}

    def gx_unsupported(self) -> str | None:
        if self.where is not None or self.group_by:
            return (
                f"{self.family} with `where` or `group_by`: GX's table and column aggregate "
                "expectations take no row filter or groups here; refaudit run answers it"
            )
        return None
