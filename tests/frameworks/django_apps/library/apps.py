from django.apps import AppConfig


class LibraryConfig(AppConfig):
    name = "tests.frameworks.django_apps.library"
    label = "library"
