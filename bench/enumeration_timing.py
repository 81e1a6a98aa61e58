"""Timing benchmark: do sign-in, sign-up, reset, resend verification and sign-in by emailed code answer as fast
for known as unknown addresses?

Run from the project root:

    uv run python bench/enumeration_timing.py                 # gunicorn on PostgreSQL + Redis (the default)
    DEBUG=true uv run python bench/enumeration_timing.py --in-process   # Django's test client on SQLite

The default serves the app with gunicorn (production settings, DEBUG off) on
a throwaway database of the main PostgreSQL and a unique key prefix in Redis,
and sends known and unknown requests interleaved in a shuffled order over
real HTTP connections. It prints the median time of each kind and exits with
status 1 if any flow's medians differ by more than the target (0.5 ms by
default).
"""

import argparse
import logging
import os
import random
import secrets
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
POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", "postgres://postgres@127.0.0.1:5432")
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
SEED = f"""
from django.utils import timezone
from accounts.models import User
User.objects.create_user(email={KNOWN_EMAIL!r}, password={PASSWORD!r}, name="Known", email_verified_at=timezone.now())
User.objects.create_user(email={UNVERIFIED_EMAIL!r}, password={PASSWORD!r}, name="Pending")
"""  # the in-process run's accounts; the gunicorn run seeds the same two through bench/harness.py


@dataclass
class Flow:
    name: str
    expected_status: int
    known: Callable[[int], int]
    unknown: Callable[[int], int]


@dataclass
class Result:
    name: str
    known_ms: float
    unknown_ms: float

    @property
    def difference_ms(self) -> float:
        return abs(self.known_ms - self.unknown_ms)


def flows(post: Callable[[str, dict], int]) -> list[Flow]:
    """The flows, given ``post(path, json_body) -> status``."""

    def login(email: str) -> int:
        return post("/api/auth/login/", {"email": email, "password": WRONG_PASSWORD})

    def register(email: str) -> int:
        return post("/api/auth/register/", {"email": email, "password": NEW_PASSWORD, "name": "Sam"})

    def reset(email: str) -> int:
        return post("/api/auth/password/reset/", {"email": email})

    def resend(email: str) -> int:
        return post("/api/auth/email/verify/resend/", {"email": email})

    def email_code(email: str) -> int:
        return post("/api/auth/login/email/", {"email": email})

    def wrong_code(email: str) -> int:
        # Both addresses hold a code from the flow before (an account's, and one nobody was sent).
        return post("/api/auth/login/email/verify/", {"email": email, "code": "ABCD-EFGH"})

    run = secrets.token_hex(3)  # fresh addresses on every run, also on a reused database
    return [
        Flow("sign-in (wrong password)", 401, lambda i: login(KNOWN_EMAIL), lambda i: login(UNKNOWN_EMAIL)),
        Flow("sign-up", 202, lambda i: register(KNOWN_EMAIL), lambda i: register(f"new-{run}-{i}@example.com")),
        Flow("password reset", 202, lambda i: reset(KNOWN_EMAIL), lambda i: reset(UNKNOWN_EMAIL)),
        Flow("resend verification", 202, lambda i: resend(KNOWN_EMAIL), lambda i: resend(UNKNOWN_EMAIL)),
        Flow(
            "resend verification (unverified account)",
            202,
            lambda i: resend(UNVERIFIED_EMAIL),
            lambda i: resend(UNKNOWN_EMAIL),
        ),
        Flow("email sign-in code", 202, lambda i: email_code(KNOWN_EMAIL), lambda i: email_code(UNKNOWN_EMAIL)),
        Flow("email sign-in (wrong code)", 400, lambda i: wrong_code(KNOWN_EMAIL), lambda i: wrong_code(UNKNOWN_EMAIL)),
    ]


def timed(send: Callable[[int], int], index: int, expected_status: int) -> float:
    started = time.perf_counter()
    status = send(index)
    elapsed = time.perf_counter() - started
    if status != expected_status:
        raise SystemExit(f"unexpected answer {status} (expected {expected_status})")
    return elapsed * 1000


def measure(flow: Flow, requests: int, warm_up: int, pause: float) -> Result:
    """``requests`` of each kind, interleaved in a shuffled order, with ``pause`` seconds
    after each answer (so work the server does after an answer never lands on the next
    request's clock).

    Shuffled rather than strictly alternating: with several gunicorn workers taking
    connections in turn, strict alternation could send every known request to one
    worker and every unknown one to another, and measure the workers instead.
    """
    for index in range(warm_up):  # untimed: first-request costs (imports, connections, caches)
        timed(flow.known, -1 - 2 * index, flow.expected_status)
        timed(flow.unknown, -2 - 2 * index, flow.expected_status)
    order = [True] * requests + [False] * requests
    random.Random(f"{flow.name}:{requests}").shuffle(order)
    known: list[float] = []
    unknown: list[float] = []
    for index, is_known in enumerate(order):
        if is_known:
            known.append(timed(flow.known, index, flow.expected_status))
        else:
            unknown.append(timed(flow.unknown, index, flow.expected_status))
        time.sleep(pause)
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


# --- Against gunicorn on PostgreSQL + Redis ---------------------------------------


def run_against_gunicorn(args) -> tuple[list[Result], str]:
    sys.path.insert(0, str(PROJECT_ROOT / "bench"))
    from harness import Gunicorn, drop_redis_keys, http, manage, production_env, seed_accounts, throwaway_database

    run_id = f"enum_{int(time.time())}_{os.getpid()}"
    with (
        tempfile.TemporaryDirectory(prefix="enumeration-bench-") as scratch,
        throwaway_database(run_id, POSTGRES_URL) as database_url,
    ):
        try:
            env = production_env(
                database_url=database_url,
                redis_url=REDIS_URL,
                key_prefix=run_id,
                email_backend="django.core.mail.backends.filebased.EmailBackend",
                EMAIL_FILE_PATH=str(Path(scratch) / "mail"),
            )
            manage(env, "migrate", "--noinput")
            seed_accounts(env, verified=[KNOWN_EMAIL], unverified=[UNVERIFIED_EMAIL], password=PASSWORD)
            with Gunicorn(
                env, Path(scratch) / "gunicorn.log", workers=args.workers, extra_args=("--max-requests", "0")
            ) as app:

                def post(path: str, body: dict) -> int:
                    return http(app.port, "POST", path, body).status

                results = [measure(flow, args.requests, args.warm_up, args.pause) for flow in flows(post)]
            sent = len(list((Path(scratch) / "mail").glob("*")))
            return results, f"gunicorn ({args.workers} workers) on PostgreSQL + Redis; {sent} email files written"
        finally:
            drop_redis_keys(REDIS_URL, run_id)


# --- In process, with Django's test client on SQLite -------------------------------


def run_in_process(args) -> tuple[list[Result], str]:
    with tempfile.TemporaryDirectory(prefix="enumeration-bench-") as database_dir:
        sys.path.insert(0, str(PROJECT_ROOT))
        os.environ["DATABASE_URL"] = f"sqlite:///{Path(database_dir) / 'bench.sqlite3'}"
        os.environ.pop("REDIS_URL", None)  # a throwaway local-memory cache, never a shared one
        os.environ.setdefault("DEBUG", "true")
        os.environ["DJANGO_SETTINGS_MODULE"] = "config.settings"

        import django

        django.setup()

        from django.conf import settings
        from django.core import mail
        from django.core.management import call_command
        from django.db import connections
        from django.test import Client
        from django.test.utils import setup_test_environment

        from accounts.background import wait_for_background_work

        setup_test_environment()  # lets the test client's "testserver" host in; locmem email
        settings.RATELIMIT_ENABLE = False
        settings.ACCOUNTS_EMAIL_IN_BACKGROUND = True
        settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
        logging.disable(logging.WARNING)  # one "Unauthorized" log line per failed sign-in is noise here
        call_command("migrate", verbosity=0, interactive=False)
        exec(SEED, {})  # noqa: S102  (our own seed code)

        client = Client()

        def post(path: str, body: dict) -> int:
            return client.post(path, body, content_type="application/json").status_code

        results = [measure(flow, args.requests, args.warm_up, args.pause) for flow in flows(post)]
        wait_for_background_work()
        connections.close_all()
        return results, f"Django's test client on SQLite; {len(mail.outbox)} emails sent in the background"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--in-process", action="store_true", help="Django's test client on SQLite instead of gunicorn")
    parser.add_argument("--requests", type=int, default=200, help="timed requests of each kind per flow, interleaved")
    parser.add_argument("--warm-up", type=int, default=5, help="untimed request pairs per flow first")
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between requests")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers")
    parser.add_argument("--target-ms", type=float, default=0.5, help="largest allowed difference of the medians")
    args = parser.parse_args()

    results, where = (run_in_process if args.in_process else run_against_gunicorn)(args)
    print(f"{args.requests} known and {args.requests} unknown requests per flow, interleaved, {where}.")
    return 0 if print_table(results, args.target_ms) else 1


if __name__ == "__main__":
    sys.exit(main())
