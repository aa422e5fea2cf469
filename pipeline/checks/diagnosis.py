"""Why a reference is wrong: the diagnosis of violating references, in set-based SQL.

For every row a reference rule flags, the diagnosis gathers facts with LEFT JOINs on the
violating rows only (`DiagnosisScope`) and concludes with CASE expressions:

- `mis_keyed`: the value is missing from the target, but it is a key of the suite's key space
  (a `users.id`) that maps through the target's `through` column (`user_id`) to exactly one
  target row; proposed value: that row's key.
- `mis_keyed_hidden`: the value exists in the target, but the row's evidence says it is a
  key-space key: an `attribute` (the row's `contact_email` is the email of the user whose
  `users.id` equals the value, not of the referenced row's user) or a `via` row (the
  request's package belongs to the target row the `users.id` reading gives).
- `wrong_type` (conditional references): the value is not in the table the discriminator
  names but is in another target, and chance cannot explain that (see below); proposed
  value: that discriminator value.
- `ambiguous`: several candidates (a user with two tutor profiles), both readings possible,
  or the evidence conflicts. Listed for a person, never repaired.
- `malformed`: a text id that is not a key's text as written but reads as exactly one key of
  the target the row names (`' 42 '`, `'0042'`, an uppercase uuid: see
  `refaudit.checks.text_ids`); proposed value: that key's canonical text. Found by an
  equality probe of the key for the value read as the key's type, on the flagged rows only.
- `orphan`: nothing maps.
- `filtered_out`: the value is a row of the target's table that the target's `where` leaves
  out (a closed account, a `users` row of another `type`): listed for review, never
  deleted or set to NULL as an orphan would be.

Chance: with integer ids from dense sequences (Django's and Rails' generic relations) a
value that is not in its own table is often in another target's by chance: the id of a
deleted product is usually some article's id too. So "the id exists in the other target" is
evidence only where the other target's keys are sparse around the value: the chance of a hit
is the share of the integers within `CHANCE_WINDOW` of the value (clipped to the target's
key range) that are its keys, counted in the audit (once per distinct candidate value, for
all of them at once: `_key_counts`). Above `CHANCE_LIMIT` the row is `ambiguous`, for
review, and its evidence says so, unless the row's own evidence (an `attribute` of the
mis-key agreeing with the other target's row) picks the other type. A value far outside the
key range of the table the row names (beyond it by more than that range's width, at least
`CHANCE_WINDOW`) is no id of that table, not even of a row deleted since: there a hit is no
chance either (key spaces that do not overlap). Keys that are not numbers (uuids, text) come
from spaces where a hit is not chance; neither is a hit in a target on the same table and
key as the one the row names (single-table inheritance: the id is a row of that table, and
the row's type is another). A mis-key (`mis_keyed`) is not weighed so: the suite's `mis_key`
declares that values of that key space land in the column, and a mapping must be unique.

Confidence: `high` when the row's own evidence confirms the proposal (or, for an orphan,
when nothing maps at all); `medium` when the mapping is unique but the row carries no
evidence either way; `low` for everything ambiguous.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import aggregate_order_by

from .base import (
    ColumnType,
    Diagnosis,
    DiagnosisScope,
    Facts,
    Step,
    compile_condition,
    equal_as,
    is_true,
    not_one_of,
    one_of,
    table_clause,
)
from .enforce import condition_sql
from .model import ColumnRef, KeySpace, MisKey
from .text_ids import resolved


@dataclass(frozen=True)
class Target:
    """One target of a reference: `value` is the discriminator value that chooses it (None
    for a plain reference)."""

    value: str | None
    ref: ColumnRef
    label: str = ""  # with a `lookup`: what the type row of `value` says (`shop.article`)

    @property
    def shown(self) -> str:
        """The value as evidence shows it: `19 (shop.article)` through a type table."""
        return f"{self.value} ({self.label})" if self.label else str(self.value)


FILTERED_OUT = "; the table has it, outside the target's `where`: listed for review"
CHANCE_WINDOW = 500
"""How far either side of a value the density of another target's keys is measured."""
CHANCE_LIMIT = 0.01
"""The highest chance of a hit in another target that still counts as evidence of the type:
above it, "the id exists there" is what a random id would do too (see the module's doc)."""
INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


def _named(target: Target) -> str:
    """`table.column` of a target, as evidence names it."""
    return f"{target.ref.table}.{target.ref.column}"


def _kept(target: Target) -> str:
    """The rows of a target that count, after its value in the evidence: a row the target's
    `where` leaves out exists but does not count (`no users.id 3 where type = 'User'`)."""
    return "" if target.ref.where is None else f" where {condition_sql(target.ref.where)}"


def row_columns(column: str, discriminator: str | None, mis_key: MisKey | None) -> list[str]:
    """The columns of the audited row a reference's diagnosis reads."""
    cols = [column] + ([discriminator] if discriminator else [])
    for ev in mis_key.evidence if mis_key else []:
        cols.append(ev.attribute.column if ev.attribute else ev.via.column)  # type: ignore[union-attr]
    return list(dict.fromkeys(cols))


def match(column: str, expr: Any) -> Callable[[Any], Any]:
    """A join condition: the joined alias's `column` equals `expr`."""
    return lambda alias: alias.c[column] == expr


def definite(expr: Any) -> Any:
    """TRUE or FALSE, never NULL: facts feed CASE conditions and NOT."""
    return is_true(expr)


def text(*parts: Any) -> Any:
    """SQL text from literal strings and expressions (NULL expressions count as empty)."""
    return sa.func.concat(
        *(sa.literal(p) if isinstance(p, str) else sa.cast(p, sa.Text) for p in parts)
    )


def _any(exprs: list[Any]) -> Any:
    return sa.or_(*exprs) if exprs else sa.false()


def _when(cond: Any, expr: Any) -> Any:
    return sa.case((cond, expr), else_=sa.null())


def _first_of(conds: list[Any], values: list[Any]) -> Any:
    """The value of the first true condition, NULL if none."""
    if not conds:
        return sa.null()
    return sa.case(*zip(conds, values, strict=False), else_=sa.null())


def _sum(exprs: list[Any]) -> Any:
    total: Any = sa.literal(0)
    for e in exprs:
        total = total + e
    return total


@dataclass
class _Common:
    column: str
    targets: list[Target]
    discriminator: str | None
    mis_key: MisKey | None
    key_space: KeySpace | None
    same: bool = True
    """False when the column's type does not compare with a key it is compared with (a text
    polymorphic id against bigint or uuid keys): every such comparison is made as text,
    exactly (`refaudit.checks.text_ids`: a key's canonical text is the only spelling that
    passes)."""
    forms: list[str | None] = field(default_factory=list)
    """Per target: the key type a text id is read as when it does not match exactly
    (`refaudit.checks.text_ids.key_form`), None where there is no reading."""
    types: Mapping[str, str] = field(default_factory=dict)
    """With a `lookup`: every discriminator value the type table holds -> its name."""
    type_table: str = ""

    def eq(self, a: Any, b: Any) -> Any:
        """`a = b` for the value against a key (see `same`)."""
        return equal_as(self.same, a, b)

    def key_is(self, column: str, value: Any, form: str | None = None) -> Callable[[Any], Any]:
        """A join condition: the joined alias's key `column` is the value (see `same`). With
        the key's `form` (a text id against a number or uuid key), the value read as the key
        type equals the key too: the same rows, but an index on the key finds them."""
        if self.same or form is None:
            return lambda alias: self.eq(alias.c[column], value)
        return lambda alias: sa.and_(
            alias.c[column] == resolved(value, form), self.eq(alias.c[column], value)
        )

    def form(self, k: int) -> str | None:
        """The form a text id takes for target k's key (`forms`), None when compared as is."""
        return self.forms[k] if k < len(self.forms) and not self.same else None

    def canonical(self, scope: DiagnosisScope, value: Any, disc: Any) -> Any:
        """The canonical text of the key of the target the row names that the value reads as
        (`refaudit.checks.text_ids`): an equality probe of the key for the value read as the
        key's type. NULL when it reads as none, or the key is compared as is."""
        none = sa.cast(sa.null(), sa.Text)
        parts = []
        for k, t in enumerate(self.targets):
            form = self.form(k)
            if form is None:
                parts.append(none)
                continue
            key = t.ref.column

            def reads_as(alias: Any, key: str = key, form: str = form) -> Any:
                return alias.c[key] == resolved(value, form)

            row = scope.lookup(
                t.ref.table,
                key,
                [],
                reads_as,
                ("resolved", self.column),
                keep=t.ref.where,
            )
            parts.append(sa.cast(row.c[key], sa.Text))
        if all(p is none for p in parts):
            return none
        return self.chosen(disc, parts)

    def differs(self, a: Any, b: Any) -> Any:
        """`a IS DISTINCT FROM b` for the value against a key (see `same`)."""
        if self.same:
            return a.is_distinct_from(b)
        return sa.cast(a, sa.Text).is_distinct_from(sa.cast(b, sa.Text))

    def elsewhere(self, disc: Any, target: Target) -> Any:
        """The row's discriminator names none of the values that choose `target`'s table
        (under single-table inheritance several values name one table)."""
        values = [t.value for t in self.targets if t.ref == target.ref]
        return sa.or_(disc.is_(None), not_one_of(disc, values))

    def chosen(self, disc: Any, by_target: list[Any]) -> Any:
        """The expression of the target the row's discriminator names."""
        if self.discriminator is None:
            return by_target[0]
        return sa.case(
            *(
                (disc == sa.literal(t.value), e)
                for t, e in zip(self.targets, by_target, strict=True)
            ),
            else_=sa.null(),
        )

    def attributes(self) -> list[tuple[str, str]]:
        """(row column, key-space attribute) of every `attribute` evidence item."""
        if self.mis_key is None:
            return []
        return [
            (ev.attribute.column, ev.attribute.key_space_column)
            for ev in self.mis_key.evidence
            if ev.attribute is not None
        ]

    def direct(self, scope: DiagnosisScope, value: Any) -> list[Any]:
        """Per target, the row whose key is the value (whatever the discriminator says)."""
        extra = [self.mis_key.through] if self.mis_key else []
        return [
            scope.lookup(
                t.ref.table,
                t.ref.column,
                extra,
                self.key_is(t.ref.column, value, self.form(k)),
                ("direct", self.column),
                keep=t.ref.where,
            )
            for k, t in enumerate(self.targets)
        ]

    def _number(self, scope: DiagnosisScope) -> Any:
        """The value as a number (NULL for a text id that spells none)."""
        value = scope.column(self.column)
        if self.same:
            return sa.cast(value, sa.Numeric)
        spelled = sa.cast(value, sa.Text)  # only the spelling of an integer equals an integer key
        return sa.case(
            (spelled.regexp_match("^-?[0-9]+$"), sa.cast(spelled, sa.Numeric)), else_=sa.null()
        )

    def chance(self, scope: DiagnosisScope, target: Target) -> Any:
        """The chance that a random id like the value is a key of `target` (see the
        module's doc): (share, lo, hi), the share of the integers lo..hi (within
        CHANCE_WINDOW of the value, clipped to the target's key range) that are its keys,
        0 where the value lies far outside the key range of the target the row names (it is
        no id of that target: not one of its deleted rows' either); None when the key is
        not a number (a uuid, text): a hit there is no chance. Meant for a row whose value
        is a key of the target while its discriminator names another table (elsewhere NULL).

        Counted once per distinct value of such rows, all at once (`_key_counts`), not by an
        index range scan per row; the targets' key ranges are read once per statement
        (uncorrelated subqueries)."""
        ref = target.ref
        key_type = _numeric_key(scope, ref)
        if key_type is None:
            return None
        number = self._number(scope)
        bound = sa.BigInteger if key_type.name in INTEGER_TYPES else sa.Numeric
        disc = scope.column(self.discriminator) if self.discriminator else None
        groups = self._numeric_groups(scope)

        def make(name: str) -> Any:
            # per distinct text, not number: 5 and 5.0 are one number, their windows' ends
            # (the evidence shows them) are written differently
            values = (
                sa.select(number.label("x"), sa.cast(number, sa.Text).label("t"))
                .where(scope.rows, number.is_not(None), self.elsewhere(disc, target))
                .distinct()
                .subquery(f"{name}_v")
            )
            x = values.c.x
            least, most = _key_range(ref, f"{name}_s")
            # within the target's key range, so the casts to the key's type cannot overflow
            lo = sa.func.least(sa.func.greatest(x - CHANCE_WINDOW, least()), most())
            hi = sa.func.greatest(sa.func.least(x + CHANCE_WINDOW, most()), least())
            windows = sa.select(x, values.c.t, lo.label("lo"), hi.label("hi")).subquery(
                f"{name}_x"
            )
            far = [
                self._far(windows.c.x, r, f"{name}_o{j}").label(f"far{j}")
                for j, (r, _values) in enumerate(groups)
            ]
            wanted = sa.select(
                *windows.c,
                sa.cast(windows.c.lo, bound).label("cl"),
                sa.cast(windows.c.hi, bound).label("ch"),
                *far,
            ).cte(f"{name}_w", nesting=True)
            counts = _key_counts(ref, wanted, scope.unique(ref.table, ref.column), name)
            return (
                sa.select(
                    wanted.c.t,
                    wanted.c.lo,
                    wanted.c.hi,
                    sa.func.coalesce(counts.c.n, 0).label("n"),
                    *(wanted.c[f"far{j}"] for j in range(len(groups))),
                )
                .select_from(
                    wanted.outerjoin(
                        counts, sa.and_(counts.c.lo == wanted.c.cl, counts.c.hi == wanted.c.ch)
                    )
                )
                .subquery(name)
            )

        probe = scope.join(
            ("chance", ref.ref_key(), self.column),
            make,
            lambda alias: alias.c.t == sa.cast(number, sa.Text),
        )
        n = sa.func.coalesce(probe.c.n, 0)
        share = sa.cast(n, sa.Numeric) / sa.func.nullif(probe.c.hi - probe.c.lo + 1, 0)
        outside: Any = sa.false()
        if disc is not None and groups:
            outside = sa.case(
                *(
                    (one_of(disc, values), probe.c[f"far{j}"])
                    for j, (_r, values) in enumerate(groups)
                ),
                else_=sa.false(),
            )
        return sa.case((outside, 0), else_=share), probe.c.lo, probe.c.hi

    def _numeric_groups(self, scope: DiagnosisScope) -> list[tuple[ColumnRef, list[str | None]]]:
        """The targets' distinct table-and-filter choices whose key is a number, each with
        the discriminator values that name it (see `_far`); none without a discriminator."""
        if self.discriminator is None:
            return []
        return [
            (ref, values)
            for ref, values in _by_ref(self.targets)
            if _numeric_key(scope, ref) is not None
        ]

    @staticmethod
    def _far(number: Any, ref: ColumnRef, name: str) -> Any:
        """Whether `number` lies far outside the key range lo..hi of the rows of `ref` that
        count: beyond it by more than the range's own width (at least CHANCE_WINDOW), room
        for the ids of rows deleted since. FALSE when it has no row. A value whose row
        names that target and lies so far is no id of it: its hit elsewhere is no chance."""
        least, most = _key_range(ref, name)
        margin = sa.func.greatest(CHANCE_WINDOW, most() - least() + 1)
        far = sa.or_(number < least() - margin, number > most() + margin)
        return sa.func.coalesce(far, sa.false())

    def users_of(self, scope: DiagnosisScope, direct: list[Any]) -> list[Any]:
        """Per target, the key-space row of the direct row (the profile's user)."""
        space = self.key_space
        assert space is not None and self.mis_key is not None
        through = self.mis_key.through
        return [
            scope.lookup(
                space.table,
                space.key,
                space.attributes,
                match(space.key, d.c[through]),
                ("user_of", t.ref.table, self.column),
            )
            for t, d in zip(self.targets, direct, strict=True)
        ]


def _numeric_key(scope: DiagnosisScope, ref: ColumnRef) -> ColumnType | None:
    """The type of `ref`'s key when it is a number (a hit there may be chance), else None."""
    key_type = scope.types.get((ref.table, ref.column))
    return key_type if key_type is not None and key_type.category == "N" else None


def _by_ref(targets: list[Target]) -> list[tuple[ColumnRef, list[str | None]]]:
    """The targets' distinct table-and-filter choices, each with the values that name it."""
    groups: dict[str, tuple[ColumnRef, list[str | None]]] = {}
    for t in targets:
        groups.setdefault(t.ref.ref_key(), (t.ref, []))[1].append(t.value)
    return list(groups.values())


def _key_range(ref: ColumnRef, name: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """The lowest and highest key among the rows of a target that count, as makers of
    uncorrelated scalar subqueries (PostgreSQL reads each once per statement; with an index
    on the key, from one end of it)."""
    keep = ref.where
    span = table_clause(ref.table, [ref.column, *(keep.columns() if keep else [])]).alias(name)
    kept = compile_condition(keep, lambda c: span.c[c]) if keep else sa.true()
    key = span.c[ref.column]
    return (
        lambda: sa.select(sa.func.min(key)).where(kept).scalar_subquery(),
        lambda: sa.select(sa.func.max(key)).where(kept).scalar_subquery(),
    )


def _key_counts(ref: ColumnRef, wanted: Any, unique: bool, name: str) -> Any:
    """For each window `cl`..`ch` of `wanted` (bounds of the key's type), `n`: how many
    distinct keys of the rows of `ref` that count lie within it; one row per distinct window,
    as (`lo`, `hi`, `n`).

    Set-based: the windows are merged into disjoint spans, the keys within the spans are read
    once (an index range scan per span, so never more of the index than the windows cover,
    and at most all of it however many windows overlap), then sorted with the windows' ends;
    a running count of keys gives, at each end, the keys before it."""
    pairs = (
        sa.select(wanted.c.cl.label("lo"), wanted.c.ch.label("hi"))
        .distinct()
        .subquery(f"{name}_d")
    )
    lo, hi = pairs.c.lo, pairs.c.hi
    order = (lo, hi)
    reach = sa.func.max(hi).over(order_by=order, rows=(None, -1))
    starts = sa.select(lo, hi, sa.case((lo <= reach, 0), else_=1).label("s")).subquery(
        f"{name}_a"
    )
    span = sa.func.sum(starts.c.s).over(order_by=(starts.c.lo, starts.c.hi), rows=(None, 0))
    grouped = sa.select(starts.c.lo, starts.c.hi, span.label("g")).subquery(f"{name}_g")
    spans = (
        sa.select(sa.func.min(grouped.c.lo).label("lo"), sa.func.max(grouped.c.hi).label("hi"))
        .group_by(grouped.c.g)
        .subquery(f"{name}_p")
    )
    keep = ref.where
    inner = table_clause(ref.table, [ref.column, *(keep.columns() if keep else [])]).alias(
        f"{name}_t"
    )
    key = inner.c[ref.column]
    found = sa.select(key.label("x")).where(
        key.between(spans.c.lo, spans.c.hi),
        compile_condition(keep, lambda c: inner.c[c]) if keep else sa.true(),
    )
    if not unique:
        found = found.distinct()
    keys = found.offset(0).lateral(f"{name}_k")
    none = sa.null()
    marks = sa.union_all(
        sa.select(keys.c.x, sa.literal(1).label("kind"), none.label("lo"), none.label("hi"))
        .select_from(spans.join(keys, sa.true())),
        sa.select(lo.label("x"), sa.literal(0).label("kind"), lo, hi),
        sa.select(hi.label("x"), sa.literal(2).label("kind"), lo, hi),
    ).subquery(f"{name}_m")
    before = sa.func.count(sa.case((marks.c.kind == 1, 1))).over(
        order_by=(marks.c.x, marks.c.kind), rows=(None, 0)
    )
    running = sa.select(marks.c.kind, marks.c.lo, marks.c.hi, before.label("upto")).subquery(
        f"{name}_u"
    )
    at = running.c.upto
    return (
        sa.select(
            running.c.lo,
            running.c.hi,
            (
                sa.func.max(sa.case((running.c.kind == 2, at)))
                - sa.func.max(sa.case((running.c.kind == 0, at)))
            ).label("n"),
        )
        .where(running.c.kind != 1)
        .group_by(running.c.lo, running.c.hi)
        .subquery(name)
    )


class ReferenceDiagnoser(_Common):
    """Diagnoses the rows a (conditional) reference rule flags."""

    def __init__(
        self,
        *,
        column: str,
        targets: list[Target],
        discriminator: str | None,
        mis_key: MisKey | None,
        key_space: KeySpace | None,
        on_orphan: str,
        same: bool = True,
        forms: list[str | None] | None = None,
    ) -> None:
        super().__init__(column, targets, discriminator, mis_key, key_space, same, forms or [])
        self.on_orphan = on_orphan

    # ------------------------------------------------------------------ facts (joins)
    def facts(self, scope: DiagnosisScope, carried: Mapping[str, Any]) -> dict[str, Any]:
        value = scope.column(self.column)
        disc: Any = scope.column(self.discriminator) if self.discriminator else None
        facts: dict[str, Any] = {}
        conditional = len(self.targets) > 1
        direct = self.direct(scope, value) if (conditional or self.mis_key) else []
        if conditional:
            for k, (t, d) in enumerate(zip(self.targets, direct, strict=True)):
                facts[f"in_{k}"] = definite(
                    sa.and_(d.c[t.ref.column].is_not(None), self.elsewhere(disc, t))
                )
                chance = self.chance(scope, t)
                if chance is not None:
                    facts[f"chance_{k}"], facts[f"chance_lo_{k}"], facts[f"chance_hi_{k}"] = (
                        chance
                    )
        facts["kept_out"] = self.kept_out(scope, value, disc)
        facts["canonical"] = self.canonical(scope, value, disc)
        if self.mis_key is None:
            return facts

        mis_key, space = self.mis_key, self.key_space
        assert space is not None
        maps = [self._mapping(scope, t, value) for t in self.targets]
        facts["n"] = sa.func.coalesce(self.chosen(disc, [m.c.n for m in maps]), 0)
        facts["first"] = sa.cast(self.chosen(disc, [m.c.first for m in maps]), sa.Text)
        facts["ids"] = self.chosen(disc, [m.c.ids for m in maps])
        facts["referenced"] = sa.cast(
            self.chosen(disc, [d.c[mis_key.through] for d in direct]), sa.Text
        )
        if conditional:
            for k, (t, m) in enumerate(zip(self.targets, maps, strict=True)):
                facts[f"cross_{k}"] = sa.case(
                    (self.elsewhere(disc, t), sa.func.coalesce(m.c.n, 0)), else_=0
                )
                facts[f"cross_ids_{k}"] = m.c.ids

        attributes = self.attributes()
        if attributes:
            own_user = scope.lookup(
                space.table,
                space.key,
                space.attributes,
                lambda a: self.eq(a.c[space.key], value),
                ("key_space", self.column),
            )
            users = self.users_of(scope, direct)
            for i, (col, attr) in enumerate(attributes):
                own = scope.column(col)
                referenced = self.chosen(disc, [u.c[attr] for u in users])
                mine = own_user.c[attr]
                facts[f"for_attr_{i}"] = definite(
                    sa.and_(own.is_not(None), own == mine, own.is_distinct_from(referenced))
                )
                facts[f"against_attr_{i}"] = definite(
                    sa.and_(
                        sa.not_(carried["missing"]),
                        own.is_not(None),
                        own == referenced,
                        own.is_distinct_from(mine),
                    )
                )
                if conditional:
                    for k, u in enumerate(users):
                        facts[f"wt_attr_{i}_{k}"] = definite(
                            sa.and_(own.is_not(None), own == u.c[attr])
                        )

        vias = [ev.via for ev in mis_key.evidence if ev.via is not None]
        for j, via in enumerate(vias):
            row = scope.lookup(
                via.table,
                via.key,
                [via.target_column],
                match(via.key, scope.column(via.column)),
                ("via", via.column),
            )
            points = row.c[via.target_column]
            at = [
                scope.lookup(
                    t.ref.table,
                    t.ref.column,
                    [mis_key.through],
                    match(t.ref.column, points),
                    ("via_target", via.column),
                    keep=t.ref.where,
                )
                for t in self.targets
            ]
            owner = self.chosen(disc, [a.c[mis_key.through] for a in at])
            found = self.chosen(
                disc,
                [a.c[t.ref.column].is_not(None) for t, a in zip(self.targets, at, strict=True)],
            )
            facts[f"via_{j}"] = sa.cast(points, sa.Text)
            facts[f"for_via_{j}"] = definite(
                sa.and_(points.is_not(None), sa.not_(self.eq(points, value)), self.eq(owner, value))
            )
            facts[f"against_via_{j}"] = definite(
                sa.and_(
                    points.is_not(None),
                    sa.or_(
                        sa.and_(sa.not_(carried["missing"]), self.eq(points, value)),
                        sa.and_(
                            sa.not_(self.eq(points, value)), found, self.differs(owner, value)
                        ),
                    ),
                )
            )
        return facts

    def kept_out(self, scope: DiagnosisScope, value: Any, disc: Any) -> Any:
        """The chosen target's table has the value, but not among the rows its `where`
        keeps (a closed account, a `users` row of another `type`): not an orphan, and never
        deleted or set to NULL for it."""
        parts = []
        for k, t in enumerate(self.targets):
            if t.ref.where is None:
                parts.append(sa.false())
                continue
            row = scope.lookup(
                t.ref.table,
                t.ref.column,
                [],
                self.key_is(t.ref.column, value, self.form(k)),
                ("unfiltered", self.column),
            )
            parts.append(row.c[t.ref.column].is_not(None))
        return definite(self.chosen(disc, parts)) if any(t.ref.where for t in self.targets) else (
            sa.false()
        )

    def _mapping(self, scope: DiagnosisScope, target: Target, value: Any) -> Any:
        """Target rows grouped by `through`, for the violating values only: how many rows
        a key-space value maps to, the first, and all of them."""
        assert self.mis_key is not None
        through, key = self.mis_key.through, target.ref.column
        kept = target.ref.where
        tbl = table_clause(target.ref.table, [key, through, *(kept.columns() if kept else [])])
        if self.same:
            as_key: Callable[[Any], Any] = lambda e: e  # noqa: E731
        else:
            as_key = lambda e: sa.cast(e, sa.Text)  # noqa: E731
        wanted = sa.select(as_key(value)).where(value.is_not(None), scope.rows)

        def make(name: str) -> Any:
            return (
                sa.select(
                    tbl.c[through].label("k"),
                    sa.func.count().label("n"),
                    sa.func.min(tbl.c[key]).label("first"),
                    sa.func.array_to_string(
                        sa.func.array_agg(aggregate_order_by(tbl.c[key], tbl.c[key])), ", "
                    ).label("ids"),
                )
                .where(as_key(tbl.c[through]).in_(wanted))
                .where(compile_condition(kept, lambda c: tbl.c[c]) if kept else sa.true())
                .group_by(tbl.c[through])
                .subquery(name)
            )

        return scope.join(
            ("map", target.ref.table, through, self.column, target.ref.ref_key()),
            make,
            lambda a: self.eq(a.c.k, value),
        )

    # ------------------------------------------------------- conclusion (CASE, 3 steps)
    def steps(self) -> list[Step]:
        return [self._readings, self._classify]

    def _readings(self, facts: Facts, column: Callable[[str], Any]) -> dict[str, Any]:
        """Which readings of the value are possible, and what the evidence says of them."""
        out: dict[str, Any] = {}
        ins = [facts[f"in_{k}"] for k in range(len(self.targets))] if self._conditional else []
        # the wrong-type reading (conditional references): the value is another target's key
        out["wt_n"] = _sum([sa.case((i, 1), else_=0) for i in ins])
        out["wt_value"] = _first_of(ins, [sa.literal(t.value) for t in self.targets])
        out["wt_shown"] = _first_of(ins, [sa.literal(t.shown) for t in self.targets])
        out["wt_table"] = _first_of(ins, [sa.literal(_named(t)) for t in self.targets])
        # the rows of that target that count (its `where`), named after the value
        out["wt_kept"] = _first_of(ins, [sa.literal(_kept(t)) for t in self.targets])
        out.update(self._chance_readings(facts, column, ins, out["wt_n"]))
        if self.mis_key is None:
            return out
        attributes, vias = self.attributes(), self.vias()
        out["supports"] = definite(
            _any(
                [facts[f"for_attr_{i}"] for i in range(len(attributes))]
                + [facts[f"for_via_{j}"] for j in range(len(vias))]
            )
        )
        out["contradicts"] = definite(
            _any(
                [facts[f"against_attr_{i}"] for i in range(len(attributes))]
                + [facts[f"against_via_{j}"] for j in range(len(vias))]
            )
        )
        pick = _first_of(
            [facts[f"for_via_{j}"] for j in range(len(vias))],
            [facts[f"via_{j}"] for j in range(len(vias))],
        )
        out["unique"] = definite(sa.or_(facts["n"] == 1, pick.is_not(None)))
        out["proposed_key"] = sa.cast(sa.func.coalesce(pick, facts["first"]), sa.Text)
        out["wt_for"] = definite(
            _any(
                [
                    sa.and_(facts[f"in_{k}"], facts[f"wt_attr_{i}_{k}"])
                    for i in range(len(attributes))
                    for k in range(len(self.targets))
                ]
                if self._conditional
                else []
            )
        )
        out["cross_n"] = (
            _sum([facts[f"cross_{k}"] for k in range(len(self.targets))])
            if self._conditional
            else sa.literal(0)
        )
        return out

    def _chance_readings(
        self, facts: Facts, column: Callable[[str], Any], ins: list[Any], wt_n: Any
    ) -> dict[str, Any]:
        """Whether the one other target holding the value may hold it by chance
        (`by_chance`), with the share of ids it holds around the value and their range."""
        if not self._conditional:
            return {"by_chance": sa.false()}
        assert self.discriminator is not None  # a conditional reference has one
        disc = column(self.discriminator)
        shares: list[Any] = []
        los, his, names = [], [], []
        for k, t in enumerate(self.targets):
            # a target on the table and key the row names: the id is a row of that table,
            # of another type; that is no chance
            same_rows = [u.value for u in self.targets if u.ref.table == t.ref.table and (
                u.ref.column == t.ref.column)]  # fmt: skip
            share = facts.get(f"chance_{k}")
            none = sa.cast(sa.null(), sa.Numeric)
            if share is None:
                shares.append(none)
            else:
                shares.append(sa.case((one_of(disc, same_rows), none), else_=share))
            los.append(facts.get(f"chance_lo_{k}", sa.null()))
            his.append(facts.get(f"chance_hi_{k}", sa.null()))
            names.append(sa.literal(t.ref.table))
        share = _first_of(ins, shares)
        return {
            "by_chance": definite(sa.and_(wt_n == 1, share > CHANCE_LIMIT)),
            "chance_share": share,
            "chance_lo": _first_of(ins, los),
            "chance_hi": _first_of(ins, his),
            "chance_table": _first_of(ins, names),
        }

    def _by_chance_note(self, facts: Facts) -> Any:
        """Why the one other target holding the value is no evidence of the type."""
        if not self._conditional:
            return sa.null()
        return text(
            facts["chance_table"],
            " holds ",
            sa.func.round(facts["chance_share"] * 100),
            "% of the ids ",
            facts["chance_lo"],
            "..",
            facts["chance_hi"],
            " around it: chance, not evidence of the type; listed for review",
        )

    def _classify(self, facts: Facts, column: Callable[[str], Any]) -> dict[str, Any]:
        missing, wt_n = facts["missing"], facts["wt_n"]
        by_chance = facts["by_chance"]
        if self.mis_key is None:
            label: Any = (
                sa.case(
                    (sa.and_(wt_n == 1, sa.not_(by_chance)), "wrong_type"),
                    (wt_n >= 1, "ambiguous"),
                    else_="orphan",
                )
                if self._conditional
                else sa.literal("orphan")
            )
            return {"label": self._filtered(facts, label)}
        mapped = facts["n"] >= 1
        supports, contradicts, unique = facts["supports"], facts["contradicts"], facts["unique"]
        wt_for = facts["wt_for"]
        label = sa.case(
            (sa.and_(missing, sa.not_(mapped), wt_n == 0, facts["cross_n"] > 0), "ambiguous"),
            (sa.and_(missing, sa.not_(mapped), wt_n == 0), "orphan"),
            (sa.and_(missing, contradicts), "ambiguous"),
            (
                sa.and_(missing, mapped, wt_n >= 1),  # both readings possible
                sa.case(
                    (sa.and_(supports, sa.not_(wt_for), unique), "mis_keyed"),
                    (sa.and_(wt_for, sa.not_(supports), wt_n == 1), "wrong_type"),
                    else_="ambiguous",
                ),
            ),
            (sa.and_(missing, mapped), sa.case((unique, "mis_keyed"), else_="ambiguous")),
            (
                sa.and_(missing, wt_n == 1, sa.not_(supports), sa.or_(wt_for, sa.not_(by_chance))),
                "wrong_type",
            ),
            (missing, "ambiguous"),
            (contradicts, "ambiguous"),
            (unique, "mis_keyed_hidden"),
            else_="ambiguous",
        )
        return {"label": self._filtered(facts, label)}

    @staticmethod
    def _filtered(facts: Facts, label: Any) -> Any:
        """An orphan whose value the target has outside its `where`: `filtered_out`. A
        value missing as written that reads as a key of the target the row names (`' 42 '`
        for 42): `malformed`, whatever else it could be."""
        return sa.case(
            (sa.and_(facts["missing"], facts["canonical"].is_not(None)), "malformed"),
            (sa.and_(label == "orphan", facts["kept_out"]), "filtered_out"),
            else_=label,
        )

    def _malformed(self, facts: Facts, column: Callable[[str], Any], d: Diagnosis) -> Diagnosis:
        """`d` with a malformed row's proposal (the key's canonical text), confidence
        (high: the target row exists and the value reads as its key) and evidence."""
        label, canonical = facts["label"], facts["canonical"]
        value = column(self.column)
        disc = column(self.discriminator) if self.discriminator else None
        target_name = self.chosen(disc, [sa.literal(_named(t)) for t in self.targets])
        evidence = text(
            sa.func.quote_literal(value), " is ", target_name, " ", canonical,
            " misspelled: a lookup by the key's text misses it; repair writes ",
            sa.func.quote_literal(canonical),
        )  # fmt: skip
        malformed = label == "malformed"
        return Diagnosis(
            diagnosis=d.diagnosis,
            proposed=sa.case((malformed, canonical), else_=d.proposed),
            confidence=sa.case((malformed, "high"), else_=d.confidence),
            evidence=sa.case((malformed, evidence), else_=d.evidence),
            repair_column=d.repair_column,
            flag=d.flag,
        )

    def conclude(self, facts: Facts, column: Callable[[str], Any]) -> Diagnosis:
        return self._malformed(facts, column, self._conclude(facts, column))

    def _conclude(self, facts: Facts, column: Callable[[str], Any]) -> Diagnosis:
        value = column(self.column)
        disc = column(self.discriminator) if self.discriminator else None
        missing, label = facts["missing"], facts["label"]
        target_name = self.chosen(disc, [sa.literal(_named(t)) for t in self.targets])
        kept = self.chosen(disc, [sa.literal(_kept(t)) for t in self.targets])
        no_target = text("no ", target_name, " ", value, kept)
        wrong_type = text(
            no_target, ", but ", facts["wt_table"], " ", value, facts["wt_kept"],
            f" exists: {self.discriminator} should be ", facts["wt_shown"],
        )  # fmt: skip
        proposed = sa.case(
            (label == "wrong_type", facts["wt_value"]),
            (label == "orphan", self._orphan_proposal()),
            else_="",
        )
        repair_column = self._repair_column(label)

        if self.mis_key is None:
            return Diagnosis(
                diagnosis=label,
                proposed=proposed,
                confidence=sa.case(
                    (label == "wrong_type", "medium"), (label == "orphan", "high"), else_="low"
                ),
                evidence=sa.case(
                    (label == "wrong_type", wrong_type),
                    (label == "orphan", text(no_target, self._orphan_action())),
                    (label == "filtered_out", text(no_target, FILTERED_OUT)),
                    (
                        facts["by_chance"],
                        text(
                            no_target, ", but ", facts["wt_table"], " ", value, facts["wt_kept"],
                            " exists; ", self._by_chance_note(facts),
                        ),
                    ),
                    else_=text(no_target, "; several other targets have it"),
                ),
                repair_column=repair_column,
            )

        mis_key, space = self.mis_key, self.key_space
        assert space is not None
        supports, mapped = facts["supports"], facts["n"] >= 1
        proposed_key = facts["proposed_key"]
        proposed = sa.case(
            (label.in_(["mis_keyed", "mis_keyed_hidden"]), proposed_key), else_=proposed
        )
        confidence = sa.case(
            (label == "mis_keyed", sa.case((supports, "high"), else_="medium")),
            (label == "mis_keyed_hidden", "high"),
            (label == "wrong_type", sa.case((facts["wt_for"], "high"), else_="medium")),
            (label == "orphan", "high"),
            else_="low",
        )
        through, ks = mis_key.through, f"{space.table}.{space.key}"
        maps_to = text(f"{ks} ", value, " -> ", target_name, " ")
        head = sa.case(
            (
                label == "orphan",
                text(no_target, f", and no {through} = ", value, self._orphan_action()),
            ),
            (label == "mis_keyed", text(no_target, "; ", maps_to, proposed_key, f" via {through}")),
            (
                label == "mis_keyed_hidden",
                text(
                    target_name,
                    " ",
                    value,
                    f" exists (its {through} is ",
                    facts["referenced"],
                    "), but ",
                    maps_to,
                    proposed_key,
                    f" via {through}",
                ),
            ),
            (label == "wrong_type", wrong_type),
            (label == "filtered_out", text(no_target, FILTERED_OUT)),
            else_=sa.func.concat_ws(
                "; ",
                _when(missing, no_target),
                _when(mapped, text(maps_to, facts["ids"], f" via {through}")),
                _when(
                    facts["wt_n"] >= 1,
                    text(facts["wt_table"], " ", value, facts["wt_kept"], " exists"),
                ),
                _when(
                    sa.and_(facts["by_chance"], sa.not_(facts["wt_for"])),
                    self._by_chance_note(facts),
                ),
                *(
                    _when(
                        facts[f"cross_{k}"] > 0,
                        text(
                            f"{ks} ",
                            value,
                            f" -> {t.ref.table}.{t.ref.column} ",
                            facts[f"cross_ids_{k}"],
                            f" via {through}",
                        ),
                    )
                    for k, t in enumerate(self.targets)
                    if self._conditional
                ),
                _when(facts["contradicts"], sa.literal("the evidence conflicts")),
            ),
        )
        notes = []
        for i, (col, attr) in enumerate(self.attributes()):
            notes.append(
                sa.case(
                    (
                        facts[f"for_attr_{i}"],
                        text(f"{col} matches {space.table}.{attr} of {ks} ", value),
                    ),
                    (
                        facts[f"against_attr_{i}"],
                        text(
                            f"{col} matches {space.table}.{attr} of the referenced row's ",
                            f"{through} ",
                            facts["referenced"],
                        ),
                    ),
                    else_=sa.null(),
                )
            )
            for k, t in enumerate(self.targets if self._conditional else []):
                notes.append(
                    _when(
                        sa.and_(label == "wrong_type", facts[f"in_{k}"], facts[f"wt_attr_{i}_{k}"]),
                        sa.literal(
                            f"{col} matches {space.table}.{attr} of that {t.ref.table} "
                            f"row's {through}"
                        ),
                    )
                )
        for j, via in enumerate(self.vias()):
            notes.append(
                _when(
                    sa.or_(facts[f"for_via_{j}"], facts[f"against_via_{j}"]),
                    text(
                        f"{via.column} ",
                        column(via.column),
                        f" -> {via.table}.{via.target_column} ",
                        facts[f"via_{j}"],
                    ),
                )
            )
        return Diagnosis(
            diagnosis=label,
            proposed=proposed,
            confidence=confidence,
            evidence=sa.func.concat_ws("; ", head, *notes),
            repair_column=repair_column,
            flag=sa.or_(missing, sa.and_(supports, mapped)),
        )

    @property
    def _conditional(self) -> bool:
        return len(self.targets) > 1

    def vias(self) -> list[Any]:
        return (
            [ev.via for ev in self.mis_key.evidence if ev.via is not None] if self.mis_key else []
        )

    def _orphan_proposal(self) -> Any:
        return sa.literal("NULL") if self.on_orphan == "set_null" else sa.literal("")

    def _orphan_action(self) -> str:
        return {
            "set_null": "; repair sets it to NULL",
            "quarantine": "; repair moves the row to quarantine",
            "report": "; listed for review",
        }[self.on_orphan]

    def _repair_column(self, label: Any) -> Any:
        if self.discriminator is None:
            return sa.literal(self.column)
        return sa.case(
            (label == "wrong_type", sa.literal(self.discriminator)), else_=sa.literal(self.column)
        )


@dataclass
class DiscriminatorDiagnoser(_Common):
    """Diagnoses rows whose discriminator names no target (NULL or unknown): when the value
    is the key of exactly one target (or the evidence picks one), that target's
    discriminator value is proposed. Through a type table, any other row whose type no
    target maps is `unknown_type` (its id is no type row), `stale_type` (a type row after
    which no table is named: `refaudit.lookups`) or `unmapped_type` (a type the suite does
    not list)."""

    stale: set[str] = field(default_factory=set)
    """Through a type table: the ids of its stale types."""

    def facts(self, scope: DiagnosisScope, carried: Mapping[str, Any]) -> dict[str, Any]:
        value = scope.column(self.column)
        direct = self.direct(scope, value)
        facts: dict[str, Any] = {}
        users = self.users_of(scope, direct) if self.attributes() else []
        for k, (t, d) in enumerate(zip(self.targets, direct, strict=True)):
            facts[f"in_{k}"] = definite(d.c[t.ref.column].is_not(None))
            agree = [
                sa.and_(scope.column(col).is_not(None), scope.column(col) == users[k].c[attr])
                for col, attr in self.attributes()
            ]
            facts[f"agree_{k}"] = definite(sa.and_(facts[f"in_{k}"], _any(agree)))
        return facts

    def steps(self) -> list[Step]:
        return [self._counts, self._classify]

    def _names_no_target(self, disc: Any) -> Any:
        """SQL: why the discriminator names no target. Through a type table, in its names: a
        type row no target maps (`content_type_id 12 is shop.oldmodel in django_content_type,
        which no target maps`: a stale type, or one the suite does not list) apart from an
        id that names no type row at all."""
        if not self.type_table:
            return sa.literal(f"{self.discriminator} names no target")
        shown = sa.func.coalesce(sa.cast(disc, sa.Text), "NULL")
        unmapped = f" in {self.type_table}, which no target maps"
        gone = f" in {self.type_table}, after which no table is named: a stale type"
        known = [
            (
                sa.cast(disc, sa.Text) == type_id,
                f" is {name}{gone if type_id in self.stale else unmapped}",
            )
            for type_id, name in self.types.items()
        ]
        none = f" names no row of {self.type_table}"
        why = sa.case(*known, else_=none) if known else sa.literal(none)
        return text(f"{self.discriminator} ", shown, why)

    def _counts(self, facts: Facts, column: Callable[[str], Any]) -> dict[str, Any]:
        ins = [facts[f"in_{k}"] for k in range(len(self.targets))]
        agrees = [facts[f"agree_{k}"] for k in range(len(self.targets))]
        values = [sa.literal(t.value) for t in self.targets]
        tables = [sa.literal(_named(t)) for t in self.targets]
        return {
            "n_in": _sum([sa.case((i, 1), else_=0) for i in ins]),
            "n_agree": _sum([sa.case((a, 1), else_=0) for a in agrees]),
            "in_value": _first_of(ins, values),
            "in_table": _first_of(ins, tables),
            "agree_value": _first_of(agrees, values),
            "agree_table": _first_of(agrees, tables),
        }

    def _classify(self, facts: Facts, column: Callable[[str], Any]) -> dict[str, Any]:
        n_in, n_agree = facts["n_in"], facts["n_agree"]
        assert self.discriminator is not None  # a conditional reference has one
        label = sa.case(
            (column(self.column).is_(None), ""),
            (n_in == 1, "wrong_type"),
            (n_agree == 1, "wrong_type"),  # in several targets; the evidence picks one
            (n_in > 1, "ambiguous"),
            else_=self._type_label(column(self.discriminator)),
        )
        return {"label": label}

    def _type_label(self, disc: Any) -> Any:
        """Through a type table, what the type of a row that no target holds is (see the
        class's doc); '' without a type table, or for a NULL type."""
        if not self.type_table:
            return sa.literal("")
        as_text = sa.cast(disc, sa.Text)
        stale = [i for i in self.types if i in self.stale]
        return sa.case(
            (disc.is_(None), ""),
            (one_of(as_text, stale) if stale else sa.false(), "stale_type"),
            (one_of(as_text, list(self.types)) if self.types else sa.false(), "unmapped_type"),
            else_="unknown_type",
        )

    def conclude(self, facts: Facts, column: Callable[[str], Any]) -> Diagnosis:
        value = column(self.column)
        label, n_in, n_agree = facts["label"], facts["n_in"], facts["n_agree"]
        single = n_in == 1
        proposed = sa.case(
            (sa.and_(label == "wrong_type", single), facts["in_value"]),
            (label == "wrong_type", facts["agree_value"]),
            else_="",
        )
        confidence = sa.case(
            (sa.and_(label == "wrong_type", n_agree >= 1), "high"),
            (label == "wrong_type", "medium"),
            (label == "ambiguous", "low"),
            else_="",
        )
        where = sa.case((single, facts["in_table"]), else_=facts["agree_table"])
        assert self.discriminator is not None  # a conditional reference has one
        names_none = self._names_no_target(column(self.discriminator))
        evidence = sa.case(
            (
                label == "wrong_type",
                text(
                    names_none,
                    ", but ",
                    where,
                    " ",
                    value,
                    " exists",
                    _when(n_agree >= 1, sa.literal("; the row's evidence agrees")),
                ),
            ),
            (
                label == "ambiguous",
                text(names_none, "; several targets have ", value),
            ),
            else_=names_none if self.types or self.type_table else "",
        )
        return Diagnosis(
            diagnosis=label,
            proposed=proposed,
            confidence=confidence,
            evidence=evidence,
            repair_column=sa.literal(self.discriminator),
        )


def _named_key(target: Target) -> str:
    """`table(x, y)` of a composite target, as evidence names it."""
    return f"{target.ref.table}({', '.join(target.ref.key_columns())})"


class CompositeDiagnoser:
    """Diagnoses the rows a composite (conditional) reference flags: `columns: [a, b]`
    naming a target by several key columns. The labels are the single-column ones without
    mis-keys (`wrong_type`: the key is another target's; `filtered_out`; `ambiguous`;
    `orphan`), and nothing is proposed: repair.sql lists composite references for review.
    With `unknown_discriminator` it diagnoses the `<id>.discriminator` finding instead: the
    type of the one target holding the key is proposed, for review."""

    def __init__(
        self,
        *,
        columns: list[str],
        targets: list[Target],
        discriminator: str | None,
        compares: list[list[tuple[bool, bool]]],
        unknown_discriminator: bool = False,
    ) -> None:
        """`compares`: per target, per (column, key column) pair, whether they compare as
        they are and whether as text they fold case (see `refaudit.checks.base.equal_as`)."""
        self.columns = columns
        self.targets = targets
        self.discriminator = discriminator
        self.compares = compares
        self.unknown_discriminator = unknown_discriminator

    @property
    def _conditional(self) -> bool:
        return self.discriminator is not None

    def _found(self, scope: DiagnosisScope, k: int, keep: Any) -> Any:
        """The target k has a row whose key is the row's columns (with `keep`, one it keeps)."""
        ref = self.targets[k].ref
        keys = ref.key_columns()
        x = table_clause(ref.table, [*keys, *(keep.columns() if keep else [])]).alias(f"k{k}")
        cond = [
            equal_as(same, x.c[key], scope.column(col), fold)
            for key, col, (same, fold) in zip(keys, self.columns, self.compares[k], strict=True)
        ]
        if keep is not None:
            cond.append(compile_condition(keep, lambda c: x.c[c]))
        return sa.select(sa.literal(1)).select_from(x).where(*cond).exists()

    def _elsewhere(self, disc: Any, target: Target) -> Any:
        values = [t.value for t in self.targets if t.ref == target.ref]
        return sa.or_(disc.is_(None), not_one_of(disc, values))

    def _chosen(self, disc: Any, by_target: list[Any]) -> Any:
        if disc is None:
            return by_target[0]
        return sa.case(
            *(
                (disc == sa.literal(t.value), e)
                for t, e in zip(self.targets, by_target, strict=True)
            ),
            else_=sa.null(),
        )

    def facts(self, scope: DiagnosisScope, carried: Mapping[str, Any]) -> dict[str, Any]:
        disc = scope.column(self.discriminator) if self.discriminator else None
        facts: dict[str, Any] = {}
        for k, t in enumerate(self.targets if self._conditional else []):
            found = self._found(scope, k, t.ref.where)
            if not self.unknown_discriminator:  # another table than the one it names
                found = sa.and_(found, self._elsewhere(disc, t))
            facts[f"in_{k}"] = definite(found)
        if not self.unknown_discriminator:
            outside = [
                self._found(scope, k, None) if t.ref.where is not None else sa.false()
                for k, t in enumerate(self.targets)
            ]
            facts["kept_out"] = definite(self._chosen(disc, outside))
        return facts

    def steps(self) -> list[Step]:
        return [self._readings]

    def _readings(self, facts: Facts, column: Callable[[str], Any]) -> dict[str, Any]:
        ins = [facts[f"in_{k}"] for k in range(len(self.targets))] if self._conditional else []
        n = _sum([sa.case((i, 1), else_=0) for i in ins])
        if self.unknown_discriminator:
            label: Any = sa.case((n == 1, "wrong_type"), (n > 1, "ambiguous"), else_="")
        else:
            label = sa.case(
                (n == 1, "wrong_type"),
                (n > 1, "ambiguous"),
                (facts["kept_out"], "filtered_out"),
                else_="orphan",
            )
        return {
            "label": label,
            "wt_value": _first_of(ins, [sa.literal(t.value) for t in self.targets]),
            "wt_table": _first_of(ins, [sa.literal(_named_key(t)) for t in self.targets]),
            "wt_kept": _first_of(ins, [sa.literal(_kept(t)) for t in self.targets]),
        }

    def conclude(self, facts: Facts, column: Callable[[str], Any]) -> Diagnosis:
        label = facts["label"]
        value = sa.cast(sa.func.json_build_array(*(column(c) for c in self.columns)), sa.Text)
        if self.unknown_discriminator:
            disc = self.discriminator
            return Diagnosis(
                diagnosis=label,
                proposed=sa.case((label == "wrong_type", facts["wt_value"]), else_=""),
                confidence=sa.case(
                    (label == "wrong_type", "medium"), (label == "ambiguous", "low"), else_=""
                ),
                evidence=sa.case(
                    (
                        label == "wrong_type",
                        text(
                            f"{disc} names no target, but ", facts["wt_table"], " ", value,
                            facts["wt_kept"], " exists",
                        ),
                    ),
                    (
                        label == "ambiguous",
                        text(f"{disc} names no target; several targets have ", value),
                    ),
                    else_="",
                ),
                repair_column=sa.literal(disc),
            )
        disc_col = column(self.discriminator) if self.discriminator else None
        target_name = self._chosen(disc_col, [sa.literal(_named_key(t)) for t in self.targets])
        kept = self._chosen(disc_col, [sa.literal(_kept(t)) for t in self.targets])
        no_target = text("no ", target_name, " ", value, kept)
        review = "; listed for review (a composite reference)"
        return Diagnosis(
            diagnosis=label,
            proposed=sa.literal(""),
            confidence=sa.case(
                (label == "wrong_type", "medium"), (label == "orphan", "high"), else_="low"
            ),
            evidence=sa.case(
                (
                    label == "wrong_type",
                    text(
                        no_target, ", but ", facts["wt_table"], " ", value, facts["wt_kept"],
                        f" exists: {self.discriminator} should be ", facts["wt_value"],
                        "; listed for review",
                    ),
                ),
                (label == "orphan", text(no_target, review)),
                (label == "filtered_out", text(no_target, FILTERED_OUT)),
                else_=text(no_target, "; several other targets have it; listed for review"),
            ),
        )
