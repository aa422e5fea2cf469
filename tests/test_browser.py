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

from pipeline.audit import run_audit
from pipeline.outputs import write_report
from pipeline.suite import Suite
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
    """The second run of a dirty database, so the report has a trend and changes."""
    uri = new_database("browser")
    load_dirty_small(uri)
    root = tmp_path_factory.mktemp("browser")
    run_audit(as_url(uri), suite, root / "run1")
    execute(
        uri,
        "UPDATE session_requests SET tutor_id = tutor_id + 100 WHERE id IN (1, 2);"
        "UPDATE session_requests SET status = 'done' WHERE id = 70;",
    )
    run_audit(as_url(uri), suite, root / "run2")
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
