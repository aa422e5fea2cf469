"""Public schemas refaudit was not written around, with their DDL as published:

- **Pagila** (github.com/devrimgunduz/pagila, `pagila-schema.sql`): the `mpaa_rating` enum,
  the `year` domain, composite primary keys (`film_actor (actor_id, film_id)`,
  `film_category (film_id, category_id)`), foreign keys `ON UPDATE CASCADE ON DELETE
  RESTRICT`, and its `last_updated` and `tsvector_update_trigger` triggers.
- **Discourse** (github.com/discourse/discourse, `db/schema.rb`, translated to PostgreSQL
  DDL): single-table inheritance (`reviewables.type`: `ReviewableFlaggedPost`,
  `ReviewableQueuedPost`, `ReviewableUser`), a polymorphic association
  (`reviewables.target_type` / `target_id`), a table without an id (`poll_votes`, keyed by
  its unique index on three columns) and the schema's foreign keys (`add_foreign_key
  "polls", "posts"`, `"poll_votes", "poll_options"`, ...).

Faulty old rows are inserted before the foreign keys are added `NOT VALID`, as a database
that lost its constraints for a while would hold them. For each schema: every injected fault
is flagged (exact check and key), no clean row is; repair.sql (through `apply_plan` and
through psql) changes only faulty rows; a new audit finds only what was left for review; the
plan applied again changes nothing; rollback.sql restores every table byte for byte;
constraints.sql enforces what it derives once the rows left for review are resolved; the GX
export and an audit of a snapshot count alike."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import psycopg2
import pytest
from refaudit.apply import apply_plan
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite

from tests.conftest import as_url, execute
from tests.roundtrip import (
    assert_reapplied_then_rolled_back,
    audits_alike_from_a_snapshot,
    changed_rows,
    findings,
)
from tests.roundtrip import dump_tables as dump_all
from tests.test_repair import psql, query

# --- Pagila -------------------------------------------------------------------------------

# pagila-schema.sql, the tables kept (the sequences' defaults left out: the rows give ids)
PAGILA_SCHEMA = """
CREATE TYPE mpaa_rating AS ENUM ('G', 'PG', 'PG-13', 'R', 'NC-17');
CREATE DOMAIN year AS integer
    CONSTRAINT year_check CHECK (((VALUE >= 1901) AND (VALUE <= 2155)));
CREATE FUNCTION last_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.last_update = CURRENT_TIMESTAMP;
    RETURN NEW;
END $$;

CREATE TABLE language (
    language_id integer NOT NULL,
    name character(20) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);
CREATE TABLE actor (
    actor_id integer NOT NULL,
    first_name character varying(45) NOT NULL,
    last_name character varying(45) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);
CREATE TABLE category (
    category_id integer NOT NULL,
    name character varying(25) NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);
CREATE TABLE film (
    film_id integer NOT NULL,
    title character varying(255) NOT NULL,
    description text,
    release_year year,
    language_id smallint NOT NULL,
    original_language_id smallint,
    rental_duration smallint DEFAULT 3 NOT NULL,
    rental_rate numeric(4,2) DEFAULT 4.99 NOT NULL,
    length smallint,
    replacement_cost numeric(5,2) DEFAULT 19.99 NOT NULL,
    rating mpaa_rating DEFAULT 'G'::mpaa_rating,
    last_update timestamp without time zone DEFAULT now() NOT NULL,
    special_features text[],
    fulltext tsvector NOT NULL
);
CREATE TABLE film_actor (
    actor_id smallint NOT NULL,
    film_id smallint NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);
CREATE TABLE film_category (
    film_id smallint NOT NULL,
    category_id smallint NOT NULL,
    last_update timestamp without time zone DEFAULT now() NOT NULL
);
ALTER TABLE ONLY language ADD CONSTRAINT language_pkey PRIMARY KEY (language_id);
ALTER TABLE ONLY actor ADD CONSTRAINT actor_pkey PRIMARY KEY (actor_id);
ALTER TABLE ONLY category ADD CONSTRAINT category_pkey PRIMARY KEY (category_id);
ALTER TABLE ONLY film ADD CONSTRAINT film_pkey PRIMARY KEY (film_id);
ALTER TABLE ONLY film_actor ADD CONSTRAINT film_actor_pkey PRIMARY KEY (actor_id, film_id);
ALTER TABLE ONLY film_category
    ADD CONSTRAINT film_category_pkey PRIMARY KEY (film_id, category_id);
CREATE INDEX idx_fk_language_id ON film USING btree (language_id);
CREATE INDEX idx_fk_original_language_id ON film USING btree (original_language_id);
CREATE INDEX idx_fk_film_id ON film_actor USING btree (film_id);
CREATE TRIGGER film_fulltext_trigger BEFORE INSERT OR UPDATE ON film FOR EACH ROW
    EXECUTE PROCEDURE tsvector_update_trigger('fulltext', 'pg_catalog.english', 'title',
                                              'description');
CREATE TRIGGER last_updated BEFORE UPDATE ON actor FOR EACH ROW EXECUTE PROCEDURE last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON category FOR EACH ROW
    EXECUTE PROCEDURE last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON film FOR EACH ROW EXECUTE PROCEDURE last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON film_actor FOR EACH ROW
    EXECUTE PROCEDURE last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON film_category FOR EACH ROW
    EXECUTE PROCEDURE last_updated();
CREATE TRIGGER last_updated BEFORE UPDATE ON language FOR EACH ROW
    EXECUTE PROCEDURE last_updated();
"""

PAGILA_ROWS = """
INSERT INTO language (language_id, name, last_update) VALUES
    (1, 'English', '2022-02-15 10:02:19'), (2, 'Italian', '2022-02-15 10:02:19'),
    (3, 'Japanese', '2022-02-15 10:02:19');
INSERT INTO actor VALUES (1, 'PENELOPE', 'GUINESS', '2022-02-15 09:34:33'),
    (2, 'NICK', 'WAHLBERG', '2022-02-15 09:34:33'), (3, 'ED', 'CHASE', '2022-02-15 09:34:33');
INSERT INTO category VALUES (1, 'Action', '2022-02-15 09:46:27'),
    (2, 'Animation', '2022-02-15 09:46:27'), (3, 'Children', '2022-02-15 09:46:27');
INSERT INTO film (film_id, title, description, release_year, language_id,
                  original_language_id, rental_duration, rental_rate, length,
                  replacement_cost, rating, last_update, special_features) VALUES
    (1, 'ACADEMY DINOSAUR', 'A Epic Drama', 2012, 1, NULL, 6, 0.99, 86, 20.99, 'PG',
     '2022-09-10 16:46:03', '{"Deleted Scenes","Behind the Scenes"}'),      -- clean
    (2, 'ACE GOLDFINGER', 'A Astounding Epistle', 2017, 1, 3, 3, 4.99, 48, 12.99, 'G',
     '2022-09-10 16:46:03', '{Trailers}'),                                 -- clean
    (3, 'ADAPTATION HOLES', 'A Reflective Panorama', 2019, 9, NULL, 7, 2.99, 50, 18.99,
     'NC-17', '2022-09-10 16:46:03', '{Trailers}'),  -- no language 9; actors point at it
    (4, 'AFFAIR PREJUDICE', 'A Fanciful Documentary', 2006, 9, NULL, 5, 2.99, 117, 26.99,
     'G', '2022-09-10 16:46:03', NULL),              -- no language 9; nothing points at it
    (5, 'AFRICAN EGG', 'A Fast-Paced Documentary', 2011, 2, 7, 6, 2.99, 130, 22.99, 'G',
     '2022-09-10 16:46:03', '{}'),                   -- no original language 7
    (6, 'AGENT TRUMAN', 'A Intrepid Panorama', 2010, 1, 2, 3, 2.99, 169, 17.99, 'NC-17',
     '2022-09-10 16:46:03', NULL),                   -- a rating the shop does not rent
    (7, 'AIRPLANE SIERRA', 'A Touching Saga', 2020, 1, NULL, 6, 4.99, 62, 28.99, NULL,
     '2022-09-10 16:46:03', NULL),                   -- no rating at all
    (8, 'AIRPORT POLLOCK', 'A Epic Tale', 2012, 1, NULL, 30, 4.99, 54, 15.99, 'R',
     '2022-09-10 16:46:03', NULL);                   -- a 30-day rental
INSERT INTO film_actor VALUES
    (1, 1, '2022-02-15 10:05:03'), (2, 2, '2022-02-15 10:05:03'),
    (3, 3, '2022-02-15 10:05:03'),   -- clean row, but its film has no language
    (99, 1, '2022-02-15 10:05:03'),  -- no actor 99
    (1, 42, '2022-02-15 10:05:03');  -- no film 42
INSERT INTO film_category VALUES
    (1, 3, '2022-02-15 10:07:09'), (2, 2, '2022-02-15 10:07:09'),
    (5, 1, '2022-02-15 10:07:09'),   -- clean (the film's fault is its original language)
    (2, 16, '2022-02-15 10:07:09');  -- no category 16
ALTER TABLE ONLY film ADD CONSTRAINT film_language_id_fkey FOREIGN KEY (language_id)
    REFERENCES language(language_id) ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID;
ALTER TABLE ONLY film ADD CONSTRAINT film_original_language_id_fkey
    FOREIGN KEY (original_language_id) REFERENCES language(language_id)
    ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID;
ALTER TABLE ONLY film_actor ADD CONSTRAINT film_actor_actor_id_fkey FOREIGN KEY (actor_id)
    REFERENCES actor(actor_id) ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID;
ALTER TABLE ONLY film_actor ADD CONSTRAINT film_actor_film_id_fkey FOREIGN KEY (film_id)
    REFERENCES film(film_id) ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID;
ALTER TABLE ONLY film_category ADD CONSTRAINT film_category_category_id_fkey
    FOREIGN KEY (category_id) REFERENCES category(category_id)
    ON UPDATE CASCADE ON DELETE RESTRICT NOT VALID;
ALTER TABLE ONLY film_category ADD CONSTRAINT film_category_film_id_fkey FOREIGN KEY (film_id)
    REFERENCES film(film_id) ON UPDATE CASCADE ON DELETE RESTRICT;
"""

PAGILA_TABLES = {
    "language": "language_id", "actor": "actor_id", "category": "category_id",
    "film": "film_id", "film_actor": "actor_id, film_id", "film_category": "film_id, category_id",
}  # fmt: skip


def _fk(name: str, table: str, column: str, target: str, target_column: str) -> dict[str, Any]:
    return {
        "id": f"{table}.{column}.fk",
        "kind": "constraint",
        "table": table,
        "type": "foreign_key",
        "name": name,
        "columns": [column],
        "references": {"table": target, "columns": [target_column]},
        "on_delete": "restrict",
    }


PAGILA_SUITE: dict[str, Any] = {
    "suite": "pagila",
    "tables": {
        "language": {"key": "language_id"},
        "actor": {"key": "actor_id"},
        "category": {"key": "category_id"},
        "film": {"key": "film_id"},
        "film_actor": {"key": ["actor_id", "film_id"]},
        "film_category": {"key": ["film_id", "category_id"]},
    },
    "checks": [
        {"id": "film.language", "kind": "reference", "table": "film", "column": "language_id",
         "target": {"table": "language", "column": "language_id"}},
        {"id": "film.original_language", "kind": "reference", "table": "film",
         "column": "original_language_id", "on_orphan": "set_null",
         "target": {"table": "language", "column": "language_id"}},
        {"id": "film_actor.actor", "kind": "reference", "table": "film_actor",
         "column": "actor_id", "target": {"table": "actor", "column": "actor_id"}},
        {"id": "film_actor.film", "kind": "reference", "table": "film_actor",
         "column": "film_id", "target": {"table": "film", "column": "film_id"}},
        {"id": "film_category.category", "kind": "reference", "table": "film_category",
         "column": "category_id", "target": {"table": "category", "column": "category_id"}},
        # the enum's labels but NC-17, which the shop does not rent
        {"id": "film.rating", "kind": "in_set", "table": "film", "column": "rating",
         "values": ["G", "PG", "PG-13", "R"]},
        {"id": "film.rating.present", "kind": "not_null", "table": "film", "columns": ["rating"]},
        {"id": "film.rental_duration", "kind": "range", "table": "film",
         "column": "rental_duration", "min": 1, "max": 14},
        # English films only: the original language differs from the language
        {"id": "film.original_differs", "kind": "row_rule", "table": "film",
         "where": {"column": "original_language_id", "is_null": False},
         "require": {"column": "original_language_id", "ne": {"column": "language_id"}}},
        _fk("film_language_id_fkey", "film", "language_id", "language", "language_id"),
        _fk("film_actor_actor_id_fkey", "film_actor", "actor_id", "actor", "actor_id"),
        _fk("film_category_film_id_fkey", "film_category", "film_id", "film", "film_id"),
    ],
}  # fmt: skip

PAGILA_EXPECTED = {
    ("film.language", "3"), ("film.language", "4"), ("film.original_language", "5"),
    ("film.rating", "6"), ("film.rating", "3"), ("film.rating.present", "7"),
    ("film.rental_duration", "8"),
    ("film_actor.actor", "[99, 1]"), ("film_actor.film", "[1, 42]"),
    ("film_category.category", "[2, 16]"),
    ("film.language_id.fk", "film_language_id_fkey"),
    ("film_actor.actor_id.fk", "film_actor_actor_id_fkey"),
}  # fmt: skip


# --- Discourse ----------------------------------------------------------------------------

# db/schema.rb: `create_table ..., force: :cascade` is a bigint id, `id: :serial` an integer
# one, `t.string` character varying, `t.datetime` timestamp(6) without time zone; the
# columns the checks do not read are left out. add_foreign_key names its keys fk_rails_<hash>;
# the hashes are replaced by what they join.
DISCOURSE_SCHEMA = """
CREATE TABLE users (
    id serial PRIMARY KEY,
    username character varying(60) NOT NULL,
    admin boolean DEFAULT false NOT NULL,
    moderator boolean DEFAULT false NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_users_on_username ON users USING btree (username);
CREATE TABLE topics (
    id serial PRIMARY KEY,
    title character varying NOT NULL,
    user_id integer,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE TABLE posts (
    id serial PRIMARY KEY,
    user_id integer,
    topic_id integer NOT NULL,
    post_number integer NOT NULL,
    raw text NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE TABLE reviewables (
    id bigserial PRIMARY KEY,
    type character varying NOT NULL,
    status integer DEFAULT 0 NOT NULL,
    created_by_id integer NOT NULL,
    reviewable_by_moderator boolean DEFAULT false NOT NULL,
    topic_id integer,
    score double precision DEFAULT 0.0 NOT NULL,
    target_id integer,
    target_type character varying,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE TABLE reviewable_scores (
    id bigserial PRIMARY KEY,
    reviewable_id integer NOT NULL,
    user_id integer NOT NULL,
    reviewable_score_type integer NOT NULL,
    status integer NOT NULL,
    score double precision DEFAULT 0.0 NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE INDEX index_reviewable_scores_on_reviewable_id ON reviewable_scores (reviewable_id);
CREATE TABLE polls (
    id bigserial PRIMARY KEY,
    post_id bigint,
    name character varying DEFAULT 'poll' NOT NULL,
    close_at timestamp(6) without time zone,
    type integer DEFAULT 0 NOT NULL,
    status integer DEFAULT 0 NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE TABLE poll_options (
    id bigserial PRIMARY KEY,
    poll_id bigint,
    digest character varying NOT NULL,
    html text NOT NULL,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_poll_options_on_poll_id_and_digest ON poll_options (poll_id, digest);
CREATE TABLE poll_votes (
    poll_id bigint,
    poll_option_id bigint,
    user_id bigint,
    created_at timestamp(6) without time zone NOT NULL,
    updated_at timestamp(6) without time zone NOT NULL
);
CREATE UNIQUE INDEX index_poll_votes_on_poll_id_and_poll_option_id_and_user_id
    ON poll_votes (poll_id, poll_option_id, user_id);
"""

T = "'2024-05-01 12:00:00'"
DISCOURSE_ROWS = f"""
INSERT INTO users VALUES (1, 'system', true, true, {T}, {T}), (2, 'alice', false, false, {T}, {T}),
    (3, 'bob', false, true, {T}, {T});
INSERT INTO topics VALUES (1, 'Welcome', 1, {T}, {T}), (2, 'Lunch poll', 2, {T}, {T});
INSERT INTO posts VALUES
    (1, 1, 1, 1, 'Welcome!', {T}, {T}),      -- clean
    (2, 2, 2, 1, '[poll]...', {T}, {T}),     -- clean
    (3, 3, 2, 2, 'pizza', {T}, {T}),         -- clean
    (4, 77, 1, 2, 'spam link', {T}, {T}),    -- no user 77: set to NULL
    (5, NULL, 2, 3, 'by a deleted user', {T}, {T}),  -- clean: no user
    (6, 2, 88, 1, 'lost topic', {T}, {T}),   -- no topic 88, a poll is on it: held
    (7, 2, 88, 2, 'lost too', {T}, {T});     -- no topic 88: quarantined
INSERT INTO reviewables (id, type, status, created_by_id, topic_id, target_id, target_type,
                         created_at, updated_at) VALUES
    (1, 'ReviewableFlaggedPost', 0, 2, 1, 1, 'Post', {T}, {T}),    -- clean
    (2, 'ReviewableUser', 0, 1, NULL, 3, 'User', {T}, {T}),        -- clean
    (3, 'ReviewableQueuedPost', 0, 2, 2, NULL, NULL, {T}, {T}),    -- clean: no target yet
    (4, 'ReviewableFlaggedPost', 0, 3, 1, 404, 'Post', {T}, {T}),  -- no post 404
    (5, 'ReviewableFlaggedPost', 0, 3, 2, 5, 'User', {T}, {T}),    -- no user 5: posts.id 5 (chance)
    (6, 'ReviewableUser', 0, 1, NULL, 2, 'Post', {T}, {T}),        -- a user review of a post
    (7, 'ReviewablePost', 0, 1, 1, 1, 'Post', {T}, {T}),           -- no such class
    (8, 'ReviewableFlaggedPost', 0, 2, 1, 3, 'Chat::Message', {T}, {T}),  -- no such target
    (9, 'ReviewableFlaggedPost', 0, 2, 2, 2, 'Topic', {T}, {T});   -- clean
INSERT INTO reviewable_scores (id, reviewable_id, user_id, reviewable_score_type, status,
                               created_at, updated_at) VALUES
    (1, 1, 2, 8, 0, {T}, {T}),     -- clean: a spam flag on a flagged post
    (2, 2, 1, 6, 0, {T}, {T}),     -- clean: needs_approval on a user
    (3, 2, 3, 4, 0, {T}, {T}),     -- an inappropriate flag on a user review
    (4, 999, 3, 8, 0, {T}, {T}),   -- no reviewable 999
    (5, 3, 2, 6, 0, {T}, {T});     -- clean: needs_approval on a queued post
INSERT INTO polls (id, post_id, name, created_at, updated_at) VALUES
    (1, 2, 'poll', {T}, {T}),      -- clean
    (2, 6, 'poll', {T}, {T}),      -- clean poll on a post that goes nowhere
    (3, 500, 'poll', {T}, {T}),    -- no post 500, options point at it: held
    (4, 501, 'lost', {T}, {T});    -- no post 501: quarantined
INSERT INTO poll_options VALUES
    (1, 1, 'd1', 'Pizza', {T}, {T}), (2, 1, 'd2', 'Sushi', {T}, {T}),
    (3, 2, 'd3', 'Yes', {T}, {T}), (4, 3, 'd4', 'No', {T}, {T});
INSERT INTO poll_votes VALUES
    (1, 1, 2, {T}, {T}),           -- clean
    (1, 2, 3, {T}, {T}),           -- clean
    (1, 3, 2, {T}, {T}),           -- option 3 belongs to poll 2
    (2, 3, 66, {T}, {T}),          -- no user 66
    (1, 1, NULL, {T}, {T});        -- no user at all
ALTER TABLE ONLY polls ADD CONSTRAINT fk_rails_polls_posts FOREIGN KEY (post_id)
    REFERENCES posts(id) NOT VALID;
ALTER TABLE ONLY poll_options ADD CONSTRAINT fk_rails_poll_options_polls FOREIGN KEY (poll_id)
    REFERENCES polls(id);
ALTER TABLE ONLY poll_votes ADD CONSTRAINT fk_rails_poll_votes_poll_options
    FOREIGN KEY (poll_option_id) REFERENCES poll_options(id);
ALTER TABLE ONLY poll_votes ADD CONSTRAINT fk_rails_poll_votes_polls FOREIGN KEY (poll_id)
    REFERENCES polls(id);
ALTER TABLE ONLY poll_votes ADD CONSTRAINT fk_rails_poll_votes_users FOREIGN KEY (user_id)
    REFERENCES users(id) NOT VALID;
"""

DISCOURSE_TABLES = {
    "users": "id", "topics": "id", "posts": "id", "reviewables": "id",
    "reviewable_scores": "id", "polls": "id", "poll_options": "id",
    "poll_votes": "poll_id, poll_option_id, user_id",
}  # fmt: skip

# PostActionType flags: off_topic 3, inappropriate 4, notify_moderators 7, spam 8
FLAGS = [3, 4, 7, 8]

DISCOURSE_SUITE: dict[str, Any] = {
    "suite": "discourse",
    "tables": {
        **{t: {"key": "id"} for t in DISCOURSE_TABLES if t != "poll_votes"},
        "poll_votes": {"key": ["poll_id", "poll_option_id", "user_id"]},
    },
    "checks": [
        # other rows (scores) point at a reviewable: list its dangling target, keep the row
        {"id": "reviewables.target", "kind": "conditional_reference", "table": "reviewables",
         "column": "target_id", "discriminator": "target_type", "on_orphan": "report",
         "targets": {"Post": {"table": "posts"}, "User": {"table": "users"},
                     "Topic": {"table": "topics"}}},
        {"id": "reviewables.type", "kind": "in_set", "table": "reviewables", "column": "type",
         "values": ["ReviewableFlaggedPost", "ReviewableQueuedPost", "ReviewableUser"]},
        {"id": "reviewables.user_target", "kind": "row_rule", "table": "reviewables",
         "where": {"column": "type", "eq": "ReviewableUser"},
         "require": {"column": "target_type", "eq": "User"}},
        {"id": "reviewable_scores.reviewable", "kind": "reference",
         "table": "reviewable_scores", "column": "reviewable_id",
         "target": {"table": "reviewables"}},
        # single-table inheritance: a flag's score belongs to a ReviewableFlaggedPost
        {"id": "reviewable_scores.flag", "kind": "reference", "table": "reviewable_scores",
         "column": "reviewable_id", "on_orphan": "report",
         "where": {"column": "reviewable_score_type", "in": FLAGS},
         "target": {"table": "reviewables",
                    "where": {"column": "type", "eq": "ReviewableFlaggedPost"}}},
        {"id": "posts.user", "kind": "reference", "table": "posts", "column": "user_id",
         "target": {"table": "users"}, "on_orphan": "set_null"},
        {"id": "posts.topic", "kind": "reference", "table": "posts", "column": "topic_id",
         "target": {"table": "topics"}},
        {"id": "polls.post", "kind": "reference", "table": "polls", "column": "post_id",
         "target": {"table": "posts"}},
        # the option a vote names belongs to the vote's poll
        {"id": "poll_votes.option", "kind": "reference", "table": "poll_votes",
         "columns": ["poll_id", "poll_option_id"],
         "target": {"table": "poll_options", "columns": ["poll_id", "id"]}},
        {"id": "poll_votes.user", "kind": "reference", "table": "poll_votes",
         "column": "user_id", "target": {"table": "users"}},
        {"id": "poll_votes.voter", "kind": "not_null", "table": "poll_votes",
         "columns": ["user_id"]},
        {"id": "polls.post.fk", "kind": "constraint", "table": "polls", "type": "foreign_key",
         "name": "fk_rails_polls_posts", "columns": ["post_id"],
         "references": {"table": "posts", "columns": ["id"]}},
        {"id": "reviewables.target.trigger", "kind": "trigger", "table": "reviewables",
         "name": "reviewables_target_ref", "for_check": "reviewables.target"},
    ],
}  # fmt: skip

DISCOURSE_EXPECTED = {
    ("reviewables.target", "4"), ("reviewables.target", "5"),
    ("reviewables.target.discriminator", "8"),
    ("reviewables.type", "7"), ("reviewables.user_target", "6"),
    ("reviewable_scores.reviewable", "4"),
    ("reviewable_scores.flag", "3"), ("reviewable_scores.flag", "4"),
    ("posts.user", "4"), ("posts.topic", "6"), ("posts.topic", "7"),
    ("polls.post", "3"), ("polls.post", "4"),
    ("poll_votes.option", "[1, 3, 2]"), ("poll_votes.user", "[2, 3, 66]"),
    ("poll_votes.voter", "[1, 1, null]"),
    ("polls.post.fk", "fk_rails_polls_posts"),
    ("reviewables.target.trigger", "reviewables_target_ref"),
}  # fmt: skip


# --- the harness --------------------------------------------------------------------------


def unstamped(dump: dict[str, list[str]]) -> dict[str, list[str]]:
    """`dump` with each row's `last_update` (a timestamp a trigger sets to now) blanked."""
    stamp = re.compile(r'"20\d\d-\d\d-\d\d \d\d:\d\d:\d\d(\.\d+)?"')
    return {t: [stamp.sub('"T"', r) for r in rows] for t, rows in dump.items()}


def audit(uri: str, suite: dict[str, Any], out: Path) -> Any:
    return run_audit(
        as_url(uri), Suite.model_validate(suite), out, options=AuditOptions(repair=True)
    )


@pytest.fixture
def pagila(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("pagila")
    execute(uri, PAGILA_SCHEMA)
    execute(uri, PAGILA_ROWS)
    return uri


@pytest.fixture
def discourse(new_database) -> str:  # type: ignore[no-untyped-def]
    uri: str = new_database("discourse")
    execute(uri, DISCOURSE_SCHEMA)
    execute(uri, DISCOURSE_ROWS)
    return uri


def test_pagila_faults_flagged_repaired_and_rolled_back(pagila: str, tmp_path: Path) -> None:
    before = dump_all(pagila, PAGILA_TABLES)
    result = audit(pagila, PAGILA_SUITE, tmp_path / "run")
    got = findings(tmp_path / "run")
    assert set(got) == PAGILA_EXPECTED
    assert got[("film.language", "3")]["diagnosis"] == "orphan"
    # a row of a composite-keyed table is repaired like any other (here: quarantined)
    assert got[("film_actor.actor", "[99, 1]")]["evidence"] == (
        "no actor.actor_id 99; repair moves the row to quarantine"
    )
    checked = {c.id: c.rows_checked for c in result.checks}
    assert checked["film.original_differs"] == 3 and checked["film_actor.actor"] == 5

    # film 3 is named by film_actor (ON DELETE RESTRICT): held, not quarantined; film 4 goes
    # to quarantine, and so do the orphans of the composite-keyed film_actor and
    # film_category, by their keys; film 5 loses its original language
    applied = apply_plan(as_url(pagila), tmp_path / "run" / "repair.sql")
    assert applied.totals["quarantine"] == 4 and applied.totals["set_null"] == 1, applied.totals
    assert applied.totals["held"] == 1, applied.totals
    after = dump_all(pagila, PAGILA_TABLES)
    changes = changed_rows(before, after)
    assert set(changes) == {"film", "film_actor", "film_category"}
    gone, new = changes["film"]
    assert [r.split(",")[0] for r in gone] == ["(4", "(5"]
    assert [r.split(",")[0] for r in new] == ["(5"]
    gone, new = changes["film_actor"]
    assert sorted(r.split(",")[:2] for r in gone) == [["(1", "42"], ["(99", "1"]] and new == []
    gone, new = changes["film_category"]
    assert len(gone) == 1 and new == []
    assert query(pagila, "SELECT original_language_id FROM film WHERE film_id = 5") == [(None,)]
    # user triggers fire for the repair's changes (rollback.sql turns them off to restore)
    assert query(pagila, "SELECT last_update > '2023-01-01' FROM film WHERE film_id = 5") == [
        (True,)
    ]
    # the quarantine names a composite-keyed row by its key as violations.csv writes it
    kept = "SELECT table_name, row_key, row_data->>'title' FROM refaudit.quarantine ORDER BY 1, 2"
    assert query(pagila, kept) == [
        ("film", "4", "AFFAIR PREJUDICE"),
        ("film_actor", "[1, 42]", None),
        ("film_actor", "[99, 1]", None),
        ("film_category", "[2, 16]", None),
    ]

    audit(pagila, PAGILA_SUITE, tmp_path / "again")
    assert set(findings(tmp_path / "again")) == PAGILA_EXPECTED - {
        ("film.language", "4"), ("film.original_language", "5"), ("film_actor.actor", "[99, 1]"),
        ("film_actor.film", "[1, 42]"), ("film_category.category", "[2, 16]"),
    }  # fmt: skip
    assert_reapplied_then_rolled_back(
        pagila, tmp_path / "run", lambda: dump_all(pagila, PAGILA_TABLES), before, after
    )
    assert query(pagila, "SELECT count(*) FROM refaudit.quarantine") == [(0,)]

    # the same plan through psql: the same rows, but Pagila's last_updated trigger stamps
    # film 5 with this run's time
    again = psql(pagila, tmp_path / "run" / "repair.sql")
    assert again.returncode == 0, again.stderr
    assert unstamped(dump_all(pagila, PAGILA_TABLES)) == unstamped(after)
    back = psql(pagila, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump_all(pagila, PAGILA_TABLES) == before


def test_pagila_constraints_validate_once_the_review_is_done(pagila: str, tmp_path: Path) -> None:
    audit(pagila, PAGILA_SUITE, tmp_path / "run")
    assert apply_plan(as_url(pagila), tmp_path / "run" / "repair.sql").totals["quarantine"] == 4
    # what was listed for review, resolved by hand
    execute(
        pagila,
        "UPDATE film SET language_id = 1 WHERE film_id = 3;"
        "DELETE FROM film_actor WHERE actor_id = 99 OR film_id = 42;"
        "DELETE FROM film_category WHERE category_id = 16;",
    )
    done = psql(pagila, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    fks = dict(
        query(
            pagila,
            "SELECT conname, convalidated FROM pg_constraint WHERE contype = 'f' AND conname IN "
            "('film_language_id_fkey', 'film_actor_actor_id_fkey')",
        )
    )
    assert fks == {"film_language_id_fkey": True, "film_actor_actor_id_fkey": True}
    for sql in (
        "UPDATE film SET language_id = 9 WHERE film_id = 1",
        "INSERT INTO film_actor VALUES (98, 2, now())",
        "DELETE FROM language WHERE language_id = 1",  # ON DELETE RESTRICT
    ):
        with pytest.raises(psycopg2.Error):
            execute(pagila, sql)
    audit(pagila, PAGILA_SUITE, tmp_path / "clean")
    assert set(findings(tmp_path / "clean")) == {
        ("film.rating", "6"), ("film.rating", "3"), ("film.rating.present", "7"),
        ("film.rental_duration", "8"),
    }  # fmt: skip


def test_discourse_faults_flagged_repaired_and_rolled_back(discourse: str, tmp_path: Path) -> None:
    before = dump_all(discourse, DISCOURSE_TABLES)
    result = audit(discourse, DISCOURSE_SUITE, tmp_path / "run")
    got = findings(tmp_path / "run")
    assert set(got) == DISCOURSE_EXPECTED
    diagnoses = {k: (v["diagnosis"], v["proposed_value"]) for k, v in got.items()}
    assert diagnoses[("reviewables.target", "4")] == ("orphan", "")
    # posts.id 5 exists, but posts holds every id 1..7: a user's id there is chance; and the
    # check is `on_orphan: report`, so repair.sql would change nothing of it anyway
    assert diagnoses[("reviewables.target", "5")] == ("ambiguous", "")
    # reviewables 2 exists, but is no ReviewableFlaggedPost: the evidence says which rows count
    assert diagnoses[("reviewable_scores.flag", "3")] == ("filtered_out", "")
    assert got[("reviewable_scores.flag", "3")]["evidence"] == (
        "no reviewables.id 2 where type = 'ReviewableFlaggedPost'; the table has it, outside "
        "the target's `where`: listed for review"
    )
    checked = {c.id: c.rows_checked for c in result.checks}
    assert checked["reviewable_scores.flag"] == 3  # only the flags' scores
    assert checked["poll_votes.option"] == 5

    applied = apply_plan(as_url(discourse), tmp_path / "run" / "repair.sql")
    totals = applied.totals
    assert (totals.get("updated", 0), totals["set_null"], totals["quarantine"], totals["held"]) == (
        0, 1, 4, 2,
    ), totals  # fmt: skip
    after = dump_all(discourse, DISCOURSE_TABLES)
    changes = changed_rows(before, after)
    assert set(changes) == {
        "posts", "polls", "reviewable_scores", "poll_votes",
    }, changes  # fmt: skip
    keys = {t: ([r.split(",")[0] for r in g], [r.split(",")[0] for r in n])
            for t, (g, n) in changes.items()}  # fmt: skip
    assert keys == {
        "posts": (["(4", "(7"], ["(4"]),  # user_id 77 -> NULL; post 7 quarantined
        "polls": (["(4"], []),  # quarantined; poll 3 held by its options
        "reviewable_scores": (["(4"], []),  # quarantined
        "poll_votes": (["(2"], []),  # (2, 3, 66) quarantined, by its 3-column unique key
    }
    assert query(discourse, "SELECT target_type FROM reviewables WHERE id = 5") == [("User",)]

    audit(discourse, DISCOURSE_SUITE, tmp_path / "again")
    assert set(findings(tmp_path / "again")) == DISCOURSE_EXPECTED - {
        ("posts.user", "4"), ("posts.topic", "7"),
        ("polls.post", "4"), ("reviewable_scores.reviewable", "4"),
        ("reviewable_scores.flag", "4"), ("poll_votes.user", "[2, 3, 66]"),
    }  # fmt: skip
    assert_reapplied_then_rolled_back(
        discourse, tmp_path / "run", lambda: dump_all(discourse, DISCOURSE_TABLES), before, after
    )

    again = psql(discourse, tmp_path / "run" / "repair.sql")
    assert again.returncode == 0, again.stderr
    assert dump_all(discourse, DISCOURSE_TABLES) == after
    back = psql(discourse, tmp_path / "run" / "rollback.sql")
    assert back.returncode == 0, back.stderr
    assert dump_all(discourse, DISCOURSE_TABLES) == before


def test_discourse_constraints_enforce_the_polymorphic_target(
    discourse: str, tmp_path: Path
) -> None:
    audit(discourse, DISCOURSE_SUITE, tmp_path / "run")
    apply_plan(as_url(discourse), tmp_path / "run" / "repair.sql")
    execute(
        discourse,
        "DELETE FROM reviewables WHERE id IN (4, 8);"
        "DELETE FROM poll_options WHERE poll_id = 3; DELETE FROM polls WHERE id = 3;"
        "UPDATE posts SET topic_id = 2 WHERE id = 6;",
    )
    done = psql(discourse, tmp_path / "run" / "constraints.sql")
    assert done.returncode == 0, done.stderr
    assert query(
        discourse, "SELECT convalidated FROM pg_constraint WHERE conname = 'fk_rails_polls_posts'"
    ) == [(True,)]
    ok = [
        f"INSERT INTO reviewables (id, type, created_by_id, target_id, target_type, created_at,"
        f" updated_at) VALUES (20, 'ReviewableUser', 1, 2, 'User', {T}, {T})",
        f"INSERT INTO reviewables (id, type, created_by_id, target_id, target_type, created_at,"
        f" updated_at) VALUES (21, 'ReviewableQueuedPost', 1, NULL, NULL, {T}, {T})",
        "DELETE FROM topics WHERE id = 1 AND false",
    ]
    for sql in ok:
        execute(discourse, sql)
    refused = [
        f"INSERT INTO reviewables (id, type, created_by_id, target_id, target_type, created_at,"
        f" updated_at) VALUES (30, 'ReviewableFlaggedPost', 1, 999, 'Post', {T}, {T})",
        "DELETE FROM users WHERE id = 3",     # ReviewableUser 2 targets it
        "DELETE FROM topics WHERE id = 2",    # ReviewableFlaggedPost 9 targets it
        f"INSERT INTO polls (id, post_id, created_at, updated_at) VALUES (9, 404, {T}, {T})",
    ]  # fmt: skip
    for sql in refused:
        with pytest.raises(psycopg2.Error):
            execute(discourse, sql)


def test_pagila_rating_outside_the_enum_is_a_suite_error(pagila: str, tmp_path: Path) -> None:
    from refaudit.errors import SuiteError

    check = {**PAGILA_SUITE["checks"][5], "values": ["G", "NC17"]}
    suite = Suite.model_validate({**PAGILA_SUITE, "checks": [check]})
    with pytest.raises(SuiteError) as err:
        run_audit(as_url(pagila), suite, tmp_path / "run")
    assert 'invalid input value for enum mpaa_rating: "NC17"' in str(err.value)
    assert "film.rating" in str(err.value)


@pytest.mark.parametrize("schema", ["pagila", "discourse"])
def test_gx_export_counts_alike(
    schema: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    from refaudit.audit import check_suite
    from refaudit.gx_export import export_suite, run_with_gx, write_export

    uri = request.getfixturevalue(schema)
    suite = Suite.model_validate(PAGILA_SUITE if schema == "pagila" else DISCOURSE_SUITE)
    result = run_audit(as_url(uri), suite, tmp_path / "run")
    ours = {c.id: c.violations for c in result.checks if c.family not in ("constraint", "trigger")}
    types = check_suite(suite, as_url(uri))
    write_export(export_suite(suite, types.types, types.unique), tmp_path / "gx")
    gx = run_with_gx(as_url(uri).render_as_string(hide_password=False), tmp_path / "gx")
    assert gx.broken == {}
    assert gx.counts == ours


@pytest.mark.parametrize("schema", ["pagila", "discourse"])
def test_a_snapshot_audits_alike(
    schema: str, request: pytest.FixtureRequest, pg_server: str, tmp_path: Path
) -> None:
    uri = request.getfixturevalue(schema)
    suite = Suite.model_validate(PAGILA_SUITE if schema == "pagila" else DISCOURSE_SUITE)
    lines = audits_alike_from_a_snapshot(uri, suite, tmp_path, pg_server)
    assert len(lines) == 1 + len(PAGILA_EXPECTED if schema == "pagila" else DISCOURSE_EXPECTED)


def test_the_command_line_on_a_yaml_suite(discourse: str, tmp_path: Path) -> None:
    import yaml

    from tests.test_repair import refaudit

    before = dump_all(discourse, DISCOURSE_TABLES)
    suite = tmp_path / "discourse.yml"
    suite.write_text(yaml.safe_dump(DISCOURSE_SUITE, sort_keys=False), encoding="utf-8")
    assert refaudit("suite", "check", str(suite), "--db", discourse).returncode == 0
    out = tmp_path / "run"
    proc = refaudit(
        "run", "--db", discourse, "--suite", str(suite), "--out", str(out), "--repair", "--quiet"
    )
    assert proc.returncode == 1, proc.stderr  # violations at error severity
    assert set(findings(out)) == DISCOURSE_EXPECTED
    applied = refaudit("apply", str(out / "repair.sql"), "--db", discourse)
    assert applied.returncode == 0, applied.stderr
    assert "applied repair.sql: 1 set to NULL, 4 quarantined" in applied.stdout, applied.stdout
    assert dump_all(discourse, DISCOURSE_TABLES) != before
    back = refaudit("apply", str(out / "rollback.sql"), "--db", discourse)
    assert back.returncode == 0, back.stderr
    assert dump_all(discourse, DISCOURSE_TABLES) == before
