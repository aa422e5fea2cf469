"""A public schema whose polymorphic discriminator is a PostgreSQL enum: y_api
(github.com/iamshishirgaire/y_api, `db/migrations/*.sql`, a Twitter-like API), tables as
published. `notifications.post_type content_type` (`ENUM ('tweet', 'poll')`) says whether
`content_id` (a uuid) is a `tweets.id` or a `polls.id`; no foreign key can say so. Its other
enums (`visibility`, `notification_type`), uuid keys, `ON DELETE CASCADE` foreign keys and
composite UNIQUE keys (`likes (user_id, tweet_id)`, `poll_results (user_id, poll_id)`) are
there too, foreign keys present.

Every injected fault is flagged with its exact key, no clean row is; repair.sql corrects the
enum discriminator of a wrong-type row and quarantines an orphan, and changes nothing else;
a new audit finds nothing of them; the plan applied again changes nothing; rollback.sql
restores every table byte for byte; constraints.sql's triggers accept and refuse as the
audit judges; a suite value outside the enum's labels is a suite error (exit 2)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.apply import apply_plan
from refaudit.audit import run_audit
from refaudit.errors import SuiteError
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.roundtrip import assert_reapplied_then_rolled_back, changed_rows, findings
from tests.roundtrip import dump_tables as dump_all
from tests.test_public_schemas import audit
from tests.test_repair import psql, query

# db/migrations: migration_init.sql, migration_tweet.sql, migration_poll.sql,
# migration_like.sql, migration_notification.sql (as published)
SCHEMA = """
CREATE TABLE users (
    id UUID PRIMARY KEY,
    user_name TEXT NOT NULL,
    email VARCHAR(255) UNIQUE NOT NULL,
    bio TEXT,
    first_name VARCHAR(255),
    last_name VARCHAR(255),
    country VARCHAR(255),
    dob DATE,
    following INT NOT NULL DEFAULT 0,
    followers INT NOT NULL DEFAULT 0,
    profile_picture VARCHAR(255),
    verified BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TYPE visibility AS ENUM ('public', 'private');CREATE TABLE tweets (
    id UUID PRIMARY KEY,
    content TEXT NOT NULL,
    media_url TEXT [],
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    edited BOOLEAN DEFAULT FALSE,
    user_id UUID REFERENCES users(id) ON DELETE CASCADE NOT NULL,
    like_count BIGINT NOT NULL DEFAULT 0,
    retweet_count BIGINT NOT NULL DEFAULT 0,
    comment_count BIGINT NOT NULL DEFAULT 0,
    view_count BIGINT NOT NULL DEFAULT 0,
    visibility visibility NOT NULL DEFAULT 'public'
);
CREATE TABLE polls (
    id UUID PRIMARY KEY,
    user_id UUID REFERENCES users(id) ON DELETE CASCADE NOT NULL,
    description TEXT,
    options TEXT [] NOT NULL,
    visibility visibility NOT NULL DEFAULT 'public',
    comment_count BIGINT NOT NULL DEFAULT 0,
    view_count BIGINT NOT NULL DEFAULT 0,
    like_count BIGINT NOT NULL DEFAULT 0,
    vote_count BIGINT NOT NULL DEFAULT 0,
    retweet_count BIGINT NOT NULL DEFAULT 0,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    expired_at TIMESTAMP WITH TIME ZONE NOT NULL,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
CREATE TABLE poll_results (
    id UUID PRIMARY KEY,
    poll_id UUID REFERENCES polls(id) ON DELETE CASCADE NOT NULL,
    user_id UUID REFERENCES users(id) ON DELETE CASCADE NOT NULL,
    vote_option INT NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    updated_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (user_id, poll_id)
);
CREATE TABLE likes (
    id UUID PRIMARY KEY,
    user_id UUID REFERENCES users(id) ON DELETE CASCADE NOT NULL,
    tweet_id UUID REFERENCES tweets(id) ON DELETE CASCADE NOT NULL,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP,
    UNIQUE (user_id, tweet_id)
);
CREATE TYPE  notification_type AS ENUM ('verified', 'mentions');
CREATE TYPE   content_type AS ENUM ('tweet', 'poll');
CREATE TABLE notifications (
    id UUID PRIMARY KEY,
    notif_type notification_type NOT NULL,
    post_type content_type NOT NULL,
    content_id UUID NOT NULL,
    message TEXT NOT NULL,
    user_id UUID REFERENCES users(id) ON DELETE CASCADE NOT NULL,
    seen BOOLEAN DEFAULT FALSE,
    created_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT CURRENT_TIMESTAMP
);
"""


def u(n: int, kind: str = "0") -> str:
    """A readable uuid: u(3, 'a') is 0000000a-0000-0000-0000-000000000003."""
    return f"0000000{kind}-0000-0000-0000-{n:012d}"


USER1, USER2 = u(1, "1"), u(2, "1")
TWEET1, TWEET2 = u(1, "7"), u(2, "7")
POLL1, POLL2 = u(1, "9"), u(2, "9")
T = "'2024-05-01 12:00:00+00'"

ROWS = f"""
INSERT INTO users (id, user_name, email, created_at, updated_at) VALUES
    ('{USER1}', 'ann', 'ann@example.org', {T}, {T}),
    ('{USER2}', 'bo', 'bo@example.org', {T}, {T});
INSERT INTO tweets (id, content, user_id, visibility, created_at, updated_at) VALUES
    ('{TWEET1}', 'hello', '{USER1}', 'public', {T}, {T}),
    ('{TWEET2}', 'secret', '{USER2}', 'private', {T}, {T});  -- not shown: outside the set
INSERT INTO polls (id, user_id, options, expired_at, created_at, updated_at) VALUES
    ('{POLL1}', '{USER1}', '{{"yes","no"}}', {T}, {T}, {T}),
    ('{POLL2}', '{USER2}', '{{"tea","coffee"}}', {T}, {T}, {T});
INSERT INTO poll_results VALUES ('{u(1, "5")}', '{POLL1}', '{USER2}', 1, {T}, {T});
INSERT INTO likes VALUES ('{u(1, "3")}', '{USER2}', '{TWEET1}', {T});
INSERT INTO notifications (id, notif_type, post_type, content_id, message, user_id, created_at)
VALUES
    ('{u(1)}', 'mentions', 'tweet', '{TWEET1}', 'you were mentioned', '{USER1}', {T}),
    ('{u(2)}', 'mentions', 'poll', '{POLL1}', 'a poll mentions you', '{USER2}', {T}),
    ('{u(3)}', 'mentions', 'tweet', '{POLL2}', 'says tweet, is a poll', '{USER1}', {T}),
    ('{u(4)}', 'mentions', 'poll', '{u(99, "9")}', 'names nothing', '{USER2}', {T}),
    ('{u(5)}', 'verified', 'poll', '{POLL2}', 'clean', '{USER1}', {T});
"""

TABLES = {
    t: "id" for t in ("users", "tweets", "polls", "poll_results", "likes", "notifications")
}

SUITE: dict[str, Any] = {
    "suite": "y_api",
    "tables": {t: {"key": "id"} for t in TABLES},
    "checks": [
        {"id": "notifications.content", "kind": "conditional_reference",
         "table": "notifications", "column": "content_id", "discriminator": "post_type",
         "targets": {"tweet": {"table": "tweets"}, "poll": {"table": "polls"}}},
        {"id": "notifications.user", "kind": "reference", "table": "notifications",
         "column": "user_id", "target": {"table": "users"}},
        {"id": "tweets.shown", "kind": "in_set", "table": "tweets", "column": "visibility",
         "values": ["public"]},
        {"id": "likes.once", "kind": "unique", "table": "likes",
         "columns": ["user_id", "tweet_id"]},
        {"id": "poll_results.poll", "kind": "reference", "table": "poll_results",
         "column": "poll_id", "target": {"table": "polls"}},
        {"id": "notifications.content.trigger", "kind": "trigger", "table": "notifications",
         "name": "notifications_content_ref", "for_check": "notifications.content"},
    ],
}  # fmt: skip

EXPECTED = {
    ("notifications.content", u(3)),
    ("notifications.content", u(4)),
    ("tweets.shown", TWEET2),
    ("notifications.content.trigger", "notifications_content_ref"),
}


@pytest.fixture
def y_api(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("y_api")
    execute(uri, SCHEMA)
    execute(uri, ROWS)
    return uri


def test_enum_discriminator_flagged_repaired_and_rolled_back(y_api: str, tmp_path: Path) -> None:
    before = dump_all(y_api, TABLES)
    audit(y_api, SUITE, tmp_path / "run")
    got = findings(tmp_path / "run")
    assert set(got) == EXPECTED
    wrong = got[("notifications.content", u(3))]
    assert (wrong["diagnosis"], wrong["proposed_value"]) == ("wrong_type", "poll")
    assert got[("notifications.content", u(4))]["diagnosis"] == "orphan"

    applied = apply_plan(as_url(y_api), tmp_path / "run" / "repair.sql")
    assert applied.totals["updated"] == 1 and applied.totals["quarantine"] == 1, applied.totals
    after = dump_all(y_api, TABLES)
    changes = changed_rows(before, after)
    assert set(changes) == {"notifications"}
    gone, new = changes["notifications"]
    assert [r[1:37] for r in gone] == [u(3), u(4)] and [r[1:37] for r in new] == [u(3)]
    assert query(y_api, f"SELECT post_type::text FROM notifications WHERE id = '{u(3)}'") == [
        ("poll",)
    ]

    audit(y_api, SUITE, tmp_path / "again")
    assert set(findings(tmp_path / "again")) == EXPECTED - {
        ("notifications.content", u(3)),
        ("notifications.content", u(4)),
    }
    assert_reapplied_then_rolled_back(
        y_api, tmp_path / "run", lambda: dump_all(y_api, TABLES), before, after
    )

    # constraints.sql: the enum-discriminated reference enforced by triggers
    apply_plan(as_url(y_api), tmp_path / "run" / "repair.sql")
    done = psql(y_api, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    insert = (
        "INSERT INTO notifications (id, notif_type, post_type, content_id, message, user_id) "
        f"VALUES ('{u(50)}', 'mentions', '{{}}', '{{}}', 'x', '{USER1}')"
    )
    execute(y_api, insert.format("tweet", TWEET2))
    execute(y_api, insert.replace(u(50), u(51)).format("poll", POLL2))
    for sql, message in (
        # a poll's id as a tweet; no such poll
        (insert.replace(u(50), u(52)).format("tweet", POLL1), "is not in the table post_type"),
        (insert.replace(u(50), u(53)).format("poll", u(98, "9")), "is not in the table"),
        # notification 1 names tweet 1; notifications 3 and 5 name poll 2
        (f"DELETE FROM tweets WHERE id = '{TWEET1}'", "is still referenced by notifications"),
        (f"UPDATE polls SET id = '{u(97, '9')}' WHERE id = '{POLL2}'", "is still referenced"),
    ):
        with pytest.raises(psycopg2.Error) as refused:
            execute(y_api, sql)
        assert refused.value.pgcode == "23503" and message in str(refused.value), refused.value
    execute(y_api, f"DELETE FROM tweets WHERE id = '{TWEET2}' AND false")


def test_a_suite_value_outside_the_enum_is_a_suite_error(y_api: str, tmp_path: Path) -> None:
    check = {**SUITE["checks"][0], "targets": {"tweet": {"table": "tweets"},
                                                "video": {"table": "polls"}}}  # fmt: skip
    suite = Suite.model_validate({**SUITE, "checks": [check]})
    with pytest.raises(SuiteError) as err:
        run_audit(as_url(y_api), suite, tmp_path / "run")
    assert 'invalid input value for enum content_type: "video"' in str(err.value)
    assert "notifications.content" in str(err.value)
