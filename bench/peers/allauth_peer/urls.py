"""allauth peer URLs: the headless API under /_allauth/ and the todo list."""

from django.urls import include, path
from peer_todos.api import TodoViewSet

urlpatterns = [
    path("_allauth/", include("allauth.headless.urls")),
    path("api/todos/", TodoViewSet.as_view({"get": "list", "post": "create"})),
]
