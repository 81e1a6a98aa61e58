"""A real OpenID Connect provider for the tests: django-oauth-toolkit in its own process (tests/support/oidc.py).

A separate Django project (``DJANGO_SETTINGS_MODULE=tests.oidc_provider.settings``), started by
``python -m tests.oidc_provider`` on a port of the caller's with a SQLite database of its own. Besides
DOT's endpoints under ``/o/``, GitHub's OAuth 2 app API (``github``: ``/login/oauth/...`` and
``/api/v3/user[/emails]``) and a sign-in page, it has test-control endpoints under ``/testing/``
(clients, users, fault modes) and a middleware that breaks its answers on request (``faults``).
"""
