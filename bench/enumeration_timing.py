"""Timing benchmark: do sign-in, sign-up, password reset and resend verification answer as fast for a known address as for an unknown one?

Run from the project root:

    DEBUG=true uv run python bench/enumeration_timing.py

It sets Django up on a throwaway SQLite database, turns rate limits off, sends
email in the background with the locmem backend, and times interleaved API
requests (known, unknown, known, unknown, ...) with Django's test client. It
prints the median time of each kind and exits with status 1 if any flow's
medians differ by more than the target (5 ms by default).
"""

import argparse
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
KNOWN_EMAIL = "known@example.com"
UNVERIFIED_EMAIL = "pending@example.com"
UNKNOWN_EMAIL = "nobody@example.com"
PASSWORD = "correct horse battery staple"
WRONG_PASSWORD = "not the right passphrase"
NEW_PASSWORD = "an entirely new passphrase"


@dataclass
class Flow:
    name: str
    expected_status: int
    known: Callable[[int], object]
    unknown: Callable[[int], object]


@dataclass
class Result:
    name: str
    known_ms: float
    unknown_ms: float

    @property
    def difference_ms(self) -> float:
        return abs(self.known_ms - self.unknown_ms)


def set_up_django(database_dir: str) -> None:
    sys.path.insert(0, str(PROJECT_ROOT))
    os.environ["DATABASE_URL"] = f"sqlite:///{Path(database_dir) / 'bench.sqlite3'}"
    os.environ.pop("REDIS_URL", None)  # a throwaway local-memory cache, never a shared one
    os.environ.setdefault("DEBUG", "true")
    os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

    import django

    django.setup()

    from django.conf import settings
    from django.core.management import call_command
    from django.test.utils import setup_test_environment

    setup_test_environment()  # lets the test client's "testserver" host in; locmem email
    settings.RATELIMIT_ENABLE = False
    settings.ACCOUNTS_EMAIL_IN_BACKGROUND = True
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    logging.disable(logging.WARNING)  # one "Unauthorized" log line per failed sign-in is noise here
    call_command("migrate", verbosity=0, interactive=False)


def create_users() -> None:
    from django.utils import timezone

    from accounts.models import User

    User.objects.create_user(email=KNOWN_EMAIL, password=PASSWORD, name="Known", email_verified_at=timezone.now())
    User.objects.create_user(email=UNVERIFIED_EMAIL, password=PASSWORD, name="Pending")


def flows() -> list[Flow]:
    from django.test import Client

    client = Client()

    def post(path: str, body: dict):
        return client.post(path, body, content_type="application/json")

    def login(email: str):
        return post("/api/auth/login/", {"email": email, "password": WRONG_PASSWORD})

    def register(email: str):
        return post("/api/auth/register/", {"email": email, "password": NEW_PASSWORD, "name": "Sam"})

    def reset(email: str):
        return post("/api/auth/password/reset/", {"email": email})

    def resend(email: str):
        return post("/api/auth/email/verify/resend/", {"email": email})

    return [
        Flow("sign-in (wrong password)", 401, lambda i: login(KNOWN_EMAIL), lambda i: login(UNKNOWN_EMAIL)),
        Flow("sign-up", 202, lambda i: register(KNOWN_EMAIL), lambda i: register(f"new-{i}@example.com")),
        Flow("password reset", 202, lambda i: reset(KNOWN_EMAIL), lambda i: reset(UNKNOWN_EMAIL)),
        Flow("resend verification", 202, lambda i: resend(KNOWN_EMAIL), lambda i: resend(UNKNOWN_EMAIL)),
        Flow(
            "resend verification (unverified account)",
            202,
            lambda i: resend(UNVERIFIED_EMAIL),
            lambda i: resend(UNKNOWN_EMAIL),
        ),
    ]


def timed(send: Callable[[int], object], index: int, expected_status: int) -> float:
    started = time.perf_counter()
    response = send(index)
    elapsed = time.perf_counter() - started
    if response.status_code != expected_status:
        raise SystemExit(f"unexpected answer {response.status_code}: {response.content[:200]!r}")
    return elapsed * 1000


def measure(flow: Flow, requests: int, warm_up: int) -> Result:
    for index in range(warm_up):  # untimed: first-request costs (imports, connections, caches)
        timed(flow.known, -1 - index, flow.expected_status)
        timed(flow.unknown, -1 - index, flow.expected_status)
    known: list[float] = []
    unknown: list[float] = []
    for index in range(requests):
        if index % 2 == 0:
            known.append(timed(flow.known, index, flow.expected_status))
        else:
            unknown.append(timed(flow.unknown, index, flow.expected_status))
    return Result(flow.name, statistics.median(known), statistics.median(unknown))


def print_table(results: list[Result], target_ms: float) -> bool:
    width = max(len("flow"), *(len(result.name) for result in results))
    print(f"{'flow':<{width}}  {'known ms':>9}  {'unknown ms':>10}  {'|diff| ms':>9}  result (target {target_ms:g} ms)")
    all_pass = True
    for result in results:
        passed = result.difference_ms <= target_ms
        all_pass &= passed
        print(
            f"{result.name:<{width}}  {result.known_ms:>9.2f}  {result.unknown_ms:>10.2f}  "
            f"{result.difference_ms:>9.2f}  {'PASS' if passed else 'FAIL'}"
        )
    return all_pass


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="timed requests per flow, half known, half unknown")
    parser.add_argument("--warm-up", type=int, default=3, help="untimed request pairs per flow first")
    parser.add_argument("--target-ms", type=float, default=5.0, help="largest allowed difference of the medians")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="enumeration-bench-") as database_dir:
        set_up_django(database_dir)
        create_users()
        results = [measure(flow, args.requests, args.warm_up) for flow in flows()]

        from django.core import mail
        from django.db import connections

        from accounts.mail import wait_for_pending_emails

        wait_for_pending_emails()
        connections.close_all()

    print(f"{args.requests} interleaved API requests per flow (median of each half); {len(mail.outbox)} emails sent in the background.")
    return 0 if print_table(results, args.target_ms) else 1


if __name__ == "__main__":
    sys.exit(main())
