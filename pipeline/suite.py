"""The declarative suite: YAML in `expectations/`, validated on load.

A suite names the audited tables, the key spaces a mis-keyed value may come from, and the
checks. Every check is the pydantic model of its `kind` (`refaudit.checks`). A mistake in
the file is reported with the file, the key path and what to write instead.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Union

import yaml
from pydantic import Field, ValidationError, model_validator

from .checks import CATALOG_KINDS, CHECK_KINDS, KINDS, ROW_KINDS, SET_KINDS
from .checks.base import Key
from .checks.catalog import ConstraintCheck, ConstraintRefSpec, IndexCheck, TriggerCheck
from .checks.consistency import ConsistencyCheck
from .checks.in_set import InSetCheck
from .checks.model import (
    AttributeEvidence,
    ColumnRef,
    Comparand,
    Condition,
    Evidence,
    KeySpace,
    MatchPair,
    MisKey,
    Model,
    OnOrphan,
    Operand,
    Severity,
    TableSpec,
    Threshold,
    ViaEvidence,
)
from .checks.model import Check as BaseCheck
from .checks.not_null import NotNullCheck
from .checks.pattern import PatternCheck
from .checks.reference import ConditionalReferenceCheck, ReferenceCheck
from .checks.row_rule import RowRuleCheck
from .checks.unique import UniqueCheck
from .errors import SuiteError

__all__ = [
    "CATALOG_KINDS", "CHECK_KINDS", "DEFAULT_SUITE", "ROW_KINDS", "SET_KINDS", "AttributeEvidence",
    "Check", "ColumnRef", "Comparand", "Condition", "ConditionalReferenceCheck",
    "ConsistencyCheck", "ConstraintCheck", "ConstraintRefSpec", "Evidence", "InSetCheck",
    "IndexCheck", "KeySpace", "MatchPair", "MisKey", "NotNullCheck", "OnOrphan", "Operand",
    "PatternCheck", "ReferenceCheck", "RowRuleCheck", "Severity", "Suite", "Threshold",
    "TriggerCheck", "UniqueCheck", "ViaEvidence", "load_suite",
]  # fmt: skip

# The Astegni suite ships as package data of `refaudit.expectations` (expectations/ in the
# checkout, mapped by the build configuration): found through importlib.resources, never
# through a path from __file__.
DEFAULT_SUITE = Path(
    str(importlib.resources.files(f"{__package__}.expectations") / "astegni" / "suite.yml")
)

if TYPE_CHECKING:  # to the type checker, a check is what every kind has
    Check = BaseCheck
else:  # to pydantic, the model of its `kind:`
    Check = Annotated[Union[KINDS], Field(discriminator="kind")]  # noqa: UP007

class Suite(Model):
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
            for table in check.tables():
                if table not in self.tables:
                    raise ValueError(
                        f"{where}: table `{table}` is not declared under `tables:`; "
                        f"add `{table}: {{key: id}}` there"
                    )
            for problem in check.problems(self.tables, self.key_spaces):
                raise ValueError(f"{where}.{problem}")
        return self

    def check(self, check_id: str) -> Check:
        for c in self.checks:
            if c.id == check_id:
                return c
        raise KeyError(check_id)

    def key_of(self, table: str) -> Key:
        """The table's key: a column name, or a tuple of them for a composite key."""
        columns = self.tables[table].key_columns()
        return columns[0] if len(columns) == 1 else tuple(columns)

    def key_columns(self, table: str) -> list[str]:
        return self.tables[table].key_columns()

    @property
    def demo_path(self) -> Path | None:
        if self.demo is None or self.path is None:
            return None
        return self.path.parent / self.demo


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
