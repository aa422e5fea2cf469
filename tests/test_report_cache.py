"""The report template's compiled code is kept between runs (jinja2's bytecode cache, private
to the user); a cache that is damaged, or a directory that cannot be had, is a template
compiled again, never a failed or different report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from jinja2 import BytecodeCache, Environment
from jinja2.bccache import bc_magic
from refaudit import outputs


def fresh_env(cache: BytecodeCache) -> Environment:
    """The report's environment, loading each template anew (no in-memory cache)."""
    return outputs._env.overlay(cache_size=0, bytecode_cache=cache)


@pytest.fixture
def tmp_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr("tempfile.gettempdir", lambda: str(tmp_path))
    return tmp_path / f"_jinja2-cache-{os.getuid()}"


def test_the_compiled_template_is_kept_and_used(tmp_cache: Path) -> None:
    cache = outputs._bytecode_cache()
    assert cache is not None
    first = fresh_env(cache).get_template("report.html.j2")
    files = list(tmp_cache.glob("refaudit-*-jinja2-*.cache"))
    assert len(files) == 1 and files[0].stat().st_size > 1000
    assert oct(tmp_cache.stat().st_mode & 0o777) == "0o700"
    again = fresh_env(cache).get_template("report.html.j2")
    assert again is not first
    # loaded from the cache: no source compiled (jinja2's compile is not called)
    env = fresh_env(cache)
    env.compile = None  # type: ignore[assignment,method-assign]
    env.get_template("report.html.j2")


@pytest.mark.parametrize(
    "damage", [b"", b"j2", b"garbage" * 50, bc_magic + b"\x80\x02", bc_magic + b"\x80\x02X\x01"]
)
def test_a_damaged_cache_is_compiled_again(tmp_cache: Path, damage: bytes) -> None:
    cache = outputs._bytecode_cache()
    assert cache is not None
    fresh_env(cache).get_template("report.html.j2")
    [file] = tmp_cache.glob("refaudit-*.cache")
    file.write_bytes(damage)
    env = fresh_env(cache)
    env.get_template("report.html.j2")
    assert file.stat().st_size > 1000  # compiled and written again


def test_no_private_directory_means_no_cache(tmp_cache: Path) -> None:
    tmp_cache.write_text("not a directory")  # another user's file, say
    assert outputs._bytecode_cache() is None


def test_a_cache_that_cannot_be_written_is_skipped(tmp_cache: Path) -> None:
    cache = outputs._bytecode_cache()
    assert cache is not None
    tmp_cache.rmdir()  # removed under the run (a temporary directory cleaned)
    assert fresh_env(cache).get_template("report.html.j2") is not None
    assert not tmp_cache.exists()
