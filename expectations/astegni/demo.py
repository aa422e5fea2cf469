"""Deterministic generator of sample Astegni databases for refaudit.

This file is the only Astegni-specific code next to ``suite.yml``; refaudit loads it by path
(``demo: demo.py`` in the suite). It talks to PostgreSQL through a psycopg2 DB-API connection that
the caller owns and commits.

Three schema states (``STATES``):

* ``"after"``  - the seed's corrected schema (FK tutor_id -> tutor_profiles, CHECKs, indexes).
* ``"before"`` - the seed's pre-fix schema (tutor_id and requester_id reference ``users(id)``).
* ``"dirty"``  - production that lost its constraints: tables, primary keys and the two indexes
  only; ``finish_schema`` then adds ``fk_session_requests_tutor -> users(id) NOT VALID``.

``load_seed`` loads the six requests of the real-world case (``seed/000_5516bc50d2da019f.txt``).
``build`` creates the demo / test / benchmark database: the six seed rows in their pre-fix form
(ids 1..6) and ``requests`` synthetic rows (ids 7..) that carry the defect classes of
``DEFECT_CLASSES`` at fixed shares, plus the table-level defects of ``TABLE_DEFECTS``.
Everything is vectorised (numpy) and loaded in chunks of ``CHUNK_ROWS`` rows with ``COPY``;
the same ``(requests, seed)`` always gives byte-identical data.

Id spaces are designed on purpose: ``users.id`` runs 1..U; each profile table has dense ids from 1
(with a few gaps, as after deletions) whose ``user_id`` points at a *different* user (no profile
has ``id == user_id``). So some ``users.id`` values also exist as profile ids (the raw material of
hidden mis-keys) and others do not (visible mis-keys). Clean requests pass every check of the
suite: contact details are the requester's user's, the package belongs to the tutor, statuses and
timestamps are coherent, and every (tutor, requester) pair is used at most once, so no clean row
can ever be a duplicate pending request.

Semantics the ground truth assumes (see ``SEMANTICS``): a rule, pattern or set check fires only
when its condition is FALSE (SQL three-valued logic: a NULL operand is the not_null check's
business); consistency checks only look at rows whose referenced package exists; the pending
uniqueness check treats NULLs as equal.
"""

import io
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import pandas as pd

__all__ = [
    "CHUNK_ROWS",
    "DEFECT_CLASSES",
    "SEMANTICS",
    "STATES",
    "TABLE_DEFECTS",
    "DefectClass",
    "GroundTruth",
    "build",
    "create_schema",
    "defect_counts",
    "finish_schema",
    "load_seed",
]

STATES = ("before", "after", "dirty")
CHUNK_ROWS = 200_000

Arr = npt.NDArray[Any]


class Connection(Protocol):
    """The part of a psycopg2 connection this module uses."""

    def cursor(self) -> Any:  # pragma: no cover - protocol
        """Return a DB-API cursor (psycopg2: with ``copy_expert``)."""
        ...


# ----------------------------------------------------------------------------- check ids
SR = "session_requests"
TUTOR_REF = "session_requests.tutor_id.reference"
REQUESTER_REF = "session_requests.requester_id.reference"
DISCRIMINATOR = "session_requests.requester_id.reference.discriminator"
PACKAGE_REF = "session_requests.package_id.reference"
PACKAGE_TUTOR_REF = "tutor_packages.tutor_id.reference"
BELONGS = "session_requests.package_id.belongs_to_tutor"
NAME_MATCH = "session_requests.package_name.matches_package"
NOT_NULL = "session_requests.not_null"
STATUS_SET = "session_requests.status.in_set"
TYPE_SET = "session_requests.requester_type.in_set"
RESPONDED = "session_requests.responded_at.matches_status"
UPDATED = "session_requests.updated_at.after_created"
EMAIL = "session_requests.contact_email.pattern"
PHONE = "session_requests.contact_phone.pattern"
PENDING_UNIQUE = "session_requests.pending.unique"
PENDING_UNIQUE_COLUMNS = "tutor_id,requester_id,requester_type,package_id"
PROFILE_TABLES = ("tutor_profiles", "student_profiles", "parent_profiles")

#: every data (non-catalog) check of suite.yml, plus the discriminator sub-finding
DATA_CHECKS: tuple[str, ...] = (
    TUTOR_REF,
    REQUESTER_REF,
    DISCRIMINATOR,
    PACKAGE_REF,
    PACKAGE_TUTOR_REF,
    *(f"{t}.user_id.reference" for t in PROFILE_TABLES),
    BELONGS,
    NAME_MATCH,
    *(f"{t}.user_id.unique" for t in PROFILE_TABLES),
    NOT_NULL,
    STATUS_SET,
    TYPE_SET,
    RESPONDED,
    UPDATED,
    EMAIL,
    PHONE,
    PENDING_UNIQUE,
)

#: How the ground truth reads the suite where it leaves room for interpretation.
SEMANTICS = {
    "null_operands": "row_rule / pattern / in_set fire only when the condition is FALSE; "
    "a NULL operand makes it unknown and only session_requests.not_null reports it",
    "unknown_status": "session_requests.responded_at.matches_status ignores a status outside "
    "the set (its `where:`); status.in_set reports it",
    "consistency": "belongs_to_tutor / matches_package only evaluate rows whose package exists",
    "column": "violations.column is the middle segment of the check id (belongs_to_tutor: "
    "tutor_id, the column compared with the package's tutor); not_null names the NULL "
    "column, unique checks their columns, the discriminator finding requester_type",
}

#: Set to False if the suite's responded_at rule is changed to ignore statuses outside the set.
UNKNOWN_STATUS_BREAKS_RESPONDED_RULE = False

# ----------------------------------------------------------------------------- vocabulary
FIRST_NAMES = np.array(
    [
        "Abebe", "Almaz", "Bekele", "Chaltu", "Dawit", "Eleni", "Fikru", "Genet",
        "Haile", "Hirut", "Kebede", "Lemlem", "Meron", "Mulugeta", "Nardos", "Selam",
        "Tadesse", "Tsion", "Yared", "Zewdu", "Mekdes", "Yonas", "Hana", "Biruk",
        "Liya", "Samuel", "Ruth", "Kidus", "Betelhem", "Natnael", "Mahlet", "Ermias",
    ],
    dtype=object,
)  # fmt: skip
FATHER_NAMES = np.array(
    [
        "Tesfaye", "Girma", "Alemu", "Bekele", "Wolde", "Desta", "Kassa", "Mengistu",
        "Haile", "Tadesse", "Ayele", "Gebre", "Negash", "Abate", "Worku", "Lemma",
        "Demissie", "Shiferaw", "Tekle", "Assefa", "Mamo", "Fikadu", "Berhanu", "Yilma",
    ],
    dtype=object,
)  # fmt: skip
DOMAINS = np.array(
    ["gmail.com", "yahoo.com", "astegni.et", "ethionet.et", "outlook.com"], dtype=object
)
PACKAGE_NAMES = np.array(
    [
        "Premium Math", "Grade 9 Physics", "Basic Math", "Chemistry Crash Course",
        "Biology Exam Prep", "English Speaking", "Amharic Literature", "Afaan Oromo Basics",
        "Matric Preparation", "Coding for Kids", "SAT Prep", "Grade 12 Math",
        "Physics Olympiad", "Geography Review", "History Essentials", "Economics 101",
        "Accounting Basics", "Tigrinya Reading", "Calculus Intensive", "Homework Help",
        "Exam Week Package", "Weekend Tutoring", "Monthly Math", "Science Lab Skills",
    ],
    dtype=object,
)  # fmt: skip
MESSAGES = np.array(
    [
        "I would like help preparing for the national exam.",
        "Can we start next week?",
        "My child needs support in math, especially algebra.",
        "Looking for weekend sessions.",
        "Please contact me by phone.",
        "Interested in the package, is it still available?",
        "We prefer online sessions.",
        None,
    ],
    dtype=object,
)
GRADES = np.array([f"Grade {g}" for g in range(1, 13)] + ["University"], dtype=object)
SCHEDULES = np.array(
    [
        "Weekday evenings", "Weekends, mornings", "Mon/Wed/Fri 4-6 PM",
        "Saturday afternoon", "Flexible", "Tue/Thu after school",
    ],
    dtype=object,
)  # fmt: skip
ROLE_LITERALS = np.array(
    [
        "{}", "{parent}", "{student}", "{student,parent}",
        "{tutor}", "{tutor,parent}", "{tutor,student}", "{tutor,student,parent}",
    ],
    dtype=object,
)  # fmt: skip
STATUSES = np.array(["pending", "accepted", "rejected"], dtype=object)
STATUS_SHARES = (0.45, 0.35, 0.20)
UNKNOWN_STATUSES = np.array(["cancelled", "Pending", "expired", "ACCEPTED"], dtype=object)
UNKNOWN_TYPES = np.array(["teacher", "Student", "guardian"], dtype=object)
REQUESTER_TYPES = np.array(["student", "parent"], dtype=object)

REQUEST_COLUMNS = (
    "id", "tutor_id", "requester_id", "requester_type", "package_id", "package_name", "status",
    "message", "student_name", "student_grade", "preferred_schedule", "contact_phone",
    "contact_email", "created_at", "updated_at", "responded_at",
)  # fmt: skip

REQUESTS_START = np.datetime64("2025-01-15T08:00:00", "s")
REQUESTS_SPAN_S = 400 * 86_400
USERS_START = np.datetime64("2023-09-01T00:00:00", "s")
NAT = np.datetime64("NaT", "s")
HOUR, DAY = 3_600, 86_400

# ----------------------------------------------------------------------------- the seed
SEED_TUTOR = (85, 115)  # tutor_profiles.id, users.id
#: (request id, requester_type, profile id, users.id, index into the tutor's packages or None)
SEED_REQUESTS: tuple[tuple[int, str, int, int, int | None], ...] = (
    (1, "student", 27, 112, 0),
    (2, "student", 26, 98, 0),
    (3, "student", 21, 93, None),
    (4, "parent", 1, 118, 1),
    (5, "student", 24, 101, None),
    (6, "student", 22, 104, None),
)
SEED_PACKAGE_NAMES = ("Premium Math", "Grade 9 Physics")
SEED_USER_IDS = (SEED_TUTOR[1], *(r[3] for r in SEED_REQUESTS))
SEED_START = np.datetime64("2025-01-06T09:15:00", "s")


# ============================================================================= ground truth
@dataclass
class GroundTruth:
    """What a correct audit of a generated database must report (data checks only).

    ``violations`` has one line per (check, row): ``check, table, key, column, diagnosis,
    true_value``. ``diagnosis`` is one of mis_keyed, mis_keyed_hidden, wrong_type, ambiguous,
    orphan for reference checks and empty otherwise; ``true_value`` is what a correct repair puts
    back (a profile id, a requester type) or empty. ``counts`` holds violations per check id
    (every data check, zeros included), ``rows`` the row count per table.
    """

    violations: pd.DataFrame
    counts: dict[str, int]
    rows: dict[str, int]


VIOLATION_COLUMNS = ("check", "table", "key", "column", "diagnosis", "true_value")


class _Truth:
    """Collects violation lines (only when ``keep``) and counts (always)."""

    def __init__(self, keep: bool) -> None:
        self.keep = keep
        self.frames: list[pd.DataFrame] = []
        self.counts: dict[str, int] = dict.fromkeys(DATA_CHECKS, 0)

    def add(
        self,
        check: str,
        table: str,
        keys: Iterable[int] | Arr,
        column: str,
        diagnosis: str = "",
        true_values: Iterable[object] | Arr | None = None,
    ) -> None:
        key_arr = np.asarray(keys, dtype=np.int64).reshape(-1)
        if not len(key_arr):
            return
        self.counts[check] = self.counts.get(check, 0) + len(key_arr)
        if not self.keep:
            return
        values = [""] * len(key_arr) if true_values is None else [str(v) for v in true_values]
        self.frames.append(
            pd.DataFrame(
                {
                    "check": check,
                    "table": table,
                    "key": key_arr,
                    "column": column,
                    "diagnosis": diagnosis,
                    "true_value": values,
                }
            )
        )

    def result(self, rows: dict[str, int]) -> GroundTruth:
        if self.frames:
            frame = pd.concat(self.frames, ignore_index=True)
            frame = frame.sort_values(["check", "key", "column"], kind="stable")
            frame = frame.reset_index(drop=True)
        else:
            frame = pd.DataFrame({c: pd.Series(dtype=object) for c in VIOLATION_COLUMNS})
        frame["key"] = frame["key"].astype(np.int64)
        return GroundTruth(violations=frame, counts=dict(self.counts), rows=dict(rows))


# ============================================================================= schema
def _requests_ddl(state: str) -> str:
    strict = state in ("before", "after")
    nn = " NOT NULL" if strict else ""
    type_check = " CHECK (requester_type IN ('student', 'parent'))" if strict else ""
    status_check = " CHECK (status IN ('pending', 'accepted', 'rejected'))" if strict else ""
    constraints = {
        "after": [
            "CONSTRAINT fk_session_requests_tutor FOREIGN KEY (tutor_id)"
            " REFERENCES tutor_profiles(id) ON DELETE CASCADE",
            "CONSTRAINT fk_session_requests_package FOREIGN KEY (package_id)"
            " REFERENCES tutor_packages(id) ON DELETE SET NULL",
        ],
        "before": [
            "CONSTRAINT fk_session_requests_tutor FOREIGN KEY (tutor_id) REFERENCES users(id)",
            "CONSTRAINT fk_session_requests_requester FOREIGN KEY (requester_id)"
            " REFERENCES users(id)",
            "CONSTRAINT fk_session_requests_package FOREIGN KEY (package_id)"
            " REFERENCES tutor_packages(id)",
        ],
        "dirty": [],
    }[state]
    columns = [
        "id SERIAL PRIMARY KEY",
        f"tutor_id INTEGER{nn}",
        f"requester_id INTEGER{nn}",
        f"requester_type VARCHAR(20){nn}{type_check}",
        "package_id INTEGER",
        "package_name VARCHAR(255)",
        f"status VARCHAR(20) DEFAULT 'pending'{status_check}",
        "message TEXT",
        "student_name VARCHAR(255)",
        "student_grade VARCHAR(50)",
        "preferred_schedule TEXT",
        "contact_phone VARCHAR(20)",
        "contact_email VARCHAR(255)",
        "created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP",
        "updated_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP",
        "responded_at TIMESTAMP",
    ]
    body = ",\n    ".join(columns + constraints)
    return f"CREATE TABLE session_requests (\n    {body}\n)"


def _schema_ddl(state: str) -> list[str]:
    fks = state in ("before", "after")
    ddl = [
        "CREATE TABLE users (\n    id SERIAL PRIMARY KEY,\n    first_name VARCHAR(100),\n"
        "    father_name VARCHAR(100),\n    email VARCHAR(255),\n    phone VARCHAR(20),\n"
        "    roles TEXT[],\n    created_at TIMESTAMP DEFAULT CURRENT_TIMESTAMP\n)"
    ]
    for table in PROFILE_TABLES:
        fk = (
            f",\n    CONSTRAINT fk_{table}_user FOREIGN KEY (user_id) REFERENCES users(id)"
            if fks
            else ""
        )
        ddl.append(
            f"CREATE TABLE {table} (\n    id SERIAL PRIMARY KEY,\n    user_id INTEGER{fk}\n)"
        )
    fk = (
        ",\n    CONSTRAINT fk_tutor_packages_tutor FOREIGN KEY (tutor_id)"
        " REFERENCES tutor_profiles(id)"
        if fks
        else ""
    )
    ddl.append(
        "CREATE TABLE tutor_packages (\n    id SERIAL PRIMARY KEY,\n    tutor_id INTEGER,\n"
        f"    name VARCHAR(255){fk}\n)"
    )
    ddl.append(_requests_ddl(state))
    ddl.append("CREATE INDEX idx_session_requests_tutor ON session_requests(tutor_id, status)")
    ddl.append("CREATE INDEX idx_session_requests_requester ON session_requests(requester_id)")
    return ddl


TABLES = ("users", *PROFILE_TABLES, "tutor_packages", "session_requests")


def _check_state(state: str) -> None:
    if state not in STATES:
        raise ValueError(f"unknown state {state!r}; expected one of {', '.join(STATES)}")


def create_schema(conn: Connection, *, state: str, replace: bool = False) -> None:
    """Create the six Astegni tables in ``state`` (see the module docstring).

    ``"after"`` is the seed's corrected schema, ``"before"`` its pre-fix schema (FKs of tutor_id
    and requester_id to ``users(id)``), ``"dirty"`` has only primary keys and the two indexes.
    Profile tables and packages carry their FKs in "before" and "after". With ``replace`` the
    tables are dropped first. The caller commits.
    """
    _check_state(state)
    cur = conn.cursor()
    if replace:
        cur.execute(f"DROP TABLE IF EXISTS {', '.join(reversed(TABLES))} CASCADE")
    for statement in _schema_ddl(state):
        cur.execute(statement)


def finish_schema(conn: Connection, *, state: str) -> None:
    """Complete the schema after loading and reset every serial sequence to ``max(id)``.

    For ``"dirty"`` this adds ``fk_session_requests_tutor`` pointing at the wrong table
    (``users(id)``) and ``NOT VALID`` - a catalog finding the audit must report.
    """
    _check_state(state)
    cur = conn.cursor()
    if state == "dirty":
        cur.execute(
            "ALTER TABLE session_requests ADD CONSTRAINT fk_session_requests_tutor "
            "FOREIGN KEY (tutor_id) REFERENCES users(id) NOT VALID"
        )
    for table in TABLES:
        cur.execute(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT max(id) FROM {table}), 1), "
            f"(SELECT max(id) FROM {table}) IS NOT NULL)"
        )


# ============================================================================= value helpers
def _hash(ids: Arr) -> Arr:
    return (np.asarray(ids, dtype=np.int64) * 2_654_435_761) % (1 << 32)


def _first_names(ids: Arr) -> Arr:
    return FIRST_NAMES[_hash(ids) % len(FIRST_NAMES)]


def _father_names(ids: Arr) -> Arr:
    return FATHER_NAMES[(_hash(ids) // len(FIRST_NAMES)) % len(FATHER_NAMES)]


def _emails(ids: Arr) -> Arr:
    """The e-mail of user ``id`` (unique per id; ids > U give addresses nobody has)."""
    ids = np.asarray(ids, dtype=np.int64)
    h = _hash(ids)
    first = FIRST_NAMES[h % len(FIRST_NAMES)]
    father = FATHER_NAMES[(h // len(FIRST_NAMES)) % len(FATHER_NAMES)]
    domain = DOMAINS[(h // (len(FIRST_NAMES) * len(FATHER_NAMES))) % len(DOMAINS)]
    return np.array(
        [
            f"{f.lower()}.{b.lower()}{i}@{d}"
            for f, b, i, d in zip(first, father, ids.tolist(), domain, strict=True)
        ],
        dtype=object,
    )


def _phones(ids: Arr) -> Arr:
    """The phone of user ``id``: +2519 and 8 digits, a bijection of the id (unique)."""
    digits = (np.asarray(ids, dtype=np.int64) * 48_271 + 1_234_567) % 100_000_000
    return np.array([f"+2519{d:08d}" for d in digits.tolist()], dtype=object)


def _nullable_int(values: Arr, null: Arr) -> pd.arrays.IntegerArray:
    return pd.arrays.IntegerArray(np.asarray(values, dtype=np.int64), np.asarray(null, bool))


COPY_BATCH_ROWS = 50_000  # rows per COPY statement: bounds the CSV text held in memory


def _copy(cur: Any, table: str, frame: pd.DataFrame) -> None:
    """Load ``frame`` into ``table`` with COPY ... FORMAT csv (empty unquoted field = NULL)."""
    sql = f"COPY {table} ({', '.join(frame.columns)}) FROM STDIN WITH (FORMAT csv)"
    for start in range(0, len(frame), COPY_BATCH_ROWS):
        buf = io.BytesIO()
        frame.iloc[start : start + COPY_BATCH_ROWS].to_csv(
            buf, header=False, index=False, encoding="utf-8"
        )
        buf.seek(0)
        cur.copy_expert(sql, buf)


def _lookup(size: int, ids: Arr) -> Arr:
    mask = np.zeros(size, dtype=bool)
    mask[np.asarray(ids, dtype=np.int64)] = True
    return mask


def _id_space(
    rng: np.random.Generator, n: int, gap_rate: float, reserved: Arr, required: Sequence[int]
) -> Arr:
    """``n`` sorted ids dense from 1 with random gaps; never ``reserved``, always ``required``."""
    req = np.asarray(sorted(required), dtype=np.int64)
    limit = int((n + len(reserved) + len(req)) * (1 + 3 * gap_rate)) + int(req.max()) + 64
    keep = rng.random(limit) >= gap_rate
    reserved = np.asarray(reserved, dtype=np.int64)
    keep[reserved[reserved <= limit] - 1] = False
    keep[req - 1] = True
    ids = np.arange(1, limit + 1, dtype=np.int64)[keep]
    others = ids[~np.isin(ids, req)][: n - len(req)]
    if len(others) < n - len(req):  # pragma: no cover - limit is generous
        raise RuntimeError("id space too small")
    return np.sort(np.concatenate([others, req]))


def _next_power_of_ten(value: int) -> int:
    return int(10 ** len(str(int(value))))


# ============================================================================= population
@dataclass
class _ProfileTable:
    """A profile table: the first ``regular`` rows may be referenced by requests."""

    name: str
    ids: Arr
    users: Arr
    regular: int
    dup_ids: Arr  # extra profiles of a user who already has one (unique violations)
    orphan_ids: Arr  # profiles whose user_id is not in users


@dataclass
class _Packages:
    """tutor_packages: ids 1..n_regular grouped by regular tutor, then orphan packages."""

    tutor: Arr  # tutor_id of package id i at index i - 1
    name: Arr
    start: Arr  # first package id of each regular tutor
    count: Arr  # packages of each regular tutor
    n_regular: int
    orphan_ids: Arr  # packages whose tutor_id is not a tutor profile
    beyond: int  # every package id is smaller


@dataclass
class _Eligibility:
    """Which regular tutors / requester slots may carry which defect class."""

    t_visible: Arr  # user is no tutor id and holds exactly one tutor profile
    t_hidden: Arr  # user holds one tutor profile and is another regular tutor's id
    t_ambiguous: Arr  # user holds two tutor profiles and is no tutor id
    r_visible: Arr  # user holds one profile of the slot's kind and is no student/parent id
    r_hidden: Arr  # student slot: user holds one student profile and is a regular student id
    r_wrong_type: Arr  # parent slot: id is no student id, and user `id` has no student profile
    t_seed: Arr
    r_seed: Arr
    orphan_tutor_users: Arr  # users without any profile whose id is above every tutor id
    orphan_requester_users: Arr  # ... above every student and parent id


@dataclass
class _Population:
    """Users, profiles, packages, requester slots and the lookups the defect classes need."""

    n_users: int
    tutor: _ProfileTable
    student: _ProfileTable
    parent: _ProfileTable
    beyond: int  # every user / profile id is smaller
    counts: dict[str, Arr]  # profiles per user id, per kind
    pkg: _Packages
    # requester slots: regular students then regular parents
    slot_type: Arr  # 0 student, 1 parent
    slot_id: Arr
    slot_user: Arr
    slot_order: Arr
    slot_offset: Arr
    ok: _Eligibility
    seed_tutor_pos: int

    @property
    def n_tutors(self) -> int:
        return self.tutor.regular

    @property
    def n_slots(self) -> int:
        return len(self.slot_id)


KINDS = ("tutor", "student", "parent")


def _id_spaces(rng: np.random.Generator, n_users: int) -> dict[str, Arr]:
    """Profile ids per kind: dense from 1 with gaps; seed users' ids are never profile ids."""
    n_t = max(40, round(0.12 * n_users))
    n_s = max(60, round(0.60 * n_users))
    n_p = max(10, round(0.15 * n_users))
    reserved = np.array(SEED_USER_IDS, dtype=np.int64)
    t_ids = _id_space(rng, n_t, 0.03, reserved, [SEED_TUTOR[0]])
    p_ids = _id_space(rng, n_p, 0.03, reserved, [r[2] for r in SEED_REQUESTS if r[1] == "parent"])
    # student ids get extra gaps where parent ids live, so some parent ids are no student id
    low = np.arange(1, int(p_ids.max()) + 1)
    s_reserved = np.union1d(reserved, low[rng.random(len(low)) < 0.10])
    s_ids = _id_space(rng, n_s, 0.03, s_reserved, [r[2] for r in SEED_REQUESTS if r[1] != "parent"])
    return {"tutor": t_ids, "student": s_ids, "parent": p_ids}


def _assign_users(
    rng: np.random.Generator, n_users: int, id_spaces: dict[str, Arr]
) -> tuple[dict[str, Arr], dict[str, Arr]]:
    """Give every profile a distinct user (a random permutation), then place the seed users."""
    sizes = [len(id_spaces[k]) for k in KINDS]
    offsets = dict(zip(KINDS, np.cumsum([0, *sizes[:-1]]).tolist(), strict=True))
    perm = rng.permutation(n_users).astype(np.int64) + 1
    seed_places = [("tutor", *SEED_TUTOR)] + [(r[1], r[2], r[3]) for r in SEED_REQUESTS]
    protected = {k: np.zeros(len(id_spaces[k]), dtype=bool) for k in KINDS}
    for kind, profile_id, user_id in seed_places:
        idx = int(np.searchsorted(id_spaces[kind], profile_id))
        slot, at = offsets[kind] + idx, int(np.flatnonzero(perm == user_id)[0])
        perm[slot], perm[at] = perm[at], perm[slot]
        protected[kind][idx] = True
    users = {k: perm[offsets[k] : offsets[k] + len(id_spaces[k])].copy() for k in KINDS}
    # some tutors are also parents (one user, several roles)
    n_overlap = max(1, round(0.03 * len(users["parent"])))
    parents = rng.choice(np.flatnonzero(~protected["parent"]), n_overlap, replace=False)
    tutors = rng.choice(np.flatnonzero(~protected["tutor"]), n_overlap, replace=False)
    users["parent"][parents] = users["tutor"][tutors]
    for k in KINDS:
        _remove_fixed_points(id_spaces[k], users[k], protected[k])
    return users, protected


def _remove_fixed_points(ids: Arr, users: Arr, protected: Arr) -> None:
    """Swap users within the table until no profile has ``id == user_id``."""
    n = len(ids)
    for i in np.flatnonzero(ids == users).tolist():
        if ids[i] != users[i]:
            continue
        j = (i + 1) % n
        while protected[j] or ids[j] == users[i] or ids[i] == users[j]:
            j = (j + 1) % n
        users[i], users[j] = users[j], users[i]


def _profile_tables(
    rng: np.random.Generator,
    n_users: int,
    spaces: dict[str, Arr],
    users: dict[str, Arr],
    protected: dict[str, Arr],
) -> dict[str, _ProfileTable]:
    """Append the table-level defects: a second profile of a user, profiles of missing users."""
    next_orphan_user = n_users + 1
    tables: dict[str, _ProfileTable] = {}
    for kind in KINDS:
        ids, us = spaces[kind], users[kind]
        n_dup = (
            max(3, round(0.01 * len(ids))) if kind == "tutor" else max(2, round(0.002 * len(ids)))
        )
        n_orphan = max(3 if kind == "student" else 2, round(0.002 * len(ids)))
        top = int(ids.max())
        eligible = ~protected[kind]
        if kind == "tutor":  # the duplicated user's id must not be a tutor id: ambiguous class
            eligible &= us > top + n_dup + n_orphan + 10
        dup_pos = np.sort(rng.choice(np.flatnonzero(eligible), n_dup, replace=False))
        extra_ids = np.arange(top + 1, top + 1 + n_dup + n_orphan, dtype=np.int64)
        orphan_users = np.arange(next_orphan_user, next_orphan_user + n_orphan, dtype=np.int64)
        next_orphan_user += n_orphan
        tables[kind] = _ProfileTable(
            name=f"{kind}_profiles",
            ids=np.concatenate([ids, extra_ids]),
            users=np.concatenate([us, us[dup_pos], orphan_users]),
            regular=len(ids),
            dup_ids=extra_ids[:n_dup],
            orphan_ids=extra_ids[n_dup:],
        )
    return tables


def _packages(rng: np.random.Generator, tutor: _ProfileTable, beyond: int) -> _Packages:
    """1-4 packages per regular tutor (contiguous ids); tutor 85 owns the seed's packages."""
    t_ids = tutor.ids[: tutor.regular]
    seed_pos = int(np.searchsorted(t_ids, SEED_TUTOR[0]))
    count = rng.choice(np.array([1, 2, 3, 4]), size=len(t_ids), p=[0.2, 0.35, 0.3, 0.15])
    count[seed_pos] = max(len(SEED_PACKAGE_NAMES), int(count[seed_pos]))
    start = np.concatenate([[1], 1 + np.cumsum(count)[:-1]]).astype(np.int64)
    n_regular = int(count.sum())
    name_idx = rng.integers(0, len(PACKAGE_NAMES), n_regular)
    for i, name in enumerate(SEED_PACKAGE_NAMES):
        name_idx[start[seed_pos] - 1 + i] = int(np.flatnonzero(name == PACKAGE_NAMES)[0])
    n_orphan = max(2, round(0.001 * n_regular))
    return _Packages(
        tutor=np.concatenate(
            [np.repeat(t_ids, count), beyond + 1 + np.arange(n_orphan, dtype=np.int64)]
        ),
        name=PACKAGE_NAMES[
            np.concatenate([name_idx, rng.integers(0, len(PACKAGE_NAMES), n_orphan)])
        ],
        start=start,
        count=count.astype(np.int64),
        n_regular=n_regular,
        orphan_ids=np.arange(n_regular + 1, n_regular + 1 + n_orphan, dtype=np.int64),
        beyond=_next_power_of_ten(n_regular + n_orphan),
    )


def _eligibility(
    n_users: int,
    tables: dict[str, _ProfileTable],
    counts: dict[str, Arr],
    beyond: int,
    slots: tuple[Arr, Arr, Arr],
    protected: dict[str, Arr],
) -> _Eligibility:
    is_id = {k: _lookup(beyond, t.ids) for k, t in tables.items()}
    is_regular = {k: _lookup(beyond, t.ids[: t.regular]) for k, t in tables.items()}
    slot_type, slot_id, slot_user = slots
    t_user = tables["tutor"].users[: tables["tutor"].regular]
    t_seed = protected["tutor"]
    t_single = counts["tutor"][t_user] == 1
    r_seed = np.concatenate([protected["student"], protected["parent"]])
    student = slot_type == 0
    own_count = np.where(student, counts["student"][slot_user], counts["parent"][slot_user])
    everyone = np.arange(1, n_users + 1)
    roleless = everyone[sum(counts[k][1 : n_users + 1] for k in KINDS) == 0]
    top_tutor = int(tables["tutor"].ids.max())
    top_requester = max(int(tables["student"].ids.max()), int(tables["parent"].ids.max()))
    return _Eligibility(
        t_visible=~t_seed & t_single & ~is_id["tutor"][t_user],
        t_hidden=~t_seed & t_single & is_regular["tutor"][t_user],
        t_ambiguous=~t_seed & (counts["tutor"][t_user] == 2) & ~is_id["tutor"][t_user],
        r_visible=~r_seed
        & (own_count == 1)
        & ~is_id["student"][slot_user]
        & ~is_id["parent"][slot_user],
        r_hidden=student & ~r_seed & (own_count == 1) & is_regular["student"][slot_user],
        r_wrong_type=~student
        & ~r_seed
        & ~is_id["student"][slot_id]
        & (counts["student"][slot_id] == 0),
        t_seed=t_seed,
        r_seed=r_seed,
        orphan_tutor_users=roleless[roleless > top_tutor],
        orphan_requester_users=roleless[roleless > top_requester],
    )


def _population(requests: int, seed: int) -> _Population:
    rng = np.random.default_rng([seed, 1])
    n_users = max(200, requests // 3)
    spaces = _id_spaces(rng, n_users)
    users, protected = _assign_users(rng, n_users, spaces)
    tables = _profile_tables(rng, n_users, spaces, users, protected)
    top = max(int(t.users.max()) for t in tables.values())  # orphan profiles' users are > U
    beyond = _next_power_of_ten(max(top, *(int(t.ids.max()) for t in tables.values())))
    counts = {k: np.bincount(t.users, minlength=beyond).astype(np.int8) for k, t in tables.items()}
    pkg = _packages(rng, tables["tutor"], beyond)

    # requester slots: regular students, then regular parents; a row's slot and tutor are
    # derived from its index so that every (tutor, requester) pair is used at most once
    student, parent = tables["student"], tables["parent"]
    slot_type = np.concatenate(
        [np.zeros(student.regular, np.int8), np.ones(parent.regular, np.int8)]
    )
    slot_id = np.concatenate([student.ids[: student.regular], parent.ids[: parent.regular]])
    slot_user = np.concatenate([student.users[: student.regular], parent.users[: parent.regular]])
    n_tutors = tables["tutor"].regular
    if requests > len(slot_id) * n_tutors:  # pragma: no cover - the sizes make this impossible
        raise ValueError("too many requests for unique (tutor, requester) pairs")
    return _Population(
        n_users=n_users,
        tutor=tables["tutor"],
        student=student,
        parent=parent,
        beyond=beyond,
        counts=counts,
        pkg=pkg,
        slot_type=slot_type,
        slot_id=slot_id,
        slot_user=slot_user,
        slot_order=rng.permutation(len(slot_id)),
        slot_offset=rng.integers(0, n_tutors, len(slot_id)),
        ok=_eligibility(
            n_users, tables, counts, beyond, (slot_type, slot_id, slot_user), protected
        ),
        seed_tutor_pos=int(np.searchsorted(spaces["tutor"], SEED_TUTOR[0])),
    )


def _table_defects(pop: _Population, truth: _Truth) -> None:
    """Truth lines of the table-level defects (see ``TABLE_DEFECTS``)."""
    for table in (pop.tutor, pop.student, pop.parent):
        truth.add(f"{table.name}.user_id.unique", table.name, table.dup_ids, "user_id")
        truth.add(
            f"{table.name}.user_id.reference", table.name, table.orphan_ids, "user_id", "orphan"
        )
    truth.add(PACKAGE_TUTOR_REF, "tutor_packages", pop.pkg.orphan_ids, "tutor_id", "orphan")


# ============================================================================= loading
def _users_frame(ids: Arr, pop: _Population | None, roles: Arr | None = None) -> pd.DataFrame:
    ids = np.asarray(ids, dtype=np.int64)
    if roles is None:
        assert pop is not None
        code = (
            4 * (pop.counts["tutor"][ids] > 0)
            + 2 * (pop.counts["student"][ids] > 0)
            + (pop.counts["parent"][ids] > 0)
        )
        roles = ROLE_LITERALS[code]
    created = USERS_START + ((ids * 7_919) % (480 * DAY)).astype("timedelta64[s]")
    return pd.DataFrame(
        {
            "id": ids,
            "first_name": _first_names(ids),
            "father_name": _father_names(ids),
            "email": _emails(ids),
            "phone": _phones(ids),
            "roles": roles,
            "created_at": created,
        }
    )


def _load_population(cur: Any, pop: _Population) -> None:
    for start in range(1, pop.n_users + 1, CHUNK_ROWS):
        ids = np.arange(start, min(start + CHUNK_ROWS, pop.n_users + 1), dtype=np.int64)
        _copy(cur, "users", _users_frame(ids, pop))
    for table in (pop.tutor, pop.student, pop.parent):
        _copy(cur, table.name, pd.DataFrame({"id": table.ids, "user_id": table.users}))
    n = len(pop.pkg.tutor)
    frame = pd.DataFrame(
        {"id": np.arange(1, n + 1), "tutor_id": pop.pkg.tutor, "name": pop.pkg.name}
    )
    _copy(cur, "tutor_packages", frame)


# ============================================================================= requests
@dataclass
class _Chunk:
    """One chunk of synthetic session_requests as column arrays (NULL = mask / None / NaT)."""

    start: int  # synthetic index of the first row (row id = 7 + index)
    rng: np.random.Generator
    ids: Arr
    tpos: Arr  # position of the intended tutor among regular tutors
    slot: Arr  # intended requester slot
    tutor_id: Arr
    tutor_null: Arr
    requester_id: Arr
    requester_null: Arr
    requester_type: Arr
    package_id: Arr
    package_null: Arr
    package_name: Arr
    status: Arr
    message: Arr
    student_name: Arr
    student_grade: Arr
    preferred_schedule: Arr
    contact_phone: Arr
    contact_email: Arr
    created: Arr
    updated: Arr
    responded: Arr
    d_resp: Arr  # delay created -> responded
    d_upd: Arr  # delay responded (or created) -> updated
    free: Arr = field(default_factory=lambda: np.zeros(0, dtype=bool))

    def __len__(self) -> int:
        return len(self.ids)


FIRST_SYNTHETIC_ID = len(SEED_REQUESTS) + 1


def _base_chunk(pop: _Population, start: int, m: int, total: int, seed: int) -> _Chunk:
    """Clean rows: each synthetic index gets its own (tutor, requester slot) pair."""
    rng = np.random.default_rng([seed, 2, start // CHUNK_ROWS])
    i = np.arange(start, start + m, dtype=np.int64)
    q = i % pop.n_slots
    slot = pop.slot_order[q]
    tpos = (pop.slot_offset[q] + i // pop.n_slots) % pop.n_tutors
    stype = pop.slot_type[slot]
    user = pop.slot_user[slot]
    has_pkg = rng.random(m) >= 0.3
    pkg = pop.pkg.start[tpos] + (rng.random(m) * pop.pkg.count[tpos]).astype(np.int64)
    child = FIRST_NAMES[rng.integers(0, len(FIRST_NAMES), m)]
    student_name = np.where(
        stype == 0,
        _first_names(user) + " " + _father_names(user),
        child + " " + _first_names(user),
    )
    offset = (i * REQUESTS_SPAN_S) // max(total, 1) + rng.integers(0, HOUR, m)
    ch = _Chunk(
        start=start,
        rng=rng,
        ids=FIRST_SYNTHETIC_ID + i,
        tpos=tpos,
        slot=slot,
        tutor_id=pop.tutor.ids[tpos].copy(),
        tutor_null=np.zeros(m, dtype=bool),
        requester_id=pop.slot_id[slot].copy(),
        requester_null=np.zeros(m, dtype=bool),
        requester_type=REQUESTER_TYPES[stype],
        package_id=np.where(has_pkg, pkg, 0),
        package_null=~has_pkg,
        package_name=np.where(has_pkg, pop.pkg.name[pkg - 1], np.array(None, dtype=object)),
        status=STATUSES[rng.choice(3, size=m, p=STATUS_SHARES)],
        message=MESSAGES[rng.integers(0, len(MESSAGES), m)],
        student_name=student_name.astype(object),
        student_grade=GRADES[rng.integers(0, len(GRADES), m)],
        preferred_schedule=SCHEDULES[rng.integers(0, len(SCHEDULES), m)],
        contact_phone=_phones(user),
        contact_email=_emails(user),
        created=REQUESTS_START + offset.astype("timedelta64[s]"),
        updated=np.full(m, NAT),
        responded=np.full(m, NAT),
        d_resp=rng.integers(HOUR, 10 * DAY, m).astype("timedelta64[s]"),
        d_upd=rng.integers(0, 2 * DAY, m).astype("timedelta64[s]"),
        free=np.ones(m, dtype=bool),
    )
    _retime(ch, np.arange(m))
    return ch


def _is_responded(status: Arr) -> Arr:
    return np.asarray((status == "accepted") | (status == "rejected"), dtype=bool)


def _retime(ch: _Chunk, pos: Arr) -> None:
    """responded_at / updated_at consistent with the status of rows ``pos``."""
    responded = _is_responded(ch.status[pos])
    r = ch.created[pos] + ch.d_resp[pos]
    ch.responded[pos] = np.where(responded, r, NAT)
    ch.updated[pos] = np.where(responded, r, ch.created[pos]) + ch.d_upd[pos]


def _set_status(ch: _Chunk, pos: Arr, choices: Arr) -> None:
    ch.status[pos] = choices[ch.rng.integers(0, len(choices), len(pos))]
    _retime(ch, pos)


HISTORIC = STATUSES[1:]  # accepted / rejected


def _clear_package(ch: _Chunk, pos: Arr) -> None:
    ch.package_null[pos] = True
    ch.package_id[pos] = 0
    ch.package_name[pos] = None


def _own_package(pop: _Population, ch: _Chunk, pos: Arr) -> None:
    """Make sure rows ``pos`` reference one of their intended tutor's packages."""
    need = pos[ch.package_null[pos]]
    k = ch.tpos[need]
    pkg = pop.pkg.start[k] + (ch.rng.random(len(need)) * pop.pkg.count[k]).astype(np.int64)
    ch.package_id[need] = pkg
    ch.package_null[need] = False
    ch.package_name[need] = pop.pkg.name[pkg - 1]


# ----------------------------------------------------------------------------- defect classes
Eligible = Callable[[_Population, _Chunk], Arr]
Apply = Callable[[_Population, _Chunk, Arr, _Truth], None]


@dataclass(frozen=True)
class DefectClass:
    """One kind of defect injected into a share of the synthetic requests."""

    name: str
    share: float
    effect: str  # what it does and which lines of ground truth it produces
    eligible: Eligible
    apply: Apply


def _any(pop: _Population, ch: _Chunk) -> Arr:
    return np.ones(len(ch), dtype=bool)


def _tutor_flag(attr: str) -> Eligible:
    def eligible(pop: _Population, ch: _Chunk) -> Arr:
        return np.asarray(getattr(pop.ok, attr)[ch.tpos], dtype=bool)

    return eligible


def _slot_flag(attr: str, slot_type: int | None = None) -> Eligible:
    def eligible(pop: _Population, ch: _Chunk) -> Arr:
        mask = np.asarray(getattr(pop.ok, attr)[ch.slot], dtype=bool)
        if slot_type is not None:
            mask &= pop.slot_type[ch.slot] == slot_type
        return mask

    return eligible


def _not_seed(pop: _Population, ch: _Chunk) -> Arr:
    return np.asarray(~pop.ok.t_seed[ch.tpos] & ~pop.ok.r_seed[ch.slot], dtype=bool)


def _student_not_seed(pop: _Population, ch: _Chunk) -> Arr:
    return _not_seed(pop, ch) & (pop.slot_type[ch.slot] == 0)


def _tutor_mis_key(with_package: bool, hidden: bool) -> Apply:
    def apply(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
        true_ids = pop.tutor.ids[ch.tpos[pos]]
        ch.tutor_id[pos] = pop.tutor.users[ch.tpos[pos]]
        if with_package:
            _own_package(pop, ch, pos)
            truth.add(BELONGS, SR, ch.ids[pos], "tutor_id")
        else:
            _clear_package(ch, pos)
        diagnosis = "mis_keyed_hidden" if hidden else "mis_keyed"
        truth.add(TUTOR_REF, SR, ch.ids[pos], "tutor_id", diagnosis, true_ids)

    return apply


def _tutor_ambiguous(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    ch.tutor_id[pos] = pop.tutor.users[ch.tpos[pos]]
    _clear_package(ch, pos)
    truth.add(TUTOR_REF, SR, ch.ids[pos], "tutor_id", "ambiguous")


def _orphan_values(pop: _Population, ch: _Chunk, pos: Arr, users: Arr) -> Arr:
    """Half: a users.id of someone without any profile; half: an id beyond every key space."""
    values = pop.beyond + ch.start + pos
    if len(users):
        half = np.arange(len(pos)) % 2 == 0
        values[half] = users[ch.rng.integers(0, len(users), int(half.sum()))]
    return values


def _tutor_orphan(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    ch.tutor_id[pos] = _orphan_values(pop, ch, pos, pop.ok.orphan_tutor_users)
    _clear_package(ch, pos)
    _set_status(ch, pos, HISTORIC)
    truth.add(TUTOR_REF, SR, ch.ids[pos], "tutor_id", "orphan")


def _requester_mis_key(hidden: bool) -> Apply:
    def apply(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
        true_ids = pop.slot_id[ch.slot[pos]]
        ch.requester_id[pos] = pop.slot_user[ch.slot[pos]]  # contact details stay this user's
        if hidden:  # old rows: never pending, so they cannot pair up with a clean pending row
            _set_status(ch, pos, HISTORIC)
        diagnosis = "mis_keyed_hidden" if hidden else "mis_keyed"
        truth.add(REQUESTER_REF, SR, ch.ids[pos], "requester_id", diagnosis, true_ids)

    return apply


def _wrong_type(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    ch.requester_type[pos] = "student"
    truth.add(REQUESTER_REF, SR, ch.ids[pos], "requester_id", "wrong_type", ["parent"] * len(pos))


def _requester_orphan(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    ch.requester_id[pos] = _orphan_values(pop, ch, pos, pop.ok.orphan_requester_users)
    ghost = pop.beyond + ch.start + pos  # contact details of nobody
    ch.contact_email[pos] = _emails(ghost)
    ch.contact_phone[pos] = _phones(ghost)
    ch.student_name[pos] = _first_names(ghost) + " " + _father_names(ghost)
    _set_status(ch, pos, HISTORIC)
    truth.add(REQUESTER_REF, SR, ch.ids[pos], "requester_id", "orphan")


def _package_dangling(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    _own_package(pop, ch, pos)  # keeps a plausible package_name
    ch.package_id[pos] = pop.pkg.beyond + ch.start + pos
    truth.add(PACKAGE_REF, SR, ch.ids[pos], "package_id", "orphan")


def _package_other_tutor(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    k = ch.tpos[pos]
    other = (k + ch.rng.integers(1, pop.n_tutors, len(pos))) % pop.n_tutors
    while True:  # the package's tutor's user must not be the row's tutor_id (no mis-key evidence)
        bad = (other == k) | (pop.tutor.users[other] == ch.tutor_id[pos])
        if not bad.any():
            break
        other[bad] = (other[bad] + 1) % pop.n_tutors
    pkg = pop.pkg.start[other] + (ch.rng.random(len(pos)) * pop.pkg.count[other]).astype(np.int64)
    ch.package_id[pos] = pkg
    ch.package_null[pos] = False
    ch.package_name[pos] = pop.pkg.name[pkg - 1]
    truth.add(BELONGS, SR, ch.ids[pos], "tutor_id")


def _package_name_mismatch(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    _own_package(pop, ch, pos)
    names = ch.package_name[pos]
    shifted = PACKAGE_NAMES[ch.rng.integers(0, len(PACKAGE_NAMES), len(pos))]
    shifted = np.where(shifted == names, names + " (2023)", shifted)
    ch.package_name[pos] = shifted
    truth.add(NAME_MATCH, SR, ch.ids[pos], "package_name")


def _null(column: str) -> Apply:
    def apply(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
        if column == "tutor_id":
            ch.tutor_null[pos] = True
            _clear_package(ch, pos)
            _set_status(ch, pos, HISTORIC)
        elif column == "requester_id":
            ch.requester_null[pos] = True
            _set_status(ch, pos, HISTORIC)
        elif column == "requester_type":
            ch.requester_type[pos] = None
            truth.add(DISCRIMINATOR, SR, ch.ids[pos], "requester_type")
        elif column == "status":
            ch.status[pos] = None
            _retime(ch, pos)
        elif column == "created_at":
            ch.created[pos] = NAT
        truth.add(NOT_NULL, SR, ch.ids[pos], column)

    return apply


def _status_unknown(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    _set_status(ch, pos, UNKNOWN_STATUSES)  # responded_at NULL
    truth.add(STATUS_SET, SR, ch.ids[pos], "status")
    if UNKNOWN_STATUS_BREAKS_RESPONDED_RULE:
        truth.add(RESPONDED, SR, ch.ids[pos], "responded_at")


def _type_unknown(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    ch.requester_type[pos] = UNKNOWN_TYPES[ch.rng.integers(0, len(UNKNOWN_TYPES), len(pos))]
    truth.add(TYPE_SET, SR, ch.ids[pos], "requester_type")
    truth.add(DISCRIMINATOR, SR, ch.ids[pos], "requester_type")


def _responded_missing(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    _set_status(ch, pos, HISTORIC)
    ch.responded[pos] = NAT
    truth.add(RESPONDED, SR, ch.ids[pos], "responded_at")


def _responded_unexpected(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    _set_status(ch, pos, STATUSES[:1])
    ch.responded[pos] = ch.created[pos] + ch.d_resp[pos]
    ch.updated[pos] = ch.responded[pos] + ch.d_upd[pos]
    truth.add(RESPONDED, SR, ch.ids[pos], "responded_at")


def _updated_before_created(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    back = ch.rng.integers(HOUR, 20 * DAY, len(pos)).astype("timedelta64[s]")
    ch.updated[pos] = ch.created[pos] - back
    truth.add(UPDATED, SR, ch.ids[pos], "updated_at")


def _bad_emails(emails: Arr) -> Arr:
    out = []
    for n, email in enumerate(emails.tolist()):
        local, domain = email.split("@")
        out.append(
            (
                f"{local}{domain}",  # no @
                f"{local.replace('.', ' ', 1)}@{domain}",  # a space
                f"{local}@{domain.replace('.', '')}",  # no dot in the domain
                f"{local}@@{domain}",  # two @
            )[n % 4]
        )
    return np.array(out, dtype=object)


def _bad_phones(phones: Arr) -> Arr:
    out = []
    for n, phone in enumerate(phones.tolist()):
        out.append(
            (
                "+2517" + phone[5:],  # a landline prefix
                phone[:-1],  # 12 characters
                phone[1:],  # no +
                phone[:8] + "ab" + phone[10:],  # letters
                "0" + phone[4:],  # local format 09...
            )[n % 5]
        )
    return np.array(out, dtype=object)


def _bad_email(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    ch.contact_email[pos] = _bad_emails(ch.contact_email[pos])  # the phone still matches
    truth.add(EMAIL, SR, ch.ids[pos], "contact_email")


def _bad_phone(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    ch.contact_phone[pos] = _bad_phones(ch.contact_phone[pos])  # the e-mail still matches
    truth.add(PHONE, SR, ch.ids[pos], "contact_phone")


DUPLICATED_FIELDS = (
    "tutor_id", "tutor_null", "requester_id", "requester_null", "requester_type", "package_id",
    "package_null", "package_name", "student_name", "student_grade", "contact_phone",
    "contact_email",
)  # fmt: skip


def _duplicate_pending(pop: _Population, ch: _Chunk, pos: Arr, truth: _Truth) -> None:
    """``pos`` are followers; each group copies a clean pending leader (every third: no package)."""
    pending_free = ch.free & (ch.status == "pending")
    pools = [
        list(ch.rng.permutation(np.flatnonzero(pending_free & ch.package_null))),
        list(ch.rng.permutation(np.flatnonzero(pending_free & ~ch.package_null))),
    ]
    groups: list[tuple[int, Arr]] = []
    at, g = 0, 0
    while at < len(pos):
        size = 1 if g % 2 == 0 else 2
        pool = pools[0] if g % 3 == 0 else pools[1]
        if not pool:
            break
        groups.append((int(pool.pop()), pos[at : at + size]))
        at, g = at + size, g + 1
    for leader, followers in groups:
        for name in DUPLICATED_FIELDS:
            getattr(ch, name)[followers] = getattr(ch, name)[leader]
        ch.status[followers] = "pending"
        _retime(ch, followers)
        members = np.sort(np.concatenate([[ch.ids[leader]], ch.ids[followers]]))
        truth.add(PENDING_UNIQUE, SR, members[1:], PENDING_UNIQUE_COLUMNS)
        ch.free[leader] = False


#: The defect classes of the synthetic requests, in the order rows are assigned to them (the
#: most constrained first). Every row carries at most one class; ``share`` is per chunk,
#: rounded, so the counts are exact and deterministic.
DEFECT_CLASSES: tuple[DefectClass, ...] = (
    DefectClass(
        "tutor_ambiguous", 0.002,
        "tutor_id := users.id of a tutor holding two tutor profiles (not a tutor id), package "
        "NULL -> tutor_id.reference ambiguous",
        _tutor_flag("t_ambiguous"), _tutor_ambiguous,
    ),
    DefectClass(
        "tutor_mis_keyed_hidden", 0.003,
        "tutor_id := users.id U of the tutor; U is also another tutor's profile id; the package "
        "is the true tutor's -> tutor_id.reference mis_keyed_hidden + package_id.belongs_to_tutor",
        _tutor_flag("t_hidden"), _tutor_mis_key(with_package=True, hidden=True),
    ),
    DefectClass(
        "requester_wrong_type", 0.002,
        "a parent's request typed 'student' (id is no student id, contact is the parent's) "
        "-> requester_id.reference wrong_type, true value 'parent'",
        _slot_flag("r_wrong_type"), _wrong_type,
    ),
    DefectClass(
        "requester_mis_keyed_hidden", 0.003,
        "student requester_id := users.id V, V is another student's profile id, contact is V's; "
        "accepted/rejected -> requester_id.reference mis_keyed_hidden",
        _slot_flag("r_hidden"), _requester_mis_key(hidden=True),
    ),
    DefectClass(
        "requester_mis_keyed_parent", 0.002,
        "parent requester_id := the parent's users.id (no profile id anywhere) "
        "-> requester_id.reference mis_keyed",
        _slot_flag("r_visible", 1), _requester_mis_key(hidden=False),
    ),
    DefectClass(
        "requester_mis_keyed_student", 0.003,
        "student requester_id := the student's users.id (no profile id anywhere) "
        "-> requester_id.reference mis_keyed",
        _slot_flag("r_visible", 0), _requester_mis_key(hidden=False),
    ),
    DefectClass(
        "tutor_mis_keyed_no_package", 0.002,
        "tutor_id := the tutor's users.id (not a tutor id), package NULL "
        "-> tutor_id.reference mis_keyed",
        _tutor_flag("t_visible"), _tutor_mis_key(with_package=False, hidden=False),
    ),
    DefectClass(
        "tutor_mis_keyed_with_package", 0.002,
        "tutor_id := the tutor's users.id, package of the true tutor "
        "-> tutor_id.reference mis_keyed + package_id.belongs_to_tutor",
        _tutor_flag("t_visible"), _tutor_mis_key(with_package=True, hidden=False),
    ),
    DefectClass(
        "tutor_orphan", 0.002,
        "tutor_id := an id that maps nowhere, package NULL, accepted/rejected "
        "-> tutor_id.reference orphan",
        _not_seed, _tutor_orphan,
    ),
    DefectClass(
        "requester_orphan", 0.002,
        "student requester_id := an id that maps nowhere, contact of nobody, accepted/rejected "
        "-> requester_id.reference orphan",
        _student_not_seed, _requester_orphan,
    ),
    DefectClass(
        "package_dangling", 0.002,
        "package_id := no such package -> package_id.reference orphan (repair: NULL)",
        _any, _package_dangling,
    ),
    DefectClass(
        "package_other_tutor", 0.002,
        "package of another tutor (whose user is not the row's tutor_id) "
        "-> package_id.belongs_to_tutor",
        _any, _package_other_tutor,
    ),
    DefectClass(
        "package_name_mismatch", 0.002,
        "package_name differs from the package's name -> package_name.matches_package",
        _any, _package_name_mismatch,
    ),
    DefectClass(
        "null_tutor_id", 0.002,
        "tutor_id NULL (package NULL, accepted/rejected) -> not_null",
        _not_seed, _null("tutor_id"),
    ),
    DefectClass(
        "null_requester_id", 0.002,
        "requester_id NULL (accepted/rejected) -> not_null",
        _not_seed, _null("requester_id"),
    ),
    DefectClass(
        "null_requester_type", 0.002,
        "requester_type NULL -> not_null + requester_id.reference.discriminator",
        _any, _null("requester_type"),
    ),
    DefectClass(
        "null_status", 0.002,
        "status NULL, responded_at NULL -> not_null",
        _any, _null("status"),
    ),
    DefectClass(
        "null_created_at", 0.002,
        "created_at NULL -> not_null",
        _any, _null("created_at"),
    ),
    DefectClass(
        "status_unknown", 0.002,
        "status 'cancelled' / 'Pending' / 'expired' / 'ACCEPTED', responded_at NULL "
        "-> status.in_set + responded_at.matches_status (see SEMANTICS)",
        _any, _status_unknown,
    ),
    DefectClass(
        "requester_type_unknown", 0.002,
        "requester_type 'teacher' / 'Student' / 'guardian' "
        "-> requester_type.in_set + requester_id.reference.discriminator",
        _any, _type_unknown,
    ),
    DefectClass(
        "responded_missing", 0.002,
        "accepted/rejected with responded_at NULL -> responded_at.matches_status",
        _any, _responded_missing,
    ),
    DefectClass(
        "responded_unexpected", 0.002,
        "pending with responded_at set -> responded_at.matches_status",
        _any, _responded_unexpected,
    ),
    DefectClass(
        "updated_before_created", 0.002,
        "updated_at < created_at -> updated_at.after_created",
        _any, _updated_before_created,
    ),
    DefectClass(
        "bad_contact_email", 0.002,
        "contact_email without @ / with a space / without a dot in the domain / with @@ "
        "-> contact_email.pattern",
        _any, _bad_email,
    ),
    DefectClass(
        "bad_contact_phone", 0.002,
        "contact_phone +2517..., 12 chars, no +, letters, 09... -> contact_phone.pattern",
        _any, _bad_phone,
    ),
    DefectClass(
        "duplicate_pending", 0.003,
        "followers copying a clean pending leader, groups of 2-3 (some without package) "
        "-> pending.unique for all but the lowest id",
        _any, _duplicate_pending,
    ),
)  # fmt: skip

#: Table-level defects (fixed counts, derived from the table sizes), never referenced by requests.
TABLE_DEFECTS: tuple[tuple[str, str, str], ...] = (
    ("tutor_duplicate_profile", "max(3, 1% of tutors)",
     "a second tutor profile for a user (the ambiguous class uses these users) "
     "-> tutor_profiles.user_id.unique on the higher id"),
    ("student_duplicate_profile", "max(2, 0.2% of students)",
     "-> student_profiles.user_id.unique"),
    ("parent_duplicate_profile", "max(2, 0.2% of parents)", "-> parent_profiles.user_id.unique"),
    ("profile_orphan_user", "max(2-3, 0.2%) per profile table",
     "user_id not in users -> <profile>.user_id.reference orphan"),
    ("package_orphan_tutor", "max(2, 0.1% of packages)",
     "tutor_packages.tutor_id not a tutor profile -> tutor_packages.tutor_id.reference orphan"),
)  # fmt: skip


def _inject_defects(pop: _Population, ch: _Chunk, truth: _Truth) -> dict[str, int]:
    """Assign disjoint rows to every class (in table order), then apply the classes."""
    m = len(ch)
    chosen: list[Arr] = []
    for cls in DEFECT_CLASSES:
        candidates = np.flatnonzero(ch.free & cls.eligible(pop, ch))
        n = min(int(np.floor(cls.share * m + 0.5)), len(candidates))
        pos = np.sort(ch.rng.choice(candidates, n, replace=False)) if n else candidates[:0]
        ch.free[pos] = False
        chosen.append(pos)
    for cls, pos in zip(DEFECT_CLASSES, chosen, strict=True):
        if len(pos):
            cls.apply(pop, ch, pos, truth)
    return {cls.name: len(pos) for cls, pos in zip(DEFECT_CLASSES, chosen, strict=True)}


def _requests_frame(ch: _Chunk) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "id": ch.ids,
            "tutor_id": _nullable_int(ch.tutor_id, ch.tutor_null),
            "requester_id": _nullable_int(ch.requester_id, ch.requester_null),
            "requester_type": ch.requester_type,
            "package_id": _nullable_int(ch.package_id, ch.package_null),
            "package_name": ch.package_name,
            "status": ch.status,
            "message": ch.message,
            "student_name": ch.student_name,
            "student_grade": ch.student_grade,
            "preferred_schedule": ch.preferred_schedule,
            "contact_phone": ch.contact_phone,
            "contact_email": ch.contact_email,
            "created_at": _timestamps(ch.created),
            "updated_at": _timestamps(ch.updated),
            "responded_at": _timestamps(ch.responded),
        },
        columns=list(REQUEST_COLUMNS),
    )


def _timestamps(values: Arr) -> Arr:
    """ISO text (faster to write than pandas' datetime formatting); NaT -> None (NULL)."""
    text = np.datetime_as_string(values, unit="s").astype(object)
    text[np.isnat(values)] = None
    return text


# ============================================================================= seed rows
def _seed_frame(state: str, package_ids: Sequence[int]) -> pd.DataFrame:
    """The six requests of the seed; "before"/"dirty": users.id values, "after": profile ids."""
    after = state == "after"
    tutor_profile, tutor_user = SEED_TUTOR
    users = np.array([r[3] for r in SEED_REQUESTS], dtype=np.int64)
    pkg = [None if r[4] is None else package_ids[r[4]] for r in SEED_REQUESTS]
    names = [None if r[4] is None else SEED_PACKAGE_NAMES[r[4]] for r in SEED_REQUESTS]
    first, father = _first_names(users), _father_names(users)
    student_names = [
        f"{f} {b}" if r[1] == "student" else f"Kalkidan {f}"
        for f, b, r in zip(first, father, SEED_REQUESTS, strict=True)
    ]
    created = SEED_START + (np.arange(len(SEED_REQUESTS)) * DAY).astype("timedelta64[s]")
    return pd.DataFrame(
        {
            "id": [r[0] for r in SEED_REQUESTS],
            "tutor_id": tutor_profile if after else tutor_user,
            "requester_id": [r[2] if after else r[3] for r in SEED_REQUESTS],
            "requester_type": [r[1] for r in SEED_REQUESTS],
            "package_id": pd.array(pkg, dtype="Int64"),
            "package_name": names,
            "status": "pending",
            "message": "I would like help preparing for the national exam.",
            "student_name": student_names,
            "student_grade": "Grade 9",
            "preferred_schedule": "Weekends, mornings",
            "contact_phone": _phones(users),
            "contact_email": _emails(users),
            "created_at": created,
            "updated_at": created,
            "responded_at": pd.Series([NAT] * len(SEED_REQUESTS), dtype="datetime64[s]"),
        },
        columns=list(REQUEST_COLUMNS),
    )


def _seed_truth(truth: _Truth) -> None:
    """The seed rows in their pre-fix form: every tutor_id and requester_id is a users.id."""
    ids = [r[0] for r in SEED_REQUESTS]
    truth.add(TUTOR_REF, SR, ids, "tutor_id", "mis_keyed", [SEED_TUTOR[0]] * len(ids))
    truth.add(REQUESTER_REF, SR, ids, "requester_id", "mis_keyed", [r[2] for r in SEED_REQUESTS])
    # their packages are tutor 85's, the tutor_id is 115
    truth.add(BELONGS, SR, [r[0] for r in SEED_REQUESTS if r[4] is not None], "tutor_id")


def load_seed(conn: Connection, *, state: str) -> GroundTruth:
    """Load the seed's six session_requests and just the users/profiles/packages they need.

    ``"before"`` (and ``"dirty"``): tutor_id 115 and requester_id users.id values (112, 98, 93,
    parent 118, 101, 104) - none of them is an id of the profile table the row needs.
    ``"after"``: the same rows with profile ids (85; 27, 26, 21, parent 1, 24, 22); everything
    passes every data check and the returned ground truth is empty. Call after ``create_schema``
    with the same state; the caller commits.
    """
    _check_state(state)
    cur = conn.cursor()
    users = np.array(sorted(SEED_USER_IDS), dtype=np.int64)
    role_of = {SEED_TUTOR[1]: "{tutor}", **{r[3]: "{" + r[1] + "}" for r in SEED_REQUESTS}}
    roles = np.array([role_of[int(u)] for u in users], dtype=object)
    _copy(cur, "users", _users_frame(users, None, roles))
    _copy(cur, "tutor_profiles", pd.DataFrame({"id": [SEED_TUTOR[0]], "user_id": [SEED_TUTOR[1]]}))
    for kind in ("student", "parent"):
        pairs = [(r[2], r[3]) for r in SEED_REQUESTS if r[1] == kind]
        frame = pd.DataFrame(pairs, columns=["id", "user_id"]).sort_values("id")
        _copy(cur, f"{kind}_profiles", frame)
    package_ids = list(range(1, len(SEED_PACKAGE_NAMES) + 1))
    _copy(
        cur,
        "tutor_packages",
        pd.DataFrame(
            {"id": package_ids, "tutor_id": SEED_TUTOR[0], "name": list(SEED_PACKAGE_NAMES)}
        ),
    )
    _copy(cur, SR, _seed_frame(state, package_ids))
    truth = _Truth(keep=True)
    if state != "after":
        _seed_truth(truth)
    rows = {
        "users": len(users),
        "tutor_profiles": 1,
        "student_profiles": sum(r[1] == "student" for r in SEED_REQUESTS),
        "parent_profiles": sum(r[1] == "parent" for r in SEED_REQUESTS),
        "tutor_packages": len(package_ids),
        SR: len(SEED_REQUESTS),
    }
    return truth.result(rows)


# ============================================================================= build
def build(
    conn: Connection,
    *,
    requests: int = 3000,
    seed: int = 7,
    truth: bool = True,
    replace: bool = False,
) -> GroundTruth:
    """Build the demo / test / benchmark database in state "dirty".

    Creates the schema, loads users (``max(200, requests // 3)``), profiles and packages, the six
    seed rows in their pre-fix form (ids 1..6) and ``requests`` synthetic session_requests
    (ids 7..) carrying ``DEFECT_CLASSES``; then ``finish_schema("dirty")``. Generation and COPY
    run in chunks of ``CHUNK_ROWS`` rows, so memory stays bounded. With ``truth=False`` (large
    benchmarks) the returned ground truth has counts only and no violation lines. The caller
    commits.
    """
    if requests < 0:
        raise ValueError("requests must be >= 0")
    create_schema(conn, state="dirty", replace=replace)
    cur = conn.cursor()
    collector = _Truth(keep=truth)
    pop = _population(requests, seed)
    _load_population(cur, pop)
    _table_defects(pop, collector)

    start = int(pop.pkg.start[pop.seed_tutor_pos])
    seed_packages = [start + i for i in range(len(SEED_PACKAGE_NAMES))]
    _copy(cur, SR, _seed_frame("before", seed_packages))
    _seed_truth(collector)

    for begin in range(0, requests, CHUNK_ROWS):
        m = min(CHUNK_ROWS, requests - begin)
        chunk = _base_chunk(pop, begin, m, requests, seed)
        _inject_defects(pop, chunk, collector)
        _copy(cur, SR, _requests_frame(chunk))
        del chunk

    finish_schema(conn, state="dirty")
    rows = {
        "users": pop.n_users,
        **{t.name: len(t.ids) for t in (pop.tutor, pop.student, pop.parent)},
        "tutor_packages": len(pop.pkg.tutor),
        SR: len(SEED_REQUESTS) + requests,
    }
    return collector.result(rows)


def defect_counts(requests: int = 3000, seed: int = 7) -> dict[str, int]:
    """Rows per defect class that ``build(requests=..., seed=...)`` generates (no database)."""
    pop = _population(requests, seed)
    totals = {cls.name: 0 for cls in DEFECT_CLASSES}
    sink = _Truth(keep=False)
    for begin in range(0, requests, CHUNK_ROWS):
        m = min(CHUNK_ROWS, requests - begin)
        chunk = _base_chunk(pop, begin, m, requests, seed)
        for name, n in _inject_defects(pop, chunk, sink).items():
            totals[name] += n
    return totals
