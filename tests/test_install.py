"""What a wheel ships: the shipped suite and its generator are package data, found through
importlib.resources (`.ci/run` installs the wheel in a fresh venv and runs the demo from
outside the checkout)."""

from __future__ import annotations

import importlib.resources
import subprocess
import sys
import zipfile
from pathlib import Path

from pipeline.suite import DEFAULT_SUITE, load_suite

ROOT = Path(__file__).resolve().parent.parent


def test_default_suite_is_package_data() -> None:
    shipped = importlib.resources.files("expectations") / "astegni"
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
                    "expectations/shop/suite.yml", "expectations/django/suite.yml",
                    "pipeline/templates/report.html.j2", "pipeline/cli.py"):
        assert shipped in names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
