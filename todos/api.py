"""The todo API: each person's own todos, and nobody else's."""

from typing import Any

from django.conf import settings
from django.db.models import QuerySet
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema, extend_schema_view
from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.views import APIView

from accounts.api.serializers import StrictBooleanField, StrictCharField
from todos.models import TITLE_MAX_LENGTH, Todo

NOTES_MAX_LENGTH = 10_000
ORDERINGS = ("created_at", "-created_at", "updated_at", "-updated_at", "title", "-title")
_BOOLEAN_QUERY = {"true": True, "1": True, "false": False, "0": False}


class TodoPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class HasVerifiedEmail(BasePermission):
    """Under the mandatory verification policy, only verified addresses use the todos."""

    message = "Verify your email address first."
    code = "email_not_verified"

    def has_permission(self, request: Request, view: APIView) -> bool:
        if settings.ACCOUNTS_EMAIL_VERIFICATION != "mandatory":
            return True
        return bool(getattr(request.user, "email_verified", False))


# Formats the two timestamps as every DRF DateTimeField would (ISO 8601, UTC as "Z").
_TIMESTAMP = serializers.DateTimeField(read_only=True)


class TodoSerializer(serializers.ModelSerializer):
    title = StrictCharField(min_length=1, max_length=TITLE_MAX_LENGTH)
    notes = StrictCharField(required=False, allow_blank=True, max_length=NOTES_MAX_LENGTH, trim_whitespace=False)
    completed = StrictBooleanField(required=False)

    class Meta:
        model = Todo
        fields = ["id", "title", "notes", "completed", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]

    def to_representation(self, instance: Todo) -> dict[str, Any]:
        # The list's hot path: DRF would first build this serializer's fields from the model on
        # every request, then dispatch per field. The same values, read directly (Meta.fields
        # still describes them to input validation and to the schema; tests compare both).
        return {
            "id": instance.pk,
            "title": instance.title,
            "notes": instance.notes,
            "completed": instance.completed,
            "created_at": _TIMESTAMP.to_representation(instance.created_at),
            "updated_at": _TIMESTAMP.to_representation(instance.updated_at),
        }


@extend_schema_view(
    list=extend_schema(
        parameters=[
            OpenApiParameter(
                "completed", OpenApiTypes.BOOL, description="Only completed (true) or open (false) todos."
            ),
            OpenApiParameter("ordering", OpenApiTypes.STR, enum=list(ORDERINGS), description="Default: -created_at."),
        ]
    )
)
@extend_schema(tags=["todos"])
class TodoViewSet(viewsets.ModelViewSet):
    queryset = Todo.objects.none()  # only describes the model to the schema; see get_queryset
    serializer_class = TodoSerializer
    pagination_class = TodoPagination
    permission_classes = [IsAuthenticated, HasVerifiedEmail]

    def get_queryset(self) -> QuerySet[Todo]:
        todos = Todo.objects.filter(owner_id=self.request.user.id)
        if self.action != "list":
            return todos
        params = self.request.query_params
        if "completed" in params:
            completed = _BOOLEAN_QUERY.get(params["completed"].lower())
            if completed is None:
                raise serializers.ValidationError({"completed": ["Use true or false."]})
            todos = todos.filter(completed=completed)
        ordering = params.get("ordering", "-created_at")
        if ordering not in ORDERINGS:
            raise serializers.ValidationError({"ordering": [f"Use one of: {', '.join(ORDERINGS)}."]})
        return todos.order_by(ordering, "-id")

    def perform_create(self, serializer: serializers.BaseSerializer[Todo]) -> None:
        serializer.save(owner_id=self.request.user.id)
