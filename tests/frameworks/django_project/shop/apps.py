from django.apps import AppConfig


class ShopConfig(AppConfig):
    name = "tests.frameworks.django_project.shop"
    label = "shop"
