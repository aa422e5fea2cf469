"""The references a Django project's models declare that no foreign key constraint holds
(`db_constraint=False`): references all the same, the truth a catalog cannot tell. Printed
as JSON by each project's build module with `--references` (Django's settings are global,
so it runs in a process of its own)."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable


def model_references() -> list[list[str]]:
    """[table, column, target table, target column] per such foreign key."""
    from django.apps import apps
    from django.db import models

    out = []
    for model in apps.get_models():
        for f in model._meta.concrete_fields:
            if isinstance(f, models.ForeignKey) and not f.db_constraint:
                target = f.target_field
                out.append(
                    [model._meta.db_table, f.column, target.model._meta.db_table, target.column]
                )
    return out


def build(settings_module: str, seed: Callable[[], None]) -> None:
    """A project's build command (see each project's `build` module): Django's own
    `migrate`, then `seed()`'s data; with `--references`, print `model_references()`."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", settings_module)
    import django
    from django.core.management import call_command

    django.setup()
    if "--references" in sys.argv:
        print(json.dumps(model_references()))
        return
    call_command("migrate", verbosity=0, interactive=False)
    seed()
