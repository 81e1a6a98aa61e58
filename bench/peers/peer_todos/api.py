"""The todo list of the peers and the floor: the app's TodoViewSet (todos/api.py) in plain DRF.

The same fields, page size, default ordering (-created_at, -id), query parameters (completed,
ordering: validated the same way) and so the same two statements: a COUNT for the page count, then
one page.
"""

from rest_framework import serializers, viewsets
from rest_framework.pagination import PageNumberPagination

from peer_todos.models import Todo

ORDERINGS = ("created_at", "-created_at", "updated_at", "-updated_at", "title", "-title")
_BOOLEAN_QUERY = {"true": True, "1": True, "false": False, "0": False}


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

    def owner_id(self):
        return self.request.user.id

    def get_queryset(self):
        todos = Todo.objects.filter(owner_id=self.owner_id())
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

    def perform_create(self, serializer):
        serializer.save(owner_id=self.owner_id())
