"""Django app configuration for accounts."""

import logging

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Registers the OpenAPI description of the access-token authentication.
        # Connects the signals that hold work until each answer has been sent,
        # before the first request starts.
        from accounts import background  # noqa: F401
        from accounts.api import schema  # noqa: F401

        if settings.CACHES["default"]["BACKEND"].endswith("LocMemCache"):
            logging.getLogger("accounts").warning(
                "Rate limits and session revocation use the local-memory cache: each process counts "
                "for itself. Set REDIS_URL to share them across processes and hosts."
            )


class AccountsAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the site that signs staff in through the product's pages."""

    default = False
    default_site = "accounts.admin_site.AccountsAdminSite"
