"""Suite loading: the shipped suite is valid, and mistakes point at file, key and fix."""

from __future__ import annotations

from pathlib import Path

import pytest
from refaudit.errors import ExitCode, SuiteError
from refaudit.suite import CHECK_KINDS, DEFAULT_SUITE, load_suite

BASE = """
suite: t
tables: {a: {key: id}, b: {key: id}}
checks:
"""


def test_shipped_suite_loads_and_every_kind_has_cases() -> None:
    import yaml

    suite = load_suite()
    assert suite.path == DEFAULT_SUITE.resolve()
    assert {c.family for c in suite.checks} <= CHECK_KINDS
    in_cases = {
        check["kind"]
        for path in (Path(__file__).parent / "cases").glob("*.yml")
        for check in yaml.safe_load(path.read_text())["checks"]
    }
    assert CHECK_KINDS - in_cases == set(), "every kind brings its cases in tests/cases/"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            "  - {id: x, kind: reference, table: a, column: c}",
            ":5: check x: key 'target' is required but missing",
        ),
        (
            "  - {id: x, kind: refrence, table: a, column: c}",
            ":5: check x: unknown kind 'refrence'; did you mean 'reference'?",
        ),
        (
            "  - {id: x, kind: uniq, table: a, column: c}",
            ":5: check x: unknown kind 'uniq'; did you mean 'unique'?",
        ),
        (
            "  - {id: x, kind: foo, table: a, column: c}",
            ":5: check x: unknown kind 'foo'; use one of: at_least_one, cardinality_equality, "
            "conditional_reference,",
        ),
        (
            "  - {id: x, kind: reference, table: zz, column: c, target: {table: b}}",
            ":5: check x: table `zz` is not declared under `tables:`",
        ),
        (
            "  - {id: x, kind: in_set, table: a, column: c, values: [1], flavour: red}",
            ":5: check x: unknown key 'flavour' (the keys here: column, description, id, kind,",
        ),
        (
            "  - {id: x, kind: in_set, table: a, column: c, values: [1]}\n"
            "  - {id: x, kind: in_set, table: a, column: d, values: [1]}",
            ":6: check x: id: `x` is used twice",
        ),
        (
            "  - {id: x, kind: row_rule, table: a, require: {column: c, gt: 1, lt: 3}}",
            ":5: check x: require: a column test takes exactly one of eq, ne,",
        ),
        (
            "  - {id: x, kind: in_set, table: a, column: c, values: [1], severity: fatal}",
            ":5: check x: severity: Input should be 'error' or 'warn' (got 'fatal')",
        ),
        (  # a kind's message that names the check itself names it once
            "  - {id: x, kind: unique, table: a, expressions: ['(SELECT max(c) FROM a)']}",
            ":5: check x: expressions[0] `(SELECT max(c) FROM a)` holds a subquery",
        ),
        (
            "  - {id: x, kind: reference, table: a, column: c, target: {table: b},\n"
            "     mis_key: {key_space: people}}",
            ":6: check x: mis_key.key_space: `people` is not declared under `key_spaces:`",
        ),
    ],
)
def test_mistakes_name_file_line_check_key_and_fix(
    tmp_path: Path, body: str, message: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BASE + body + "\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    text = str(err.value)
    assert text.startswith(f"{path}{message}"), text
    assert "\n" not in text
    assert err.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("check", "line", "message"),
    [
        (  # an unknown key: on its own line, with the key it is a misspelling of
            """
  - id: tutor.reference
    kind: reference
    table: a
    column: c
    taget: {table: b}""",
            "    taget: {table: b}",
            "check tutor.reference: unknown key 'taget'; did you mean 'target'?",
        ),
        (  # nested, in a check without an id: named by kind, table and column
            """
  - kind: reference
    id: 7
    table: a
    column: c
    target:
      table: b
      colum: id""",
            "      colum: id",
            "check #2 (reference on a.c): target: unknown key 'colum'; did you mean 'column'?",
        ),
        (  # a value of the wrong type
            """
  - id: statuses
    kind: in_set
    table: a
    column: c
    values: pending""",
            "    values: pending",
            "check statuses: values: Input should be a valid list (got 'pending')",
        ),
        (  # a wrong kind: on the line of `kind:`
            """
  - id: shape
    table: a
    column: c
    kind: patern
    regex: '^x$'""",
            "    kind: patern",
            "check shape: unknown kind 'patern'; did you mean 'pattern'?",
        ),
        (  # a wrong type deeper down
            """
  - id: nn
    kind: not_null
    table: a
    columns: [c]
    threshold:
      max_count: lots""",
            "      max_count: lots",
            "check nn: threshold.max_count: Input should be a valid integer",
        ),
        (  # a missing key: on the line of the mapping that lacks it
            """
  - id: ref
    kind: reference
    table: a
    column: c
    target:
      where: {column: kind, eq: x}""",
            "    target:",
            "check ref: target: key 'table' is required but missing",
        ),
    ],
)
def test_block_style_mistakes_are_on_their_line(
    tmp_path: Path, check: str, line: str, message: str
) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BASE + "  - {id: first, kind: not_null, table: a, columns: [c]}" + check + "\n")
    number = path.read_text().splitlines().index(line) + 1
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    lines = str(err.value).splitlines()
    assert any(ln.startswith(f"{path}:{number}: {message}") for ln in lines), lines


def test_every_mistake_is_listed_one_per_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        BASE
        + "  - {id: x, kind: reference, table: a, target: {table: b}}\n"
        + "  - {id: y, kind: not_null, table: a, columns: [c], severity: fatal}\n"
        + "  - {id: z, kind: reference, table: a, column: c, target: {table: b}, colour: red}\n"
    )
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    lines = str(err.value).splitlines()
    assert lines == [
        f"{path}:5: check x: a reference names `column:` or (a composite key) `columns:`",
        f"{path}:6: check y: severity: Input should be 'error' or 'warn' (got 'fatal')",
        f"{path}:7: check z: unknown key 'colour'; did you mean 'column'?",
    ]


def test_a_misspelt_key_is_not_also_missing(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    check = "  - {id: x, kind: reference, table: a, column: c, target: {tabel: b}}"
    path.write_text(BASE + check + "\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    assert str(err.value) == (
        f"{path}:5: check x: target: unknown key 'tabel'; did you mean 'table'?"
    )


def test_top_level_mistakes_have_their_line(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text("suite: t\ntables:\n  a: {key: id}\nchekcs:\n  - {id: x}\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    # and not also "checks is required": the misspelling says it
    assert str(err.value) == f"{path}:4: unknown key 'chekcs'; did you mean 'checks'?"


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("suite: t\ntables: {a: {key: id}\nchecks: []\n")
    with pytest.raises(SuiteError, match=r"broken.yml:\d+:\d+"):
        load_suite(path)


def test_missing_file() -> None:
    with pytest.raises(SuiteError, match="does not exist; pass --suite"):
        load_suite("/nonexistent/suite.yml")
