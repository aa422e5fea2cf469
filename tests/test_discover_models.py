"""discover proposes each check as its kind's own model (`refaudit.checks`): a wrong key or
value fails where the check is proposed, not when the suite is rendered, and the suite file
writes each check as the model holds it, in the order a reader expects (`id`, `kind`,
`table`, then the kind's keys)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import yaml
from pydantic import ValidationError
from refaudit.checks import KIND_NAMES, NotNullCheck, ReferenceCheck, UniqueCheck
from refaudit.discover import Discovery, Proposal, discover, render_suite

from bench.realworld import DEFAULT_CORPUS, drop_constraints, load_dump
from tests.conftest import as_url


def assert_written_as_modelled(found: Discovery) -> None:
    assert found.proposals
    for p in found.proposals:
        assert type(p.model) is KIND_NAMES[p.kind], p.check
        check = p.check
        assert list(check)[:3] == ["id", "kind", "table"], check
        # what the file says is the model again: nothing lost, nothing added
        assert KIND_NAMES[p.kind].model_validate(check) == p.model, check
    written = yaml.safe_load(render_suite(found, 0.0))["checks"]
    assert written == [p.check for p in found.proposals]
    assert [list(c) for c in written] == [list(p.check) for p in found.proposals]


def test_every_proposal_on_the_generated_world_is_its_kinds_model(
    dirty_db: tuple[str, Any],
) -> None:
    """The generated database with its seeded defects: conditional references with
    mis-keys (set on the model after it was made), consistencies, row rules, patterns,
    value sets, uniques, declared constraints and indexes."""
    found = discover(as_url(dirty_db[0]))
    kinds = {p.kind for p in found.proposals}
    assert {"reference", "conditional_reference", "constraint", "unique", "not_null"} <= kinds
    mis_keyed = [p for p in found.proposals if p.kind == "conditional_reference"]
    assert any(p.model.mis_key is not None for p in mis_keyed)  # type: ignore[attr-defined]
    assert_written_as_modelled(found)


@pytest.mark.skipif(not DEFAULT_CORPUS.is_dir(), reason=f"no corpus at {DEFAULT_CORPUS}")
def test_every_proposal_on_pagila_without_keys_is_its_kinds_model(
    new_database: Callable[[str], str],
) -> None:
    """Pagila (real data) with its foreign keys, primary keys and UNIQUEs dropped: keys
    inferred from the rows, inferred references, warnings of rules some rows break; the
    same checks in the same order on a second run."""
    uri = new_database("models_pagila")
    load_dump(DEFAULT_CORPUS / "pagila.sql.gz")(uri)
    drop_constraints(uri, "B")
    found = discover(as_url(uri))
    keys = [p for p in found.proposals if p.kind == "unique" and p.source == "data"]
    assert any("the key the rows hold" in (p.model.description or "") for p in keys)
    warned = [p for p in found.proposals if p.check.get("severity") == "warn"]
    assert warned and all(list(p.check)[-1] == "severity" for p in warned)
    assert_written_as_modelled(found)
    # the same suite on every run, whichever connection inferred which key first
    again = discover(as_url(uri))
    assert [p.check for p in again.proposals] == [p.check for p in found.proposals]


def test_a_kind_proposes_the_form_the_suite_writes() -> None:
    one = ReferenceCheck.propose("r", "orders", ["customer_id"], "customers", ["id"])
    assert one.written() == {
        "id": "r",
        "kind": "reference",
        "table": "orders",
        "column": "customer_id",
        "target": {"table": "customers", "column": "id"},
    }
    two = ReferenceCheck.propose("r2", "lines", ["org_id", "order_no"], "orders", ["org_id", "no"])
    assert two.on_orphan == "report"  # a composite's only choice, left unsaid in the file
    assert two.written() == {
        "id": "r2",
        "kind": "reference",
        "table": "lines",
        "columns": ["org_id", "order_no"],
        "target": {"table": "orders", "columns": ["org_id", "no"]},
    }
    unique = UniqueCheck.propose(
        "u",
        "requests",
        ["tutor_id", "package_id"],
        where={"column": "status", "eq": "pending"},
        nulls_equal=True,
        description="one pending request per tutor and package",
    )
    assert list(unique.written().items()) == [
        ("id", "u"),
        ("kind", "unique"),
        ("table", "requests"),
        ("columns", ["tutor_id", "package_id"]),
        ("where", {"column": "status", "eq": "pending"}),
        ("nulls", "equal"),
        ("description", "one pending request per tutor and package"),
    ]
    assert "nulls" not in UniqueCheck.propose("u", "t", ["a"]).written()
    assert NotNullCheck.propose("n", "t", ["a", "b"]).written() == {
        "id": "n",
        "kind": "not_null",
        "table": "t",
        "columns": ["a", "b"],
    }


def test_a_wrong_check_fails_where_it_is_proposed() -> None:
    with pytest.raises(ValidationError, match="has 1"):  # 2 columns against a 1-column key
        ReferenceCheck.propose("r", "lines", ["org_id", "order_no"], "orders", ["id"])
    with pytest.raises(ValidationError, match="at least 1"):
        NotNullCheck.propose("n", "t", [])
    with pytest.raises(ValidationError, match="columns"):
        UniqueCheck.propose("u", "t", [])
    p = Proposal(UniqueCheck.propose("u", "t", ["a"]), "data", 0.9, violations=3)
    with pytest.raises(ValidationError, match="severity"):
        p.revise(severity="fatal")
    assert p.check == {"id": "u", "kind": "unique", "table": "t", "columns": ["a"]}
    p.revise(severity="warn")
    assert p.check["severity"] == "warn" and p.model.severity == "warn"
