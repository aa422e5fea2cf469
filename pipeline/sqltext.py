"""Writing SQL text that people read and run: quoted identifiers, safe literals, and splitting
a script into statements (for `refaudit apply`)."""

from __future__ import annotations

import hashlib
import re

from sqlalchemy.dialects import postgresql

_preparer = postgresql.dialect().identifier_preparer
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1


def ident(name: str) -> str:
    """A column or unqualified name, quoted when PostgreSQL needs it."""
    return str(_preparer.quote(name))


def table(name: str) -> str:
    """A table name as the suite writes it (`table` or `schema.table`), quoted per part."""
    schema, _, bare = name.rpartition(".")
    return f"{ident(schema)}.{ident(bare)}" if schema else ident(bare)


def literal(value: str | None) -> str:
    """A string literal (or NULL). Scripts set `standard_conforming_strings = on`, so a
    backslash is an ordinary character and doubling quotes is the only escape needed."""
    if value is None:
        return "NULL"
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot hold NUL characters")
    return "'" + value.replace("'", "''") + "'"


def regclass(name: str) -> str:
    """`'table'::regclass` for catalog lookups of a suite table."""
    return f"{literal(table(name))}::regclass"


def comment(text: str) -> str:
    """Text that is safe inside a `--` comment: one line."""
    return " ".join(text.split())


def object_name(*parts: str) -> str:
    """A new object's name from parts, lower-case `[a-z0-9_]`, at most 63 characters (longer
    names are cut and given a short hash so that they stay distinct)."""
    raw = "_".join(parts)
    name = re.sub(r"[^a-z0-9_]+", "_", raw.lower()).strip("_")
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


def split_statements(script: str) -> list[str]:
    """Split a SQL script into statements at top-level semicolons, respecting quotes,
    dollar-quoted bodies and comments. Statements that are only comments are dropped."""
    out: list[str] = []
    start, i, n = 0, 0, len(script)
    while i < n:
        c = script[i]
        if c == "-" and script.startswith("--", i):
            end = script.find("\n", i)
            i = n if end < 0 else end + 1
        elif c == "/" and script.startswith("/*", i):
            end = script.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif c in "'\"":
            i += 1
            while i < n:
                if script[i] == c:
                    if i + 1 < n and script[i + 1] == c:  # doubled quote
                        i += 2
                        continue
                    break
                i += 1
            i += 1
        elif c == "$":
            m = re.match(r"\$([A-Za-z_][A-Za-z_0-9]*)?\$", script[i:])
            if m:
                tag = m.group(0)
                end = script.find(tag, i + len(tag))
                i = n if end < 0 else end + len(tag)
            else:
                i += 1
        elif c == ";":
            out.append(script[start : i + 1])
            start = i = i + 1
        else:
            i += 1
    out.append(script[start:])
    return [s.strip() for s in out if _has_code(s)]


def code_of(statement: str) -> str:
    """A statement without comments and its final semicolon (to recognise BEGIN/COMMIT)."""
    text = re.sub(r"--[^\n]*", "", statement)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    return " ".join(text.split()).rstrip(";").strip()


def _has_code(statement: str) -> bool:
    return bool(code_of(statement))
