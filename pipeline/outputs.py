"""Writers for a run's files: results.json, junit.xml and report.html.

violations.csv is streamed by the engine while the checks run (see `ViolationSink`).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from dataclasses import asdict
from pathlib import Path
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from pipeline import report
from pipeline.results import AuditResult, FailOn


def results_document(result: AuditResult, fail_on: FailOn) -> dict[str, Any]:
    return {
        "run": asdict(result.run),
        "verdict": result.verdict(fail_on),
        "exit_code": int(result.exit_code(fail_on)),
        "fail_on": fail_on,
        "summary": {
            "checks": len(result.checks),
            "failed": sum(1 for c in result.checks if c.status == "failed"),
            "warned": sum(1 for c in result.checks if c.status == "warned"),
            "passed": sum(1 for c in result.checks if c.status == "passed"),
            "violations": result.total_violations,
        },
        "checks": [c.to_dict() for c in result.checks],
        "files": result.files,
        **result.extra,
    }


def write_results_json(result: AuditResult, path: Path, fail_on: FailOn) -> None:
    path.write_text(
        json.dumps(results_document(result, fail_on), indent=2, default=str) + "\n",
        encoding="utf-8",
    )


def write_junit(result: AuditResult, path: Path, fail_on: FailOn) -> None:
    """One <testcase> per check; failing checks carry a <failure> with counts and sample keys."""
    failing = {c.id for c in result.failing(fail_on)}
    suite = ET.Element(
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
    for c in result.checks:
        case = ET.SubElement(
            suite, "testcase", classname=f"{c.family}.{c.table}", name=c.id, time="0"
        )
        keys = ", ".join(s["key"] for s in c.sample[:5])
        message = (
            f"{c.violations} violations in {c.rows_checked} rows ({c.rate:.2%}), "
            f"threshold {c.threshold}" + (f"; keys {keys}" if keys else "")
        )
        if c.id in failing:
            fail = ET.SubElement(case, "failure", message=message, type=c.severity)
            fail.text = "\n".join(
                f"{s['table']} {s['key']}: {s['column']}={s['value']}"
                + (f" ({s['diagnosis']})" if s.get("diagnosis") else "")
                for s in c.sample[:10]
            )
        elif c.violations:
            out = ET.SubElement(case, "system-out")
            out.text = f"{c.status}: {message}"
    root = ET.Element("testsuites", name="refaudit")
    root.append(suite)
    tree = ET.ElementTree(root)
    ET.indent(tree)
    tree.write(path, encoding="utf-8", xml_declaration=True)


_env = Environment(
    loader=PackageLoader("pipeline", "templates"),
    autoescape=select_autoescape(["html", "html.j2"]),
    trim_blocks=True,
    lstrip_blocks=True,
)


_env.globals.update(
    fmt_int=report.fmt_int,
    fmt_rate=report.fmt_rate,
    fmt_time=report.fmt_time,
    fmt_duration=report.fmt_duration,
)
_env.filters["breakable"] = report.breakable


def render_report(result: AuditResult, fail_on: FailOn) -> str:
    """report.html as a string: one self-contained page (see `pipeline/report.py`)."""
    doc = results_document(result, fail_on)
    template = _env.get_template("report.html.j2")
    return template.render(
        r=result, doc=doc, fail_on=fail_on, v=report.build_view(result, doc, fail_on)
    )


def write_report(result: AuditResult, path: Path, fail_on: FailOn) -> None:
    path.write_text(render_report(result, fail_on), encoding="utf-8")
