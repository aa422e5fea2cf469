"""docs/ keeps up with the code: the kinds reference is the kinds' own docstrings, every check
kind, command and option is documented, every command line README and docs/ show is one the
CLI takes, and every link between them leads somewhere. A failure says what is missing where."""

from __future__ import annotations

import itertools
import re
import shlex
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import typer.main
from refaudit.checks import KINDS, kind_name
from refaudit.cli import app
from refaudit.docs import kinds_page

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"


def test_kinds_page_is_generated_from_the_docstrings() -> None:
    committed = (DOCS / "kinds.md").read_text(encoding="utf-8")
    assert committed == kinds_page(), (
        "docs/kinds.md differs from the kinds' docstrings: run `python -m refaudit.docs`"
    )


def test_the_generator_writes_the_page(tmp_path: Path) -> None:
    from refaudit.docs import main

    assert main([str(tmp_path / "kinds.md")]) == 0
    assert (tmp_path / "kinds.md").read_text(encoding="utf-8") == kinds_page()


@pytest.mark.parametrize("kind", [kind_name(k) for k in KINDS])
def test_every_kind_has_its_section(kind: str) -> None:
    text = (DOCS / "kinds.md").read_text(encoding="utf-8")
    assert f"## `{kind}` (" in text, f"docs/kinds.md has no section for the kind {kind}"


def commands(command: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    """Every command of the CLI with its full name (`suite check`), the top level (``) too;
    a group's subcommands through it."""
    if getattr(command, "hidden", False):
        return
    subcommands = getattr(command, "commands", None)
    if subcommands is None or [p for p in command.params if p.name != "help"]:
        yield " ".join(path), command
    for name, sub in (subcommands or {}).items():
        yield from commands(sub, (*path, name))


CLI = list(commands(typer.main.get_command(app)))


def cli_section(name: str) -> str:
    """The text of docs/cli.md under `### \\`refaudit NAME\\`` up to the next heading."""
    heading = f"### `{' '.join(['refaudit', name]).strip()}`"
    lines = (DOCS / "cli.md").read_text(encoding="utf-8").splitlines()
    assert heading in lines, f"docs/cli.md has no section {heading} for that command"
    section: list[str] = []
    fenced = False
    for line in lines[lines.index(heading) + 1 :]:
        fenced ^= line.startswith("```")
        if not fenced and re.match(r"#{1,3} ", line):
            break
        section.append(line)
    return "\n".join(section)


def test_the_command_list_is_the_cli() -> None:
    names = {name for name, _ in CLI}
    assert {"", "run", "apply", "discover", "suite check", "suite kinds"} <= names


@pytest.mark.parametrize(("name", "command"), CLI, ids=[n or "refaudit" for n, _ in CLI])
def test_every_command_and_option_is_in_cli_md(name: str, command: Any) -> None:
    section = cli_section(name)
    missing = []
    for param in command.params:
        if getattr(param, "hidden", False):
            continue
        if param.param_type_name == "argument":
            spellings = [param.name.upper()]
        else:
            spellings = [*param.opts, *param.secondary_opts]
        for spelling in spellings:
            if not re.search(rf"(?<![\w-]){re.escape(spelling)}(?![\w-])", section):
                missing.append(spelling)
    assert not missing, (
        f"docs/cli.md, section `refaudit {name}`: no {', '.join(missing)}; add "
        f"{'it' if len(missing) == 1 else 'them'} to the command's table"
    )


def slug(heading: str) -> str:
    """GitHub's anchor of a heading."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def prose(path: Path) -> str:
    """A page without its fenced code blocks."""
    return re.sub(r"^```.*?^```", "", path.read_text(encoding="utf-8"), flags=re.S | re.M)


def anchors(path: Path) -> set[str]:
    text = prose(path)
    found = {slug(h) for h in re.findall(r"^#{1,6} (.+)$", text, flags=re.MULTILINE)}
    return found | set(re.findall(r'<a id="([^"]+)"></a>', text))


PAGES = [ROOT / "README.md", *sorted(DOCS.glob("*.md"))]


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_links_lead_somewhere(page: Path) -> None:
    text = prose(page)
    broken = []
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"[a-z]+:", target):
            continue
        file, _, anchor = target.partition("#")
        linked = (page.parent / file).resolve() if file else page
        if not linked.exists():
            broken.append(f"{target} (no file {file})")
        elif anchor and linked.suffix == ".md" and anchor not in anchors(linked):
            broken.append(f"{target} (no heading #{anchor} in {linked.name})")
    assert not broken, f"{page.relative_to(ROOT)}: broken links: {'; '.join(broken)}"


def test_readme_lists_every_page_of_docs() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    unlisted = [p.name for p in DOCS.glob("*.md") if f"(docs/{p.name})" not in readme]
    assert not unlisted, f"README.md's contents do not list docs/{', docs/'.join(unlisted)}"


def command_lines(page: Path) -> Iterator[tuple[str, list[str]]]:
    """Every `refaudit ...` (or `python -m refaudit ...`) in the code blocks of a page: the
    line, and the arguments after the program."""
    text = page.read_text(encoding="utf-8")
    for block in re.findall(r"^ *```[\w-]*\n(.*?)^ *```", text, flags=re.S | re.M):
        for line in block.splitlines():
            for segment in re.split(r"&&|\|\||;|\|", line):
                try:
                    tokens = shlex.split(segment, comments=True)
                except ValueError:
                    continue
                while tokens and (re.match(r"\w+=", tokens[0]) or tokens[0] == "-"
                                  or tokens[0].endswith(":")):
                    tokens = tokens[1:]
                if tokens and Path(tokens[0]).name == "refaudit":
                    args = tokens[1:]
                elif tokens[1:3] == ["-m", "refaudit"] and "python" in tokens[0]:
                    args = tokens[3:]
                else:
                    continue
                args = list(itertools.takewhile(lambda t: not re.match(r"\d?[<>]", t), args))
                if args and "..." not in args:
                    yield line.strip(), args


@pytest.mark.parametrize("page", PAGES, ids=[p.name for p in PAGES])
def test_command_lines_in_the_docs_parse(page: Path) -> None:
    """A command a page shows uses commands and options the CLI has, with values it takes
    (a required option left to the project file is no error)."""
    root = typer.main.get_command(app)
    wrong = []
    for line, args in command_lines(page):
        command, rest = root, list(args)
        while getattr(command, "commands", None) and rest and rest[0] in command.commands:
            command, rest = command.commands[rest[0]], rest[1:]
        if {"--version", "--install-completion", "-h", "--help"} & set(rest):
            continue
        try:
            command.make_context("refaudit", rest)
        except Exception as e:  # click's usage errors, from the click typer bundles
            if type(e).__name__ == "MissingParameter":
                continue
            if not hasattr(e, "format_message"):
                raise
            wrong.append(f"{line}: {e.format_message()}")
    assert not wrong, f"{page.relative_to(ROOT)} shows commands refaudit refuses:\n" + "\n".join(
        wrong
    )
