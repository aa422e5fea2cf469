"""The declarative suite: YAML in `expectations/`, validated on load.

A suite names the audited tables, the key spaces a mis-keyed value may come from, and the
checks. Every check is the pydantic model of its `kind` (`refaudit.checks`). Each mistake in
the file is one line: the file and line, the check (its `id`), the key path and what to write
instead, with the key or kind meant when one is misspelt.
"""

from __future__ import annotations

import difflib
import importlib.resources
import re
from pathlib import Path
from types import UnionType
from typing import TYPE_CHECKING, Annotated, Any, Union, get_args, get_origin

import yaml
from pydantic import BaseModel, Field, ValidationError, model_validator

from .checks import CATALOG_KINDS, CHECK_KINDS, KIND_NAMES, KINDS, ROW_KINDS, SET_KINDS
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
        problems: list[tuple[Loc, str]] = []
        for i, check in enumerate(self.checks):
            where: Loc = ("checks", i)
            if check.id in seen:
                problems.append(
                    ((*where, "id"), f"`{check.id}` is used twice; check ids are unique")
                )
            seen.add(check.id)
            for table in check.tables():
                if table not in self.tables:
                    problems.append((where, (
                        f"table `{table}` is not declared under `tables:`; "
                        f"add `{table}: {{key: id}}` there"
                    )))  # fmt: skip
            for problem in check.problems(self.tables, self.key_spaces):
                # `path: message`, the path's parts keys or [n] indexes
                path, _, message = problem.partition(": ")
                parts = re.findall(r"[^.\[\]]+|\[\d+\]", path)
                loc = tuple(int(x[1:-1]) if x.startswith("[") else x for x in parts)
                problems.append(((*where, *loc), message))
        if problems:
            raise SuiteProblems(problems)
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


Loc = tuple[str | int, ...]
"""A key path in the suite file: keys and list indexes (`("checks", 3, "target")`)."""


class SuiteProblems(ValueError):
    """What the suite's cross-references get wrong, each as (key path, message): raised by
    `Suite` so that `load_suite` can point each at its check and line."""

    def __init__(self, problems: list[tuple[Loc, str]]) -> None:
        self.problems = problems
        super().__init__("; ".join(f"{_dotted(loc)}: {msg}" for loc, msg in problems))


def _dotted(loc: Loc) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _leaves(annotation: Any) -> list[Any]:
    """The types a value of `annotation` may be: Annotated and unions unwrapped."""
    if get_origin(annotation) is Annotated:
        return _leaves(get_args(annotation)[0])
    if get_origin(annotation) in (Union, UnionType):
        return [t for arg in get_args(annotation) for t in _leaves(arg)]
    return [annotation]


def _inside(types: list[Any], part: str | int) -> tuple[list[Any], bool]:
    """The types at key or index `part` of a value of one of `types`, and whether `part` is
    a discriminated union's tag (pydantic puts a check's `kind` in the path; no key)."""
    if isinstance(part, str) and part in KIND_NAMES and KIND_NAMES[part] in types:
        return [KIND_NAMES[part]], True
    found: list[Any] = []
    for t in types:
        origin, args = get_origin(t), get_args(t)
        if origin in (list, tuple, set, frozenset) and args and isinstance(part, int):
            found += _leaves(args[0])
        elif origin is dict and len(args) == 2:
            found += _leaves(args[1])
        elif isinstance(t, type) and issubclass(t, BaseModel) and isinstance(part, str):
            for name, f in t.model_fields.items():
                if part in (name, f.alias):
                    found += _leaves(f.annotation)
    return found, False


def _keys(types: list[Any]) -> list[str]:
    """The keys a mapping of one of `types` (models) accepts."""
    keys = {
        f.alias or name
        for t in types
        if isinstance(t, type) and issubclass(t, BaseModel)
        for name, f in t.model_fields.items()
        if not f.exclude
    }
    return sorted(keys)


def _read_loc(loc: Loc) -> tuple[Loc, list[str]]:
    """A pydantic error's location as the user reads it (a check's kind, which pydantic puts
    in the path, dropped), and the keys accepted in the mapping that holds its last part."""
    types: list[Any] = [Suite]
    path: Loc = ()
    keys: list[str] = []
    for part in loc:
        keys = _keys(types)
        types, tag = _inside(types, part)
        if not tag:
            path += (part,)
    return path, keys


def _line(root: yaml.Node | None, path: Loc) -> int | None:
    """The 1-based line of the deepest node of `path` in the YAML (a mapping's key for the
    last part, where the key is written), or None without a document."""
    node = root
    if node is None:
        return None
    line = node.start_mark.line
    for part in path:
        if isinstance(node, yaml.MappingNode) and isinstance(part, str):
            match = [(k, v) for k, v in node.value if getattr(k, "value", None) == part]
            if not match:
                break
            key, node = match[-1]
            line = key.start_mark.line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            if part >= len(node.value):
                break
            node = node.value[part]
            line = node.start_mark.line
        else:
            break
    return line + 1


def _check_name(data: Any, index: int) -> str:
    """A check as an error names it: its `id`, else its position, kind and column."""
    check = data.get("checks")[index] if isinstance(data.get("checks"), list) else None
    if isinstance(check, dict) and isinstance(check.get("id"), str) and check["id"]:
        return f"check {check['id']}"
    if not isinstance(check, dict):
        return f"check #{index + 1}"
    column = check.get("column") or check.get("columns")
    on = ".".join(str(p) for p in (check.get("table"), column) if p)
    what = " ".join(str(p) for p in (check.get("kind"), f"on {on}" if on else "") if p)
    return f"check #{index + 1}" + (f" ({what})" if what else "")


def _suggest(word: Any, choices: list[str] | frozenset[str]) -> str:
    close = difflib.get_close_matches(str(word), sorted(choices), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _problem(err: dict[str, Any], path: Loc, keys: list[str]) -> tuple[Loc, str, Loc]:
    """One pydantic error as (the key path the message is about, the message, the key path
    whose line it is on)."""
    kind = err["type"]
    if kind == "missing":  # on the line of the mapping that lacks it
        return path[:-1], f"key {path[-1]!r} is required but missing", path[:-1]
    if kind == "extra_forbidden":  # on the line of the unknown key
        hint = _suggest(path[-1], keys) or (f" (the keys here: {', '.join(keys)})" if keys else "")
        return path[:-1], f"unknown key {path[-1]!r}{hint}", path
    if kind == "union_tag_invalid":
        tag = err.get("ctx", {}).get("tag")
        hint = _suggest(tag, CHECK_KINDS) or "; use one of: " + ", ".join(sorted(CHECK_KINDS))
        return path, f"unknown kind {tag!r}{hint}", (*path, "kind")
    if kind == "union_tag_not_found":
        return path, "needs `kind:` (reference, conditional_reference, consistency, ...)", path
    msg = str(err["msg"]).removeprefix("Value error, ")
    if kind.endswith("_type") or kind in ("literal_error", "enum"):
        msg += f" (got {_shown(err.get('input'))})"
    return path, msg, path


def _told(p: Path, data: Any, line: int | None, loc: Loc, message: str) -> str:
    """One error line: `file:line: check ID: key.path: message`."""
    where = f"{p}:{line}" if line is not None else str(p)
    if len(loc) >= 2 and loc[0] == "checks" and isinstance(loc[1], int):
        rest = _dotted(loc[2:])
        name = _check_name(data, loc[1])
        message = message.removeprefix(f"{name}: ")  # a kind's own message may name it too
        return f"{where}: {name}: " + (f"{rest}: " if rest else "") + message
    return f"{where}: " + (f"{_dotted(loc)}: " if loc else "") + message


def _errors(p: Path, text: str, data: Any, exc: ValidationError) -> list[str]:
    """Every mistake of a suite that failed validation, one line each."""
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:  # it loaded, so it composes; no line rather than no message
        root = None
    found: list[tuple[Loc, str, Loc]] = []
    read: list[tuple[dict[str, Any], Loc, list[str]]] = []
    for e in exc.errors():
        error: dict[str, Any] = dict(e)
        cause = error.get("ctx", {}).get("error")
        if isinstance(cause, SuiteProblems):
            found += [(loc, msg, loc) for loc, msg in cause.problems]
        else:
            read.append((error, *_read_loc(tuple(error["loc"]))))
    meant = {  # the keys an unknown key is a misspelling of
        (*path[:-1], close)
        for error, path, keys in read
        if error["type"] == "extra_forbidden"
        for close in difflib.get_close_matches(str(path[-1]), keys, n=1)
    }
    # `tabel:` for `table:`: "unknown key 'tabel'; did you mean 'table'?" says it all
    found += [
        _problem(error, path, keys)
        for error, path, keys in read
        if not (error["type"] == "missing" and path in meant)
    ]
    lines = [_told(p, data, _line(root, at), about, msg) for about, msg, at in found]
    return list(dict.fromkeys(lines))


_FAST_LOADER = getattr(yaml, "CSafeLoader", None)
"""PyYAML's safe loader on libyaml's parser (when PyYAML was built with it): the same
documents, 5-10x faster than the pure-Python parser (30 ms for the sample suite)."""


_SLOW_ONLY = frozenset("\t?\ufeff")
"""Where libyaml's parser and the pure-Python one disagree: libyaml takes `key:<tab>value`
and a `?` inside a plain scalar in a flow collection (`[a?b]`), which the pure-Python parser
refuses, and reads a byte-order mark inside the text otherwise."""


def _load_yaml(text: str) -> Any:
    """`yaml.safe_load(text)`, with libyaml's parser where it parses the same: a text that
    holds a character of `_SLOW_ONLY`, or that libyaml does not parse, is parsed by the
    pure-Python parser (whose error, message and position, is the one reported)."""
    if _FAST_LOADER is not None and _SLOW_ONLY.isdisjoint(text):
        try:
            return yaml.load(text, Loader=_FAST_LOADER)
        except yaml.YAMLError:
            pass
    return yaml.safe_load(text)


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
        data = _load_yaml(text)
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
        # every mistake at once, one line each (`file:line: ...`), so one edit fixes them all
        raise SuiteError("\n".join(_errors(p, text, data, exc))) from None
    return suite.model_copy(update={"path": p.resolve()})
