"""`refaudit demo`: an embedded server, a sample database built by the suite's own generator,
and a full audit of it.

The generator belongs to the suite (`demo:` in the suite file names a Python file beside it),
so nothing schema-specific lives in the engine. A generator may need numpy and pandas (the
`dataframes` extra); so that the demo works from the base install, a suite may ship a
*recorded sample*: every statement the generator ran for one `(requests, seed)`, with the
data of each COPY, in `<generator>-<requests>-<seed>.jsonl.gz` beside it. Replaying it runs
the same statements in the same order, so it gives the very database the generator gives.

A recording is made by the generator itself, never by hand:

    python -m refaudit.demo --write-recording [--suite SUITE] [--requests N] [--seed S]

and a test records it again and compares it byte for byte with the shipped file.
"""

from __future__ import annotations

import argparse
import gzip
import importlib.util
import io
import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import psycopg2

from .errors import MissingExtra, RefauditError, SuiteError
from .suite import Suite

RECORDING_FORMAT = "refaudit-recorded-sample"
RECORDING_VERSION = 1
# what a generator may import that the `dataframes` extra installs
_EXTRA_MODULES = {"numpy": "dataframes", "pandas": "dataframes"}


def load_generator(suite: Suite) -> ModuleType:
    """Import the suite's demo generator module by path.

    A generator that needs numpy or pandas when they are not installed is a `MissingExtra`
    naming the `dataframes` extra; any other missing module a `SuiteError` naming it."""
    path = _generator_path(suite)
    spec = importlib.util.spec_from_file_location(f"refaudit_demo_{suite.suite}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except ModuleNotFoundError as exc:
        top = (exc.name or "").partition(".")[0]
        shipped = ", ".join(f"--requests {r} --seed {s}" for r, s in recorded_sizes(suite))
        hint = f" (a recorded sample needs nothing more: {shipped})" if shipped else ""
        if top in _EXTRA_MODULES:
            raise MissingExtra(
                f"demo generator {path}", top, _EXTRA_MODULES[top], hint=hint
            ) from None
        raise SuiteError(
            f"{path}: the demo generator imports {top}, which is not installed; install it"
        ) from None
    return module


def _generator_path(suite: Suite) -> Path:
    path = suite.demo_path
    if path is None:
        raise SuiteError(f"suite {suite.suite} names no `demo:` generator; add `demo: demo.py`")
    if not path.is_file():
        raise SuiteError(f"{suite.path}: demo: {path} does not exist")
    return path


def build_sample(
    uri: str, suite: Suite, *, requests: int = 3000, seed: int = 7, truth: bool = False
) -> Any:
    """Build the suite's sample database at `uri` with its generator; returns the generator's
    ground truth."""
    gen = load_generator(suite)
    conn = psycopg2.connect(uri)
    try:
        truth_value = gen.build(conn, requests=requests, seed=seed, truth=truth)
        conn.commit()
    finally:
        conn.close()
    return truth_value


# ----------------------------------------------------------------------------- recordings
def recording_path(suite: Suite, requests: int, seed: int) -> Path:
    """Where the recorded sample of `(requests, seed)` lives: beside the generator."""
    path = _generator_path(suite)
    return path.with_name(f"{path.stem}-{requests}-{seed}.jsonl.gz")


def recorded_sizes(suite: Suite) -> list[tuple[int, int]]:
    """The `(requests, seed)` of every recorded sample the suite ships."""
    path = suite.demo_path
    if path is None:
        return []
    name = re.compile(rf"{re.escape(path.stem)}-(\d+)-(-?\d+)\.jsonl\.gz")
    found = (name.fullmatch(p.name) for p in path.parent.iterdir())
    return sorted((int(m[1]), int(m[2])) for m in found if m)


def sample_builder(suite: Suite, *, requests: int = 3000, seed: int = 7) -> Callable[[str], None]:
    """What builds the sample database of `(requests, seed)` at a URI: the recorded sample
    when the suite ships one (no numpy, no pandas), else the generator. Fails here, before
    any server is started, when the generator cannot be imported."""
    recording = recording_path(suite, requests, seed)
    if recording.is_file():
        return lambda uri: replay_sample(uri, recording)
    gen = load_generator(suite)

    def build(uri: str) -> None:
        conn = psycopg2.connect(uri)
        try:
            gen.build(conn, requests=requests, seed=seed, truth=False)
            conn.commit()
        finally:
            conn.close()

    return build


class _RecordingCursor:
    """A DB-API cursor that runs each statement and writes it (and a COPY's data) down."""

    def __init__(self, cursor: Any, lines: list[bytes]) -> None:
        self._cursor = cursor
        self._lines = lines

    def execute(self, statement: str, params: Any = None) -> None:
        text = self._cursor.mogrify(statement, params).decode("utf-8")
        self._cursor.execute(text)
        self._write({"sql": text})

    def copy_expert(self, statement: str, file: IO[bytes], *args: Any, **kwargs: Any) -> None:
        data = file.read()
        raw = data if isinstance(data, bytes) else data.encode("utf-8")
        self._cursor.copy_expert(statement, io.BytesIO(raw), *args, **kwargs)
        self._write({"sql": statement, "copy": raw.decode("utf-8")})

    def _write(self, record: dict[str, Any]) -> None:
        self._lines.append(json.dumps(record, ensure_ascii=False).encode("utf-8") + b"\n")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)

    def __enter__(self) -> _RecordingCursor:
        return self

    def __exit__(self, *exc: object) -> None:
        self._cursor.close()


class _RecordingConnection:
    def __init__(self, conn: Any, lines: list[bytes]) -> None:
        self._conn = conn
        self._lines = lines

    def cursor(self, *args: Any, **kwargs: Any) -> _RecordingCursor:
        return _RecordingCursor(self._conn.cursor(*args, **kwargs), self._lines)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def record_sample(uri: str, suite: Suite, *, requests: int = 3000, seed: int = 7) -> bytes:
    """Build the sample database at `uri` with the generator and return the recording of it
    (uncompressed): a header line, then one JSON line per statement, in order."""
    gen = load_generator(suite)
    header = {
        "format": RECORDING_FORMAT,
        "version": RECORDING_VERSION,
        "suite": suite.suite,
        "generator": _generator_path(suite).name,
        "requests": requests,
        "seed": seed,
    }
    lines = [json.dumps(header).encode("utf-8") + b"\n"]
    conn = psycopg2.connect(uri)
    try:
        gen.build(_RecordingConnection(conn, lines), requests=requests, seed=seed, truth=False)
        conn.commit()
    finally:
        conn.close()
    return b"".join(lines)


def _records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        with gzip.open(path, "rt", encoding="utf-8") as lines:
            header = json.loads(next(lines, "{}"))
            if header.get("format") != RECORDING_FORMAT or header.get("version") != 1:
                raise SuiteError(f"{path} is not a refaudit recorded sample (version 1)")
            for line in lines:
                yield json.loads(line)
    except (OSError, EOFError, ValueError) as exc:
        raise SuiteError(f"recorded sample {path} is unreadable ({exc}); record it again") from None


def replay_sample(uri: str, path: Path) -> None:
    """Run a recorded sample's statements at `uri` (an empty database), in one transaction."""
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            for record in _records(path):
                if "copy" in record:
                    cur.copy_expert(record["sql"], io.BytesIO(record["copy"].encode("utf-8")))
                else:
                    cur.execute(record["sql"])
        conn.commit()
    finally:
        conn.close()


def write_recording(suite: Suite, *, requests: int = 3000, seed: int = 7) -> Path:
    """Record the sample of `(requests, seed)` on an embedded server and write it beside
    the generator (gzip without a timestamp, so the same recording gives the same file)."""
    from .embedded import create_database, embedded_server

    with embedded_server() as server:
        uri = create_database(server, "refaudit_recording")
        data = record_sample(uri, suite, requests=requests, seed=seed)
    path = recording_path(suite, requests, seed)
    path.write_bytes(gzip.compress(data, compresslevel=9, mtime=0))
    return path


def main(argv: list[str] | None = None) -> None:
    """`python -m refaudit.demo --write-recording`: (re)write a suite's recorded sample."""
    from .suite import load_suite

    parser = argparse.ArgumentParser(
        prog="python -m refaudit.demo",
        description="Write the recorded sample of a suite's demo generator beside it.",
    )
    parser.add_argument("--write-recording", action="store_true", required=True)
    parser.add_argument("--suite", help="suite YAML (default: the Astegni sample suite)")
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    try:
        path = write_recording(load_suite(args.suite), requests=args.requests, seed=args.seed)
    except RefauditError as exc:
        raise SystemExit(f"python -m refaudit.demo: {exc}") from None
    print(f"wrote {path} ({path.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
