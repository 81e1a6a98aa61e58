"""``python -m tests.oidc_provider``: create the provider's tables, then serve it on 127.0.0.1:$OIDC_PROVIDER_PORT."""

import os


def main() -> None:
    # The caller's environment may name the main project's settings: this process runs only the provider.
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.oidc_provider.settings"
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", run_syncdb=True, interactive=False, verbosity=0)
    # Threaded (a browser and the app's back channel may call at once), without the autoreloader.
    call_command("runserver", f"127.0.0.1:{os.environ['OIDC_PROVIDER_PORT']}", use_reloader=False)


if __name__ == "__main__":
    main()
