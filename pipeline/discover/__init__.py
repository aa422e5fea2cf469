"""`refaudit discover`: a suite for a database nobody described.

A package of stages, run in order on one read-only snapshot with the audit's timeouts
(`run`), each a module that reads the previous stages' results from the shared
`context.Discoverer`:

1. `catalog`: tables, columns, primary keys, UNIQUE, NOT NULL, foreign keys, CHECK value
   lists and indexes, each turned into the check that states it;
2. `profile`: row counts, NULLs, min/max (one aggregate scan per table) and which text
   columns have few values;
3. `inclusion`: undeclared references, inclusion dependencies between columns and keys
   computed in PostgreSQL, unary and composite;
4. `conditional` and `generic`: conditional references by a type column beside the id
   column, and generic relations through a type table (Django's `content_type_id`;
   `type_tables` holds the pure parts);
5. `miskeys`: references whose values come from another key space;
6. `scoring`: the reference each column settles on, declared foreign keys as data checks;
7. `rules`: what the rows almost always obey;
8. `render`: suite YAML whose comments carry the evidence.

`discover(...)` returns a `Discovery` (typed proposals with evidence, confidence and
alternatives); `render_suite(...)` turns it into suite YAML which `refaudit run --suite` runs
as it is. `names` and `model` are what every stage shares.
"""

from .model import (
    DEFAULT_MIN_CONFIDENCE,
    Candidate,
    ColumnInfo,
    DeclaredReference,
    DiscoverOptions,
    Discovery,
    Proposal,
    TableInfo,
)
from .names import column_stem, name_fit, tokens
from .render import render_suite, summary, thin_result, write_suite
from .run import discover

__all__ = [
    "DEFAULT_MIN_CONFIDENCE",
    "Candidate",
    "ColumnInfo",
    "DeclaredReference",
    "DiscoverOptions",
    "Discovery",
    "Proposal",
    "TableInfo",
    "column_stem",
    "discover",
    "name_fit",
    "render_suite",
    "summary",
    "thin_result",
    "tokens",
    "write_suite",
]
