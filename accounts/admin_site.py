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

    def has_permission(self, request: HttpRequest) -> bool:
        """Active staff with a second factor, on a browser session that passed it (flows.support.admin_access)."""
        return super().has_permission(request) and self._access(request) == "allowed"

    @staticmethod
    def _access(request: HttpRequest) -> str:
        from accounts.flows.signin import DEVICE_SESSION_KEY
        from accounts.flows.support import admin_access
        from accounts.models import User

        if not isinstance(request.user, User):
            return "not_staff"
        return admin_access(user=request.user, session_id=request.session.get(DEVICE_SESSION_KEY))

    def login(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        """Staff sign in on the public sign-in page: one rate-limited, audited
        flow that also opens a device session support can end. Signed-in staff
        without a second factor are sent to set one up; with one, but on a
        session that did not pass it, to enter a code."""
        from django.contrib import messages

        from accounts.pages import safe_next_url

        next_url = safe_next_url(request) or reverse("admin:index", current_app=self.name)
        access = self._access(request) if request.user.is_authenticated else "not_staff"
        if access == "enrol_mfa":
            messages.info(request, "Support staff need two-factor authentication: set up an authenticator app first.")
            return redirect("accounts:security")
        if access == "prove_second_factor":
            messages.info(request, "The admin needs a code from your authenticator app on this device.")
            query = urlencode({"next": next_url, "factor": "code"})
            return redirect(f"{reverse('accounts:reauthenticate')}?{query}")
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
