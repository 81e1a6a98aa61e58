"""A DRF ModelViewSet over the signed-in user's todos, paginated like the app's."""

from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination

from peer_todos.models import Todo


class TodoPagination(PageNumberPagination):
    page_size = 20
    page_size_query_param = "page_size"
    max_page_size = 100


class TodoSerializer(serializers.ModelSerializer):
    class Meta:
        model = Todo
        fields = ["id", "title", "notes", "completed", "created_at", "updated_at"]
        read_only_fields = ["id", "created_at", "updated_at"]


class TodoViewSet(viewsets.ModelViewSet):
    serializer_class = TodoSerializer
    pagination_class = TodoPagination

    def get_queryset(self):
        return Todo.objects.filter(owner_id=self.request.user.id).order_by("-created_at", "-id")

    def perform_create(self, serializer):
        serializer.save(owner_id=self.request.user.id)
