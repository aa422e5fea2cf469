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
            "checks[0].target: is required but missing",
        ),
        ("  - {id: x, kind: refrence, table: a, column: c}", "unknown kind; use one of:"),
        (
            "  - {id: x, kind: reference, table: zz, column: c, target: {table: b}}",
            "table `zz` is not declared under `tables:`",
        ),
        (
            "  - {id: x, kind: in_set, table: a, column: c, values: [1], colour: red}",
            "checks[0].colour: is not a known key",
        ),
        (
            "  - {id: x, kind: in_set, table: a, column: c, values: [1]}\n"
            "  - {id: x, kind: in_set, table: a, column: d, values: [1]}",
            "`x` is used twice",
        ),
        (
            "  - {id: x, kind: row_rule, table: a, require: {column: c, gt: 1, lt: 3}}",
            "exactly one of eq, ne",
        ),
        (
            "  - {id: x, kind: in_set, table: a, column: c, values: [1], severity: fatal}",
            "checks[0].severity",
        ),
        (
            "  - {id: x, kind: reference, table: a, column: c, target: {table: b},\n"
            "     mis_key: {key_space: people}}",
            "`people` is not declared under `key_spaces:`",
        ),
    ],
)
def test_mistakes_name_file_key_and_fix(tmp_path: Path, body: str, message: str) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(BASE + body + "\n")
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    text = str(err.value)
    assert str(path) in text
    assert message in text
    assert "\n" not in text
    assert err.value.exit_code == ExitCode.USAGE


def test_every_mistake_is_listed(tmp_path: Path) -> None:
    path = tmp_path / "bad.yml"
    path.write_text(
        BASE
        + "  - {id: x, kind: reference, table: a, target: {table: b}}\n"
        + "  - {id: y, kind: not_null, table: a, columns: [c], severity: fatal}\n"
        + "  - {id: z, kind: reference, table: a, column: c, target: {table: b}, colour: red}\n"
    )
    with pytest.raises(SuiteError) as err:
        load_suite(path)
    text = str(err.value)
    assert text.startswith(f"{path}: 3 mistakes: ") and "more)" not in text, text
    assert "checks[0]: a reference names `column:` or (a composite key) `columns:`" in text
    assert "checks[1].severity" in text
    assert "checks[2].colour: is not a known key" in text
    assert "\n" not in text


def test_yaml_syntax_error_has_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "broken.yml"
    path.write_text("suite: t\ntables: {a: {key: id}\nchecks: []\n")
    with pytest.raises(SuiteError, match=r"broken.yml:\d+:\d+"):
        load_suite(path)


def test_missing_file() -> None:
    with pytest.raises(SuiteError, match="does not exist; pass --suite"):
        load_suite("/nonexistent/suite.yml")
