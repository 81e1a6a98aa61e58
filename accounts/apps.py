"""Django app configuration for accounts."""

import logging

from django.apps import AppConfig
from django.conf import settings
from django.contrib.admin import apps as admin_apps
from django.core.cache import caches
from django.core.cache.backends.locmem import LocMemCache


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self) -> None:
        # First, before anything else reads the settings: outside DEBUG, unsafe production
        # settings stop every process (gunicorn, manage.py, the WSGI app) from starting.
        # Importing the module also registers its checks for `manage.py check --deploy`.
        from accounts import checks

        if not settings.DEBUG:
            checks.refuse_unsafe_production_settings()

        # Registers the OpenAPI description of the access-token authentication.
        # Connects the signals that hold work until each answer has been sent,
        # before the first request starts.
        # Connects the ESPs' bounce and complaint reports (anymail's tracking signal) to their flow.
        from accounts import (
            background,  # noqa: F401
            webhooks,  # noqa: F401
        )
        from accounts.api import schema  # noqa: F401

        if isinstance(caches["default"], LocMemCache):
            logging.getLogger("accounts").warning(
                "Rate limits and session revocation use the local-memory cache: each process counts "
                "for itself. Set REDIS_URL to share them across processes and hosts."
            )


class AccountsAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the site that signs staff in through the product's pages."""

    default = False
    default_site = "accounts.admin_site.AccountsAdminSite"
