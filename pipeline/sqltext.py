"""Writing SQL text that people read and run: quoted identifiers, safe literals, comments
and dollar-quoted bodies that no value can break out of, and reading a script back into
statements with PostgreSQL's own parser (for `refaudit apply` and the tests).

Whatever a name or value holds, the text these helpers write keeps it inside its quotes
and keeps every line of the script one line: control characters, line and paragraph
separators and format characters are written as escapes (`E'\\n'`, `U&"\\000a"`), so
neither PostgreSQL nor psql (whose backslash commands are read line by line) nor a reader
can see the value as anything but a value.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass

from sqlalchemy.dialects.postgresql.base import RESERVED_WORDS

_PLAIN = re.compile(r"^[a-z_][a-z0-9_]*$")
MAX_IDENTIFIER = 63  # PostgreSQL's NAMEDATALEN - 1
_UNSAFE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"})


def unsafe(ch: str) -> bool:
    """A character that must not appear raw in a script: control and format characters,
    line and paragraph separators, surrogates, private-use and unassigned code points."""
    return unicodedata.category(ch) in _UNSAFE_CATEGORIES


def _check_text(value: str) -> None:
    if "\x00" in value:
        raise ValueError("PostgreSQL text cannot hold NUL characters")


def ident(name: str) -> str:
    """A column or unqualified name, quoted when PostgreSQL needs it; a name holding
    characters that must not appear raw is written as a Unicode-escaped identifier."""
    _check_text(name)
    if _PLAIN.match(name) and name not in RESERVED_WORDS:
        return name
    if not any(unsafe(ch) for ch in name):
        return '"' + name.replace('"', '""') + '"'
    body = "".join(_unicode_escape(ch) if unsafe(ch) or ch == "\\" else ch for ch in name)
    return 'U&"' + body.replace('"', '""') + '"'


def _unicode_escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    code = ord(ch)
    return f"\\{code:04x}" if code <= 0xFFFF else f"\\+{code:06x}"


def split_name(name: str) -> tuple[str, str]:
    """(schema or "", table) of a table name as the suite writes it: `table`,
    `schema.table`, and with double quotes around a part that holds a dot or a quote
    (`legacy."audit.log"`, `"a""b"`), as in SQL but case kept. Unquoted, the last dot splits."""
    parts: list[str] = []
    i, current, quoted = 0, "", False
    while i < len(name):
        ch = name[i]
        if ch == '"' and current == "" and not quoted:
            end = i + 1
            text = ""
            while end < len(name):
                if name[end] == '"' and name[end + 1 : end + 2] == '"':
                    text, end = text + '"', end + 2
                elif name[end] == '"':
                    break
                else:
                    text, end = text + name[end], end + 1
            if end >= len(name) or name[end + 1 : end + 2] not in ("", "."):
                return _unquoted(name)  # not a quoted part after all: the name as written
            parts.append(text)
            quoted, i = True, end + 1
            if i < len(name):
                i += 1  # the dot
                quoted = False
            continue
        if ch == ".":
            parts.append(current)
            current = ""
        else:
            current += ch
        i += 1
    if not quoted and (current or not parts):
        parts.append(current)
    if len(parts) == 1:
        return "", parts[0]
    return ".".join(parts[:-1]), parts[-1]


def _unquoted(name: str) -> tuple[str, str]:
    schema, _, bare = name.rpartition(".")
    return schema, bare


def join_name(schema: str | None, name: str) -> str:
    """The suite's spelling of a table: `schema.table`, a part that holds a dot or starts
    with a double quote in double quotes (the inverse of `split_name`)."""

    def part(p: str) -> str:
        return '"' + p.replace('"', '""') + '"' if ("." in p or p.startswith('"')) else p

    return f"{part(schema)}.{part(name)}" if schema else part(name)


def table(name: str) -> str:
    """A table name as the suite writes it (see `split_name`), quoted per part."""
    schema, bare = split_name(name)
    return qualified(schema, bare) if schema else ident(bare)


def qualified(schema: str, name: str) -> str:
    """`schema.name`, each part quoted."""
    return f"{ident(schema)}.{ident(name)}"


_E_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\b": "\\b", "\f": "\\f"}


def literal(value: str | None) -> str:
    """A string literal (or NULL). Scripts set `standard_conforming_strings = on`, so a
    backslash is an ordinary character and doubling quotes is the only escape needed; a
    value holding characters that must not appear raw is written as an escape string
    (`E'...'`, whose meaning does not depend on that setting)."""
    if value is None:
        return "NULL"
    _check_text(value)
    if not any(unsafe(ch) for ch in value):
        return "'" + value.replace("'", "''") + "'"
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch == "'":
            out.append("''")
        elif ch in _E_ESCAPES:
            out.append(_E_ESCAPES[ch])
        elif unsafe(ch):
            code = ord(ch)
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    return "E'" + "".join(out) + "'"


def regclass_text(name: str) -> str:
    """A suite table name (`table` or `schema.table`) as `to_regclass` and `::regclass`
    read it: each part double-quoted (their parser knows no `U&"..."` escapes; the text
    travels as a bound parameter or a literal, never raw in a script)."""
    schema, bare = split_name(name)
    parts = [schema, bare] if schema else [bare]
    return ".".join('"' + p.replace('"', '""') + '"' for p in parts)


def regclass(name: str) -> str:
    """`'table'::regclass` for catalog lookups of a suite table."""
    return f"{literal(regclass_text(name))}::pg_catalog.regclass"


def comment(text: str) -> str:
    """Text that is safe inside a `--` comment: one line, whatever it holds. Runs of
    whitespace become one space; characters that must not appear raw are shown as
    `\\uXXXX` escapes (so a reader still sees that they are there)."""
    out = []
    for ch in text:
        if ch in "\n\r\t":
            out.append(" ")
        elif unsafe(ch):
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return re.sub(r" {2,}", " ", "".join(out)).strip()


def dollar_quoted(body: str, tag: str = "refaudit") -> str:
    """`body` between dollar quotes whose tag does not occur in it (a PL/pgSQL body that
    holds names and values)."""
    n = 0
    chosen = tag
    while f"${chosen}$" in body or body.endswith(f"${chosen}"):
        n += 1
        chosen = f"{tag}_{n}"
    return f"${chosen}${body}${chosen}$"


def do_block(body: str) -> str:
    """An anonymous PL/pgSQL block."""
    return f"DO {dollar_quoted(body)};"


def object_name(*parts: str) -> str:
    """A new object's name from parts, lower-case `[a-z0-9_]`, at most 63 characters (longer
    names are cut and given a short hash so that they stay distinct)."""
    raw = "_".join(parts)
    name = re.sub(r"[^a-z0-9_]+", "_", raw.lower()).strip("_")
    if len(name) <= MAX_IDENTIFIER:
        return name
    digest = hashlib.sha1(raw.encode()).hexdigest()[:8]
    return f"{name[: MAX_IDENTIFIER - 9]}_{digest}"


# ---------------------------------------------------------------------- reading scripts
PSQL_ALLOW_OTHER = "refaudit_allow_other_database"
"""The psql variable that lets a plan run on a database other than its own (a rehearsal)."""

_META_LINE = re.compile(r"^\s*\\")


@dataclass(frozen=True)
class Statement:
    """One statement of a script: its text (leading comments dropped) and its kind, the
    name of PostgreSQL's parse node (`TransactionStmt`, `UpdateStmt`, `DoStmt`, ...)."""

    text: str
    kind: str
    transaction: str | None = None  # BEGIN/START/COMMIT/ROLLBACK for a TransactionStmt


class ScriptError(ValueError):
    """A script that is not a plan refaudit can run (a syntax error, an unknown psql
    command)."""


def psql_lines(script: str, *, allow_other_database: bool = False) -> str:
    """The SQL of a plan file as psql would run it: the psql commands refaudit writes are
    interpreted (`\\set ON_ERROR_STOP on`; `\\if :{?refaudit_allow_other_database}` ...
    `\\endif` keeps its lines only with `allow_other_database`), any other psql command is
    refused. Plans keep every literal and identifier on one line, so a line that starts
    with a backslash is a psql command."""
    out: list[str] = []
    skipping: bool | None = None  # inside \if: whether its lines are dropped
    for number, line in enumerate(script.splitlines(), start=1):
        if not _META_LINE.match(line):
            out.append("" if skipping else line)
            continue
        words = line.split()
        if words == ["\\set", "ON_ERROR_STOP", "on"]:
            out.append("")
        elif words == ["\\if", f":{{?{PSQL_ALLOW_OTHER}}}"] and skipping is None:
            skipping = not allow_other_database
            out.append("")
        elif words == ["\\endif"] and skipping is not None:
            skipping = None
            out.append("")
        else:
            raise ScriptError(
                f"line {number} is a psql command refaudit does not run ({words[0]}); "
                "run this file with psql"
            )
    if skipping is not None:
        raise ScriptError("an \\if has no \\endif")
    return "\n".join(out)


def statements(sql: str) -> list[Statement]:
    """The statements of a SQL script, split and classified by PostgreSQL's own parser."""
    import pglast
    from pglast import ast
    from pglast.enums.parsenodes import TransactionStmtKind
    from pglast.parser import ParseError

    try:
        parsed = pglast.parse_sql(sql)
    except ParseError as exc:
        raise ScriptError(f"not valid SQL: {exc}") from None
    out = []
    for stmt in parsed:  # locations are character offsets; a length of 0 means "to the end"
        start = stmt.stmt_location or 0
        end = start + stmt.stmt_len if stmt.stmt_len else len(sql)
        text = _strip_comments(sql[start:end])
        node = stmt.stmt
        transaction = None
        if isinstance(node, ast.TransactionStmt):
            transaction = _TRANSACTION.get(TransactionStmtKind(int(node.kind or 0)).name)
        out.append(Statement(text, type(node).__name__, transaction))
    return out


_TRANSACTION = {
    "TRANS_STMT_BEGIN": "BEGIN",
    "TRANS_STMT_START": "BEGIN",
    "TRANS_STMT_COMMIT": "COMMIT",
    "TRANS_STMT_ROLLBACK": "ROLLBACK",
}


def _strip_comments(text: str) -> str:
    """A statement's text without the comment lines before it."""
    lines = text.strip().splitlines()
    while lines and (not lines[0].strip() or lines[0].lstrip().startswith("--")):
        lines.pop(0)
    return "\n".join(lines).strip()


def key_equals(a: str, b: str, *, same: bool = True, fold: bool = False) -> str:
    """SQL: `a = b`, or both sides as text when their types do not compare with `=` (a
    text polymorphic id against a bigint key; see `refaudit.checks.base.comparable`), in
    lower case with `fold` (a uuid)."""
    if same:
        return f"{a} = {b}"
    if fold:
        return f"pg_catalog.lower({a}::pg_catalog.text) = pg_catalog.lower({b}::pg_catalog.text)"
    return f"{a}::pg_catalog.text = {b}::pg_catalog.text"
