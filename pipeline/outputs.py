"""Writers for a run's files: results.json, junit.xml and report.html.

violations.csv is streamed by the engine while the checks run (see `ViolationSink`).
"""

from __future__ import annotations

import contextlib
import io
import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import Environment, FileSystemBytecodeCache, PackageLoader, select_autoescape
from jinja2.bccache import Bucket

from . import __version__, report
from .results import AuditResult, CheckResult, FailOn, RunInfo


def results_document(result: AuditResult, fail_on: FailOn) -> dict[str, Any]:
    summary: dict[str, Any] = {
        "checks": len(result.checks),
        "failed": sum(1 for c in result.checks if c.status == "failed"),
        "warned": sum(1 for c in result.checks if c.status == "warned"),
        "passed": sum(1 for c in result.checks if c.status == "passed"),
        "violations": result.total_violations,
    }
    if result.baseline is not None:
        summary["known"] = result.baseline["known"]
        summary["new"] = result.baseline["new"]
    return {
        "run": asdict(result.run),
        "verdict": result.verdict(fail_on),
        "exit_code": int(result.exit_code(fail_on)),
        "fail_on": fail_on,
        "summary": summary,
        "checks": [c.to_dict() for c in result.checks],
        "files": result.files,
        **result.sections(),
    }


def _write_atomically(
    path: Path, text: str | bytes, before_rename: Callable[[], None] | None = None
) -> None:
    """Write next to `path`, then rename: a reader never sees half a file, and a run stopped
    on the way (an error, Ctrl-C, SIGTERM) leaves no temporary file behind.
    `before_rename` runs once the content is safely on disk."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        if isinstance(text, bytes):
            tmp.write_bytes(text)
        else:
            tmp.write_text(text, encoding="utf-8")
        if before_rename is not None:
            before_rename()
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def write_results_json(
    result: AuditResult,
    path: Path,
    fail_on: FailOn,
    before_rename: Callable[[], None] | None = None,
) -> None:
    _write_atomically(
        path,
        json.dumps(results_document(result, fail_on), indent=2, default=str) + "\n",
        before_rename,
    )


SAMPLE_KEYS = 5
"""How many keys a JUnit failure message names."""


def junit_message(c: CheckResult) -> str:
    """One line for CI: counts, known/new against the baseline, threshold and a few keys."""
    counts = c.found()
    if c.new is not None:
        counts += f": {c.new} new, {c.known} known in the baseline"
    wanted = "new" if c.new is not None else None
    keys = [s["key"] for s in c.sample if wanted is None or s.get("baseline") == wanted]
    keys = [k for k in keys if k]  # a finding about the whole table has no key
    shown = ", ".join(keys[:SAMPLE_KEYS])
    more = f" (+{c.gated - SAMPLE_KEYS} more)" if c.gated > SAMPLE_KEYS and shown else ""
    label = "new keys" if wanted else "keys"
    return f"{c.id}: {counts}; threshold {c.threshold}" + (
        f"; {label} {shown}{more}" if shown else ""
    )


def _sample_lines(c: CheckResult, limit: int = 10) -> str:
    lines = []
    for s in c.sample[:limit]:
        tag = f"[{s['baseline']}] " if s.get("baseline") else ""
        line = f"{tag}{s['table']} {s['key']}: {s['column']}={s['value']}"
        if s.get("diagnosis"):
            line += f" ({s['diagnosis']})"
        lines.append(line)
    if c.violations > limit:
        lines.append(f"... {c.violations - limit} more in violations.csv")
    return "\n".join(lines)


def _testsuites(name: str, tests: int, failures: int, errors: int, time_s: float) -> ET.Element:
    return ET.Element(
        "testsuites",
        name=name,
        tests=str(tests),
        failures=str(failures),
        errors=str(errors),
        time=f"{time_s:.3f}",
    )


# What XML 1.0 cannot hold, escaped or not: the C0 control characters but tab, newline and
# carriage return, lone surrogates, U+FFFE and U+FFFF. PostgreSQL text may hold all but NUL.
_NOT_XML = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def xml_text(text: str) -> str:
    """`text` as XML can carry it: a character XML forbids becomes its visible escape
    (`\\x1b`), everything else stays (ElementTree escapes `<`, `&` and quotes)."""
    return _NOT_XML.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def _xml_safe(root: ET.Element) -> None:
    for node in root.iter():
        node.attrib = {k: xml_text(v) for k, v in node.attrib.items()}
        if node.text:
            node.text = xml_text(node.text)
        if node.tail:
            node.tail = xml_text(node.tail)


def _write_xml(root: ET.Element, path: Path) -> None:
    _xml_safe(root)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    buffer = io.BytesIO()
    tree.write(buffer, encoding="utf-8", xml_declaration=True)
    _write_atomically(path, buffer.getvalue())


def write_junit(result: AuditResult, path: Path, fail_on: FailOn) -> None:
    """One <testcase> per check; failing checks carry a <failure> with counts and sample keys.

    The layout (testsuites > testsuite > testcase > failure | system-out) is the one JUnit,
    Jenkins, GitLab, GitHub test-report actions and Azure DevOps read.
    """
    failing = {c.id for c in result.failing(fail_on)}
    root = _testsuites("refaudit", len(result.checks), len(failing), 0, result.run.duration_s)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"refaudit.{result.run.suite}",
        tests=str(len(result.checks)),
        failures=str(len(failing)),
        errors="0",
        skipped="0",
        time=f"{result.run.duration_s:.3f}",
        timestamp=result.run.started_at,
    )
    props = ET.SubElement(suite, "properties")
    for name in ("run_id", "database", "snapshot_taken_at", "refaudit_version"):
        ET.SubElement(props, "property", name=name, value=str(getattr(result.run, name)))
    baseline = result.baseline
    if baseline:
        for name in ("path", "known", "new", "resolved"):
            ET.SubElement(props, "property", name=f"baseline.{name}", value=str(baseline[name]))
    for c in result.checks:
        case = ET.SubElement(
            suite, "testcase", classname=f"{c.family}.{c.table}", name=c.id, time="0"
        )
        message = junit_message(c)
        if c.id in failing:
            fail = ET.SubElement(case, "failure", message=message, type=c.severity)
            fail.text = _sample_lines(c)
        elif c.violations:
            out = ET.SubElement(case, "system-out")
            out.text = f"{c.status}: {message}"
    _write_xml(root, path)


def write_error_outputs(run: RunInfo, out: Path, message: str, exit_code: int, kind: str) -> None:
    """The files of a run that failed: results.json with verdict ERROR and a JUnit <error>."""
    doc = {
        "run": asdict(run),
        "verdict": "ERROR",
        "exit_code": exit_code,
        "error": message,
        "summary": None,
        "checks": [],
        "files": {"results": "results.json", "junit": "junit.xml"},
    }
    root = _testsuites("refaudit", 1, 0, 1, run.duration_s)
    suite = ET.SubElement(
        root,
        "testsuite",
        name=f"refaudit.{run.suite}",
        tests="1",
        failures="0",
        errors="1",
        skipped="0",
        time=f"{run.duration_s:.3f}",
        timestamp=run.started_at,
    )
    case = ET.SubElement(suite, "testcase", classname="refaudit", name="audit run", time="0")
    err = ET.SubElement(case, "error", message=message, type=kind)
    err.text = "The audit did not complete; no check result was concluded."
    _write_xml(root, out / "junit.xml")
    _write_atomically(out / "results.json", json.dumps(doc, indent=2, default=str) + "\n")


class _CompiledTemplates(FileSystemBytecodeCache):
    """The report template's compiled code, kept between runs: jinja2's bytecode cache, in
    jinja2's own directory for the user (`_jinja2-cache-<uid>` in the system's temporary
    directory, which jinja2 makes private to the user and refuses if another user owns it),
    named by the versions of refaudit and jinja2 (the template's source is checked by
    jinja2). Compiling the template takes ~80 ms of each run otherwise. A cache that cannot
    be read or written is a template compiled again, never a failed report."""

    def __init__(self) -> None:
        super().__init__(None, f"refaudit-{__version__}-jinja2-{jinja2.__version__}-%s.cache")

    def load_bytecode(self, bucket: Bucket) -> None:
        try:
            super().load_bytecode(bucket)
        except Exception:  # unreadable, cut short, written otherwise: compile again
            bucket.reset()

    def dump_bytecode(self, bucket: Bucket) -> None:
        with contextlib.suppress(OSError):
            super().dump_bytecode(bucket)


def _bytecode_cache() -> FileSystemBytecodeCache | None:
    try:
        return _CompiledTemplates()
    except (OSError, RuntimeError):  # no private directory to be had: compile each run
        return None


_env = Environment(
    loader=PackageLoader(__package__ or "refaudit", "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
    bytecode_cache=_bytecode_cache(),
)


_env.globals.update(
    fmt_int=report.fmt_int,
    fmt_rate=report.fmt_rate,
    fmt_time=report.fmt_time,
    fmt_duration=report.fmt_duration,
    plural=report.plural,
)
_env.filters["breakable"] = report.breakable
_env.filters["wrappable"] = report.wrappable


def load_templates() -> None:
    """Load and compile report.html's template (kept by the environment for every later use)."""
    _env.get_template("report.html.j2")


def render_report(result: AuditResult, fail_on: FailOn) -> str:
    """report.html as a string: one self-contained page (see `pipeline/report.py`)."""
    doc = results_document(result, fail_on)
    template = _env.get_template("report.html.j2")
    return template.render(
        r=result, doc=doc, fail_on=fail_on, v=report.build_view(result, doc, fail_on)
    )


def write_report(result: AuditResult, path: Path, fail_on: FailOn) -> None:
    _write_atomically(path, render_report(result, fail_on))
