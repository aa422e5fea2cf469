"""Laravel's polymorphic relations: `$table->morphs('commentable')` makes `commentable_type
varchar(255)` and `commentable_id bigint`; the type holds a morph map's alias (`post`,
`video`) or, without a map, the model's class name (`App\\Models\\Post`). Both are plain
`conditional_reference` targets keyed by those values. A home-made type table
(`entity_types(id, name)`, the rows naming it by `entity_type_id`) is a `lookup:`; one suite
file holds on two databases whose `entity_types` ids differ. In every form the planted
faults are found and no clean row is flagged."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from refaudit.audit import AuditOptions, run_audit
from refaudit.suite import Suite, load_suite

from tests.conftest import as_url, execute
from tests.frameworks.harness import Trip, assert_round_trip, plant
from tests.roundtrip import findings
from tests.test_repair import query

# the tables a Laravel migration makes (bigIncrements keys, morphs() with its index)
TABLES = """
CREATE TABLE users (id bigserial PRIMARY KEY, name varchar(255) NOT NULL);
CREATE TABLE posts (id bigserial PRIMARY KEY, user_id bigint NOT NULL REFERENCES users (id),
                    title varchar(255) NOT NULL);
CREATE TABLE videos (id bigserial PRIMARY KEY, title varchar(255) NOT NULL);
INSERT INTO users (name) SELECT 'user ' || g FROM generate_series(1, 10) g;
INSERT INTO posts (user_id, title) SELECT 1 + g % 10, 'post ' || g FROM generate_series(1, 40) g;
INSERT INTO videos (title) SELECT 'video ' || g FROM generate_series(1, 25) g;
"""

# every third comment on a video, the others on posts; ids within each table
MORPHS = """
CREATE TABLE comments (id bigserial PRIMARY KEY, body text NOT NULL,
                       commentable_type varchar(255) NOT NULL, commentable_id bigint NOT NULL);
CREATE INDEX comments_commentable_type_commentable_id_index
    ON comments (commentable_type, commentable_id);
INSERT INTO comments (body, commentable_type, commentable_id)
    SELECT 'comment ' || g, CASE WHEN g % 3 = 0 THEN {video} ELSE {post} END,
           CASE WHEN g % 3 = 0 THEN 1 + g % 25 ELSE 1 + g % 40 END
    FROM generate_series(1, 150) g;
"""

MORPH_SUITE = """\
suite: laravel
tables:
  posts: {{key: id}}
  videos: {{key: id}}
  comments: {{key: id}}
checks:
  - id: commentable
    kind: conditional_reference
    table: comments
    column: commentable_id
    discriminator: commentable_type
    targets:
      {post}: {{table: posts}}
      {video}: {{table: videos}}
"""

# (type of the map's form, type of the other form): the aliases of a morph map, or the class
# names Laravel writes without one
FORMS = {
    "morph map": ("post", "video", "App\\Models\\Post"),
    "class names": ("App\\Models\\Post", "App\\Models\\Video", "post"),
}


def sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def faults(post: str, video: str, other: str, table: str = "comments") -> str:
    """A comment on no post (beyond every key), a comment on a video whose id only a post
    has, a type no target maps, the post's other spelling (a row written before or after the
    morph map)."""
    return f"""
INSERT INTO {table} (id, body, commentable_type, commentable_id) VALUES
    (9001, 'on no post', {sql_text(post)}, 9999),
    (9002, 'on no video', {sql_text(video)}, 35),
    (9003, 'on a photo', {sql_text("photo")}, 1),
    (9004, 'other spelling', {sql_text(other)}, 1);
"""


PLANTED_MORPHS = {
    ("commentable", "9001"),
    ("commentable", "9002"),
    ("commentable.discriminator", "9003"),
    ("commentable.discriminator", "9004"),
}


def laravel(uri: str, post: str, video: str) -> None:
    execute(uri, TABLES + MORPHS.format(post=sql_text(post), video=sql_text(video)))


def morph_suite(tmp_path: Path, post: str, video: str) -> Suite:
    path = tmp_path / "suite.yml"
    # YAML single quotes keep a class name's backslashes as they are
    path.write_text(
        MORPH_SUITE.format(post=sql_text(post), video=sql_text(video)), encoding="utf-8"
    )
    return load_suite(path)


@pytest.mark.parametrize("form", sorted(FORMS))
def test_a_morph_map_or_class_names_as_targets(
    new_database, tmp_path: Path, form: str  # type: ignore[no-untyped-def]
) -> None:
    post, video, other = FORMS[form]
    uri = new_database("laravel")
    laravel(uri, post, video)
    execute(uri, faults(post, video, other))
    suite = morph_suite(tmp_path, post, video)
    run_audit(as_url(uri), suite, tmp_path / "run", options=AuditOptions(record_history=False))
    found = findings(tmp_path / "run")
    assert set(found) == PLANTED_MORPHS
    assert found[("commentable", "9001")]["diagnosis"] == "orphan"
    # posts' ids are dense around 35: a video's comment holding one is no evidence of type
    assert found[("commentable", "9002")]["diagnosis"] == "ambiguous"
    assert other in found[("commentable.discriminator", "9004")]["value"]


def test_a_morph_map_round_trip(new_database, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    post, video, other = FORMS["morph map"]
    uri = new_database("laravel_trip")
    laravel(uri, post, video)
    execute(uri, faults(post, video, other))
    trip = Trip(uri, morph_suite(tmp_path, post, video), tmp_path / "trip")
    assert_round_trip(trip)
    assert trip.applied is not None
    assert trip.applied.totals["quarantine"] == 1  # the comment on no post; 9002 for review


# A home-made type table: its ids are whatever order each database inserted the types in.
ENTITIES = """
CREATE TABLE entity_types (id serial PRIMARY KEY, name varchar(64) NOT NULL UNIQUE);
INSERT INTO entity_types (name) SELECT unnest(ARRAY[{names}]);
CREATE TABLE comments (id bigserial PRIMARY KEY, body text NOT NULL,
                       entity_type_id integer NOT NULL REFERENCES entity_types (id),
                       entity_id bigint NOT NULL);
INSERT INTO comments (body, entity_type_id, entity_id)
    SELECT 'comment ' || g,
           (SELECT id FROM entity_types WHERE name = CASE WHEN g % 3 = 0 THEN 'video'
                                                       ELSE 'post' END),
           CASE WHEN g % 3 = 0 THEN 1 + g % 25 ELSE 1 + g % 40 END
    FROM generate_series(1, 150) g;
"""
ORDERS = (["post", "video", "user"], ["user", "audio", "video", "post"])

ENTITY_SUITE = textwrap.dedent(
    """\
    suite: entities
    tables:
      entity_types: {key: id}
      posts: {key: id}
      videos: {key: id}
      comments: {key: id}
    checks:
      - id: commentable
        kind: conditional_reference
        table: comments
        column: entity_id
        discriminator: entity_type_id
        lookup: {table: entity_types, key: id, name: name}
        targets:
          post: {table: posts}
          video: {table: videos}
    """
)

ENTITY_FAULTS = """
INSERT INTO entity_types (name) VALUES ('photo');
INSERT INTO comments (id, body, entity_type_id, entity_id) VALUES
    (9001, 'on no post', (SELECT id FROM entity_types WHERE name = 'post'), 9999),
    (9002, 'on no video', (SELECT id FROM entity_types WHERE name = 'video'), 35),
    (9003, 'on a photo', (SELECT id FROM entity_types WHERE name = 'photo'), 1),
    (9004, 'of no type', 777, 1);
"""


def type_ids(uri: str) -> dict[str, int]:
    return dict(query(uri, "SELECT name, id FROM entity_types"))


def test_a_home_made_type_table_one_suite_two_databases(
    new_database, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    path = tmp_path / "suite.yml"
    path.write_text(ENTITY_SUITE, encoding="utf-8")
    suite = load_suite(path)
    databases = []
    for order in ORDERS:
        uri = new_database("entities")
        execute(uri, TABLES + ENTITIES.format(names=", ".join(sql_text(n) for n in order)))
        plant(uri, ENTITY_FAULTS)  # 777 names no type: loaded as a restore loads it
        databases.append(uri)
    assert type_ids(databases[0])["post"] != type_ids(databases[1])["post"]
    for n, uri in enumerate(databases):
        out = tmp_path / f"run{n}"
        run_audit(as_url(uri), suite, out, options=AuditOptions(record_history=False))
        found = findings(out)
        photo = type_ids(uri)["photo"]
        assert set(found) == {
            ("commentable", "9001"),
            ("commentable", "9002"),
            ("commentable.discriminator", "9003"),
            ("commentable.discriminator", "9004"),
            # the type row rows name whose table is gone: a finding of the type table
            ("commentable.lookup", str(photo)),
        }
        assert found[("commentable", "9001")]["diagnosis"] == "orphan"
        assert found[("commentable", "9002")]["diagnosis"] == "ambiguous"
        assert (
            f"entity_type_id {photo} is photo in entity_types, after which no table is named: "
            "a stale type"
            in found[("commentable.discriminator", "9003")]["evidence"]
        )
        assert (
            "entity_type_id 777 names no row of entity_types"
            in found[("commentable.discriminator", "9004")]["evidence"]
        )
        assert "no posts.id 9999" in found[("commentable", "9001")]["evidence"]


def proposed(uri: str) -> list[dict[str, object]]:
    from refaudit.discover import discover

    return [
        p.check for p in discover(as_url(uri)).proposals if p.kind == "conditional_reference"
    ]


def test_discover_proposes_the_morph_map_and_the_type_table(new_database) -> None:  # type: ignore[no-untyped-def]
    """What discover writes for a morph map's aliases (plain targets) and for a home-made
    type table (a `lookup:`): the suites above, with the same targets."""
    morph = new_database("laravel_discover")
    laravel(morph, "post", "video")
    (check,) = proposed(morph)
    assert (check["column"], check["discriminator"]) == ("commentable_id", "commentable_type")
    assert check["targets"] == {
        "post": {"table": "posts", "column": "id"},
        "video": {"table": "videos", "column": "id"},
    }
    entities = new_database("entities_discover")
    execute(entities, TABLES + ENTITIES.format(names="'user', 'video', 'post'"))
    (check,) = proposed(entities)
    assert (check["column"], check["discriminator"]) == ("entity_id", "entity_type_id")
    assert check["lookup"] == {"table": "entity_types", "key": "id", "name": "name"}
    assert check["targets"] == {"post": {"table": "posts"}, "video": {"table": "videos"}}


def test_discover_proposes_laravel_class_names(new_database) -> None:  # type: ignore[no-untyped-def]
    uri = new_database("laravel_classes")
    laravel(uri, "App\\Models\\Post", "App\\Models\\Video")
    checks = proposed(uri)
    assert [sorted(dict(c["targets"])) for c in checks] == [
        ["App\\Models\\Post", "App\\Models\\Video"]
    ]
