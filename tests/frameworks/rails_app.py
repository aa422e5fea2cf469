"""The Rails application's data, as its models would write it (from a fixed seed): ids from
the sequences, class names in the polymorphic `*_type` columns, `Admin` users through STI,
destroyed products' dependents gone with them (`dependent: :destroy`) but their PaperTrail
versions kept."""

from __future__ import annotations

import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg2

STRUCTURE = Path(__file__).with_name("rails_structure.sql")
START = datetime(2024, 3, 1, 9, 0)
ARTICLES, PRODUCTS = 60, 120
DESTROYED = 10  # products destroyed, among ids 31..60: an article holds each id
ORDERED_FROM = 31  # products below have no line items: only polymorphic rows name them


def build(uri: str) -> None:
    conn = psycopg2.connect(uri)
    try:
        with conn.cursor() as cur:
            cur.execute(STRUCTURE.read_text())
            seed(cur)
        conn.commit()
    finally:
        conn.close()


def seed(cur: Any) -> None:
    rng = random.Random(19)

    def at(hours: int) -> datetime:
        return START + timedelta(hours=hours)

    def insert(table: str, columns: str, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join(["%s"] * len(rows[0]))
        cur.executemany(f"INSERT INTO {table} ({columns}) VALUES ({marks})", rows)

    insert(
        "users",
        "type, email, created_at, updated_at",
        [
            ("Admin" if i <= 2 else "User", f"user{i:02}@shop.test", at(i), at(i))
            for i in range(1, 21)
        ],
    )
    insert(
        "suppliers",
        "name, created_at, updated_at",
        [(f"supplier {i}", at(i), at(i)) for i in range(1, 11)],
    )
    insert(
        "coupons", "code, created_at, updated_at", [(f"SAVE{i}", at(i), at(i)) for i in range(1, 6)]
    )
    insert(
        "articles",
        "user_id, title, created_at, updated_at",
        [(rng.randint(1, 20), f"article {i}", at(i), at(i + 1)) for i in range(1, ARTICLES + 1)],
    )
    insert(
        "products",
        "supplier_id, name, price, created_at, updated_at",
        [
            (
                rng.randint(1, 10),
                f"product {i}",
                f"{rng.randint(100, 99999) / 100:.2f}",
                at(i),
                at(i),
            )
            for i in range(1, PRODUCTS + 1)
        ],
    )
    destroyed = set(rng.sample(range(ORDERED_FROM, 61), DESTROYED))
    live = [p for p in range(1, PRODUCTS + 1) if p not in destroyed]
    insert(
        "orders",
        "user_id, coupon_id, created_at, updated_at",
        [
            (rng.randint(1, 20), rng.choice([None, 1, 2, 3, 4, 5]), at(i), at(i))
            for i in range(1, 41)
        ],
    )
    insert(
        "line_items",
        "order_id, product_id, quantity, created_at, updated_at",
        [
            (
                rng.randint(1, 40),
                rng.choice([p for p in live if p >= ORDERED_FROM]),
                rng.randint(1, 9),
                at(i),
                at(i),
            )
            for i in range(150)
        ],
    )
    words = ["new", "sale", "red", "blue", "gift", "eco", "local", "bulk"]
    insert("tags", "name, created_at, updated_at", [(w, at(0), at(0)) for w in words])
    subjects = [("Article", i) for i in range(1, ARTICLES + 1)] + [("Product", p) for p in live]
    taggings = []
    for kind, key in subjects:
        for tag in rng.sample(range(1, len(words) + 1), rng.randint(1, 3)):
            taggings.append((tag, kind, key, "User", rng.randint(1, 20), "tags", at(key)))
    insert(
        "taggings",
        "tag_id, taggable_type, taggable_id, tagger_type, tagger_id, context, created_at",
        taggings,
    )
    cur.execute(
        "UPDATE tags t SET taggings_count = (SELECT count(*) FROM taggings g WHERE g.tag_id = t.id)"
    )
    insert(
        "comments",
        "commentable_type, commentable_id, user_id, body, created_at, updated_at",
        [
            (*rng.choice(subjects), rng.choice([None, *range(1, 21)]), f"comment {n}", at(n), at(n))
            for n in range(120)
        ],
    )
    insert(
        "active_storage_blobs",
        "key, filename, content_type, metadata, service_name, byte_size, checksum, created_at",
        [
            (
                f"k{n:04x}",
                f"photo{n}.jpg",
                "image/jpeg",
                "{}",
                "local",
                rng.randint(1000, 99999),
                f"c{n}",
                at(n),
            )
            for n in range(1, 41)
        ],
    )
    attached = rng.sample([*subjects, *(("User", u) for u in range(1, 21))], 40)
    insert(
        "active_storage_attachments",
        "name, record_type, record_id, blob_id, created_at",
        [
            ("image" if kind != "User" else "avatar", kind, key, n, at(n))
            for n, (kind, key) in enumerate(attached, 1)
        ],
    )
    versions = []
    for kind, key in [*subjects, *(("Product", p) for p in sorted(destroyed))]:
        versions.append((kind, key, "create", None, None, at(key)))
    for n, p in enumerate(sorted(destroyed)):
        versions.append(
            (
                "Product",
                p,
                "destroy",
                "1",
                json.dumps({"id": p, "name": f"product {p}"}),
                at(200 + n),
            )
        )
    insert("versions", "item_type, item_id, event, whodunnit, object, created_at", versions)
    cur.execute(f"DELETE FROM products WHERE id IN ({', '.join(map(str, sorted(destroyed)))})")
