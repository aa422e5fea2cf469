"""What report.html shows, computed in Python: the page model and its charts as inline SVG.

The template (`templates/report.html.j2`) only lays out what this module prepares. Charts are
SVG strings built here, so the report needs no script to draw and nothing from the network.
Every optional part (history, diagnoses, repair, baseline) is rendered only when the run has it.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from pipeline.results import AuditResult, CheckResult, FailOn
from pipeline.suite import CATALOG_KINDS
from pipeline.words import plural

COLORS = {"failed": "#c0392b", "warned": "#d68910", "passed": "#1e8449", "none": "#7f8c8d"}
DIAGNOSIS_COLORS = ["#2e86c1", "#8e44ad", "#16a085", "#d35400", "#c0392b", "#7f8c8d"]
STATUS_ORDER = {"failed": 0, "warned": 1, "passed": 2}
SAMPLE_FIELDS = [
    ("key", "key"),
    ("column", "column"),
    ("value", "value"),
    ("diagnosis", "diagnosis"),
    ("proposed_value", "proposed fix"),
    ("confidence", "confidence"),
    ("evidence", "evidence"),
]
MAX_BARS = 14


def fmt_int(n: int | None) -> str:
    return "\u2013" if n is None else f"{n:,}"


def fmt_rate(rate: float) -> str:
    if rate == 0:
        return "0%"
    if rate < 0.0001:
        return "<0.01%"
    return f"{rate:.2%}"


def fmt_time(stamp: str) -> str:
    """ISO timestamps as `2024-05-01 02:00:03 UTC`."""
    if not stamp:
        return ""
    try:
        t = datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return stamp
    return t.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if t.utcoffset() is not None else "")


def fmt_duration(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60} min"


def breakable(check_id: str) -> Markup:
    """A dotted check id that may wrap after its dots."""
    return Markup(".<wbr>").join(escape(part) for part in check_id.split("."))


def anchor(check_id: str) -> str:
    return "c-" + "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in check_id)


# ----------------------------------------------------------------------------- charts


def _text(x: float, y: float, text: str, *, full: str = "", **attrs: Any) -> str:
    """An SVG text; `full`, when the text shows less than that, is its tooltip (SVG has no
    title attribute: a `<title>` child is how a browser shows one)."""
    # text_anchor= is text-anchor, class_= is class
    extra = " ".join(f'{k.rstrip("_").replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    tip = f"<title>{escape(full)}</title>" if full and full != text else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" {extra}>{tip}{escape(text)}</text>'


def _clip(label: str, limit: int) -> str:
    """`label`, or its first characters and "…" (the caller keeps the whole on hover)."""
    return label if len(label) <= limit else label[: limit - 1] + "…"


@dataclass
class Bar:
    label: str
    value: int
    color: str
    href: str = ""
    title: str = ""


def bar_chart(bars: list[Bar], *, width: int = 600, unit: str = "rows") -> Markup:
    """Horizontal bars, one per item, labelled on the left, value on the right."""
    if not bars:
        return Markup("")
    row, label_chars = 22, min(max(len(b.label) for b in bars), 46)
    label_w = 12 + label_chars * 6.6
    value_w = 64
    bar_w = max(width - label_w - value_w, 80)
    top = max(b.value for b in bars) or 1
    height = row * len(bars) + 4
    parts = [
        f'<svg class="chart bars" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, b in enumerate(bars):
        y = i * row + 2
        w = max(b.value / top * bar_w, 2.0 if b.value else 0.0)
        tip = b.title or f"{b.label}: {b.value:,} {unit}"  # begins with the whole label
        label = _clip(b.label, label_chars)
        body = (
            f"<title>{escape(tip)}</title>"
            + _text(label_w - 8, y + 14, label, full=tip if label != b.label else "",
                    text_anchor="end")
            + f'<rect x="{label_w:.1f}" y="{y + 3}" width="{w:.1f}" height="{row - 7}" '
            f'rx="2" fill="{b.color}"/>'
            + _text(label_w + w + 6, y + 14, f"{b.value:,}", class_="val")
        )
        if b.href:
            parts.append(f'<a href="{escape(b.href)}"><g class="bar">{body}</g></a>')
        else:
            parts.append(f'<g class="bar">{body}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def sparkline(values: list[int | None], color: str, *, width: int = 72, height: int = 20) -> Markup:
    """A check's violations over recent runs; the last point is this run."""
    points = [(i, v) for i, v in enumerate(values) if v is not None]
    if not points:
        return Markup("")
    top = max(v for _, v in points) or 1
    n = max(len(values) - 1, 1)
    pad = 3

    def xy(i: int, v: int) -> tuple[float, float]:
        x = pad + (width - 2 * pad) * (i / n if len(values) > 1 else 1)
        y = height - pad - (height - 2 * pad) * v / top
        return x, y

    coords = [xy(i, v) for i, v in points]
    tip = escape("violations per run, oldest first: " + ", ".join(fmt_int(v) for v in values))
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    lx, ly = coords[-1]
    return Markup(
        f'<svg class="spark" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{tip}</title>'
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" '
        'stroke="#d5d8dc" stroke-width="1"/>'
        f'<polyline points="{path}" fill="none" stroke="#5d6d7e" stroke-width="1.5"/>'
        f'<circle cx="{lx:.1f}" cy="{ly:.1f}" r="3" fill="{color}"/></svg>'
    )


def trend_chart(runs: list[dict[str, Any]], *, width: int = 560, height: int = 150) -> Markup:
    """Violations per run over recent runs of this database and suite; this run is last."""
    if not runs:
        return Markup("")
    top = max(r["violations"] for r in runs) or 1
    left, bottom, top_pad = 8, 22, 16
    slot = (width - 2 * left) / max(len(runs), 1)
    bar = min(slot * 0.7, 40)
    plot_h = height - bottom - top_pad
    parts = [
        f'<svg class="chart trend" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="{left}" y1="{height - bottom}" x2="{width - left}" y2="{height - bottom}" '
        'stroke="#aab7b8"/>',
    ]
    for i, r in enumerate(runs):
        last = i == len(runs) - 1
        h = max(r["violations"] / top * plot_h, 1.5 if r["violations"] else 0)
        x = left + i * slot + (slot - bar) / 2
        y = height - bottom - h
        color = COLORS["failed"] if r["failed"] else COLORS["passed"]
        tip = escape(
            f"{fmt_time(r['started_at'])}: {r['violations']:,} "
            f"{'violation' if r['violations'] == 1 else 'violations'}, "
            f"{plural(r['failed'], 'failing check')}" + (" (this run)" if last else "")
        )
        parts.append(
            f'<g><title>{tip}</title><rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" '
            f'height="{h:.1f}" fill="{color}" opacity="{1 if last else 0.55}"/>'
        )
        if last or len(runs) <= 12:
            parts.append(
                _text(
                    x + bar / 2, y - 4, f"{r['violations']:,}", text_anchor="middle", class_="val"
                )
            )
        parts.append("</g>")
    for i in {0, len(runs) - 1}:
        whole = fmt_time(runs[i]["started_at"])
        stamp = whole[5:16]  # month, day, hours and minutes; the whole time on hover
        x = left + i * slot + slot / 2
        anchor_at = "start" if i == 0 and len(runs) > 1 else "end" if i else "middle"
        if len(runs) == 1:
            anchor_at = "middle"
        parts.append(
            _text(
                x,
                height - 6,
                stamp + (" (this run)" if i else ""),
                full=whole + (" (this run)" if i else ""),
                text_anchor=anchor_at,
                class_="axis",
            )
        )
    parts.append("</svg>")
    return Markup("".join(parts))


# ----------------------------------------------------------------------------- page model


@dataclass
class CheckView:
    c: CheckResult
    anchor: str
    is_catalog: bool
    color: str
    trend: Markup = field(default_factory=Markup)
    previous: int | None = None
    new: int | None = None
    fixed: int | None = None
    new_keys: list[str] = field(default_factory=list)
    fixed_keys: list[str] = field(default_factory=list)
    diagnoses: list[dict[str, Any]] = field(default_factory=list)
    baseline: dict[str, Any] | None = None
    sample_fields: list[tuple[str, str]] = field(default_factory=list)

    @property
    def compact_sample(self) -> bool:
        """Nothing but keys and values to show: a list reads better than a table."""
        return {k for k, _ in self.sample_fields} <= {"key", "value", "column"}

    @property
    def has_card(self) -> bool:
        return not self.is_catalog and self.c.status != "passed"

    @property
    def search_text(self) -> str:
        c = self.c
        return " ".join(
            [c.id, c.family, c.table, *c.columns, c.severity, c.status, c.description]
        ).lower()


def _sample_fields(c: CheckResult) -> list[tuple[str, str]]:
    """The sample's columns worth showing: none that is empty in every row, and `column` only
    when it varies (a check over several columns)."""
    fields = [(k, label) for k, label in SAMPLE_FIELDS if any(s.get(k) for s in c.sample)]
    if len({s.get("column") for s in c.sample}) <= 1:
        fields = [f for f in fields if f[0] != "column"]
    return fields


def _diagnosis_summary(diagnoses: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows per (diagnosis, confidence) over all checks, largest first."""
    total: dict[tuple[str, str], int] = defaultdict(int)
    for d in diagnoses:
        total[(str(d.get("diagnosis", "")), str(d.get("confidence", "")))] += int(d.get("rows", 0))
    return [
        {"diagnosis": k[0], "confidence": k[1], "rows": v}
        for k, v in sorted(total.items(), key=lambda kv: -kv[1])
    ]


def build_view(result: AuditResult, doc: dict[str, Any], fail_on: FailOn) -> dict[str, Any]:
    history = result.history or {}
    hist_checks = history.get("checks") or {}
    baseline = result.baseline or None
    diagnoses = list(result.diagnoses)
    repair = result.repair or None
    by_check: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for d in diagnoses:
        by_check[str(d.get("check"))].append(d)

    views = []
    for c in result.checks:
        h = hist_checks.get(c.id) or {}
        color = COLORS[c.status] if c.violations else COLORS["passed"]
        v = CheckView(
            c=c,
            anchor=anchor(c.id),
            is_catalog=c.family in CATALOG_KINDS,
            color=color,
            trend=sparkline(h.get("trend") or [c.violations], color),
            previous=h.get("previous"),
            new=h.get("new"),
            fixed=h.get("fixed"),
            new_keys=list(h.get("new_keys") or []),
            fixed_keys=list(h.get("fixed_keys") or []),
            diagnoses=sorted(by_check.get(c.id, []), key=lambda d: -int(d.get("rows", 0))),
            baseline=(baseline or {}).get("per_check", {}).get(c.id),
            sample_fields=_sample_fields(c),
        )
        views.append(v)
    views.sort(key=lambda v: (STATUS_ORDER[v.c.status], -v.c.violations, v.c.id))

    row_views = [v for v in views if not v.is_catalog]
    catalog_views = [v for v in views if v.is_catalog]
    with_violations = [v for v in row_views if v.c.violations]
    bars = [
        Bar(
            v.c.id,
            v.c.violations,
            COLORS[v.c.status] if v.c.status != "passed" else COLORS["none"],
            href=f"#{v.anchor}" if v.has_card else "#checks",
            title=f"{v.c.id}: {v.c.violations:,} violating rows of {v.c.rows_checked:,} "
            f"({fmt_rate(v.c.rate)}) — {v.c.status}"
            + (f". {v.c.description}" if v.c.description else ""),
        )
        for v in with_violations[:MAX_BARS]
    ]
    diag_summary = _diagnosis_summary(diagnoses)
    diag_colors: dict[str, str] = {}
    for d in diag_summary:
        diag_colors.setdefault(d["diagnosis"], DIAGNOSIS_COLORS[len(diag_colors) % 6])
    diag_bars = [
        Bar(
            f"{d['diagnosis']} · {d['confidence']}" if d["confidence"] else d["diagnosis"],
            d["rows"],
            diag_colors[d["diagnosis"]],
        )
        for d in diag_summary
    ]
    verdict = doc["verdict"]
    word, _, detail = verdict.partition(":")
    if not detail and " with " in verdict:
        word, _, rest = verdict.partition(" with ")
        detail = "with " + rest
    status = "failed" if doc["exit_code"] else ("warned" if doc["summary"]["warned"] else "passed")
    tables_hit = sorted({v.c.table for v in with_violations if v.c.status != "passed"})
    return {
        "status": status,
        "verdict_word": word.strip(),
        "verdict_detail": detail.strip(),
        "checks": views,
        "row_checks": row_views,
        "cards": [v for v in row_views if v.has_card],
        "catalog": catalog_views,
        "catalog_failing": [v for v in catalog_views if v.c.status != "passed"],
        "bars": bar_chart(bars),
        "bars_more": max(len(with_violations) - MAX_BARS, 0),
        "tables_hit": tables_hit,
        "rows_violating": sum(v.c.violations for v in row_views),
        "families": sorted({v.c.family for v in views}),
        "history": history or None,
        "trend": trend_chart(history.get("trend") or []),
        "changed": [v for v in views if (v.new or 0) + (v.fixed or 0) > 0],
        "diagnoses": diag_summary,
        "diagnosis_bars": bar_chart(diag_bars, width=520),
        "diagnosis_rows": sum(d["rows"] for d in diag_summary),
        "repair": repair,
        "baseline": baseline,
        "fail_on": fail_on,
    }
