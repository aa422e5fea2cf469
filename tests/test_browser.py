"""report.html in a real browser: headless Chromium opens it from disk, with no console error
and no network request; the table's filter and sort work; the first screen holds the verdict,
the headline counts and the charts. Screenshots go to $REFAUDIT_SCREENSHOTS (or the test's tmp
directory).

Chromium is Debian's `chromium` package (`.ci/run` installs it). Without it the test skips,
unless REFAUDIT_REQUIRE_BROWSER=1 (set by CI), where a missing browser is a failure.
"""

from __future__ import annotations

import json
import os
import struct
from collections.abc import Iterator
from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.outputs import write_report
from refaudit.suite import Suite

from tests.browser import Chromium, find_chromium
from tests.conftest import as_url, execute
from tests.reports import fabricated_result, load_dirty_small

VIEWPORT = (1280, 900)


@pytest.fixture(scope="module")
def browser() -> Iterator[Chromium]:
    exe = find_chromium()
    if exe is None:
        if os.environ.get("REFAUDIT_REQUIRE_BROWSER") == "1":
            pytest.fail("REFAUDIT_REQUIRE_BROWSER=1 but no chromium on PATH")
        pytest.skip("no Chromium found: apt-get install chromium, or set REFAUDIT_CHROMIUM")
    with Chromium(exe, width=VIEWPORT[0], height=VIEWPORT[1]) as b:
        yield b


@pytest.fixture(scope="module")
def real_report(new_database, suite: Suite, tmp_path_factory: pytest.TempPathFactory) -> Path:  # type: ignore[no-untyped-def]
    """The second run of a dirty database, so the report has a trend and changes, with
    --repair, so it has a repair plan."""
    uri = new_database("browser")
    load_dirty_small(uri)
    root = tmp_path_factory.mktemp("browser")
    run_audit(as_url(uri), suite, root / "run1")
    execute(
        uri,
        "UPDATE session_requests SET tutor_id = tutor_id + 100 WHERE id IN (1, 2);"
        "UPDATE session_requests SET status = 'done' WHERE id = 70;",
    )
    run_audit(as_url(uri), suite, root / "run2", options=AuditOptions(repair=True))
    return root / "run2" / "report.html"


@pytest.fixture(scope="module")
def fabricated_report(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("fabricated")
    result = fabricated_result(out)
    # text the page shortens: a check id too long for the chart's labels, a long value
    phone = result.checks[3]
    phone.id = "session_requests.contact_phone.pattern.ethiopian_mobile_numbers"
    phone.sample[0]["value"] = "+2519" + "0123456789" * 9
    (out / "results.json").write_text(json.dumps({"checks": [c.to_dict() for c in result.checks]}))
    write_report(result, out / "report.html", "error")
    return out / "report.html"


def screenshot_dir(tmp_path: Path) -> Path:
    target = Path(os.environ.get("REFAUDIT_SCREENSHOTS") or tmp_path)
    target.mkdir(parents=True, exist_ok=True)
    return target


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


VISIBLE_ROWS = """[...document.querySelectorAll('#checks-table tbody tr')]
    .filter(tr => !tr.hidden && tr.offsetParent !== null).map(tr => tr.dataset.check)"""


SHORTENED = """(() => {
  // every element whose own text the report shortened: cut with "…", or cut by CSS ellipsis;
  // what hovering shows: an HTML title attribute, in SVG a <title> child
  const out = [];
  for (const el of document.querySelectorAll('body *')) {
    const shown = [...el.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
      .map(n => n.textContent).join('').trim();
    if (!shown) continue;
    const cut = shown.endsWith('…') || (getComputedStyle(el).textOverflow === 'ellipsis'
                                         && el.scrollWidth > el.clientWidth);
    if (!cut) continue;
    const tip = el instanceof SVGElement ? el.querySelector(':scope > title') : null;
    out.push({shown, full: tip ? tip.textContent : el.getAttribute('title')});
  }
  return out;
})()"""

STAMPS = """[...document.querySelectorAll('.tile .l span[title], svg.trend text.axis')].map(el => ({
  shown: [...el.childNodes].filter(n => n.nodeType === Node.TEXT_NODE)
    .map(n => n.textContent).join('').replace(' (this run)', ''),
  full: el instanceof SVGElement ? el.querySelector(':scope > title')?.textContent
                                 : el.getAttribute('title')}))"""


def set_control(browser: Chromium, element_id: str, value: str) -> list[str]:
    rows: list[str] = browser.evaluate(
        f"""(() => {{ const el = document.getElementById({json.dumps(element_id)});
        el.value = {json.dumps(value)}; el.dispatchEvent(new Event('input'));
        el.dispatchEvent(new Event('change')); return {VISIBLE_ROWS}; }})()"""
    )
    return rows


@pytest.mark.parametrize("which", ["real", "fabricated"])
def test_report_in_chromium(
    which: str, browser: Chromium, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    report: Path = request.getfixturevalue(f"{which}_report")
    results = json.loads((report.parent / "results.json").read_text())
    checks = {c["id"]: c for c in results["checks"]}
    url = report.resolve().as_uri()
    browser.open(url)

    assert browser.log.errors == []
    assert browser.log.requests == [url], "the report fetched something besides itself"
    shots = screenshot_dir(tmp_path)
    first = browser.screenshot(shots / f"report-{which}.png")
    assert png_size(first) == VIEWPORT

    # every check of results.json is a row of the table, all visible at first
    assert sorted(browser.evaluate(VISIBLE_ROWS)) == sorted(checks)

    # the first screen: verdict, headline counts, where the violations are, the trend
    bottoms = browser.evaluate(
        """Object.fromEntries(['verdict', 'n-failed', 'n-violations', 'where', 'trend']
            .map(id => [id, document.getElementById(id).getBoundingClientRect().bottom]))"""
    )
    assert all(0 < b <= VIEWPORT[1] for b in bottoms.values()), bottoms
    chart = "document.querySelector('svg.chart').getBoundingClientRect().width"
    assert browser.evaluate(chart) > 300
    assert browser.evaluate("document.documentElement.scrollWidth") <= VIEWPORT[0]

    # text shortened on screen keeps the whole on hover
    shortened = browser.evaluate(SHORTENED)
    for item in shortened:
        assert item["full"], f"{item['shown']!r} is shortened and has no title"
        assert item["full"].startswith(item["shown"].removesuffix("…")), item
        assert len(item["full"]) >= len(item["shown"]), item
    if which == "fabricated":  # a chart label and a sample value are cut
        assert any(i.startswith(s["shown"][:-1]) for s in shortened for i in checks), shortened
        assert any(s["shown"].startswith("+2519") for s in shortened), shortened
    # times shown to the minute (the changes tile, the trend's axis) keep the whole time
    stamps = browser.evaluate(STAMPS)
    if which == "real":
        assert len(stamps) >= 2, stamps
    for stamp in stamps:
        assert stamp["full"] and stamp["shown"] in stamp["full"], stamp
        assert stamp["full"].endswith(("UTC", "UTC (this run)")), stamp

    # filter by text, status, family
    tutor = set_control(browser, "filter", "tutor_id")
    assert tutor and sorted(tutor) == sorted(
        i for i, c in checks.items() if "tutor_id" in " ".join([i, *c["columns"]])
    )
    set_control(browser, "filter", "")
    failed = set_control(browser, "status-filter", "failed")
    assert sorted(failed) == sorted(i for i, c in checks.items() if c["status"] == "failed")
    problems = set_control(browser, "status-filter", "problems")
    assert sorted(problems) == sorted(i for i, c in checks.items() if c["status"] != "passed")
    set_control(browser, "status-filter", "")
    family = set_control(browser, "family-filter", "constraint")
    assert sorted(family) == sorted(i for i, c in checks.items() if c["kind"] == "constraint")
    set_control(browser, "family-filter", "")
    assert browser.evaluate("document.getElementById('shown').textContent") == (
        f"{len(checks)} of {len(checks)} checks"
    )

    # sort by violations: ascending on the first click, descending on the second
    click = "document.querySelector('th[data-sort=violations]').click()"
    for order in ("asc", "desc"):
        rows = browser.evaluate(f"{click}; {VISIBLE_ROWS}")
        counts = [checks[r]["violations"] for r in rows]
        assert counts == sorted(counts, reverse=order == "desc"), order

    whole = browser.screenshot(shots / f"report-{which}-full.png", full_page=True)
    assert png_size(whole)[1] > VIEWPORT[1]
    assert browser.log.errors == []

    # readable at 1024 px: the page itself never scrolls sideways (wide tables scroll inside)
    narrow = {"width": 1024, "height": 768, "deviceScaleFactor": 1, "mobile": False}
    browser.call("Emulation.setDeviceMetricsOverride", narrow)
    try:
        browser.open(url)
        assert browser.evaluate("window.innerWidth") == 1024
        assert browser.evaluate("document.documentElement.scrollWidth") <= 1024
    finally:
        wide = {**narrow, "width": VIEWPORT[0], "height": VIEWPORT[1]}
        browser.call("Emulation.setDeviceMetricsOverride", wide)


# ------------------------------------------------------------------ three widths

WIDTHS = {390: 844, 1024: 768, 1440: 900}  # a phone, a small laptop, a desktop

LAYOUT = """(() => {
  const seen = el => el && el.getClientRects().length > 0;
  const out = {innerWidth: window.innerWidth,
               scrollWidth: document.documentElement.scrollWidth,
               broken: [], squeezed: [], unboxed: [], scrolling: [], small: []};
  // a word broken across lines: a run of letters whose rectangles lie on two lines (long
  // values and names wrap at their own <wbr>, which splits them into separate text nodes)
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let n = walker.nextNode(); n; n = walker.nextNode()) {
    const el = n.parentElement;
    if (!seen(el) || el.closest('svg, script, style')) continue;
    for (const m of n.textContent.matchAll(/\\p{L}{2,}/gu)) {
      const r = document.createRange();
      r.setStart(n, m.index);
      r.setEnd(n, m.index + m[0].length);
      const lines = new Set([...r.getClientRects()].filter(q => q.width > 0)
                                                   .map(q => Math.round(q.bottom)));
      if (lines.size > 1) {
        out.broken.push(`${m[0]} in ${el.tagName}: ${n.textContent.slice(0, 60)}`);
      }
    }
  }
  // cells may not break words anywhere to fit (what overflow-wrap: anywhere did)
  for (const cell of document.querySelectorAll('td, th')) {
    if (!seen(cell)) continue;
    for (const el of [cell, ...cell.querySelectorAll('*')]) {
      const st = getComputedStyle(el);
      if (st.overflowWrap === 'anywhere' || ['break-all', 'break-word'].includes(st.wordBreak)) {
        out.squeezed.push(`${el.tagName}.${el.className}: ${st.overflowWrap} ${st.wordBreak}`);
        break;
      }
    }
  }
  // every table in a box of its own that scrolls sideways, the box inside the page
  for (const table of document.querySelectorAll('table')) {
    if (!seen(table)) continue;
    let box = table.parentElement;
    while (box && !['auto', 'scroll'].includes(getComputedStyle(box).overflowX)) {
      box = box.parentElement;
    }
    const name = table.id || table.className || table.closest('section')?.id;
    if (!box || box.getBoundingClientRect().right > window.innerWidth + 0.5) {
      out.unboxed.push(name);
    } else if (table.getBoundingClientRect().width > box.clientWidth + 0.5) {
      out.scrolling.push(name);
    }
  }
  // chart text at 10 px or more as drawn, every shown chart inside the page
  for (const svg of document.querySelectorAll('svg.chart')) {
    if (!seen(svg)) continue;
    const box = svg.getBoundingClientRect();
    const scale = box.width / svg.viewBox.baseVal.width;
    if (box.right > window.innerWidth + 0.5) out.small.push(`${svg.className.baseVal} overflows`);
    for (const t of svg.querySelectorAll('text')) {
      const px = parseFloat(getComputedStyle(t).fontSize) * scale;
      if (px < 10) {
        out.small.push(`${svg.className.baseVal}: ${t.textContent} at ${px.toFixed(1)} px`);
      }
    }
  }
  out.charts = [...document.querySelectorAll('svg.chart')].filter(seen).length;
  return out;
})()"""


@pytest.mark.parametrize("width", sorted(WIDTHS))
@pytest.mark.parametrize("which", ["real", "fabricated"])
def test_report_for_people_at_three_widths(
    which: str, width: int, browser: Chromium, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """At a phone's, a laptop's and a desktop's width: the page never scrolls sideways (its
    full-page screenshot is as wide as the window), no word is broken across lines, every table
    scrolls in its own box, and the charts' text stays readable."""
    report: Path = request.getfixturevalue(f"{which}_report")
    url = report.resolve().as_uri()
    size = {"width": width, "height": WIDTHS[width], "deviceScaleFactor": 1, "mobile": False}
    browser.call("Emulation.setDeviceMetricsOverride", size)
    try:
        browser.open(url)
        layout = browser.evaluate(LAYOUT)
        shot = browser.screenshot(screenshot_dir(tmp_path) / f"report-{which}-{width}.png",
                                  full_page=True)
    finally:
        wide = {**size, "width": VIEWPORT[0], "height": VIEWPORT[1]}
        browser.call("Emulation.setDeviceMetricsOverride", wide)
    assert browser.log.errors == []
    assert layout["innerWidth"] == width
    assert layout["scrollWidth"] <= width, layout
    assert png_size(shot)[0] == width  # the page drawn whole is no wider than the window
    assert layout["broken"] == []
    assert layout["squeezed"] == []
    assert layout["unboxed"] == []
    assert layout["small"] == []
    assert layout["charts"] >= 2  # the violations per check and the trend, at every width
    if width == 390:  # the checks table is wider than a phone: it scrolls, the page does not
        assert "checks-table" in layout["scrolling"], layout["scrolling"]


def test_real_report_says_what_the_repair_does_and_what_to_do_next(
    real_report: Path, browser: Chromium
) -> None:
    """The repair card of a real --repair run counts every action of its plan as results.json
    has it, with plurals right, and the next step names the plan and the commands to apply it."""
    repair = json.loads((real_report.parent / "results.json").read_text())["repair"]
    browser.open(real_report.resolve().as_uri())
    shown = browser.evaluate(
        """({tile: document.getElementById('n-repaired').parentElement.innerText,
             changed: document.getElementById('n-repaired').textContent,
             actions: Object.fromEntries([...document.querySelectorAll('#repair-summary li')]
                .map(li => [li.dataset.action, li.querySelector('.n').textContent])),
             next: document.getElementById('next-step').innerText})"""
    )

    def rows(n: int) -> str:
        return f"{n:,} row" if n == 1 else f"{n:,} rows"

    counts = {"updated": repair["updates"], "set to NULL": repair["set_null"],
              "quarantined": repair["quarantined"], "for review": repair["ambiguous"]}
    assert repair["updates"] and repair["quarantined"], repair  # the plan corrects and deletes
    assert shown["actions"] == {name: rows(n) for name, n in counts.items()}
    changed = repair["updates"] + repair["set_null"] + repair["quarantined"]
    assert shown["changed"] == f"{changed:,}"
    for name, n in counts.items():  # the tile names every action the plan takes
        assert (f"{rows(n)} {name}" in shown["tile"]) == bool(n), shown["tile"]
    assert (real_report.parent / "repair.sql").exists()  # beside the report, as it says
    assert shown["next"].startswith("Next step: Review repair.sql"), shown["next"]
    assert 'refaudit apply repair.sql --db "$OWNER_URL" --dry-run' in shown["next"]
