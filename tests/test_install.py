"""What a wheel ships: the shipped suite and its generator are package data, found through
importlib.resources (`.ci/run` installs the wheel in a fresh venv and runs the demo from
outside the checkout)."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import zipfile
from pathlib import Path

from refaudit.suite import DEFAULT_SUITE, load_suite

ROOT = Path(__file__).resolve().parent.parent


def test_default_suite_is_package_data() -> None:
    shipped = importlib.resources.files("refaudit.expectations") / "astegni"
    assert Path(str(shipped / "suite.yml")) == DEFAULT_SUITE
    suite = load_suite()
    assert suite.demo_path is not None and suite.demo_path.is_file()
    assert suite.demo_path.parent == DEFAULT_SUITE.parent


def test_wheel_holds_the_suite_and_its_generator(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--wheel-dir", str(tmp_path),
         str(ROOT)],
        check=True, capture_output=True, timeout=300,
    )
    (wheel,) = tmp_path.glob("refaudit-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in ("expectations/astegni/suite.yml", "expectations/astegni/demo.py",
                    "expectations/astegni/demo-3000-7.jsonl.gz",
                    "expectations/shop/suite.yml", "expectations/django/suite.yml",
                    "templates/report.html.j2", "templates/sql/repair.sql.j2", "cli.py",
                    "checks/reference.py", "discover/run.py", "repair/__init__.py"):
        assert f"refaudit/{shipped}" in names
    # one top-level package: a user's own `pipeline` or `expectations` is never shadowed
    tops = {n.split("/")[0] for n in names}
    assert {t for t in tops if not t.endswith(".dist-info")} == {"refaudit"}


def test_every_package_directory_is_mapped() -> None:
    """pyproject.toml lists the packages by hand (pipeline/ is installed as `refaudit`): a new
    subpackage that is not listed would be missing from the wheel."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(config["packages"])
    found = set()
    for source, name in (("pipeline", "refaudit"), ("expectations", "refaudit.expectations")):
        for init in (ROOT / source).rglob("__init__.py"):
            rel = init.parent.relative_to(ROOT / source).parts
            found.add(".".join((name, *rel)))
    assert listed == found


def test_the_base_install_has_no_numpy_pandas_or_pyarrow() -> None:
    """They are extras (`.ci/run` measures the fresh venv of the wheel: at most 200 MB)."""
    import re
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]

    def names(requirements: list[str]) -> set[str]:
        return {re.split(r"[<>=!~\[; ]", r, maxsplit=1)[0].lower() for r in requirements}

    assert not names(project["dependencies"]) & {"numpy", "pandas", "pyarrow"}
    extras = project["optional-dependencies"]
    assert names(extras["snapshot"]) == {"pyarrow"}
    assert names(extras["dataframes"]) == {"pandas"}
    assert "refaudit[all]" in extras["dev"]
    assert set(extras) - {"all", "dev"} <= {
        e for r in extras["all"] for e in re.findall(r"\[(.*)\]", r)[0].split(",")
    }
