"""The suite as Great Expectations 1.x expectation suites, and a runner that validates them.

GX validates one suite against one batch (here: one table), so the export is one expectation
suite per audited table (`<suite>.<table>.json`) plus `manifest.json`, which names the table
each suite belongs to and lists the checks that were not exported.

- References, conditional references (and their `<id>.discriminator` finding), consistency,
  uniqueness and row rules become `UnexpectedRowsExpectation`s. Their SQL is the engine's
  own: the statement `refaudit run` executes for the check's table (scan, joins, diagnosis
  stage that confirms hidden mis-keys), built for that check alone and narrowed to one rule,
  and the same `unique_query`; compiled for PostgreSQL with the values inlined, so the two
  cannot drift apart.
- `not_null`, `in_set` and `pattern` become GX's built-in column expectations (one
  `ExpectColumnValuesToNotBeNull` per column); GX's PostgreSQL regex is `~`, like refaudit's.
- Catalog checks (constraints, indexes, triggers) have no GX counterpart and are not exported.

Every expectation's `meta` carries `refaudit_check` (the check id whose violations it
counts), so GX's failing counts can be compared with refaudit's. Thresholds are copied into
`meta` but not translated: a GX expectation fails on any unexpected row.

Writing the export needs nothing but the suite; Great Expectations is imported only by
`run_with_gx`.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from .checks.base import ColumnTypes, TableScan, check_rules, table_clause
from .checks.stage import ROW_SCAN
from .errors import RefauditError, UsageError
from .plan import TablePlan, required_columns
from .sqltext import split_name
from .suite import Suite

MANIFEST = "manifest.json"
_SEVERITY = {"error": "critical", "warn": "warning"}
# the named paramstyle renders `%` as is; text() doubles it for psycopg2 itself
_DIALECT = postgresql.dialect(paramstyle="named")
# what sqlalchemy's text() would read as a bind parameter (GX runs the query through text())
_BIND_LIKE = re.compile(r"(?<![:\w\\]):(?=\w)")


@dataclass
class GxSuite:
    """One GX expectation suite: the expectations that run against one table."""

    table: str
    name: str
    expectations: list[dict[str, Any]] = field(default_factory=list)

    @property
    def file(self) -> str:
        return f"{self.name}.json"

    def document(self) -> dict[str, Any]:
        return {"name": self.name, "expectations": self.expectations, "meta": {}}


@dataclass
class GxExport:
    suite: str
    suites: list[GxSuite]
    not_exported: list[dict[str, str]]

    def manifest(self) -> dict[str, Any]:
        return {
            "suite": self.suite,
            "format": "great_expectations 1.x expectation suites, one per table",
            "suites": [
                {
                    "file": s.file,
                    "name": s.name,
                    "table": s.table,
                    "expectations": len(s.expectations),
                }
                for s in self.suites
            ],
            "not_exported": self.not_exported,
        }


def _meta(check: Any, check_id: str, **extra: Any) -> dict[str, Any]:
    meta = {
        "refaudit_check": check_id,
        "refaudit_kind": check.family,
        "refaudit_table": check.table,
        **extra,
    }
    threshold = check.threshold.model_dump(exclude_none=True)
    if threshold:
        meta["refaudit_threshold"] = threshold
    return meta


def _expectation(
    type_: str, kwargs: dict[str, Any], check: Any, check_id: str, **meta: Any
) -> dict[str, Any]:
    return {
        "type": type_,
        "kwargs": kwargs,
        "meta": _meta(check, check_id, **meta),
        "description": check.description or f"refaudit check {check_id}",
        "severity": _SEVERITY[check.severity],
    }


def batch_query(stmt: sa.Select[Any], table: str) -> str:
    """`stmt` (which reads `table AS t`) as an `unexpected_rows_query` over GX's `{batch}`.

    GX substitutes `{batch}` with `str.format` and runs the result through `sqlalchemy.text`,
    so braces are doubled and bind-like colons escaped. It renders `{batch}` as an unaliased
    subquery when the query has a JOIN and as `(...) AS subselect` when it has none; either
    way the scan keeps its alias `t`.
    """
    sql = str(stmt.compile(dialect=_DIALECT, compile_kwargs={"literal_binds": True}))
    sql = _BIND_LIKE.sub(r"\\:", sql.replace("{", "{{").replace("}", "}}"))
    source = _DIALECT.identifier_preparer.format_table(table_clause(table)) + " AS t"
    pattern = re.compile(r"(?<![\w.\"])" + re.escape(source) + r"\b")
    if len(pattern.findall(sql)) != 1:  # pragma: no cover - the engine's shape changed
        raise RefauditError(f"cannot place GX's batch in the query for {table}: {sql}")
    has_join = re.search(r"\bJOIN\b", sql) is not None
    batch = "{batch} AS t" if has_join else "(SELECT * FROM {batch}) AS t"
    return pattern.sub(lambda _m: batch, sql)


def _rule_queries(
    suite: Suite, check: Any, columns: Any, unique: set[Any], types: ColumnTypes | None
) -> list[Any]:
    """(rule, query) per rule of a row check: the violating rows exactly as `refaudit run`
    finds them, i.e. the engine's whole statement for that check (with its diagnosis stage,
    which confirms hidden mis-keys) narrowed to the rule."""
    scan = TableScan(check.table, columns, unique, suite.key_spaces, types)
    plan = TablePlan(
        check.table, suite.key_of(check.table), rules=check_rules(check, scan),
        scan=scan,
    )
    w = plan.statement().order_by(None).subquery("w")
    out = []
    for i, rule in enumerate(plan.rules):
        stmt = sa.select(w.c["__key"].label("key"), w.c[f"v{i}"].label("value")).where(
            w.c[f"f{i}"]
        )
        out.append((rule, batch_query(stmt, check.table)))
    return out


def _row_expectations(
    check: Any,
    suite: Suite,
    columns: dict[str, set[str]],
    unique: set[tuple[str, str]],
    types: ColumnTypes | None = None,
) -> list[dict[str, Any]]:
    """A row check as the engine's statement; one per check: it carries only the joins it
    asks for."""
    return [
        _expectation(
            "unexpected_rows_expectation",
            {"unexpected_rows_query": query},
            check,
            rule.rule_id,
            column=rule.column,
        )
        for rule, query in _rule_queries(suite, check, columns, unique, types)
    ]


def export_suite(
    suite: Suite,
    types: ColumnTypes | None = None,
    unique: set[tuple[str, str]] | None = None,
) -> GxExport:
    """Translate `suite` into GX expectation suites (no GX import needed).

    Without `unique` (what a database says is unique), every join to a target goes through
    the engine's `DISTINCT ON` guard, so rows never multiply whatever the schema. Without
    `types`, values are compared with keys as written: a reference whose column's type does
    not compare with its target's key (a text polymorphic id) needs them (`export-gx --db`).
    """
    columns = required_columns(suite)
    by_table: dict[str, list[dict[str, Any]]] = defaultdict(list)
    skipped = []
    for check in suite.checks:
        reason = check.gx_unsupported()
        if reason is not None:
            skipped.append({"check": check.id, "kind": check.family, "reason": reason})
            continue
        # a filtered check exports as the engine's SQL, which applies the filter
        specs = check.gx() if check.row_filter() is None else None
        if specs is not None:  # the kind exports as GX's own expectations
            by_table[check.table].extend(
                _expectation(spec.type, spec.kwargs, check, check.id, column=spec.column)
                for spec in specs
            )
        elif check.stage is ROW_SCAN:
            by_table[check.table].extend(
                _row_expectations(check, suite, columns, unique or set(), types)
            )
        else:  # a query of its own: (key, value, kept) per finding
            query = batch_query(check.query(suite.key_of(check.table)), check.table)
            by_table[check.table].append(
                _expectation(
                    "unexpected_rows_expectation",
                    {"unexpected_rows_query": query},
                    check,
                    check.id,
                    column=",".join(check.column_list()),
                )
            )
    suites = [
        GxSuite(table=table, name=f"{suite.suite}.{table}", expectations=exps)
        for table, exps in by_table.items()
    ]
    return GxExport(suite=suite.suite, suites=suites, not_exported=skipped)


def write_export(export: GxExport, out: Path) -> list[Path]:
    """Write one JSON file per GX suite and `manifest.json` into `out`."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        written = []
        for s in export.suites:
            path = out / s.file
            path.write_text(json.dumps(s.document(), indent=2) + "\n", encoding="utf-8")
            written.append(path)
        (out / MANIFEST).write_text(json.dumps(export.manifest(), indent=2) + "\n", "utf-8")
    except OSError as exc:
        raise UsageError(
            f"cannot write the GX export into {out}: {exc.strerror}; pass --out to a writable "
            "directory"
        ) from None
    return [*written, out / MANIFEST]


# ---------------------------------------------------------------------- running with GX
@dataclass
class GxOutcome:
    """What GX found, per refaudit check id."""

    counts: dict[str, int]
    broken: dict[str, str]
    expectations: int
    failed: set[str] = field(default_factory=set)
    """The checks with an expectation GX found unmet (a table expectation counts no row)."""


def _raised(info: Any) -> str | None:
    """The message of an exception GX caught while computing an expectation, if any."""
    if isinstance(info, dict):
        if info.get("raised_exception"):
            return str(info.get("exception_message") or "raised an exception")
        for value in info.values():
            found = _raised(value)
            if found:
                return found
    return None


def _unexpected(result: Any) -> int:
    """Failing rows of one expectation result: UnexpectedRowsExpectation reports them as
    `observed_value`, column expectations as `unexpected_count`; a comparison of two tables'
    row counts, failing, is one finding."""
    data = result.result or {}
    if "unexpected_count" in data:
        return int(data["unexpected_count"] or 0)
    observed = data.get("observed_value")
    if isinstance(observed, dict):  # a table compared with another: {self: n, other: m}
        return 0 if result.success else 1
    return int(observed or 0)


def run_with_gx(
    url: str, directory: Path, *, result_format: str = "COMPLETE"
) -> GxOutcome:  # pragma: no cover - exercised by the GX tests and the benchmark
    """Validate every suite of an export with Great Expectations (one checkpoint, an
    ephemeral context, progress bars off) against the PostgreSQL database at `url`."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    manifest = json.loads((directory / MANIFEST).read_text(encoding="utf-8"))
    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = _datasource(ctx, url)
    definitions = []
    for entry in manifest["suites"]:
        schema, table = split_name(entry["table"])
        where = {"schema_name": schema} if schema else {}
        asset = source.add_table_asset(name=entry["table"], table_name=table, **where)
        batch = asset.add_batch_definition_whole_table(name=f"{entry['table']} (whole table)")
        doc = json.loads((directory / entry["file"]).read_text(encoding="utf-8"))
        gx_suite = ctx.suites.add(gx.ExpectationSuite(**doc))
        definitions.append(
            ctx.validation_definitions.add(
                gx.ValidationDefinition(name=entry["name"], data=batch, suite=gx_suite)
            )
        )
    checkpoint = ctx.checkpoints.add(
        gx.Checkpoint(
            name=f"refaudit.{manifest['suite']}",
            validation_definitions=definitions,
            result_format={"result_format": result_format},
        )
    )
    outcome = checkpoint.run()
    counts: dict[str, int] = defaultdict(int)
    broken: dict[str, str] = {}
    failed: set[str] = set()
    total = 0
    for validation in outcome.run_results.values():
        for r in validation.results:
            total += 1
            config = r.expectation_config
            assert config is not None
            check_id = config.meta["refaudit_check"]
            error = _raised(r.exception_info)
            if error:
                broken[check_id] = error
            counts[check_id] += _unexpected(r)
            if not r.success:
                failed.add(check_id)
    return GxOutcome(counts=dict(counts), broken=broken, expectations=total, failed=failed)


def _datasource(ctx: Any, url: str) -> Any:  # pragma: no cover - needs GX
    """GX's PostgreSQL datasource; its URL check wants a host, so a socket-only URL
    (`postgresql://user@/db?host=/run/postgresql`) goes through the generic SQL datasource,
    which runs the same PostgreSQL dialect."""
    import warnings

    import pydantic.v1 as pydantic_v1

    try:
        return ctx.data_sources.add_postgres(name="refaudit", connection_string=url)
    except pydantic_v1.ValidationError:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*more specific PostgresDatasource")
            return ctx.data_sources.add_sql(name="refaudit", connection_string=url)
