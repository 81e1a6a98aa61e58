"""Root URL configuration."""

from django.contrib import admin
from django.templatetags.static import static
from django.urls import include, path
from django.utils.functional import lazy
from django.views.generic import RedirectView, TemplateView
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.api.views.signin import jwks
from accounts.health import healthz, readyz
from accounts.webhooks import tracking_urlpatterns

urlpatterns = [
    path("", TemplateView.as_view(template_name="home.html"), name="home"),
    # The todo single-page app: one HTML shell, everything else in static/app/.
    path("app/", TemplateView.as_view(template_name="app.html"), name="app"),
    path("accounts/", include("accounts.urls")),
    path("api/auth/", include("accounts.api.urls")),
    path("api/todos/", include("todos.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="schema"), name="api-docs"),
    path(".well-known/jwks.json", jwks, name="jwks"),
    path("healthz/", healthz, name="healthz"),
    path("readyz/", readyz, name="readyz"),
    # Browsers ask for it on pages that name no icon (the admin, for one).
    path("favicon.ico", RedirectView.as_view(url=lazy(static, str)("favicon.svg"), permanent=True)),
    path("admin/", admin.site.urls),
    # The ESPs' tracking webhooks (bounces and complaints); they refuse everything without ANYMAIL_WEBHOOK_SECRET.
    path("anymail/", include((tracking_urlpatterns(), "anymail"))),
]

handler400 = "accounts.api.errors.bad_request"
handler404 = "accounts.api.errors.not_found"
handler500 = "accounts.api.errors.server_error"
