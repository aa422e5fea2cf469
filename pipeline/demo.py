"""`refaudit demo`: an embedded server, a sample database built by the suite's own generator,
and a full audit of it.

The generator belongs to the suite (`demo:` in the suite file names a Python file beside it),
so nothing schema-specific lives in the engine.
"""

from __future__ import annotations

import importlib.util
from types import ModuleType
from typing import Any

import psycopg2

from .errors import SuiteError
from .suite import Suite


def load_generator(suite: Suite) -> ModuleType:
    """Import the suite's demo generator module by path."""
    path = suite.demo_path
    if path is None:
        raise SuiteError(f"suite {suite.suite} names no `demo:` generator; add `demo: demo.py`")
    if not path.is_file():
        raise SuiteError(f"{suite.path}: demo: {path} does not exist")
    spec = importlib.util.spec_from_file_location(f"refaudit_demo_{suite.suite}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def build_sample(
    uri: str, suite: Suite, *, requests: int = 3000, seed: int = 7, truth: bool = False
) -> Any:
    """Build the suite's sample database at `uri`; returns the generator's ground truth."""
    gen = load_generator(suite)
    conn = psycopg2.connect(uri)
    try:
        truth_value = gen.build(conn, requests=requests, seed=seed, truth=truth)
        conn.commit()
    finally:
        conn.close()
    return truth_value
