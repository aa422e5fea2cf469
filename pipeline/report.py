"""What report.html shows, computed in Python: the page model and its charts as inline SVG.

The template (`templates/report.html.j2`) only lays out what this module prepares. Charts are
SVG strings built here, so the report needs no script to draw and nothing from the network.
Every optional part (history, diagnoses, repair, baseline) is rendered only when the run has it.
"""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from markupsafe import Markup, escape

from .results import AuditResult, CheckResult, FailOn
from .words import plural as _plural

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


def plural(n: int | None, word: str, words: str = "") -> str:
    """`1 row`, `2 rows`, `1,234 rows` (`refaudit.words.plural`); no count is none."""
    return _plural(n or 0, word, words or None)


LONG_TOKEN = 24
"""Text without a space longer than this (a URL, a path, a long value) may wrap inside."""
_AFTER_PUNCTUATION = re.compile(r"(?<=[._/\-@:,;=&?+|])")
_LONG_RUN = re.compile(rf"\S{{{LONG_TOKEN + 1}}}")


def wrappable(text: object) -> Markup:
    """`text` escaped, where a run of more than `LONG_TOKEN` characters without a space may
    wrap: after its punctuation (`_`, `.`, `/`, ...), and inside a piece still longer than
    `LONG_TOKEN` every `LONG_TOKEN` characters. A long value or name then wraps in its table
    cell instead of widening the page, and words are never broken, which
    `overflow-wrap: anywhere` did to every word of a narrow table cell."""
    text = str(text)
    if len(text) <= LONG_TOKEN or not _LONG_RUN.search(text):  # most cells: nothing to wrap
        return escape(text)
    out = []
    for token in re.split(r"(\s+)", text):
        if len(token) <= LONG_TOKEN:
            out.append(escape(token))
            continue
        pieces = []
        for part in _AFTER_PUNCTUATION.split(token):
            pieces += [part[i : i + LONG_TOKEN] for i in range(0, len(part), LONG_TOKEN)]
        out.append(Markup("<wbr>").join(escape(p) for p in pieces if p))
    return Markup("").join(out)


def breakable(check_id: str) -> Markup:
    """A dotted check id that may wrap after its dots (and a long part as `wrappable`)."""
    return Markup(".<wbr>").join(wrappable(part) for part in check_id.split("."))


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


NARROW = 320
"""The width of a chart's narrow variant: a phone's page (390 px) shows it at full size."""


def bar_chart(
    bars: list[Bar], *, width: int = 600, unit: str = "rows", stacked: bool = False
) -> Markup:
    """Horizontal bars, one per item, labelled on the left, value on the right; `stacked`, the
    label above its bar (the narrow variant, whose labels need the whole width)."""
    if not bars:
        return Markup("")
    char_w, value_w = 6.6, 64
    if stacked:
        row, label_chars = 34, int((width - 4) / char_w)
        label_w = 0.0
    else:
        row, label_chars = 22, min(max(len(b.label) for b in bars), 46)
        label_w = 12 + label_chars * char_w
    bar_w = max(width - label_w - value_w, 80)
    top = max(b.value for b in bars) or 1
    height = row * len(bars) + 4
    parts = [
        f'<svg class="chart bars{" narrow" if stacked else ""}" role="img" '
        f'viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        'xmlns="http://www.w3.org/2000/svg">'
    ]
    for i, b in enumerate(bars):
        y = i * row + 2
        w = max(b.value / top * bar_w, 2.0 if b.value else 0.0)
        tip = b.title or f"{b.label}: {b.value:,} {unit}"  # begins with the whole label
        label = _clip(b.label, label_chars)
        full = tip if label != b.label else ""
        if stacked:
            shown = _text(0, y + 12, label, full=full, text_anchor="start")
            bar_y, text_y, bar_h = y + 17, y + 27, row - 22
        else:
            shown = _text(label_w - 8, y + 14, label, full=full, text_anchor="end")
            bar_y, text_y, bar_h = y + 3, y + 14, row - 7
        body = (
            f"<title>{escape(tip)}</title>"
            + shown
            + f'<rect x="{label_w:.1f}" y="{bar_y}" width="{w:.1f}" height="{bar_h}" '
            f'rx="2" fill="{b.color}"/>'
            + _text(label_w + w + 6, text_y, f"{b.value:,}", class_="val")
        )
        if b.href:
            parts.append(f'<a href="{escape(b.href)}"><g class="bar">{body}</g></a>')
        else:
            parts.append(f'<g class="bar">{body}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


def responsive(wide: Markup, narrow: Markup) -> Markup:
    """A chart in two layouts: the stylesheet shows `narrow` on a narrow screen, where `wide`
    would shrink its text below reading size, and `wide` elsewhere."""
    if not wide:
        return Markup("")
    return Markup(f'<div class="chart-wide">{wide}</div><div class="chart-narrow">{narrow}</div>')


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


def trend_chart(runs: list[dict[str, Any]], *, width: int = 480, height: int = 150) -> Markup:
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
        if last or slot >= 36:  # a count over every bar where counts fit side by side
            parts.append(
                _text(
                    x + bar / 2, y - 4, f"{r['violations']:,}", text_anchor="middle", class_="val"
                )
            )
        parts.append("</g>")
    for i in {0, len(runs) - 1}:
        whole = fmt_time(runs[i]["started_at"])
        stamp = whole[5:16]  # month, day, hours and minutes; the whole time on hover
        # the first from the left edge, the last to the right edge: two runs' labels never meet
        x, anchor_at = (left, "start") if i == 0 else (width - left, "end")
        if len(runs) == 1:
            x, anchor_at = left + slot / 2, "middle"
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
    def about_table(self) -> bool:
        """Its findings are about the table as a whole: no rate, no "violating rows"."""
        return self.c.scope == "table"

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


@dataclass
class RepairAction:
    name: str
    rows: int
    what: str


def repair_actions(repair: dict[str, Any]) -> list[RepairAction]:
    """Every action a repair plan holds, with its count of rows."""
    quarantine = repair.get("quarantine_table") or "the quarantine table"
    return [
        RepairAction("updated", int(repair.get("updates") or 0),
                     "set to the value the diagnosis proposes"),
        RepairAction("set to NULL", int(repair.get("set_null") or 0),
                     "a value that names nothing set to NULL"),
        RepairAction("quarantined", int(repair.get("quarantined") or 0),
                     f"deleted from their table into {quarantine} (rollback.sql restores them)"),
        RepairAction("for review", int(repair.get("ambiguous") or 0),
                     "left for a person: listed in repair.sql, not changed"),
    ]


def next_step(result: AuditResult, doc: dict[str, Any]) -> Markup:
    """What to do now, after this run: one sentence."""
    summary, repair, baseline = doc["summary"], result.repair, result.baseline
    if repair:
        actions = repair_actions(repair)
        changed = sum(a.rows for a in actions[:3])
        review = actions[3].rows
        if not changed:
            return Markup(
                "The repair plan changes no row: resolve the {} it lists for review by hand, "
                "then audit again."
            ).format(plural(review, "row"))
        # the files beside this report, wherever it is opened (a CI artifact, a copy)
        apply = 'refaudit apply repair.sql --db "$OWNER_URL"'
        return Markup(
            "Review <code>repair.sql</code> ({}{}) beside this report, then in its folder {} to "
            "see what it would change, and {} to apply it, as a role that may change the "
            "tables (not the audit's read-only one); <code>rollback.sql</code> undoes it."
        ).format(
            plural(changed, "row") + " changed",
            f", {plural(review, 'row')} for review" if review else "",
            Markup("<code>{} --dry-run</code>").format(apply),
            Markup("<code>{}</code>").format(apply),
        )
    if not summary["violations"]:
        return Markup("Nothing to do.")
    if baseline and not baseline.get("new"):
        return Markup("Nothing new: the baseline knows every violation below ({}).").format(
            plural(summary["violations"], "violation")
        )
    return Markup(
        "Review the violations below; <code>refaudit run --repair</code> writes a repair plan."
    )


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
            is_catalog=not c.reads_rows,
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
            title=f"{v.c.id}: {v.c.found()} — {v.c.status}"
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
        "bars": responsive(bar_chart(bars), bar_chart(bars, width=NARROW, stacked=True)),
        "bars_more": max(len(with_violations) - MAX_BARS, 0),
        "tables_hit": tables_hit,
        "rows_violating": sum(v.c.violations for v in row_views if not v.about_table),
        "table_findings": sum(v.c.violations for v in row_views if v.about_table),
        "schema_findings": sum(v.c.violations for v in catalog_views),
        "families": sorted({v.c.family for v in views}),
        "history": history or None,
        "trend": responsive(
            trend_chart(history.get("trend") or []),
            trend_chart(history.get("trend") or [], width=NARROW, height=130),
        ),
        "changed": [v for v in views if (v.new or 0) + (v.fixed or 0) > 0],
        "diagnoses": diag_summary,
        "diagnosis_bars": responsive(
            bar_chart(diag_bars, width=520), bar_chart(diag_bars, width=NARROW, stacked=True)
        ),
        "diagnosis_rows": sum(d["rows"] for d in diag_summary),
        "repair": repair,
        "repair_actions": repair_actions(repair) if repair else [],
        "repair_changed": sum(a.rows for a in repair_actions(repair)[:3]) if repair else 0,
        "next_step": next_step(result, doc),
        "baseline": baseline,
        "fail_on": fail_on,
    }
