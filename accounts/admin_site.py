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
        if request.method == "GET" and self.has_permission(request):
            return redirect(request.GET.get("next") or reverse("admin:index", current_app=self.name))
        next_url = request.GET.get("next") or reverse("admin:index", current_app=self.name)
        return redirect(f"{reverse('accounts:login')}?{urlencode({'next': next_url})}")

    def logout(self, request, extra_context=None):
        from accounts.views import logout_view

        return logout_view(request)
