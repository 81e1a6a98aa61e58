"""allauth peer URLs: startproject's admin, the headless API under /_allauth/ and the todo list."""

from django.contrib import admin
from django.urls import include, path
from peer_todos.api import TodoViewSet

urlpatterns = [
    path("admin/", admin.site.urls),
    path("_allauth/", include("allauth.headless.urls")),
    path("api/todos/", TodoViewSet.as_view({"get": "list", "post": "create"})),
]
