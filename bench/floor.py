"""The hand-written floors of the benchmark.

`bench/floor.sql` is the one the benchmark times: the whole catalogue counted by hand in one
REPEATABLE READ READ ONLY transaction, with the server's own settings; `run_floor_sql` runs
it as `psql -f` would. Its counts that are refaudit's checks (`FLOOR_SQL_SHARED`) must agree
with refaudit's before a time is compared.

The statements below (`run_floor`) count every data check of the Astegni suite with
refaudit's semantics, so the benchmark checks every count refaudit reports against them once
(untimed). They are the fewest statements a person would write by hand to count what the
Astegni suite's data checks count.

One pass over session_requests with LEFT JOINs to the profile and package tables (and to
what the hidden mis-key evidence needs for every row: the package's tutor profile and the
referenced profile's user; the rest is looked up only for the rows whose evidence already
disagrees; whether requester_id is the user of some profile is a join), every count a
`count(*) FILTER (...)`; one GROUP BY for duplicate pending
requests; one small statement per profile-table check; the catalog reads. It returns counts
only (no rows, no files), in one REPEATABLE READ READ ONLY transaction, like refaudit, with the
server's own settings (the benchmark also times it with refaudit's, for reference). The
keys of the result are refaudit's check ids, so the benchmark can require the floor and
refaudit to agree before comparing their times.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pglast

FLOOR_SQL = Path(__file__).with_name("floor.sql")

# floor.sql's counts that count what a refaudit check counts, with the same semantics:
# (result set, in order of the statements that return one; column) -> check id. Its other
# counts differ on purpose (rows with any NULL rather than NULLs per column, NULL status as
# outside the set, duplicate groups rather than rows after the first), and are not compared.
FLOOR_SQL_SHARED = {
    (0, "tutor_bad"): "session_requests.tutor_id.reference",
    (0, "requester_bad"): "session_requests.requester_id.reference",
    (0, "bad_type"): "session_requests.requester_id.reference.discriminator",
    (0, "package_missing"): "session_requests.package_id.reference",
    (0, "package_other_tutor"): "session_requests.package_id.belongs_to_tutor",
    (0, "package_name_mismatch"): "session_requests.package_name.matches_package",
    (0, "time_order"): "session_requests.updated_at.after_created",
    (0, "bad_email"): "session_requests.contact_email.pattern",
    (0, "bad_phone"): "session_requests.contact_phone.pattern",
    (2, "count"): "tutor_profiles.user_id.reference",
    (3, "count"): "student_profiles.user_id.reference",
    (4, "count"): "parent_profiles.user_id.reference",
}


def floor_sql_statements() -> list[str]:
    """floor.sql's statements, as psql sends them (its comments dropped)."""
    return list(pglast.split(FLOOR_SQL.read_text(encoding="utf-8")))


def run_floor_sql(conn: Any) -> dict[str, int]:
    """Run floor.sql on a psycopg2 connection as `psql -X -f floor.sql` does: every statement
    in turn, in autocommit (the file holds its own SET, BEGIN and COMMIT), every result set
    fetched whole. Returns the counts of FLOOR_SQL_SHARED by refaudit check id."""
    conn.autocommit = True
    results: list[dict[str, int]] = []
    with conn.cursor() as cur:
        for sql in floor_sql_statements():
            cur.execute(sql)
            if cur.description is not None:
                row = cur.fetchall()[0]
                results.append(
                    {col.name: int(v) for col, v in zip(cur.description, row, strict=True)}
                )
    return {check: results[i][col] for (i, col), check in FLOOR_SQL_SHARED.items()}

EMAIL = r"^[^@[:space:]]+@[^@[:space:]]+\.[^@[:space:]]+$"
PHONE = r"^\+2519[0-9]{8}$"

REQUESTS_PASS = """
SELECT
  count(*) AS "rows",
  count(*) FILTER (WHERE r.tutor_id IS NOT NULL AND (
      tp.id IS NULL
      -- hidden mis-key: the request's package belongs to the tutor profile of the user
      -- whose users.id is tutor_id
      OR (pk.tutor_id <> r.tutor_id AND ptp.user_id = r.tutor_id)))
    AS "session_requests.tutor_id.reference",
  count(*) FILTER (WHERE r.requester_id IS NOT NULL AND (
      (r.requester_type = 'student' AND sp.id IS NULL)
      OR (r.requester_type = 'parent' AND pp.id IS NULL)
      -- hidden mis-key: the contact details are those of the user whose users.id is
      -- requester_id, not of the referenced profile's user, and that user has a profile
      -- (cheap tests first: the lookups run for the few rows that get that far)
      OR ((sp.id IS NOT NULL OR pp.id IS NOT NULL)
          AND ((r.contact_email IS DISTINCT FROM ur.email
                AND r.contact_email = (SELECT email FROM users WHERE id = r.requester_id))
               OR (r.contact_phone IS DISTINCT FROM ur.phone
                   AND r.contact_phone = (SELECT phone FROM users WHERE id = r.requester_id)))
          AND ((r.requester_type = 'student' AND spu.user_id IS NOT NULL)
               OR (r.requester_type = 'parent' AND ppu.user_id IS NOT NULL)))))
    AS "session_requests.requester_id.reference",
  count(*) FILTER (WHERE r.requester_type IS NULL
                   OR r.requester_type NOT IN ('student', 'parent'))
    AS "session_requests.requester_id.reference.discriminator",
  count(*) FILTER (WHERE r.package_id IS NOT NULL AND pk.id IS NULL)
    AS "session_requests.package_id.reference",
  count(*) FILTER (WHERE r.tutor_id <> pk.tutor_id)
    AS "session_requests.package_id.belongs_to_tutor",
  count(*) FILTER (WHERE r.package_name <> pk.name)
    AS "session_requests.package_name.matches_package",
  count(*) FILTER (WHERE r.tutor_id IS NULL) + count(*) FILTER (WHERE r.requester_id IS NULL)
    + count(*) FILTER (WHERE r.requester_type IS NULL) + count(*) FILTER (WHERE r.status IS NULL)
    + count(*) FILTER (WHERE r.created_at IS NULL)
    AS "session_requests.not_null",
  count(*) FILTER (WHERE r.status NOT IN ('pending', 'accepted', 'rejected'))
    AS "session_requests.status.in_set",
  count(*) FILTER (WHERE r.requester_type NOT IN ('student', 'parent'))
    AS "session_requests.requester_type.in_set",
  count(*) FILTER (WHERE (r.status IN ('accepted', 'rejected') AND r.responded_at IS NULL)
                   OR (r.status = 'pending' AND r.responded_at IS NOT NULL))
    AS "session_requests.responded_at.matches_status",
  count(*) FILTER (WHERE r.updated_at < r.created_at)
    AS "session_requests.updated_at.after_created",
  count(*) FILTER (WHERE r.contact_email !~ %(email)s)
    AS "session_requests.contact_email.pattern",
  count(*) FILTER (WHERE r.contact_phone !~ %(phone)s)
    AS "session_requests.contact_phone.pattern"
FROM session_requests r
LEFT JOIN tutor_profiles tp ON tp.id = r.tutor_id
LEFT JOIN student_profiles sp ON r.requester_type = 'student' AND sp.id = r.requester_id
LEFT JOIN parent_profiles pp ON r.requester_type = 'parent' AND pp.id = r.requester_id
LEFT JOIN tutor_packages pk ON pk.id = r.package_id
-- evidence of hidden mis-keys: the package's tutor profile, the referenced profile's user
LEFT JOIN tutor_profiles ptp ON ptp.id = pk.tutor_id
LEFT JOIN users ur ON ur.id = coalesce(sp.user_id, pp.user_id)
-- does the user whose users.id is requester_id have a profile of that type? (joined, not
-- `IN (SELECT ...)`: with the server's 4MB of work_mem that subquery cannot be hashed at 10M
-- rows, and a plain subplan scans the profile table once per row that gets that far)
LEFT JOIN (SELECT DISTINCT user_id FROM student_profiles) spu
  ON r.requester_type = 'student' AND spu.user_id = r.requester_id
LEFT JOIN (SELECT DISTINCT user_id FROM parent_profiles) ppu
  ON r.requester_type = 'parent' AND ppu.user_id = r.requester_id
"""

PENDING_DUPLICATES = """
SELECT coalesce(sum(n - 1), 0) AS "session_requests.pending.unique"
FROM (SELECT count(*) AS n FROM session_requests WHERE status = 'pending'
      GROUP BY tutor_id, requester_id, requester_type, package_id) g
WHERE n > 1
"""

PACKAGES = """
SELECT count(*) FILTER (WHERE k.tutor_id IS NOT NULL AND p.id IS NULL)
  AS "tutor_packages.tutor_id.reference"
FROM tutor_packages k LEFT JOIN tutor_profiles p ON p.id = k.tutor_id
"""

PROFILE = """
SELECT count(*) FILTER (WHERE p.user_id IS NOT NULL AND u.id IS NULL) AS "{t}.user_id.reference",
       (SELECT coalesce(sum(n - 1), 0) FROM (SELECT count(*) AS n FROM {t} GROUP BY user_id) g
        WHERE n > 1) AS "{t}.user_id.unique"
FROM {t} p LEFT JOIN users u ON u.id = p.user_id
"""

PROFILE_TABLES = ("tutor_profiles", "student_profiles", "parent_profiles")

# what the catalog checks read: constraints (with validation state), indexes, triggers
CATALOG = """
SELECT (SELECT count(*) FROM pg_constraint WHERE conrelid = 'session_requests'::regclass
          AND convalidated) AS "catalog.constraints",
       (SELECT count(*) FROM pg_index WHERE indrelid = 'session_requests'::regclass
          AND indisvalid) AS "catalog.indexes",
       (SELECT count(*) FROM pg_trigger WHERE tgrelid = 'session_requests'::regclass
          AND NOT tgisinternal) AS "catalog.triggers"
"""


def statements() -> list[str]:
    return [
        REQUESTS_PASS,
        PENDING_DUPLICATES,
        PACKAGES,
        *(PROFILE.format(t=t) for t in PROFILE_TABLES),
        CATALOG,
    ]


def run_floor(conn: Any, settings: tuple[tuple[str, str], ...] = ()) -> dict[str, int]:
    """Run the floor on a psycopg2 connection, with the same transaction-local `settings` as
    refaudit's engine; return violations per refaudit check id (catalog facts dropped)."""
    counts: dict[str, int] = {}
    conn.set_session(isolation_level="REPEATABLE READ", readonly=True)
    with conn.cursor() as cur:
        for name, value in settings:
            cur.execute("SELECT set_config(%s, %s, true)", (name, value))
        for sql in statements():
            cur.execute(sql, {"email": EMAIL, "phone": PHONE})
            row = cur.fetchone()
            for col, value in zip(cur.description, row, strict=True):
                counts[col.name] = int(value)
    conn.commit()
    counts.pop("rows")
    return {k: v for k, v in counts.items() if not k.startswith("catalog.")}
