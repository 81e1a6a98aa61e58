"""URLs of the todo API, mounted at /api/todos/."""

from rest_framework.routers import SimpleRouter

from todos.api import TodoViewSet

router = SimpleRouter()
router.register("", TodoViewSet, basename="todo")

urlpatterns = router.urls
