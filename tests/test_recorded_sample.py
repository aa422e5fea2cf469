"""The recorded sample `refaudit demo` loads without numpy: made by the suite's generator, it
never drifts from it, and replaying it gives the database the generator builds."""

from __future__ import annotations

import gzip
from pathlib import Path

import psycopg2
import pytest
from refaudit.demo import (
    build_sample,
    record_sample,
    recorded_sizes,
    recording_path,
    replay_sample,
)
from refaudit.errors import SuiteError
from refaudit.suite import Suite

# everything a database of the sample is made of, as text: each table's rows in key order,
# its constraints, indexes and the state of its sequences
CATALOG_SQL = """
SELECT 'constraint', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid)
FROM pg_constraint WHERE connamespace = 'public'::regnamespace
UNION ALL
SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL
SELECT 'column', table_name || '.' || column_name || ' ' || data_type || ' '
       || coalesce(column_default, '') || ' ' || is_nullable
FROM information_schema.columns WHERE table_schema = 'public'
ORDER BY 1, 2
"""


def database_text(uri: str) -> list[tuple[str, str]]:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(CATALOG_SQL)
            facts = [(kind, text) for kind, text in cur.fetchall()]
            cur.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1")
            for (table,) in cur.fetchall():
                cur.execute(f"SELECT count(*), md5(string_agg(t::text, E'\\n' ORDER BY t.id)) "
                            f"FROM {table} t")  # fmt: skip
                count, digest = cur.fetchone()
                facts.append((f"rows of {table}", f"{count} {digest}"))
            cur.execute("SELECT sequencename, last_value FROM pg_sequences ORDER BY 1")
            facts += [(f"sequence {name}", str(value)) for name, value in cur.fetchall()]
    finally:
        conn.close()
    return facts


def test_the_suite_ships_the_default_demo_size(suite: Suite) -> None:
    assert recorded_sizes(suite) == [(3000, 7)]
    assert recording_path(suite, 3000, 7).is_file()


def test_the_shipped_recording_is_what_the_generator_records_now(
    new_database, suite: Suite
) -> None:  # type: ignore[no-untyped-def]
    """Fails when the generator (or the recording) changed without the other: record it
    again with `python -m refaudit.demo --write-recording`."""
    recorded = record_sample(new_database("record"), suite, requests=3000, seed=7)
    shipped = gzip.decompress(recording_path(suite, 3000, 7).read_bytes())
    assert recorded == shipped


def test_replaying_gives_the_database_the_generator_builds(
    new_database, suite: Suite
) -> None:  # type: ignore[no-untyped-def]
    built, replayed = new_database("built"), new_database("replayed")
    build_sample(built, suite, requests=3000, seed=7)
    replay_sample(replayed, recording_path(suite, 3000, 7))
    facts = database_text(built)
    rows = {kind: text.split()[0] for kind, text in facts if kind.startswith("rows of")}
    assert len(rows) == 6 and rows["rows of session_requests"] == "3006"  # 6 seed + 3000
    assert any("NOT VALID" in text for _, text in facts)  # what finish_schema adds
    assert database_text(replayed) == facts


def test_a_damaged_recording_is_a_one_line_suite_error(
    new_database, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "demo-1-1.jsonl.gz"
    path.write_bytes(b"not gzip")
    with pytest.raises(SuiteError, match=r"recorded sample .* is unreadable"):
        replay_sample(new_database("damaged"), path)
    path.write_bytes(gzip.compress(b'{"format": "something else"}\n'))
    with pytest.raises(SuiteError, match="is not a refaudit recorded sample"):
        replay_sample(new_database("foreign"), path)
