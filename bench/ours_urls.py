"""The app's URLs plus the floor: the same todo list view with no authentication at all."""

from django.urls import path
from rest_framework.permissions import AllowAny

from config.urls import *  # noqa: F403 (urlpatterns and the error handlers)
from config.urls import urlpatterns as app_urlpatterns
from todos.api import TodoViewSet
from todos.models import Todo


class FloorTodoViewSet(TodoViewSet):
    """TodoViewSet.list with no authentication or permission: one fixed user's todos."""

    authentication_classes: list = []
    permission_classes = [AllowAny]

    def get_queryset(self):
        return Todo.objects.filter(owner_id=self.kwargs["owner_id"]).order_by("-created_at", "-id")


urlpatterns = [
    path("api/bench-floor/<int:owner_id>/todos/", FloorTodoViewSet.as_view({"get": "list"})),
    *app_urlpatterns,
]
