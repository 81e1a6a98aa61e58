"""The admin site, signing staff in and out through the product's own pages."""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode


class AccountsAdminSite(admin.AdminSite):
    site_header = "Todo support"
    site_title = "Todo support"

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Staff sign in on the public sign-in page: one rate-limited, audited
        flow that also opens a device session support can end."""
        from accounts.pages import safe_next_url

        next_url = safe_next_url(request) or reverse("admin:index", current_app=self.name)
        if request.method == "GET" and self.has_permission(request):
            return redirect(next_url)
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")

    # django-stubs narrows these three to TemplateResponse, but Django's own return
    # whatever their view answers (a redirect after a successful change, too).
    def logout(  # type: ignore[override]
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        from accounts.views import logout_view

        return logout_view(request)

    def password_change(  # type: ignore[override]
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Staff change their password like everyone else: current password,
        other sessions ended, notice email, audit event."""
        return redirect("accounts:password_change")

    def password_change_done(  # type: ignore[override]
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        return redirect("accounts:home")
