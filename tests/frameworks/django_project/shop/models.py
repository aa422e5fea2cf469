"""A shop with the relations real Django projects have: foreign keys (Django creates them
DEFERRABLE INITIALLY DEFERRED), a reference without a database constraint
(`db_constraint=False`), a uuid key, and generic relations through contenttypes shaped like
the popular packages' (django-taggit, django-contrib-comments' text `object_pk`,
django-reversion, django-guardian's object permissions)."""

from django.conf import settings
from django.contrib.auth.models import Permission
from django.contrib.contenttypes.fields import GenericForeignKey, GenericRelation
from django.contrib.contenttypes.models import ContentType
from django.db import models


class Category(models.Model):
    name = models.CharField(max_length=50, unique=True)


class Section(models.Model):
    title = models.CharField(max_length=50)


class Supplier(models.Model):
    name = models.CharField(max_length=80)


class TaggedItem(models.Model):
    """django-taggit's generic tagged item."""

    tag = models.SlugField()
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.IntegerField(db_index=True)
    content_object = GenericForeignKey("content_type", "object_id")


class Comment(models.Model):
    """django-contrib-comments: the object's key as text."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_pk = models.CharField(max_length=64, db_index=True)
    content_object = GenericForeignKey("content_type", "object_pk")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    comment = models.TextField()
    submit_date = models.DateTimeField()


class Version(models.Model):
    """django-reversion: versions outlive their object (a deleted one can be recovered)."""

    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_id = models.CharField(max_length=191)
    serialized_data = models.TextField()


class ObjectPermission(models.Model):
    """django-guardian's per-object permission."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    permission = models.ForeignKey(Permission, on_delete=models.CASCADE)
    content_type = models.ForeignKey(ContentType, on_delete=models.CASCADE)
    object_pk = models.CharField(max_length=255)


class Article(models.Model):
    title = models.CharField(max_length=200)
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    section = models.ForeignKey(
        Section, null=True, on_delete=models.DO_NOTHING, db_constraint=False
    )
    published = models.DateTimeField()
    tags = GenericRelation(TaggedItem)
    comments = GenericRelation(Comment, object_id_field="object_pk")


class Product(models.Model):
    name = models.CharField(max_length=100)
    category = models.ForeignKey(Category, on_delete=models.PROTECT)
    supplier = models.ForeignKey(Supplier, on_delete=models.DO_NOTHING, db_constraint=False)
    price = models.DecimalField(max_digits=8, decimal_places=2)
    tags = GenericRelation(TaggedItem)
    comments = GenericRelation(Comment, object_id_field="object_pk")


class Photo(models.Model):
    id = models.UUIDField(primary_key=True)
    caption = models.CharField(max_length=100)
    comments = GenericRelation(Comment, object_id_field="object_pk")


class OrderLine(models.Model):
    product = models.ForeignKey(Product, on_delete=models.CASCADE)
    quantity = models.PositiveIntegerField()
