"""Check families and their registry: `kind` in the suite -> how its rules compile."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pipeline.checks.base import RowRule, TableScan
from pipeline.checks.consistency import consistency_rules
from pipeline.checks.domain import in_set_rules, not_null_rules, pattern_rules, row_rule_rules
from pipeline.checks.reference import conditional_reference_rules, reference_rules

ROW_FAMILIES: dict[str, Callable[[Any, TableScan], list[RowRule]]] = {
    "reference": reference_rules,
    "conditional_reference": conditional_reference_rules,
    "consistency": consistency_rules,
    "not_null": not_null_rules,
    "in_set": in_set_rules,
    "pattern": pattern_rules,
    "row_rule": row_rule_rules,
}
