"""Build the library's database: Django's own `migrate` (the apps' own migrations), then data
made through the ORM and the apps' own APIs from a fixed seed: tags with django-taggit's
manager, comments with django-contrib-comments' model, versions with django-reversion's
`create_revision`, the admin's log with its LogEntry. Run in a process of its own (Django's
settings are global):

    REFAUDIT_DJANGO_DSN=postgresql://... python -m tests.frameworks.django_apps.build

With REFAUDIT_DJANGO_APPS_ORDER=reversed the apps migrate in another order: the same data,
other content type ids. With `--references` it prints the references its models declare
without a constraint (see tests/frameworks/django_references.py).
"""

from __future__ import annotations

import random
import uuid
from datetime import UTC, date, datetime, timedelta

START = datetime(2024, 3, 1, 9, 0, tzinfo=UTC)
DELETED_BOOKS = 6  # deleted through the ORM: tags and comments go, versions and the log stay


def seed() -> None:
    import reversion
    from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
    from django.contrib.auth.models import Group, Permission, User
    from django.contrib.contenttypes.models import ContentType
    from django.contrib.sites.models import Site
    from django_comments.models import Comment, CommentFlag

    from tests.frameworks.django_apps.library.models import Author, Book, Film

    rng = random.Random(20)

    def at(hours: int) -> datetime:
        return START + timedelta(hours=hours)

    site = Site.objects.get_current()
    admin = User.objects.create_superuser("admin", "admin@library.test", None)
    users = [admin] + [
        User.objects.create_user(f"reader{i:02}", f"reader{i:02}@library.test", None,
                                 date_joined=at(i))
        for i in range(1, 13)
    ]
    editors = Group.objects.create(name="editors")
    editors.permissions.set(Permission.objects.filter(content_type__app_label="library"))
    for user in users[1:5]:
        user.groups.add(editors)
    users[5].user_permissions.add(Permission.objects.get(codename="add_comment"))
    words = ["novel", "poetry", "history", "classic", "new", "signed", "rare", "kids"]
    with reversion.create_revision():
        reversion.set_user(admin)
        reversion.set_comment("import")
        authors = [Author.objects.create(name=f"author {i}") for i in range(1, 16)]
        books = [
            Book.objects.create(
                title=f"book {i}",
                author=rng.choice(authors),
                published=date(1990, 1, 1) + timedelta(days=97 * i),
            )
            for i in range(1, 81)
        ]
        films = [
            Film.objects.create(id=uuid.UUID(int=rng.getrandbits(128), version=4),
                                title=f"film {i}")
            for i in range(1, 19)
        ]
    # a second revision of some objects, as an edit in the admin makes it
    for obj in rng.sample([*authors, *books, *films], 30):
        with reversion.create_revision():
            reversion.set_user(rng.choice(users))
            obj.save()
    for obj in [*authors, *books]:
        obj.tags.add(*rng.sample(words, rng.randint(1, 3)))
    for n in range(140):
        obj = rng.choice([*books, *films])
        user = rng.choice([*users, None])
        Comment.objects.create(
            content_object=obj,
            site=site,
            user=user,
            user_name="" if user else f"guest {n}",
            comment=f"comment {n}",
            submit_date=at(n),
            is_public=True,
        )
    for comment in rng.sample(list(Comment.objects.order_by("id")), 8):
        CommentFlag.objects.create(
            user=rng.choice(users[1:]),
            comment=comment,
            flag=CommentFlag.SUGGEST_REMOVAL,
            flag_date=comment.submit_date + timedelta(hours=1),
        )
    for n, obj in enumerate(rng.sample([*authors, *books, *films, *users[1:]], 50)):
        LogEntry.objects.create(
            user=admin,
            content_type=ContentType.objects.get_for_model(obj),
            object_id=str(obj.pk),
            object_repr=str(obj)[:200],
            action_flag=rng.choice([ADDITION, CHANGE]),
            change_message="[]",
            action_time=at(n),
        )
    # books deleted in the admin: their tags and comments go with them (taggit's manager
    # and the GenericRelation), their versions stay (to recover them), and so does the log
    book_type = ContentType.objects.get_for_model(Book)
    for n, book in enumerate(rng.sample(books, DELETED_BOOKS)):
        LogEntry.objects.create(
            user=admin,
            content_type=book_type,
            object_id=str(book.pk),
            object_repr=str(book),
            action_flag=DELETION,
            change_message="[]",
            action_time=at(200 + n),
        )
        book.delete()


def main() -> None:
    from tests.frameworks.django_references import build

    build("tests.frameworks.django_apps.settings", seed)


if __name__ == "__main__":
    main()
