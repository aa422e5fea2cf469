"""A small library whose objects the real apps' generic relations name: authors and books
(bigint keys, tagged with django-taggit), films (a uuid key), all commented on with
django-contrib-comments and versioned with django-reversion."""

import reversion
from django.contrib.contenttypes.fields import GenericRelation
from django.db import models
from django_comments.models import Comment
from taggit.managers import TaggableManager


@reversion.register()
class Author(models.Model):
    name = models.CharField(max_length=100)
    tags = TaggableManager(blank=True)

    def __str__(self) -> str:
        return self.name


@reversion.register()
class Book(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(Author, on_delete=models.PROTECT)
    published = models.DateField()
    tags = TaggableManager(blank=True)
    # deleting a book deletes its comments (django-contrib-comments' documented way)
    comments = GenericRelation(Comment, object_id_field="object_pk")

    def __str__(self) -> str:
        return self.title


@reversion.register()
class Film(models.Model):
    id = models.UUIDField(primary_key=True)
    title = models.CharField(max_length=200)
    comments = GenericRelation(Comment, object_id_field="object_pk")

    def __str__(self) -> str:
        return self.title
