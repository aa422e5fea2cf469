"""Material for the report tests: a small dirty database with known defects, and an
`AuditResult` carrying every optional part (diagnoses, repair, baseline, history) for tests that
only render."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from refaudit.results import AuditResult, CheckResult, RunInfo

from tests.conftest import FIXTURES, execute

# what astegni_dirty_small.sql breaks, by check
DIRTY_KEYS = {
    "session_requests.tutor_id.reference": [str(i) for i in range(1, 13)],
    "session_requests.requester_id.reference": [str(i) for i in range(20, 25)],
    "session_requests.status.in_set": ["30", "31", "32", "33"],
    "session_requests.contact_phone.pattern": [str(i) for i in range(40, 47)],
    "session_requests.updated_at.after_created": ["50", "51"],
}


def load_dirty_small(uri: str) -> None:
    execute(
        uri,
        (FIXTURES / "astegni_bare.sql").read_text()
        + (FIXTURES / "astegni_dirty_small.sql").read_text(),
    )


def _sample(check: str, column: str, n: int, diagnosis: str = "") -> list[dict[str, str]]:
    return [
        {
            "check": check,
            "table": "session_requests",
            "key": str(100 + i),
            "column": column,
            "value": str(900 + i),
            "diagnosis": diagnosis,
            "proposed_value": str(10 + i) if diagnosis else "",
            "confidence": "high" if diagnosis else "",
            "evidence": f"contact_email belongs to users.id {900 + i}" if diagnosis else "",
        }
        for i in range(n)
    ]


def fabricated_result(out: Path, *, extras: bool = True) -> AuditResult:
    """A failing run of six checks; with `extras`, also diagnoses, repair, baseline, history."""
    tutor = "session_requests.tutor_id.reference"
    requester = "session_requests.requester_id.reference"
    checks = [
        CheckResult(
            tutor,
            "reference",
            "session_requests",
            ["tutor_id"],
            "error",
            "tutor_id must exist in tutor_profiles.id",
            3000,
            412,
            sample=_sample(tutor, "tutor_id", 20, "mis-keyed"),
        ),
        CheckResult(
            requester,
            "conditional_reference",
            "session_requests",
            ["requester_id"],
            "error",
            "",
            3000,
            97,
            sample=_sample(requester, "requester_id", 20, "wrong type"),
        ),
        CheckResult(
            "session_requests.status.in_set",
            "in_set",
            "session_requests",
            ["status"],
            "error",
            "",
            3000,
            12,
            sample=_sample("session_requests.status.in_set", "status", 12),
        ),
        CheckResult(
            "session_requests.contact_phone.pattern",
            "pattern",
            "session_requests",
            ["contact_phone"],
            "warn",
            "",
            3000,
            55,
            sample=_sample("session_requests.contact_phone.pattern", "contact_phone", 20),
        ),
        CheckResult(
            "tutor_profiles.user_id.reference",
            "reference",
            "tutor_profiles",
            ["user_id"],
            "error",
            "",
            300,
            0,
        ),
        CheckResult(
            "tutor_profiles.user_id.unique",
            "unique",
            "tutor_profiles",
            ["user_id"],
            "error",
            "",
            300,
            0,
            stage="set",
            proven_by="unique index tutor_profiles_user_id_one_profile_per_user_key",
        ),
        CheckResult(
            "catalog.fk_session_requests_tutor",
            "constraint",
            "session_requests",
            ["tutor_id"],
            "error",
            "",
            1,
            1,
            scope="table",
            stage="catalog",
            sample=[
                {
                    "check": "catalog.fk_session_requests_tutor",
                    "table": "session_requests",
                    "key": "fk_session_requests_tutor",
                    "column": "tutor_id",
                    "value": "",
                    "diagnosis": "catalog",
                    "proposed_value": "",
                    "confidence": "",
                    "evidence": "references users(id), expected tutor_profiles(id)",
                }
            ],
        ),
        CheckResult(
            "catalog.idx_session_requests_tutor",
            "index",
            "session_requests",
            ["tutor_id"],
            "warn",
            "",
            1,
            0,
            scope="table",
            stage="catalog",
        ),
    ]
    for c in checks:
        c.settle()
    run = RunInfo(
        run_id="20240501T020000Z-abc123",
        database="postgresql://auditor:***@db.example:5432/astegni",
        suite="astegni",
        suite_path="expectations/astegni/suite.yml",
        refaudit_version="0.1.0",
        started_at="2024-05-01T02:00:00+00:00",
        finished_at="2024-05-01T02:00:04+00:00",
        duration_s=4.2,
        snapshot_taken_at="2024-05-01T02:00:00.123456Z",
        server_version="16.2",
    )
    result = AuditResult(run, checks, out)
    result.files = {
        "violations": "violations.csv",
        "results": "results.json",
        "junit": "junit.xml",
        "report": "report.html",
    }
    if not extras:
        return result
    result.diagnoses = [
        {"check": tutor, "diagnosis": "mis-keyed", "confidence": "high", "rows": 380},
        {"check": tutor, "diagnosis": "ambiguous", "confidence": "low", "rows": 12},
        {"check": tutor, "diagnosis": "orphan", "confidence": "high", "rows": 20},
        {"check": requester, "diagnosis": "wrong type", "confidence": "medium", "rows": 97},
    ]
    result.repair = {
        "files": {
            "repair": "repair.sql",
            "rollback": "rollback.sql",
            "constraints": "constraints.sql",
        },
        "updates": 477,
        "set_null": 3,
        "quarantined": 20,
        "ambiguous": 12,
        "dropped_constraints": ["fk_session_requests_requester"],
    }
    result.baseline = {
        "path": "baseline.json",
        "known": 500,
        "new": 76,
        "per_check": {tutor: {"known": 400, "new": 12}},
    }
    trend = [
        {
            "run_id": f"r{i}",
            "started_at": f"2024-04-{10 + i:02d}T02:00:00+00:00",
            "violations": v,
            "failed": 3,
        }
        for i, v in enumerate([800, 760, 700, 690, 620, 577])
    ]
    result.history = {
        "store": "reports/history.db",
        "runs": 6,
        "previous": {
            "run_id": "r4",
            "started_at": "2024-04-14T02:00:00+00:00",
            "snapshot_taken_at": "",
            "verdict": "failed",
            "violations": 620,
            "out_dir": "reports/r4",
        },
        "new": 14,
        "fixed": 57,
        "trend": trend,
        "checks": {
            c.id: {
                "previous": c.violations + 5,
                "new": 3 if c.violations else 0,
                "fixed": 8 if c.violations else 0,
                "new_keys": ["101", "102", "103"] if c.violations else [],
                "fixed_keys": ["5", "6"] if c.violations else [],
                "trend": [c.violations + 40, c.violations + 20, c.violations],
            }
            for c in checks
        },
    }
    return result


class Page(HTMLParser):
    """The parts of report.html the structural tests look at."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.ids: set[str] = set()
        self.tags: list[tuple[str, dict[str, str]]] = []
        self.text: list[str] = []
        self.check_rows: list[dict[str, str]] = []
        self._raw = False  # inside <style> or <script>: not text a reader sees
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        self.tags.append((tag, a))
        if "id" in a:
            self.ids.add(a["id"])
        if tag == "tr" and "data-check" in a:
            self.check_rows.append(a)
        self._raw = tag in {"style", "script"}

    def handle_endtag(self, tag: str) -> None:
        self._raw = False

    def handle_data(self, data: str) -> None:
        if not self._raw:
            self.text.append(data)

    def attrs(self, tag: str) -> list[dict[str, str]]:
        return [a for t, a in self.tags if t == tag]

    def count(self, tag: str, **match: Any) -> int:
        return sum(1 for a in self.attrs(tag) if all(a.get(k) == v for k, v in match.items()))
