"""Floor URLs: startproject's admin and one owner's todo list, the owner taken from the URL."""

from django.contrib import admin
from django.urls import path
from peer_todos.api import TodoViewSet
from rest_framework.permissions import AllowAny


class FloorTodoViewSet(TodoViewSet):
    """The peers' TodoViewSet list with no authentication or permission: the todos of the owner in the URL."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def owner_id(self):
        return self.kwargs["owner_id"]


urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/bench-floor/<int:owner_id>/todos/", FloorTodoViewSet.as_view({"get": "list"})),
]
