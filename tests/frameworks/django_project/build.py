"""Build the Django shop's database: Django's own `migrate`, then data made through the ORM
from a fixed seed. Run in a process of its own (Django's settings are global):

    REFAUDIT_DJANGO_DSN=postgresql://... python -m tests.frameworks.django_project.build

With `--references` it prints, as JSON, the references its models declare that no foreign key
constraint holds (`db_constraint=False`): the truth a catalog cannot tell.
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, datetime, timedelta

START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
DELETED_PRODUCTS = 10  # destroyed through the ORM; their versions and log entries stay


def seed() -> None:
    from django.contrib.admin.models import ADDITION, DELETION, LogEntry
    from django.contrib.auth.models import Permission, User
    from django.contrib.contenttypes.models import ContentType

    from tests.frameworks.django_project.shop.models import (
        Article,
        Category,
        Comment,
        ObjectPermission,
        OrderLine,
        Photo,
        Product,
        Section,
        Supplier,
        TaggedItem,
        Version,
    )

    rng = random.Random(19)

    def at(hours: int) -> datetime:
        return START + timedelta(hours=hours)

    admin = User.objects.create_superuser("admin", "admin@shop.test", None)
    users = [admin] + [
        User.objects.create_user(f"user{i:02}", f"user{i:02}@shop.test", None, date_joined=at(i))
        for i in range(1, 21)
    ]
    categories = [Category.objects.create(name=f"category {i}") for i in range(1, 7)]
    sections = [Section.objects.create(title=f"section {i}") for i in range(1, 9)]
    suppliers = [Supplier.objects.create(name=f"supplier {i}") for i in range(1, 11)]
    articles = [
        Article.objects.create(
            title=f"article {i}",
            author=rng.choice(users),
            section=rng.choice([*sections, None]),
            published=at(24 * i),
        )
        for i in range(1, 61)
    ]
    products = [
        Product.objects.create(
            name=f"product {i}",
            category=rng.choice(categories),
            supplier=rng.choice(suppliers),
            price=f"{rng.randint(100, 99999) / 100:.2f}",
        )
        for i in range(1, 121)
    ]
    photos = [
        Photo.objects.create(id=uuid.UUID(int=rng.getrandbits(128)), caption=f"photo {i}")
        for i in range(1, 16)
    ]
    # leave the last products without order lines (nothing but generic relations names them)
    for _ in range(150):
        OrderLine.objects.create(product=rng.choice(products[:100]), quantity=rng.randint(1, 9))
    words = ["new", "sale", "red", "blue", "gift", "eco", "local", "bulk"]
    for obj in [*articles, *products]:
        for tag in rng.sample(words, rng.randint(1, 3)):
            TaggedItem.objects.create(content_object=obj, tag=tag)
    for n in range(120):
        obj = rng.choice([*articles, *products, *photos])
        Comment.objects.create(
            content_object=obj,
            user=rng.choice([*users, None]),
            comment=f"comment {n}",
            submit_date=at(n),
        )
    for obj in [*articles, *products]:
        kind = ContentType.objects.get_for_model(obj)
        for revision in range(rng.randint(1, 2)):
            Version.objects.create(
                content_type=kind, object_id=str(obj.pk), serialized_data=f"r{revision}"
            )
    change = {
        Article: Permission.objects.get(codename="change_article"),
        Product: Permission.objects.get(codename="change_product"),
    }
    for obj in rng.sample([*articles, *products], 40):
        ObjectPermission.objects.create(
            user=rng.choice(users[1:]),
            permission=change[type(obj)],
            content_type=ContentType.objects.get_for_model(obj),
            object_pk=str(obj.pk),
        )
    for n, obj in enumerate(rng.sample([*articles, *products, *users[1:]], 60)):
        LogEntry.objects.create(
            user=admin,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            action_flag=ADDITION,
            change_message="[]",
            action_time=at(n),
        )
    # products destroyed in the admin: their order lines, tags and comments go with them
    # (ORM cascades, generic relations), their object permissions are cleaned (guardian's
    # clean_orphan_obj_perms); their versions stay, to recover them, and so does the log
    product_type = ContentType.objects.get_for_model(Product)
    for n, product in enumerate(rng.sample(products[:60], DELETED_PRODUCTS)):
        pk = str(product.pk)
        ObjectPermission.objects.filter(content_type=product_type, object_pk=pk).delete()
        LogEntry.objects.create(
            user=admin,
            content_type=product_type,
            object_id=pk,
            object_repr=str(product),
            action_flag=DELETION,
            change_message="[]",
            action_time=at(100 + n),
        )
        product.delete()


def main() -> None:
    from tests.frameworks.django_references import build

    build("tests.frameworks.django_project.settings", seed)


if __name__ == "__main__":
    main()
