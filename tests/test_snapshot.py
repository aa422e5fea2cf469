"""Snapshots: `refaudit extract` then `refaudit run --snapshot` on real PostgreSQL.

A snapshot run must give the violations of a direct run row for row; it must show the
database as of the moment the extract began; broken files must be refused before use; and
every value must come back exactly as it went in.
"""

from __future__ import annotations

import csv
import itertools
import json
import os
import shutil
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import psycopg2
import pyarrow.parquet as pq
import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.errors import ExitCode, RefauditError
from refaudit.extract import ExtractOptions, _row_blocks, extract_snapshot
from refaudit.plan import required_columns
from refaudit.replay import audit_snapshot, load_snapshot, scratch_database
from refaudit.snapshot import MANIFEST, read_manifest
from refaudit.suite import Suite, load_suite

from tests.conftest import FIXTURES, SAMPLE_SUITE, as_url, execute
from tests.test_cli import assert_one_line_error, refaudit

# Hand-made rows on the bare Astegni schema with defects of most kinds, and schema objects
# that the catalog checks look at: a foreign key to the wrong table that is NOT VALID, an
# index, a disabled trigger. None of them is re-created in a snapshot, so the catalog checks
# can only agree with a direct run if they are answered from the manifest.
HAND_MADE_ROWS = """
INSERT INTO users (id, email, phone)
SELECT g, 'u' || g || '@x.et', '+2519' || lpad(g::text, 8, '0') FROM generate_series(1, 50) g;
INSERT INTO tutor_profiles (id, user_id) SELECT g, g FROM generate_series(1, 10) g;
INSERT INTO tutor_profiles (id, user_id) VALUES (11, 999), (12, 3);
INSERT INTO student_profiles (id, user_id) SELECT g, 10 + g FROM generate_series(1, 20) g;
INSERT INTO parent_profiles (id, user_id) SELECT g, 30 + g FROM generate_series(1, 10) g;
INSERT INTO tutor_packages (id, tutor_id, name)
SELECT g, 1 + g % 12, 'pkg "' || g || '", é' FROM generate_series(1, 15) g;
INSERT INTO session_requests (tutor_id, requester_id, requester_type, package_id, package_name,
    status, contact_email, contact_phone, created_at, updated_at, responded_at)
SELECT 1 + g % 14, 1 + g % 25,
       CASE WHEN g % 3 = 0 THEN 'parent' WHEN g % 17 = 0 THEN 'teacher' ELSE 'student' END,
       CASE WHEN g % 11 = 0 THEN NULL ELSE 1 + g % 17 END,
       CASE WHEN g % 5 = 0 THEN 'wrong' ELSE 'pkg "' || (1 + g % 17) || '", é' END,
       (ARRAY['pending', 'accepted', 'rejected', 'done'])[1 + g % 4],
       CASE WHEN g % 13 = 0 THEN 'not an email' ELSE 'c' || g || '@x.et' END,
       CASE WHEN g % 19 = 0 THEN '0911' ELSE '+2519' || lpad(g::text, 8, '0') END,
       timestamp '2024-01-01' + g * interval '1 hour 1.5 second',
       timestamp '2024-01-01' + g * interval '1 hour' - (g % 7) * interval '1 minute',
       CASE WHEN g % 4 IN (1, 2) THEN timestamp '2024-02-01' END
FROM generate_series(1, 500) g;
ALTER TABLE session_requests ADD CONSTRAINT fk_session_requests_tutor
    FOREIGN KEY (tutor_id) REFERENCES users (id) NOT VALID;
CREATE INDEX idx_session_requests_requester ON session_requests (requester_id);
CREATE FUNCTION noop() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
CREATE TRIGGER trg_session_requests_requester BEFORE INSERT ON session_requests
    FOR EACH ROW EXECUTE FUNCTION noop();
ALTER TABLE session_requests DISABLE TRIGGER trg_session_requests_requester;
"""


def hand_made(new_database: Any, prefix: str) -> str:
    uri = new_database(prefix)
    execute(uri, (FIXTURES / "astegni_bare.sql").read_text() + HAND_MADE_ROWS)
    return uri


@pytest.fixture(scope="module")
def source_db(new_database: Any) -> str:
    return hand_made(new_database, "snapsrc")


@pytest.fixture(scope="module")
def snapshot_dir(source_db: str, suite: Suite, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("snap") / "snapshot"
    extract_snapshot(as_url(source_db), suite, out)
    return out


def sorted_violations(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    return [rows[0], *sorted(rows[1:])]


# ------------------------------------------------------------------ same results
def test_snapshot_run_gives_the_violations_of_a_direct_run(source_db: str, tmp_path: Path) -> None:
    direct = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--db", source_db, "--out", str(tmp_path / "direct")
    )
    extract = refaudit(
        "extract", "--suite", SAMPLE_SUITE, "--db", source_db, "--out", str(tmp_path / "snap")
    )
    assert extract.returncode == ExitCode.PASSED, extract.stderr
    replay = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--snapshot", str(tmp_path / "snap"),
        "--out", str(tmp_path / "re")
    )

    assert direct.returncode == replay.returncode == ExitCode.VIOLATIONS, replay.stderr
    want = sorted_violations(tmp_path / "direct" / "violations.csv")
    got = sorted_violations(tmp_path / "re" / "violations.csv")
    assert len(want) > 100
    assert got == want
    # catalog findings among them, answered from the manifest (the scratch server has none
    # of the source's constraints, indexes or triggers)
    assert any(r[0] == "catalog.fk_session_requests_tutor" and "users" in r[8] for r in got)
    assert any(r[0] == "catalog.requester_reference_trigger" and r[4] == "disabled" for r in got)

    doc_direct = json.loads((tmp_path / "direct" / "results.json").read_text())
    doc_replay = json.loads((tmp_path / "re" / "results.json").read_text())
    assert doc_replay["checks"] == doc_direct["checks"]
    assert doc_replay["summary"] == doc_direct["summary"]
    manifest = json.loads((tmp_path / "snap" / MANIFEST).read_text())
    run = doc_replay["run"]
    assert run["source"] == "snapshot" and doc_direct["run"]["source"] == "database"
    assert run["database"] == doc_direct["run"]["database"] == manifest["database"]
    assert run["snapshot_taken_at"] == manifest["snapshot_taken_at"]
    assert run["server_version"] == manifest["server_version"]
    assert doc_replay["snapshot"]["path"] == str(tmp_path / "snap")
    assert doc_replay["snapshot"]["rows"]["session_requests"] == 500


@pytest.mark.parametrize("state", ["dirty_db", "seed_before_db", "seed_after_db"])
def test_snapshot_run_of_a_generated_database_matches_a_direct_run(
    state: str, suite: Suite, pg_server: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = as_url(request.getfixturevalue(state)[0])
    direct = run_audit(url, suite, tmp_path / "direct", options=AuditOptions(record_history=False))
    extract_snapshot(url, suite, tmp_path / "snap")
    replay = audit_snapshot(
        tmp_path / "snap",
        suite,
        tmp_path / "re",
        options=AuditOptions(record_history=False),
        server=pg_server,
    )
    want = sorted_violations(tmp_path / "direct" / "violations.csv")
    assert len(want) > 1
    assert sorted_violations(tmp_path / "re" / "violations.csv") == want
    assert [c.to_dict() for c in replay.checks] == [c.to_dict() for c in direct.checks]


def test_extract_writes_only_the_columns_the_suite_reads(snapshot_dir: Path) -> None:
    manifest = read_manifest(snapshot_dir)
    assert {t.name for t in manifest.tables} == {
        "users",
        "tutor_profiles",
        "student_profiles",
        "parent_profiles",
        "tutor_packages",
        "session_requests",
    }
    requests = manifest.table("session_requests")
    assert requests is not None and requests.primary_key == ["id"]
    frame = pd.read_parquet(snapshot_dir / requests.file)
    assert len(frame) == requests.rows == 500
    assert "id" in frame.columns and "tutor_id" in frame.columns
    assert "message" not in frame.columns and "preferred_schedule" not in frame.columns
    assert {c.name: c.type for c in requests.columns}["created_at"] == (
        "timestamp without time zone"
    )
    users = manifest.table("users")
    assert users is not None
    assert {c.name for c in users.columns} == required_columns(load_suite())["users"] | {"id"}
    assert not {"first_name", "roles", "created_at"} & {c.name for c in users.columns}
    assert manifest.catalog["session_requests"]["triggers"] == [
        {"name": "trg_session_requests_requester", "enabled": False}
    ]


# ------------------------------------------------------------------- consistency
def test_rows_written_during_the_extract_are_not_in_the_snapshot(
    new_database: Any, suite: Suite, tmp_path: Path
) -> None:
    uri = hand_made(new_database, "snapmove")
    calls: list[tuple[str, int, int]] = []

    def write_meanwhile(table: str, done: int, total: int) -> None:
        if not calls:  # the first table is starting: the snapshot is already taken
            execute(
                uri,
                "INSERT INTO session_requests (id, status) VALUES (900001, 'pending');"
                "INSERT INTO users (id) VALUES (900001);"
                "DELETE FROM tutor_packages WHERE id = 1;"
                "UPDATE tutor_profiles SET user_id = 777 WHERE id = 2;",
            )
        calls.append((table, done, total))

    manifest = extract_snapshot(as_url(uri), suite, tmp_path / "s", progress=write_meanwhile)

    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:  # the writes did land in the database
            cur.execute("SELECT count(*) FROM session_requests WHERE id = 900001")
            assert cur.fetchone() == (1,)
            cur.execute("SELECT user_id FROM tutor_profiles WHERE id = 2")
            assert cur.fetchone() == (777,)
    finally:
        conn.close()

    def read(table: str) -> pd.DataFrame:
        entry = manifest.table(table)
        assert entry is not None
        frame = pd.read_parquet(tmp_path / "s" / entry.file)
        assert len(frame) == entry.rows
        return frame

    assert calls[0][0] == "parent_profiles"  # tables go in name order; the others came after
    assert (
        900001 not in set(read("session_requests")["id"]) and len(read("session_requests")) == 500
    )
    assert 900001 not in set(read("users")["id"]) and len(read("users")) == 50
    assert 1 in set(read("tutor_packages")["id"])
    profiles = read("tutor_profiles").set_index("id")
    assert profiles.loc[2, "user_id"] == 2
    finals = {table: (done, total) for table, done, total in calls}
    assert all(done == total for done, total in finals.values())
    assert finals["session_requests"] == (500, 500)


def test_the_manifest_never_holds_the_password(
    source_db: str, suite: Suite, tmp_path: Path
) -> None:
    url = as_url(source_db).set(password="s3cret-pw")  # the test server trusts local users
    manifest = extract_snapshot(url, suite, tmp_path / "s")
    text = (tmp_path / "s" / MANIFEST).read_text()
    assert "s3cret-pw" not in text and "***" in manifest.database


def test_a_table_streams_in_batches(source_db: str, suite: Suite, tmp_path: Path) -> None:
    extract_snapshot(
        as_url(source_db), suite, tmp_path / "s", options=ExtractOptions(block_bytes=4096)
    )
    manifest = read_manifest(tmp_path / "s")
    requests = manifest.table("session_requests")
    assert requests is not None
    parquet = pq.ParquetFile(tmp_path / "s" / requests.file)
    assert parquet.num_row_groups > 5
    assert parquet.metadata.num_rows == 500
    ids = pq.read_table(tmp_path / "s" / requests.file, columns=["id"]).column("id").to_pylist()
    assert sorted(ids) == list(range(1, 501))


# ----------------------------------------------------------------- broken files
def _flip_a_byte(snap: Path) -> str:
    path = snap / "session_requests.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    return "session_requests.parquet does not match its SHA-256"


def _truncate(snap: Path) -> str:
    path = snap / "tutor_packages.parquet"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "tutor_packages.parquet has"


def _truncate_and_forge_manifest(snap: Path) -> str:
    from refaudit.snapshot import sha256_of

    path = snap / "users.parquet"
    path.write_bytes(path.read_bytes()[:-20])
    doc = json.loads((snap / MANIFEST).read_text())
    entry = next(t for t in doc["tables"] if t["name"] == "users")
    entry["bytes"], entry["sha256"] = path.stat().st_size, sha256_of(path)
    (snap / MANIFEST).write_text(json.dumps(doc))
    return "users.parquet is not readable Parquet"


def _delete_a_file(snap: Path) -> str:
    (snap / "users.parquet").unlink()
    return "users.parquet is missing"


def _delete_the_manifest(snap: Path) -> str:
    (snap / MANIFEST).unlink()
    return "manifest.json is missing"


def _garble_the_manifest(snap: Path) -> str:
    (snap / MANIFEST).write_text('{"format": "refaudit-snapshot", "tables": [')
    return "manifest.json cannot be read"


@pytest.mark.parametrize(
    "damage",
    [
        _flip_a_byte,
        _truncate,
        _truncate_and_forge_manifest,
        _delete_a_file,
        _delete_the_manifest,
        _garble_the_manifest,
    ],
)
def test_a_damaged_snapshot_is_refused(snapshot_dir: Path, tmp_path: Path, damage: Any) -> None:
    snap = tmp_path / "snap"
    shutil.copytree(snapshot_dir, snap)
    expected = damage(snap)
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--snapshot", str(snap), "--out", str(tmp_path / "o")
    )
    line = assert_one_line_error(proc, ExitCode.USAGE)
    assert expected in line
    assert "extract the snapshot again" in line
    assert not (tmp_path / "o" / "results.json").exists()


def test_a_snapshot_without_what_the_suite_reads_is_refused(source_db: str, tmp_path: Path) -> None:
    narrow = tmp_path / "narrow.yml"
    narrow.write_text(
        "suite: narrow\ntables: {tutor_profiles: {key: id}, users: {key: id}}\nchecks:\n"
        "  - {id: r, kind: reference, table: tutor_profiles, column: user_id,\n"
        "     target: {table: users, column: id}}\n"
    )
    proc = refaudit(
        "extract",
        "--db",
        source_db,
        "--suite",
        str(narrow),
        "--out",
        str(tmp_path / "snap"),
        "--quiet",
    )
    assert proc.returncode == ExitCode.PASSED, proc.stderr
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--snapshot", str(tmp_path / "snap"),
        "--out", str(tmp_path / "o")
    )
    line = assert_one_line_error(proc, ExitCode.USAGE)
    assert "has no table parent_profiles, which suite astegni reads" in line


def test_extract_refuses_a_non_empty_directory(source_db: str, tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("precious")
    proc = refaudit("extract", "--suite", SAMPLE_SUITE, "--db", source_db, "--out", str(tmp_path))
    assert "is not empty" in assert_one_line_error(proc, ExitCode.USAGE)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_repair_from_a_snapshot_is_a_usage_error(snapshot_dir: Path, tmp_path: Path) -> None:
    proc = refaudit(
        "run", "--suite", SAMPLE_SUITE, "--snapshot", str(snapshot_dir), "--repair",
        "--out", str(tmp_path)
    )
    assert "--repair needs the live database" in assert_one_line_error(proc, ExitCode.USAGE)


def test_db_and_snapshot_together_is_a_usage_error(source_db: str, tmp_path: Path) -> None:
    proc = refaudit("run", "--suite", SAMPLE_SUITE, "--db", source_db, "--snapshot", str(tmp_path))
    assert "exclude each other" in assert_one_line_error(proc, ExitCode.USAGE)


def _rows_with_infinity(before: int, after: int) -> str:
    rows = (
        "INSERT INTO session_requests (created_at, contact_email) SELECT timestamp '2024-01-01'"
        " + g * interval '1 minute', repeat('m', 50) FROM generate_series(1, {}) g;"
    )
    return (
        (FIXTURES / "astegni_bare.sql").read_text()
        + (rows.format(before) if before else "")
        + "INSERT INTO session_requests (created_at) VALUES ('infinity');"
        + rows.format(after)
    )


@pytest.mark.parametrize("before", [0, 40_000], ids=["first-block", "later-block"])
def test_a_value_arrow_cannot_hold_fails_the_extract_cleanly(
    new_database: Any, tmp_path: Path, before: int
) -> None:
    # The bad value comes while the server is still sending the table (first block: the copy
    # is cut short at once; later block: after row groups were written), so the COPY must be
    # cancelled and its thread ended; the process must then exit with nothing else on stderr
    # (Arrow's threads reading from Python at exit once aborted it here, under load).
    uri = new_database("snapinf")
    execute(uri, _rows_with_infinity(before, 100_000))
    proc = refaudit(
        "extract", "--suite", SAMPLE_SUITE, "--db", uri, "--out", str(tmp_path / "s"), "--quiet"
    )
    line = assert_one_line_error(proc, ExitCode.RUNTIME)
    assert "session_requests" in line and "created_at" in line and "infinity" in line
    assert "cancel" not in line.lower()  # our own cancel of the COPY is not the error
    assert list((tmp_path / "s").iterdir()) == []


def test_a_failed_extract_leaves_no_copy_running(
    new_database: Any, suite: Suite, tmp_path: Path
) -> None:
    uri = new_database("snapinf")
    execute(uri, _rows_with_infinity(20_000, 100_000))
    with pytest.raises(RefauditError, match=r"session_requests .*column created_at.*infinity"):
        extract_snapshot(as_url(uri), suite, tmp_path / "s", options=ExtractOptions(4096))
    assert not [t for t in threading.enumerate() if t.name == "refaudit-copy"]
    assert list((tmp_path / "s").iterdir()) == []
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid() AND query ILIKE 'COPY%' AND state = 'active'"
            )
            assert cur.fetchone() == (0,)
    finally:
        conn.close()


@pytest.mark.parametrize("block_bytes", [1, 7, 64, 1000, 1 << 20])
def test_the_copy_is_cut_into_blocks_of_whole_rows(block_bytes: int) -> None:
    rows = [
        f'{i},"a ""quoted"" value, with\nnewlines\n",{"x" * (i % 300)},""\n'.encode()
        if i % 3 else f"{i},plain,,\n".encode()
        for i in range(2000)
    ]
    data = b"".join(rows)
    read_fd, write_fd = os.pipe()
    writer = threading.Thread(target=lambda: (os.write(write_fd, data), os.close(write_fd)))
    writer.start()
    try:
        blocks = list(_row_blocks(read_fd, block_bytes))
    finally:
        writer.join()
        os.close(read_fd)
    assert b"".join(blocks) == data
    ends = set(itertools.accumulate(len(r) for r in rows))
    assert all(end in ends for end in itertools.accumulate(len(b) for b in blocks))
    if block_bytes < 1 << 20:
        assert len(blocks) > 1
        # no block holds more than block_bytes unless it is one row
        assert all(len(b) <= block_bytes or b.count(b"\n") <= 3 for b in blocks)


# -------------------------------------------------------------------- round trip
ODD_SCHEMA = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN short_text AS varchar(10);
CREATE TABLE odd (
    id bigint PRIMARY KEY, t text, v varchar(40), c char(5), n numeric(12, 4), nu numeric,
    f8 double precision, f4 real, b boolean, d date, ts timestamp, tstz timestamptz,
    ts3 timestamp(3), i2 smallint, i4 integer, arr text[], iarr integer[], u uuid, j jsonb,
    iv interval, m mood, dom short_text, tm time, unused text);
INSERT INTO odd VALUES
 (4611686018427387905, E'He said "hi", then left\\nnext line, é ü 中文 🙂', '', 'ab',
  12345678.1234, 3.14159265358979323846264338327950288419716939937510, 0.1, 1.5, true,
  '2024-02-29', '2024-01-02 03:04:05.123456', '2024-01-02 03:04:05.654321+03',
  '2024-01-02 03:04:05.123', -32768, 2147483647, '{a,"b,c","d\\"e",NULL,""}', '{1,NULL,3}',
  'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '{"a": [1, "x\\ny"]}',
  '1 year 2 mons 3 days 04:05:06.789', 'happy', 'short', '23:59:59.999999', 'x'),
 (4611686018427387903, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL),
 (-9223372036854775807, '', E' lead,\\ttab\\r\\ncrlf\\\\back ', 'abcde', -0.0001, '-0',
  'NaN', '-Infinity', false, '0001-01-01', '0001-01-01 00:00:00', '1970-01-01 00:00:00.000001+00',
  NULL, 0, 0, '{}', '{}', NULL, 'null', '-00:00:00.000001', 'sad', '', '00:00', NULL),
 (3, E'x\\n\\\\.\\ny', E'\\\\N', ' ', 1e-4, 1e30, 1e-300, 3.4e38, NULL, '9999-12-31',
  '2262-04-11 23:47:16.854775', '1677-09-21 00:12:43.145225+00', NULL, NULL, NULL,
  '{"NULL"}', NULL, NULL, '"é"', NULL, NULL, NULL, NULL, NULL),
 (4, 'NULL', '""', NULL, NULL, NULL, 'Infinity', NULL, NULL, NULL, NULL, NULL, NULL,
  NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL);
"""
ODD_COLUMNS = [
    "t", "v", "c", "n", "nu", "f8", "f4", "b", "d", "ts", "tstz", "ts3", "i2", "i4", "arr",
    "iarr", "u", "j", "iv", "m", "dom", "tm",
]  # fmt: skip
ODD_SUITE = {
    "suite": "odd",
    "tables": {"odd": {"key": "id"}},
    "checks": [
        {"id": "odd.not_null", "kind": "not_null", "table": "odd", "columns": ODD_COLUMNS},
        {
            "id": "odd.t.ascii",
            "kind": "pattern",
            "table": "odd",
            "column": "t",
            "regex": "^[ -~]*$",
        },
        {"id": "odd.v.in_set", "kind": "in_set", "table": "odd", "column": "v", "values": [""]},
        {  # shows timestamptz values as text, i.e. in the session's TimeZone
            "id": "odd.tstz.early",
            "kind": "row_rule",
            "table": "odd",
            "columns": ["tstz"],
            "require": {"column": "tstz", "lt": "2000-01-01T00:00:00Z"},
        },
    ],
}


def _as_text(uri: str) -> tuple[list[tuple[Any, ...]], list[tuple[str, str]]]:
    """Every row with every column as PostgreSQL prints it, and the column types."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute("SET TimeZone = 'Asia/Tokyo'")
            cur.execute(
                f"SELECT id, {', '.join(f'{c}::text' for c in ODD_COLUMNS)} FROM odd ORDER BY id"
            )
            rows = cur.fetchall()
            cur.execute(
                "SELECT attname::text, format_type(atttypid, atttypmod) FROM pg_attribute "
                "WHERE attrelid = 'odd'::regclass AND attnum > 0 AND NOT attisdropped "
                "ORDER BY attnum"
            )
            return rows, cur.fetchall()
    finally:
        conn.close()


@pytest.fixture(scope="module")
def odd_db(new_database: Any) -> str:
    uri = new_database("odd")
    # a TimeZone other than the server's: a snapshot run must show timestamptz values as the
    # source's sessions do
    execute(
        uri,
        ODD_SCHEMA + "DO $$ BEGIN EXECUTE format('ALTER DATABASE %I SET TimeZone TO %L', "
        "current_database(), 'Asia/Kolkata'); END $$;",
    )
    return uri


def test_values_survive_the_round_trip(odd_db: str, pg_server: str, tmp_path: Path) -> None:
    suite = Suite.model_validate(ODD_SUITE)
    manifest = extract_snapshot(as_url(odd_db), suite, tmp_path / "s")
    odd = manifest.table("odd")
    assert odd is not None and odd.rows == 5 and odd.column("unused") is None

    # the Parquet file as pandas and Arrow read it
    by_id = {r["id"]: r for r in pq.read_table(tmp_path / "s" / odd.file).to_pylist()}
    first = by_id[4611686018427387905]
    assert first["t"] == 'He said "hi", then left\nnext line, é ü 中文 🙂'
    assert first["v"] == "" and by_id[4611686018427387903]["v"] is None
    assert by_id[4]["t"] == "NULL" and by_id[3]["v"] == "\\N"
    assert first["n"] == Decimal("12345678.1234")
    assert str(first["ts"]) == "2024-01-02 03:04:05.123456"
    assert first["tstz"].isoformat() == "2024-01-02T00:04:05.654321+00:00"
    assert first["arr"] == '{a,"b,c","d\\"e",NULL,""}'
    assert all(v is None for k, v in by_id[4611686018427387903].items() if k != "id")
    frame = pd.read_parquet(tmp_path / "s" / odd.file)
    assert str(frame["id"].dtype) == "int64" and 4611686018427387905 in set(frame["id"])

    # loaded back, PostgreSQL prints every value as the source does
    with scratch_database(pg_server, manifest) as (uri, notes):
        load_snapshot(uri, tmp_path / "s", manifest)
        rows, types = _as_text(uri)
    want_rows, want_types = _as_text(odd_db)
    assert notes == []
    assert rows == want_rows
    # the same types, a domain as its base type; the column no check reads is not there
    source_types = {k: v for k, v in want_types if k != "unused"}
    assert dict(types) == {**source_types, "dom": "character varying(10)"}


def test_snapshot_audit_of_odd_values_matches_direct(
    odd_db: str, pg_server: str, tmp_path: Path
) -> None:
    suite = Suite.model_validate(ODD_SUITE)
    extract_snapshot(as_url(odd_db), suite, tmp_path / "s")
    direct = run_audit(as_url(odd_db), suite, tmp_path / "direct")
    replay = audit_snapshot(tmp_path / "s", suite, tmp_path / "re", server=pg_server)
    want = sorted_violations(tmp_path / "direct" / "violations.csv")
    assert sorted_violations(tmp_path / "re" / "violations.csv") == want
    assert any(r[0] == "odd.t.ascii" and "中文" in r[4] for r in want)
    assert any(
        r[0] == "odd.tstz.early" and r[4] == "2024-01-02 05:34:05.654321+05:30" for r in want
    )
    assert [c.violations for c in replay.checks] == [c.violations for c in direct.checks]
    assert replay.run.source == "snapshot"
