"""report.html and the run history: structure, self-containment, and what changed between runs
of a real audit."""

from __future__ import annotations

import csv
import json
import re
import sqlite3
from html import escape
from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.errors import UsageError
from refaudit.outputs import render_report
from refaudit.report import Bar, bar_chart
from refaudit.suite import CATALOG_KINDS, Suite

from tests.conftest import SAMPLE_SUITE, as_url, execute
from tests.reports import DIRTY_KEYS, Page, fabricated_result, load_dirty_small

MINUS = "\u2212"  # the report writes "fixed" counts with a minus sign
EXTERNAL = re.compile(
    r"""(?:src|href|action|xlink:href)\s*=\s*["']?\s*(?:https?:|//|ftp:)"""
    r"""|@import|url\(\s*["']?(?!data:|#)|<link\b|<img\b|<iframe\b|<object\b|<embed\b""",
    re.IGNORECASE,
)


def assert_self_contained(html: str) -> None:
    """Nothing the page would fetch: no external script, style, font, image or frame."""
    found = EXTERNAL.findall(html)
    assert not found, found
    page = Page(html)
    for tag, attr in (("script", "src"), ("link", "href"), ("img", "src"), ("source", "src")):
        assert not [a for a in page.attrs(tag) if a.get(attr)], (tag, attr)
    for a in page.attrs("a"):  # links only inside the page or to the run's own files
        href = a.get("href", "")
        assert href.startswith("#") or ("/" not in href and ":" not in href), href
    csp = [a for a in page.attrs("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp and "default-src 'none'" in csp[0]["content"]


@pytest.fixture(scope="module")
def dirty_small(new_database) -> str:  # type: ignore[no-untyped-def]
    uri = new_database("report")
    load_dirty_small(uri)
    return uri


@pytest.fixture(scope="module")
def two_runs(dirty_small: str, suite: Suite, tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """Audit, then fix three tutor ids and break two statuses, then audit again."""
    root = tmp_path_factory.mktemp("runs")
    first = run_audit(as_url(dirty_small), suite, root / "run1")
    execute(
        dirty_small,
        "UPDATE session_requests SET tutor_id = tutor_id + 100 WHERE id IN (1, 2, 3);"
        "UPDATE session_requests SET status = 'done' WHERE id IN (60, 61);",
    )
    try:
        second = run_audit(as_url(dirty_small), suite, root / "run2")
    finally:
        execute(
            dirty_small,
            "UPDATE session_requests SET tutor_id = tutor_id - 100 WHERE id IN (1, 2, 3);"
            "UPDATE session_requests SET status = 'accepted' WHERE id IN (60, 61);",
        )
    return root, first, second


# ------------------------------------------------------------------ rendering only


def test_report_with_every_optional_part(tmp_path: Path) -> None:
    result = fabricated_result(tmp_path)
    html = render_report(result, "error")
    assert_self_contained(html)
    page = Page(html)
    text = " ".join(page.text)
    assert {r["data-check"] for r in page.check_rows} == {c.id for c in result.checks}
    # verdict and headline counts first
    assert page.ids >= {"verdict", "n-failed", "n-violations", "n-changes"}
    assert html.index('id="verdict"') < html.index('id="checks-table"')
    failed = sum(c.status == "failed" for c in result.checks)
    assert f'id="n-failed">{failed}<' in html
    # a card per failing or warned data check, with its sample, diagnosis and proposed fix
    cards = {c.id for c in result.checks if c.status != "passed" and c.family not in CATALOG_KINDS}
    assert {a["id"] for a in page.attrs("article")} == {f"c-{i}" for i in cards}
    assert "proposed fix" in text and "contact_email belongs to users.id 900" in text
    assert "mis-keyed · high: " in text  # diagnosis chips of the tutor_id card
    # repair summary and its files; baseline; history
    for name in ("repair.sql", "rollback.sql", "constraints.sql"):
        assert page.count("a", href=name) >= 1, name
    # a long name may wrap after its underscores
    assert "<code>fk_<wbr>session_<wbr>requests_<wbr>requester</code>" in html
    assert "new versus the baseline (500 known)" in text
    assert "+14" in text and f"{MINUS}57" in text
    # charts are inline SVG: bars for the four data checks with violations, a trend of 6 runs;
    # each chart in a wide and a narrow (phone) layout
    assert html.count('<g class="bar">') == 2 * (4 + 4)  # violations per check + diagnoses
    assert html.count('class="chart-wide"') == html.count('class="chart-narrow"') == 3
    trend = html[html.index('class="chart trend"') :]
    assert trend[: trend.index("</svg>")].count("<rect") == 6
    assert page.count("svg", **{"class": "spark"}) == len(result.checks)
    # schema findings in their own section, with the catalog's words
    schema = html[html.index('id="schema"') : html.index('id="history"')]
    assert "references users(id), expected tutor_profiles(id)" in schema
    assert "catalog.idx_session_requests_tutor" in schema


def test_report_without_optional_parts(tmp_path: Path) -> None:
    result = fabricated_result(tmp_path, extras=False)
    html = render_report(result, "error")
    assert_self_contained(html)
    page = Page(html)
    text = " ".join(page.text)
    assert {r["data-check"] for r in page.check_rows} == {c.id for c in result.checks}
    assert "run history not recorded" in text
    assert "This run diagnosed nothing and wrote no repair" in text
    assert "repair.sql" not in html and "baseline" not in text
    assert 'class="chart trend"' not in html
    # empty diagnosis columns are left out of the samples
    status_card = html[html.index('id="c-session_requests.status.in_set"') :]
    assert "proposed fix" not in status_card[: status_card.index("</article>")]


def test_values_from_the_database_are_escaped(tmp_path: Path) -> None:
    result = fabricated_result(tmp_path, extras=False)
    evil = "<script>alert(1)</script>"
    result.checks[2].sample[0]["value"] = evil
    result.checks[2].description = "<img src=x onerror=alert(1)>"
    html = render_report(result, "error")
    assert evil not in html and "<img src=x" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_shortened_chart_labels_keep_the_whole_on_hover() -> None:
    long_id = "session_requests.requester_id.reference.discriminator.of.a.long.suite"
    svg = str(bar_chart([Bar(long_id, 7, "#c0392b"), Bar("short.id", 3, "#c0392b")]))
    clipped = long_id[:45] + "…"
    assert f"<title>{long_id}: 7 rows</title>{clipped}</text>" in svg
    assert ">short.id</text>" in svg  # a label shown whole has no tooltip of its own
    assert 'class="val">7</text>' in svg


def test_passing_run_says_so(tmp_path: Path) -> None:
    result = fabricated_result(tmp_path, extras=False)
    result.checks = [c for c in result.checks if not c.violations]
    html = render_report(result, "error")
    assert 'class="banner passed"' in html
    assert "No row violates any data check." in html
    assert 'id="failing"' not in html


def test_repair_card_shows_every_action_with_plurals(tmp_path: Path) -> None:
    result = fabricated_result(tmp_path)
    assert result.repair is not None
    result.repair.update(updates=1, set_null=0, quarantined=2, ambiguous=1)
    html = render_report(result, "error")
    text = re.sub(r"\s+", " ", " ".join(Page(html).text))
    # the tile: every row the plan changes, quarantined ones too, and what each action does
    assert re.search(r'id="n-repaired">3<', html)
    assert "rows the proposed repair.sql changes: 1 row updated, 2 rows quarantined, " in text
    assert "quarantined, 1 row for review" in text  # an action the plan has not: not in the tile
    # the panel: one line per action, with what it does
    summary = html[html.index('id="repair-summary"') : html.index('id="schema"')]
    actions = re.findall(r'<li data-action="([^"]+)"><span class="n">([^<]+)</span>', summary)
    assert actions == [
        ("updated", "1 row"), ("set to NULL", "0 rows"), ("quarantined", "2 rows"),
        ("for review", "1 row"),
    ]
    assert "The plan changes 3 rows and leaves 1 row for review" in text
    assert "1 rows" not in text
    assert "quarantine" in summary and "rollback.sql" in summary


def test_next_step_depends_on_the_outcome(tmp_path: Path) -> None:
    # a repair plan: review it, rehearse it, apply it (the commands of README's path)
    result = fabricated_result(tmp_path)
    html = render_report(result, "error")
    step = html[html.index('id="next-step"') : html.index("</p>", html.index('id="next-step"'))]
    assert "Review <code>repair.sql</code> (500 rows changed, 12 rows for review)" in step
    assert '<code>refaudit apply repair.sql --db &#34;$OWNER_URL&#34; --dry-run</code>' in step
    assert '<code>refaudit apply repair.sql --db &#34;$OWNER_URL&#34;</code>' in step
    # violations and no plan: review them, --repair writes one
    result = fabricated_result(tmp_path, extras=False)
    html = render_report(result, "error")
    step = html[html.index('id="next-step"') : html.index("</p>", html.index('id="next-step"'))]
    assert "Review the violations below; <code>refaudit run --repair</code>" in step
    # nothing found: nothing to do
    result.checks = [c for c in result.checks if not c.violations]
    html = render_report(result, "error")
    step = html[html.index('id="next-step"') : html.index("</p>", html.index('id="next-step"'))]
    assert step.endswith("<b>Next step:</b> Nothing to do.")


# ------------------------------------------------------------------ a real audit


def test_real_audit_report_lists_every_check_of_results_json(two_runs) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = two_runs
    doc = json.loads((root / "run1" / "results.json").read_text())
    html = (root / "run1" / "report.html").read_text()
    assert_self_contained(html)
    page = Page(html)
    assert {r["data-check"] for r in page.check_rows} == {c["id"] for c in doc["checks"]}
    for check, keys in DIRTY_KEYS.items():
        card = html[html.index(f'id="c-{check}"') :]
        card = card[: card.index("</article>")]
        # compact key/value pairs, or (for diagnosed checks) a table whose first cell is the key
        shown = re.findall(r'<span class="pair"><b>(\d+)</b>', card) or re.findall(
            r"<tr>\s*<td class=\"key\">(\d+)</td>", card
        )
        assert shown == keys, check
    assert "first recorded run" in html.lower()
    assert doc["history"]["previous"] is None and doc["history"]["runs"] == 1
    assert escape(doc["run"]["database"]) in html
    # the same count for the same thing everywhere: tiles, navigation, verdict, results.json
    summary = doc["summary"]
    tile = re.search(r'id="n-violations">([\d,]+)<', html)
    assert tile and int(tile.group(1).replace(",", "")) == summary["violations"]
    failed = re.search(r'id="n-failed">(\d+)<', html)
    assert failed and int(failed.group(1)) == summary["failed"]
    cards = html.count('<article class="card')
    assert f"Data checks with violations ({cards})" in html


def test_no_password_in_report_results_or_history(
    dirty_small: str, suite: Suite, tmp_path: Path
) -> None:
    url = as_url(dirty_small).set(password="s3cret-pw")  # the test server trusts local users
    for out in ("a", "b"):
        run_audit(url, suite, tmp_path / out)
    for path in (
        tmp_path / "b" / "report.html",
        tmp_path / "b" / "results.json",
        tmp_path / "history.db",
    ):
        assert b"s3cret-pw" not in path.read_bytes(), path
    assert "***" in json.loads((tmp_path / "b" / "results.json").read_text())["run"]["database"]


def test_second_run_shows_trend_and_what_changed(two_runs) -> None:  # type: ignore[no-untyped-def]
    root, first, second = two_runs
    history = json.loads((root / "run2" / "results.json").read_text())["history"]
    assert history["store"] == str(root / "history.db")
    assert history["runs"] == 2
    assert history["previous"]["run_id"] == first.run.run_id
    assert [r["run_id"] for r in history["trend"]] == [first.run.run_id, second.run.run_id]
    checks = history["checks"]
    tutor = checks["session_requests.tutor_id.reference"]
    assert (tutor["previous"], tutor["new"], tutor["fixed"]) == (12, 0, 3)
    assert tutor["fixed_keys"] == ["1", "2", "3"]
    assert tutor["trend"] == [12, 9]
    status = checks["session_requests.status.in_set"]
    assert (status["new"], status["fixed"], status["new_keys"]) == (2, 0, ["60", "61"])
    assert history["new"] == sum(c["new"] for c in checks.values())
    assert history["fixed"] == sum(c["fixed"] for c in checks.values())
    unchanged = checks["session_requests.contact_phone.pattern"]
    assert (unchanged["new"], unchanged["fixed"], unchanged["trend"]) == (0, 0, [7, 7])

    html = (root / "run2" / "report.html").read_text()
    trend = html[html.index('class="chart trend"') :]
    assert trend[: trend.index("</svg>")].count("<rect") == 2
    since = html[html.index('id="history"') : html.index('id="run"')]
    assert "60, 61" in since and "1, 2, 3" in since
    assert f"+{history['new']}" in html and f"{MINUS}{history['fixed']}" in html


def test_history_is_scoped_by_database(two_runs, new_database, suite: Suite) -> None:  # type: ignore[no-untyped-def]
    root, _, _ = two_runs
    other = new_database("other")
    load_dirty_small(other)
    result = run_audit(as_url(other), suite, root / "run-other")
    history = result.history
    assert history["runs"] == 1 and history["previous"] is None
    with sqlite3.connect(root / "history.db") as db:
        scopes = db.execute("SELECT DISTINCT database FROM runs").fetchall()
    assert len(scopes) == 2


def test_history_option_and_no_history(dirty_small: str, suite: Suite, tmp_path: Path) -> None:
    store = tmp_path / "elsewhere" / "h.db"
    opts = AuditOptions(history=store)
    run_audit(as_url(dirty_small), suite, tmp_path / "a", options=opts)
    again = run_audit(as_url(dirty_small), suite, tmp_path / "b", options=opts)
    assert again.history["runs"] == 2 and store.is_file()
    assert not (tmp_path / "history.db").exists()
    off = run_audit(
        as_url(dirty_small), suite, tmp_path / "c", options=AuditOptions(record_history=False)
    )
    assert off.history is None
    assert "history" not in json.loads((tmp_path / "c" / "results.json").read_text())
    assert not (tmp_path / "history.db").exists()


def test_unusable_history_fails_before_the_audit(suite: Suite, tmp_path: Path) -> None:
    bad = tmp_path / "history.db"
    bad.write_text("not a database")
    with pytest.raises(UsageError, match="--history"):
        # the URL is never reached: the history file is checked first
        run_audit(as_url("postgresql://nobody@127.0.0.1:1/none"), suite, tmp_path / "run")
    assert not (tmp_path / "run" / "results.json").exists()


def test_cli_history_options(dirty_small: str, tmp_path: Path) -> None:
    from tests.test_cli import refaudit

    store = tmp_path / "cache" / "history.db"
    for out in ("a", "b"):
        proc = refaudit(
            "run",
            "--suite",
            SAMPLE_SUITE,
            "--db",
            dirty_small,
            "--out",
            str(tmp_path / out),
            "--history",
            str(store),
            "--quiet",
        )
        assert proc.returncode == 1, proc.stderr
    history = json.loads((tmp_path / "b" / "results.json").read_text())["history"]
    assert history["store"] == str(store) and history["runs"] == 2
    proc = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        dirty_small,
        "--out",
        str(tmp_path / "c"),
        "--no-history",
    )
    assert proc.returncode == 1, proc.stderr
    assert "history" not in json.loads((tmp_path / "c" / "results.json").read_text())
    assert not (tmp_path / "history.db").exists()
    (tmp_path / "junk.db").write_text("junk")
    proc = refaudit(
        "run",
        "--suite",
        SAMPLE_SUITE,
        "--db",
        dirty_small,
        "--out",
        str(tmp_path / "d"),
        "--history",
        str(tmp_path / "junk.db"),
    )
    assert proc.returncode == 2 and "junk.db" in proc.stderr and "Traceback" not in proc.stderr


_V1_LAST_KEYS = """
CREATE TABLE last_keys (
    database TEXT NOT NULL, suite TEXT NOT NULL, check_id TEXT NOT NULL,
    key TEXT NOT NULL, col TEXT NOT NULL,
    PRIMARY KEY (database, suite, check_id, key, col)
) WITHOUT ROWID
"""


def test_history_of_the_previous_version_is_migrated(
    dirty_small: str, suite: Suite, tmp_path: Path
) -> None:
    """A version-1 store (one row per violating key) still gives exact new/fixed after the
    upgrade: one key dropped from the stored run comes back as new, one added as fixed."""
    store = tmp_path / "history.db"
    first = run_audit(as_url(dirty_small), suite, tmp_path / "a")
    with sqlite3.connect(store) as db:  # rewrite last_keys the way version 1 kept it
        scope = db.execute("SELECT DISTINCT database, suite FROM last_keys").fetchone()
        db.execute("DROP TABLE last_keys")
        db.execute(_V1_LAST_KEYS)
        with (tmp_path / "a" / "violations.csv").open(newline="") as handle:
            rows = [(r["check"], r["key"], r["column"]) for r in csv.DictReader(handle)]
        check = "session_requests.contact_phone.pattern"
        dropped = next(r for r in rows if r[0] == check)
        db.executemany(
            "INSERT OR IGNORE INTO last_keys VALUES (?, ?, ?, ?, ?)",
            [(*scope, *r) for r in rows if r != dropped] + [(*scope, check, "999999", dropped[2])],
        )
        db.execute("PRAGMA user_version = 1")
    second = run_audit(as_url(dirty_small), suite, tmp_path / "b")
    history = second.history
    assert history["previous"]["run_id"] == first.run.run_id
    phone = history["checks"][check]
    assert (phone["new"], phone["new_keys"]) == (1, [dropped[1]])
    assert (phone["fixed"], phone["fixed_keys"]) == (1, ["999999"])
    assert history["new"] == 1 and history["fixed"] == 1
    with sqlite3.connect(store) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    third = run_audit(as_url(dirty_small), suite, tmp_path / "c")
    assert third.history["new"] == 0 and third.history["fixed"] == 0
