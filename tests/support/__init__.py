"""What the test modules share, one definition each; fixtures and hooks stay in tests/conftest.py.

- ``accounts``: the test password, signing a page client in without the form.
- ``api``: CSRF-enforcing API clients, JSON requests, bearer and CSRF headers, signing in.
- ``pages``: a browser-like page client, submitting forms with the CSRF token, CSRF tokens of pages.
- ``html``: one parser for the pages' links, scripts, labels, forms and what a form would submit.
- ``mail``: the links and tokens of the emails the tests receive.
- ``clocks``: a stopped clock that moves only forward, ageing Redis entries alike.
- ``races``: calls raced on threads released together.
- ``hashers``: the cheap Argon2id cost of the suite, the real one, and a hasher that counts its work.
- ``servers``: two app processes on the test database and Redis (bench/harness.py starts them).
- ``processes``: this project's Python started with a controlled environment (settings, manage.py).
- ``browser``: chromium's options, the page instrumentation and the checks of tests/browser.
"""
