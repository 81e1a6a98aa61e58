"""The todo item, field for field as todos/models.py."""

from django.conf import settings
from django.db import models


class Todo(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="todos")
    title = models.CharField(max_length=200)
    notes = models.TextField(blank=True)
    completed = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"], name="todo_owner_created_idx")]
        constraints = [models.CheckConstraint(condition=~models.Q(title=""), name="todo_title_not_empty")]

    def __str__(self) -> str:
        return self.title
