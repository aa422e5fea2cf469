"""Names: how a column's or a value's words name a table (`tutor_id` -> `tutor_profiles`,
`TutorProfile`, `categories`), singular and plural alike, and how a column or a discriminator
value fits a candidate target by name."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .context import Discoverer
    from .model import TableInfo

NAME_VOUCHES = 0.9
"""A name that fits its target at least this well (`invoice_id` -> `invoice.invoice_id`)
vouches for a reference whatever the spread of its values."""

_STOP = {"id", "fk", "key", "ref", "uuid", "guid", "row", "no", "num", "cod", "typ", "kind"}


def _stem(word: str) -> str:
    """One form for singular and plural (`warehouse`, `warehouses` -> `warehous`; `category`,
    `categories` -> `category`): the same on both sides of a comparison is all that counts."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 2 and word.endswith("s") and not word.endswith("ss"):
        word = word[:-1]
    if len(word) > 3 and word.endswith("e"):
        word = word[:-1]
    return word


_NAME_LIKE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\\\-]{0,62}$")
"""A value that may name a table: words joined by `_`, `.`, `:`, `-` or `\\` (Laravel's
`App\\Models\\Post`)."""


_HIERARCHY = {
    _stem(w)
    for w in (
        "parent",
        "manager",
        "boss",
        "supervisor",
        "predecessor",
        "successor",
        "previous",
        "next",
        "original",
        "root",
        "superior",
        "mentor",
        "referrer",
        "replaced",
        "merged",
        "report",
    )
}


def tokens(name: str) -> list[str]:
    """The words of a name (`TutorProfile`, `tutor_profiles`, `tutor-profile` -> tutor,
    profile), lower case, singular and plural alike (see `_stem`)."""
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return [_stem(w) for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


def name_fit(word: str, table: str) -> float:
    """How well `word` (a column's stem, a discriminator value) names `table`: 1 the same
    words, 0.9 the table's leading or trailing words (`tutor` -> `tutor_profiles`) or the
    table's words after a role (`manager_staff` -> `staff`, the last words naming the thing), 0.6 a
    shared word, 0.4 an abbreviation (`cust` -> `customers`), 0 otherwise."""
    w = [t for t in tokens(word) if t not in _STOP]
    t = tokens(table.rpartition(".")[2])
    if not w or not t:
        return 0.0
    if w == t:
        return 1.0
    if w == t[: len(w)] or w == t[-len(w) :]:
        return 0.9
    if len(w) > len(t) and w[-len(t) :] == t:
        return 0.9  # a role before the name: `manager_staff` -> `staff`
    if set(w) & set(t):
        return 0.6
    if len(w[0]) >= 3 and t[0].startswith(w[0]):
        return 0.4
    return 0.0


def column_stem(column: str, key: str) -> str:
    """A reference column's name without its key suffix (`tutor_id` -> `tutor`)."""
    for suffix in (key, "uuid", "guid", "id", "key", "fk", "ref", "code", "no"):
        for sep in ("_", ""):
            tail = sep + suffix
            if len(column) > len(tail) and column.lower().endswith(tail.lower()):
                return column[: -len(tail)].rstrip("_")
    return column


def value_fit(ctx: Discoverer, value: str, u: TableInfo, t: TableInfo, disc: str) -> float:
    """How well a discriminator value names table `u`: by name (`student` ->
    `student_profiles`, `TutorProfile` -> `tutor_profiles`), or, for single-table
    inheritance, 0.9 when a low-cardinality column of `u` holds the value itself
    (`commentable_type = 'Admin'` and `users.type = 'Admin'`)."""
    fit = name_fit(value, u.name)
    for c in u.columns.values():
        if (u is t and c.name == disc) or is_polymorphic_type(u, c.name):
            continue
        prof = ctx.profiles.get((u.name, c.name))
        if prof is not None and prof.values is not None and value in prof.values:
            return max(fit, 0.9)
    return fit


def is_polymorphic_type(u: TableInfo, column: str) -> bool:
    """`x_type` beside `x_id`: the discriminator of a reference of `u`, not its class."""
    stem = column_stem(column, "type")
    return stem != column and any(
        other != column and column_stem(other, "id") == stem for other in u.columns
    )


OTHER_KEY_NAME = 0.85
"""The most a column's name fits a key named for something else (see `column_fit`)."""


def column_fit(ctx: Discoverer, t: TableInfo, column: str, u: TableInfo, key: str) -> float:
    """How well a column's name names table `u` and its key `key`:

    - at least 0.9 when the column is named as the key is, and that name says more than
      `id` (`invoice_line.invoice_id` -> `invoice.invoice_id`): the strongest evidence a
      name gives, more where the table's name fits too; 0.9 for the key's name after a
      role (`manager_staff_id` -> `staff.staff_id`);
    - at most 0.85 where the key is named for something else than the column is;
    - else the fit of the column's stem to the table's name (`tutor_id` -> `tutor_profiles`,
      `manager_staff_id` -> `staff`), halved when `u` has a column of the same name
      (`tutor_packages.tutor_id`): a table that references the same thing is its sibling,
      not its target;
    - on the table's own rows, 0.8 for a word of hierarchy (`parent_id`, `reports_to`)."""
    stem = column_stem(column, key)
    fit = name_fit(stem, u.name)
    if u is not t and _says_more(key, u):
        if column.lower() == key.lower():
            return 0.9 + 0.1 * fit
        if column.lower().endswith(key.lower()):
            return 0.9  # a role: `manager_staff_id`, `original_language_id`, `shiptoaddressid`
        # a key named for what it is, and the column named otherwise: less than a key of
        # that name (`customer_type_id` is `customer_demographics.customer_type_id`, not
        # `customers.customer_id`)
        fit = min(fit, OTHER_KEY_NAME)
    if u is not t and column in u.columns:
        fit *= 0.5
    if u is t and set(tokens(stem)) & _HIERARCHY:
        fit = max(fit, 0.8)  # parent_id, manager_id: the table's own rows
    return fit


def _says_more(key: str, u: TableInfo) -> bool:
    """A key's name says which thing it keys: an id's suffix after words that are not one
    (`invoice_id`, `country_code`; not `id`, `uuid`), or the name of its table
    (`documentnode` of `document`); not `name` or `email`, which many tables have and none
    is named for."""
    if all(w in _STOP for w in tokens(key)):
        return False
    stem = column_stem(key, "uuid")  # the longest suffix first: `rowguid` is a `row` guid
    if stem != key and any(w not in _STOP for w in tokens(stem)):
        return True
    own = "".join(tokens(u.relname))
    return len(own) >= 3 and "".join(tokens(key)).startswith(own)


def names_other(t: TableInfo, column: str, u: TableInfo, fit: float) -> bool:
    """A table's own key names table `u` (it is `u`'s key too: one row of `u` per row):
    the name vouches for `u` and fits `u` better than the key's own table
    (`film.film_id` is the film's, not `film_category`'s, though both hold it)."""
    return fit >= NAME_VOUCHES and name_fit(column_stem(column, "id"), t.name) < fit
