"""End-to-end tests that drive Debian's chromium through Playwright against pytest-django's live server."""
