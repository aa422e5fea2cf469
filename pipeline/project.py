"""The project file: `refaudit.toml`, or `[tool.refaudit]` in a `pyproject.toml`.

It names what a project passes on every command line (the suite, the environment variable
that holds the database URL, the output and history places, `--fail-on`), so that `refaudit
run` in the project's directory, or any directory below it, needs no option. It is found as
git finds its root: in the current directory, else in the nearest parent, stopping at the
user's home or the filesystem root. Paths in it are relative to the file's directory. Options
on the command line win over it.
"""

from __future__ import annotations

import difflib
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError

from .errors import UsageError

PROJECT_FILE = "refaudit.toml"
PYPROJECT = "pyproject.toml"


class ProjectSettings(BaseModel):
    """The keys a project file may hold; every one optional."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    suite: Path | None = None
    """The suite YAML (relative to the project file)."""
    database_env: str | None = None
    """The environment variable holding the database URL, used when --db is absent."""
    out: Path | None = None
    """`refaudit run --out` (relative to the project file)."""
    history: Path | None = None
    """`refaudit run --history` (relative to the project file)."""
    fail_on: Literal["error", "warn"] | None = None
    """`refaudit run --fail-on`."""
    keep: int | None = None
    """`refaudit run --keep`: the newest run directories kept."""


@dataclass(frozen=True)
class Project:
    """A project file found and read: where it is and what it says, paths made absolute."""

    file: Path
    """The file read (a refaudit.toml, or the pyproject.toml holding [tool.refaudit])."""
    settings: ProjectSettings

    @property
    def where(self) -> str:
        """How messages name the file's section."""
        return f"{self.file} [tool.refaudit]" if self.file.name == PYPROJECT else str(self.file)


def find_project(start: Path | None = None, home: Path | None = None) -> Project | None:
    """The project file for a command run in `start` (default: the current directory): the
    first directory from `start` upwards that holds a refaudit.toml, or a pyproject.toml with
    a [tool.refaudit] table; none above `home` (default: the user's home) or the root."""
    try:
        here = (start or Path.cwd()).resolve()
    except OSError:  # the working directory was removed
        return None
    try:
        top = (home or Path.home()).resolve()
    except RuntimeError:  # no home directory can be determined
        top = None
    for directory in (here, *here.parents):
        found = _read(directory)
        if found is not None:
            return found
        if directory == top:
            break
    return None


def _is_file(path: Path) -> bool:
    try:
        return path.is_file()
    except OSError:  # a directory refaudit may not look into holds no project of the user's
        return False


def _read(directory: Path) -> Project | None:
    own = directory / PROJECT_FILE
    if _is_file(own):
        return _project(own, _toml(own), "")
    pyproject = directory / PYPROJECT
    if _is_file(pyproject):
        tool = _toml(pyproject).get("tool")
        section = tool.get("refaudit") if isinstance(tool, dict) else None
        if section is None:
            return None
        if not isinstance(section, dict):
            raise UsageError(f"{pyproject}: [tool.refaudit] is a table of settings")
        return _project(pyproject, section, "[tool.refaudit] ")
    return None


def _toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"{path}: {exc}; fix the TOML syntax there") from None
    except OSError as exc:
        raise UsageError(f"cannot read {path}: {exc.strerror}") from None


def _project(path: Path, data: dict[str, Any], section: str) -> Project:
    known = list(ProjectSettings.model_fields)
    unknown = [k for k in data if k not in known]
    if unknown:
        key = unknown[0]
        close = difflib.get_close_matches(key, known, n=1)
        hint = f" (did you mean {close[0]}?)" if close else ""
        raise UsageError(
            f"{path}: unknown key {section}{key}{hint}; the keys are {', '.join(known)}"
        )
    try:
        settings = ProjectSettings.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(p) for p in first["loc"])
        message = str(first["msg"]).removeprefix("Value error, ")
        raise UsageError(f"{path}: {section}{key}: {message}") from None
    base = path.parent
    absolute = {
        name: base / value
        for name in ("suite", "out", "history")
        if (value := getattr(settings, name)) is not None
    }
    return Project(file=path, settings=settings.model_copy(update=absolute))
