"""simplejwt peer URLs: startproject's admin, token obtain/refresh and the todo list."""

from django.contrib import admin
from django.urls import path
from peer_todos.api import TodoViewSet
from rest_framework_simplejwt.views import TokenObtainPairView, TokenRefreshView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api/token/", TokenObtainPairView.as_view()),
    path("api/token/refresh/", TokenRefreshView.as_view()),
    path("api/todos/", TodoViewSet.as_view({"get": "list", "post": "create"})),
]
