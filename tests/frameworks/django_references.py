"""The references a Django project's models declare that no foreign key constraint holds
(`db_constraint=False`): references all the same, the truth a catalog cannot tell. Printed
as JSON by each project's build module with `--references` (Django's settings are global,
so it runs in a process of its own)."""

from __future__ import annotations


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
