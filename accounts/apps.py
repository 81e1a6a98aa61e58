"""Django app configuration for accounts."""

from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "Accounts"

    def ready(self):
        # Registers the OpenAPI description of the access-token authentication.
        from accounts.api import schema  # noqa: F401


class AccountsAdminConfig(admin_apps.AdminConfig):
    """Django's admin with the site that signs staff in through the product's pages."""

    default = False
    default_site = "accounts.admin_site.AccountsAdminSite"
