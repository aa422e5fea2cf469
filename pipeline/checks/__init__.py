"""The check kinds: one module each, listed once here.

A kind is a pydantic model (a subclass of `refaudit.checks.model.Check`) whose docstring
documents it and whose methods say how it runs (`stage`, one of `refaudit.checks.stage`),
what its findings are about (`scope`), what it reads, how it compiles to SQL (`rules` for
a row kind, `metrics` and `judge` for an aggregate kind, `query` for a set kind), how its
values are checked before the audit, how it exports to Great Expectations (`gx`, or
`gx_unsupported` saying why not), how a CHECK constraint enforces it (`check_body`) and what
constraints.sql does for it (`ddl_section`). Adding a kind is its
module, one line below and its case file in `tests/cases/`.
"""

from __future__ import annotations

from .at_least_one import AtLeastOneCheck
from .cardinality_equality import CardinalityEqualityCheck
from .catalog import ConstraintCheck, IndexCheck, TriggerCheck
from .consistency import ConsistencyCheck
from .equal_rowcount import EqualRowcountCheck
from .equality import EqualityCheck
from .expression_check import ExpressionCheck
from .fewer_rows_than import FewerRowsThanCheck
from .freshness import FreshnessCheck
from .in_set import InSetCheck
from .model import Check
from .mutually_exclusive_ranges import MutuallyExclusiveRangesCheck
from .not_constant import NotConstantCheck
from .not_null import NotNullCheck
from .not_null_proportion import NotNullProportionCheck
from .pattern import PatternCheck
from .range import RangeCheck
from .reference import ConditionalReferenceCheck, Reference, ReferenceCheck
from .row_count import RowCountCheck
from .row_rule import RowRuleCheck
from .sequential_values import SequentialValuesCheck
from .stage import CATALOG, ROW_SCAN, SET
from .unique import UniqueCheck

KINDS: tuple[type[Check], ...] = (
    ReferenceCheck,
    ConditionalReferenceCheck,
    ConsistencyCheck,
    NotNullCheck,
    InSetCheck,
    PatternCheck,
    RangeCheck,
    RowRuleCheck,
    ExpressionCheck,
    UniqueCheck,
    SequentialValuesCheck,
    MutuallyExclusiveRangesCheck,
    EqualityCheck,
    CardinalityEqualityCheck,
    EqualRowcountCheck,
    FewerRowsThanCheck,
    NotConstantCheck,
    AtLeastOneCheck,
    NotNullProportionCheck,
    RowCountCheck,
    FreshnessCheck,
    ConstraintCheck,
    IndexCheck,
    TriggerCheck,
)


def kind_name(model: type[Check]) -> str:
    """The `kind:` a model is chosen by."""
    return str(model.model_fields["kind"].annotation.__args__[0])  # type: ignore[union-attr]


KIND_NAMES = {kind_name(k): k for k in KINDS}
ROW_KINDS = frozenset(n for n, k in KIND_NAMES.items() if k.stage is ROW_SCAN)
SET_KINDS = frozenset(n for n, k in KIND_NAMES.items() if k.stage is SET)
CATALOG_KINDS = frozenset(n for n, k in KIND_NAMES.items() if k.stage is CATALOG)
CHECK_KINDS = frozenset(KIND_NAMES)
REPAIRED_KINDS = frozenset(n for n, k in KIND_NAMES.items() if issubclass(k, Reference))
"""The kinds whose findings a repair plan changes (references: `refaudit.repair`); what
the others find is for a person to resolve."""

_COMMON = ("kind", "id", "table", "severity", "threshold", "description")


def _keys(model: type[Check]) -> str:
    parts = []
    for name, info in model.model_fields.items():
        if name in _COMMON:
            continue
        key = f"`{info.alias or name}`"
        if info.is_required():
            parts.append(key)
        elif info.default is None or info.default == "" or info.default_factory is not None:
            parts.append(f"{key} (optional)")
        else:
            default = str(info.default).lower() if isinstance(info.default, bool) else info.default
            parts.append(f"{key} (default `{default}`)")
    return ", ".join(parts)


def kind_doc(model: type[Check]) -> str:
    """A kind's documentation: its docstring, one paragraph, and its keys."""
    text = " ".join((model.__doc__ or "").split())
    return f"{text}\n\nKeys: {_keys(model)}." if _keys(model) else text


def suite_reference() -> str:
    """The suite reference of every kind, as Markdown (docs/kinds.md, `refaudit suite kinds`)."""
    common = " ".join((Check.__doc__ or "").split())
    sections = [f"Every check: {common}"]
    for model in KINDS:
        sections.append(f"#### `{kind_name(model)}` ({model.stage})\n\n{kind_doc(model)}")
    return "\n\n".join(sections) + "\n"
