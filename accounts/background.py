"""Work done after the answer: the account lookups, tokens and emails whose cost must not show in response times.

Flows whose answer must not reveal whether an address has an account (sign-up,
password reset, resend verification, email change) do the same work for
every address before they answer and hand everything that depends on the
account to ``after_answer``. With ACCOUNTS_EMAIL_IN_BACKGROUND (the default in
production) that runs on a worker thread of this process, so neither the
database writes it makes nor the email provider's speed can be timed from
outside; otherwise (local development, tests) it runs at once, in the request.
"""

import atexit
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, TypeVar

from django.conf import settings
from django.core.signals import request_finished, request_started
from django.db import connections
from django.dispatch import receiver

logger = logging.getLogger(__name__)
T = TypeVar("T")

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_pending: set[Future[None]] = set()
_pending_lock = threading.Lock()
_worker = threading.local()
# The jobs a request handed over, held until its answer has been sent.
_request = threading.local()


def _executor_instance() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="account-work")
        return _executor


def _run_on_worker(job: Callable[[], object], name: str) -> None:
    _worker.active = True
    try:
        job()
    except Exception:  # a background failure must be seen in the logs, never crash the worker
        logger.exception("Background job %r failed.", name)
    finally:
        # Jobs are rare and off the answer's clock: a connection of its own
        # each time costs nothing that shows, and no idle connection is held
        # by a thread that may wait hours for its next job.
        connections.close_all()
        _worker.active = False


def in_background() -> bool:
    """True on a worker thread: work started here needs no second hand-off."""
    return getattr(_worker, "active", False)


def after_answer(job: Callable[[], T], *, name: str) -> T | None:
    """Run ``job`` once the answer has been sent (or now, when work is not in the background).

    Inside a request the job waits until the response is closed (Django's
    request_finished), so it does not even share the processor with the
    writing of the answer; outside one (a management command) it starts at once.
    Returns the job's result when it ran here and now, else None.
    """
    if not settings.ACCOUNTS_EMAIL_IN_BACKGROUND or in_background():
        return job()
    held = getattr(_request, "held", None)
    if held is not None:
        held.append((job, name))
        return None
    _submit(job, name)
    return None


def _submit(job: Callable[[], object], name: str) -> None:
    future = _executor_instance().submit(_run_on_worker, job, name)
    with _pending_lock:
        _pending.add(future)
    future.add_done_callback(_forget)


@receiver(request_started, dispatch_uid="accounts.background.hold")
def _hold_jobs_during_the_request(**kwargs: Any) -> None:
    _request.held = []


@receiver(request_finished, dispatch_uid="accounts.background.release")
def _release_jobs_after_the_answer(**kwargs: Any) -> None:
    held, _request.held = getattr(_request, "held", None) or [], None
    for job, name in held:
        _submit(job, name)


def _forget(future: Future[None]) -> None:
    with _pending_lock:
        _pending.discard(future)


def wait_for_background_work(timeout: float = 10.0) -> None:
    """Block until queued work (and work it queued) is done: tests, and process shutdown."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _pending_lock:
            pending = list(_pending)
        if not pending:
            return
        for future in pending:
            # The worker logged any failure; only the waiting matters here.
            with contextlib.suppress(Exception):
                future.result(timeout=max(0.0, deadline - time.monotonic()))


atexit.register(wait_for_background_work)
