"""Text ids as frameworks resolve them: a text column naming rows of a number or uuid key.

A generic relation often keeps its id as text whatever the target's key type (Django's
`object_pk varchar`, PaperTrail's `item_id`). Frameworks look such a row's target up in two
ways that do not agree: by the exact text (`object_pk = str(pk)`, Django's generic relation
queries and prefetching), or by reading the text as a key (`Model.objects.get(pk=object_pk)`,
PostgreSQL's `object_pk::integer`). refaudit's rule, per key type:

- **Exact text passes.** A text id names key k when it equals k's canonical text, the key
  type's own output: `'42'` for an integer, bigint or numeric key (`'42.50'` for a numeric
  42.50), the lowercase hyphenated form for a uuid (`str(uuid)`, what Django stores).
- **A spelling that reads as exactly one key is `malformed`**, with that key's canonical text
  proposed (repair.sql rewrites the id; nothing is quarantined or set to NULL for it).
  Integer keys (smallint, integer, bigint): optional whitespace (space, tab, newline, CR, FF,
  VT) around an optional sign and decimal digits (`' 42 '`, `'0042'`, `'+42'`). Numeric keys:
  the same with an optional fraction and exponent (`'42.5'` for 42.50, `'4.25e1'`). Uuid
  keys: 32 hex digits in either case, a hyphen allowed after any group of four, the whole
  optionally in braces (`'A0EEBC99-9C0B-...'`, `'a0eebc999c0b...'`, `'{a0eebc99-...}'`):
  what PostgreSQL's `::uuid` and Python's `uuid.UUID` both read. A framework's exact-text
  lookup misses all of these, so each is reported, never passed.
- **Anything else is an orphan** (if no target holds it otherwise): a text that reads as no
  key (`'abc'`, `'4_2'`, `'0x2A'`, a number out of the key type's range), or that reads as a
  key no row has. The forms are regular expressions checked before any cast, so no value
  makes the audit fail, on every supported server (PostgreSQL 15 has no `pg_input_is_valid`;
  16 reads `'0x2A'` and `'4_2'` as integers where 15 does not: neither is taken).

The diagnosis reads a flagged row's id as the key type (`resolved`) and probes the target's
key for it by equality, so a key index serves; the text of the key it finds is the proposal.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .base import ColumnType

SPACE = r"[ \t\n\r\f\v]*"
"""The whitespace PostgreSQL's number input skips around a number (C's isspace)."""

INTEGER_FORM = rf"^{SPACE}[+-]?[0-9]+{SPACE}$"
NUMERIC_FORM = rf"^{SPACE}[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{{1,3}})?{SPACE}$"
_HEX = "[0-9a-fA-F]{4}"
UUID_FORM = rf"^(\{{({_HEX}-?){{7}}{_HEX}\}}|({_HEX}-?){{7}}{_HEX})$"

INTEGER_RANGES = {
    "smallint": (-(2**15), 2**15 - 1),
    "integer": (-(2**31), 2**31 - 1),
    "bigint": (-(2**63), 2**63 - 1),
}
_INTEGER_TYPES = {"smallint": sa.SmallInteger, "integer": sa.Integer, "bigint": sa.BigInteger}
LONGEST = 200
"""The longest text read as a number: a longer one is an orphan. With exponents of at most
three digits this keeps every cast within numeric's limits on every supported server (15
refuses an exponent beyond 1000), so no cast fails."""


def key_form(value: ColumnType | None, key: ColumnType | None) -> str | None:
    """The form a text id takes when it names keys of `key`'s type: `smallint`, `integer`,
    `bigint`, `numeric` or `uuid`; None when `value` is not text or the key is of another
    type (then exact comparison is all there is)."""
    if value is None or key is None or value.category != "S":
        return None
    name = key.name.split("(")[0]
    if name in INTEGER_RANGES or name in ("numeric", "uuid"):
        return name
    return None


def resolved(expr: Any, form: str) -> Any:
    """SQL: the text id `expr` read as a key of type `form` (see `key_form`), NULL when it
    spells none. Guarded by regular expressions and ranges: the cast never fails."""
    text = sa.cast(expr, sa.Text)
    if form == "uuid":
        return sa.case(
            (text.regexp_match(UUID_FORM), sa.cast(text, postgresql.UUID)), else_=sa.null()
        )
    shape = INTEGER_FORM if form in INTEGER_RANGES else NUMERIC_FORM
    number = sa.case(
        (
            sa.and_(sa.func.length(text) <= LONGEST, text.regexp_match(shape)),
            sa.cast(text, sa.Numeric),
        ),
        else_=sa.null(),
    )
    if form == "numeric":
        return number
    lo, hi = INTEGER_RANGES[form]
    return sa.case(
        (number.between(lo, hi), sa.cast(number, _INTEGER_TYPES[form])), else_=sa.null()
    )
