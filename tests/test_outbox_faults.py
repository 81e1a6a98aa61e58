"""The outbox under faults: the real worker (``manage.py db_worker``) SIGKILLed mid-send, and a
provider (a local SMTP server) refusing everything for a while and one address for good.

Afterwards every email is delivered exactly once (counted by its Message-ID at the provider) or,
after the last attempt, recorded as failed; no email keeps its content (with its live link).
The worker is another process on the test database, so this runs in CI's PostgreSQL pass.
"""

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from django.db import connection

from accounts.models import OutboundEmail
from accounts.outbox import message_id
from tests.support.mail import enqueue_reset_email
from tests.support.servers import shared_database_url
from tests.support.smtp import Provider, smtp_provider

pytestmark = [
    pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL; runs in CI's PostgreSQL pass"),
    pytest.mark.django_db(transaction=True),
]

ROOT = Path(__file__).resolve().parent.parent
DOOMED = "doomed@example.com"  # the provider refuses this address on every attempt
MAX_ATTEMPTS = 4
Status = OutboundEmail.Status


@contextmanager
def worker(provider: Provider, log: Path) -> Iterator[subprocess.Popen]:
    """``manage.py db_worker`` sending to ``provider``, with retries and leases in seconds."""
    env = {
        **os.environ,
        "DEBUG": "true",
        "DATABASE_URL": shared_database_url(),
        "CONN_MAX_AGE": "0",
        "ACCOUNTS_EMAIL_QUEUE": "database",
        "EMAIL_BACKEND": "django.core.mail.backends.smtp.EmailBackend",
        "EMAIL_HOST": "127.0.0.1",
        "EMAIL_PORT": str(provider.port),
        "EMAIL_TIMEOUT": "5",
        "ACCOUNTS_EMAIL_RETRY_SECONDS": "1",
        "ACCOUNTS_EMAIL_RETRY_MAX_SECONDS": "2",
        "ACCOUNTS_EMAIL_LEASE_SECONDS": "3",
        "ACCOUNTS_EMAIL_MAX_ATTEMPTS": str(MAX_ATTEMPTS),
        "PYTHONUNBUFFERED": "1",
    }
    command = [sys.executable, "manage.py", "db_worker", "--interval", "0.1", "--no-startup-delay", "--no-reload"]
    with log.open("ab") as output:
        process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        if process.poll() is None:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def wait_until(condition: Callable[[], bool], *, timeout: float, what: str, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    pytest.fail(f"timed out waiting until {what}; worker log:\n{log.read_text()[-3000:]}")


def rows(emails: list[OutboundEmail]) -> list[OutboundEmail]:
    return list(OutboundEmail.objects.filter(pk__in=[email.pk for email in emails]))


def test_a_killed_worker_and_a_failing_provider_lose_no_email_and_send_none_twice(tmp_path):
    log = tmp_path / "worker.log"
    with smtp_provider() as provider:
        provider.refuse_all = True
        provider.refuse_for_good = {DOOMED}
        emails = [enqueue_reset_email(f"person{n}@example.com") for n in range(3)] + [enqueue_reset_email(DOOMED)]

        with worker(provider, log) as first:
            # The provider fails for a while: every email is tried, and tried again later.
            wait_until(lambda: all(row.attempts >= 2 for row in rows(emails)), timeout=30, what="retries", log=log)
            assert all(row.status != Status.SENT for row in rows(emails))
            provider.refuse_all = False
            provider.hold_next = True
            emails.append(enqueue_reset_email("held@example.com"))
            assert provider.holding.wait(timeout=30), log.read_text()[-3000:]
            first.send_signal(signal.SIGKILL)  # mid-send: the SMTP conversation is open
            first.wait(timeout=10)

        [cut_short] = OutboundEmail.objects.filter(status=Status.SENDING)
        attempts_before = cut_short.attempts
        provider.release.set()

        with worker(provider, log):
            wait_until(
                lambda: all(row.status in (Status.SENT, Status.FAILED) for row in rows(emails)),
                timeout=60,
                what="every email sent or failed",
                log=log,
            )

    final = {row.to: row for row in rows(emails)}
    delivered = [row for row in final.values() if row.to != DOOMED]
    assert all(row.status == Status.SENT for row in delivered)
    # Exactly once each, the email cut short by the kill included.
    assert sorted(provider.accepted_ids()) == sorted(message_id(row) for row in delivered)
    assert provider.refused > 0
    cut_short.refresh_from_db()
    assert cut_short.attempts > attempts_before
    doomed = final[DOOMED]
    assert doomed.status == Status.FAILED and doomed.attempts == MAX_ATTEMPTS
    assert "451" in doomed.last_error
    # No content (with its live link) outlives its email's fate.
    assert all(row.content_encrypted == "" and row.content_key_id == "" for row in final.values())
