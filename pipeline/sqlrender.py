"""The plan files' SQL, rendered one way: Jinja templates (`pipeline/templates/sql/`) in which
no value can reach the text unquoted.

A template expression (`{{ ... }}`) must be one of:

- a name or a value passed through a quoting filter: `{{ name|ident }}`, `{{ value|literal }}`,
  `{{ text|comment }}` (one line inside `--`), `{{ format|raise_format }}` (a RAISE format
  whose `%` stay text), `{{ expr|printable }}`;
- `Sql`: text that is SQL already, made by the quoting helpers of `refaudit.sqltext` or by
  another template (`render`), and marked so where it is made;
- a whole number (`int`, not `bool`).

Anything else (a plain `str`, `None`, a float, a bool) raises `UnquotedValue` while the file
is rendered, so a template that forgot a filter fails in the tests, never in a file that a
DBA runs. Blocks of PL/pgSQL are dollar-quoted by the `do_block` and `dollar_quoted` filters
(`{% filter do_block %}...{% endfilter %}`), whose tag never occurs in the body.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from functools import cache
from typing import TYPE_CHECKING, Any

from . import sqltext

if TYPE_CHECKING:
    import jinja2

_VARIABLE = re.compile(r"[a-z_][a-z0-9_]*")
_SEPARATORS = frozenset({",", ", ", ";", " + ", " AND ", " OR ", ""})


class Sql(str):
    """Text that is SQL as it is: quoted names and values, keywords, whole statements."""

    __slots__ = ()


class UnquotedValue(TypeError):
    """A template wrote a value that no quoting filter or `Sql` marked."""


def sql(text: str) -> Sql:
    """Mark `text` as SQL (it was built by `refaudit.sqltext`'s quoting helpers)."""
    return Sql(text)


def ident(name: str) -> Sql:
    return Sql(sqltext.ident(name))


def literal(value: str | None) -> Sql:
    return Sql(sqltext.literal(value))


def comment(text: str) -> Sql:
    return Sql(sqltext.comment(text))


def printable(expr: str) -> Sql:
    """SQL: the text `expr` (`Sql`, or a PL/pgSQL variable's plain name) with control
    characters and line separators shown as `?`, for messages a terminal shows (keys and
    names are the database's, whatever they hold)."""
    if not (isinstance(expr, Sql) or _VARIABLE.fullmatch(expr)):
        _require(expr)
    unsafe = "".join(chr(c) for c in range(1, 32)) + "\x7f\x85\u2028\u2029\u202e"
    return Sql(
        f"pg_catalog.translate({expr}, {sqltext.literal(unsafe)}, "
        f"{sqltext.literal('?' * len(unsafe))})"
    )


def raise_format(*parts: str) -> Sql:
    """A RAISE format literal: the parts that are exactly "%" are placeholders, every other
    part is text (its `%` doubled)."""
    return Sql(sqltext.literal("".join(p if p == "%" else p.replace("%", "%%") for p in parts)))


def join(items: Iterable[Any], sep: str = ", ") -> Sql:
    """`Sql` items joined by `sep` (one of a few fixed separators: `, `, ` AND `, ...)."""
    if sep not in _SEPARATORS:
        raise UnquotedValue(f"not a separator: {sep!r}")
    return Sql(sep.join(_require(i) for i in items))


def prefixed(column: Sql, alias: str) -> Sql:
    """`alias.column` (the alias a plain lower-case name of the template's own)."""
    if not _VARIABLE.fullmatch(alias):
        raise UnquotedValue(f"not an alias: {alias!r}")
    return Sql(f"{alias}.{_require(column)}")


def sep(loop: Any, between: str = ",", last: str = ";") -> Sql:
    """The punctuation after an item of a `{% for %}` loop: `between` items, `last` after
    the last one (one of a few fixed separators)."""
    if between not in _SEPARATORS or last not in _SEPARATORS:
        raise UnquotedValue(f"not a separator: {between!r}, {last!r}")
    return Sql(last if loop.last else between)


def join_text(items: Iterable[str], sep: str = ", ") -> str:
    """Plain text joined (to be quoted next: `{{ names|join_text|comment }}`)."""
    return sep.join(items)


def values(row: Iterable[str | None]) -> Sql:
    """A VALUES row of literals: `('7', NULL, 'it''s')`."""
    return Sql("(" + ", ".join(sqltext.literal(v) for v in row) + ")")


def _require(value: Any) -> str:
    if isinstance(value, Sql):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise UnquotedValue(
        f"a value reached the SQL unquoted: {value!r:.60} "
        "(pass it through |ident, |literal or |comment, or build it as Sql)"
    )


def _finalize(value: Any) -> str:
    return _require(value)


@cache
def _env() -> jinja2.Environment:
    """The templates' environment, made on first use: an audit without a repair plan renders
    none, and jinja2 is not imported before its first statement."""
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.PackageLoader(__package__ or "refaudit", "templates/sql"),
        undefined=jinja2.StrictUndefined,
        finalize=_finalize,
        autoescape=False,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters.update(
        ident=ident,
        literal=literal,
        comment=comment,
        printable=printable,
        raise_format=lambda parts: raise_format(*parts),
        join=join,  # the built-in would join plain strings
        values=values,
        sep=sep,
        prefixed=prefixed,
        join_text=join_text,
        do_block=lambda body: Sql(sqltext.do_block(body)),
        dollar_quoted=lambda body: Sql(sqltext.dollar_quoted(body)),
        qualified=lambda parts: Sql(sqltext.qualified(*parts)),
        table=lambda name: Sql(sqltext.table(name)),
        regclass=lambda name: Sql(sqltext.regclass(name)),
    )
    return env


_PSQL_LINES = frozenset(
    {
        "\\set ON_ERROR_STOP on",
        f"\\if :{{?{sqltext.PSQL_ALLOW_OTHER}}}",
        "\\endif",
    }
)
"""The only psql commands a plan file holds: its preamble's (see `preamble.sql.j2`)."""


class _Lines:
    """Watches rendered text, piece by piece, for a line that psql would read as a command
    (one that starts with a backslash) other than the preamble's: whatever a name or value
    holds, no such line may appear (a second guard behind the quoting filters)."""

    def __init__(self) -> None:
        self.line = ""

    def feed(self, text: str) -> str:
        *done, self.line = (self.line + text).split("\n")
        for line in done:
            self._check(line)
        return text

    def close(self) -> None:
        self._check(self.line)

    @staticmethod
    def _check(line: str) -> None:
        if line.lstrip().startswith("\\") and line not in _PSQL_LINES:
            raise UnquotedValue(f"a line of the SQL would be a psql command: {line!r:.60}")


def render(template: str, **context: Any) -> Sql:
    """One template, whole (a statement or a section of a file)."""
    lines = _Lines()
    text = lines.feed(_env().get_template(template).render(**context))
    lines.close()
    return Sql(text)


def piece(template: str, **context: Any) -> Sql:
    """One statement or block of a template, without the newline that ends the file."""
    return Sql(render(template, **context).rstrip("\n"))


def stream(template: str, **context: Any) -> Iterator[str]:
    """One template in pieces, as it renders (a file of any size, with flat memory)."""
    lines = _Lines()
    for piece_ in _env().get_template(template).generate(**context):
        yield lines.feed(piece_)
    lines.close()
