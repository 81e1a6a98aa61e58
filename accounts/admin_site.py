"""The admin site, signing staff in and out through the product's own pages."""

from django.contrib import admin
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode


class AccountsAdminSite(admin.AdminSite):
    site_header = "Todo support"
    site_title = "Todo support"

    def login(self, request, extra_context=None):
        """Staff sign in on the public sign-in page: one rate-limited, audited
        flow that also opens a device session support can end."""
        from accounts.views import safe_next_url

        next_url = safe_next_url(request) or reverse("admin:index", current_app=self.name)
        if request.method == "GET" and self.has_permission(request):
            return redirect(next_url)
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")

    def logout(self, request, extra_context=None):
        from accounts.views import logout_view

        return logout_view(request)

    def password_change(self, request, extra_context=None):
        """Staff change their password like everyone else: current password,
        other sessions ended, notice email, audit event."""
        return redirect("accounts:password_change")

    def password_change_done(self, request, extra_context=None):
        return redirect("accounts:home")
