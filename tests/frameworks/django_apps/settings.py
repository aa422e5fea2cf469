"""A Django project with the generic relations of real apps from PyPI: the admin's log,
django-taggit, django-contrib-comments and django-reversion, over a small library app. The
database comes from REFAUDIT_DJANGO_DSN (a libpq URI or key=value string).

REFAUDIT_DJANGO_APPS_ORDER=reversed installs the same apps in the reverse order: `migrate`
then creates the content types (and permissions) in another order, and so with other ids,
as two databases of one project get when their migrations ran in another order."""

import os

from psycopg2.extensions import parse_dsn

_dsn = parse_dsn(os.environ["REFAUDIT_DJANGO_DSN"])
_named = {"dbname": "NAME", "user": "USER", "password": "PASSWORD", "host": "HOST", "port": "PORT"}

DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.postgresql",
        **{django: _dsn.pop(libpq, "") for libpq, django in _named.items()},
        "OPTIONS": _dsn,
    }
}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.sites",
    "taggit",
    "django_comments",
    "reversion",
    "tests.frameworks.django_apps.library",
]
if os.environ.get("REFAUDIT_DJANGO_APPS_ORDER") == "reversed":
    INSTALLED_APPS.reverse()
SITE_ID = 1
SECRET_KEY = "refaudit-tests-only"
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "django.template.context_processors.request",
            ]
        },
    }
]
