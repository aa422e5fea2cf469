"""A tiny Django project whose database the framework round trips audit and repair. The
database comes from REFAUDIT_DJANGO_DSN (a libpq URI or key=value string)."""

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
    "tests.frameworks.django_project.shop",
]
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
