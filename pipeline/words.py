"""Counts in messages, in the number they are: "1 violation", "2 violations"."""

from __future__ import annotations


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`count` (thousands marked: `2,155`) and `noun`, the noun in the plural (`many`,
    default noun + "s") unless the count is one."""
    return f"{count:,} {noun if count == 1 else many or noun + 's'}"
