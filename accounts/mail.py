"""Rendering and sending the account emails through Django's email API."""

import atexit
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

logger = logging.getLogger(__name__)

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()
_pending: set[Future] = set()


def site_link(viewname: str, **kwargs: Any) -> str:
    """An absolute link on SITE_URL: never on the Host header of the request."""
    return settings.SITE_URL + reverse(viewname, kwargs=kwargs or None)


def _render_and_send(template: str, to: str, context: dict[str, Any]) -> bool:
    try:
        full_context = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
        subject = " ".join(render_to_string(f"emails/{template}/subject.txt", full_context).split())
        text_body = render_to_string(f"emails/{template}/body.txt", full_context)
        html_body = render_to_string(f"emails/{template}/body.html", full_context)
        message = EmailMultiAlternatives(subject=subject, body=text_body, to=[to])
        message.attach_alternative(html_body, "text/html")
        message.send()
    except Exception as exc:  # any backend, any failure: log it, never surface it
        logger.error("Sending the %r email failed: %s: %s", template, type(exc).__name__, exc)
        return False
    return True


def _background() -> ThreadPoolExecutor:
    global _executor
    with _executor_lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="account-email")
        return _executor


def _submit(job: Callable[[], bool]) -> None:
    future = _background().submit(job)
    _pending.add(future)
    future.add_done_callback(_pending.discard)


def send_account_email(*, template: str, to: str, context: dict[str, Any]) -> bool:
    """Send ``templates/emails/<template>/`` to one address.

    A failure is logged and swallowed: the caller's answer to the person must not
    change (that would reveal whether an account exists), and a lost email is
    recovered by asking again. With ACCOUNTS_EMAIL_IN_BACKGROUND (the default in
    production) rendering and sending happen on a worker thread, so a slow email
    provider cannot make "account exists" answers slower than "no such account".
    Returns whether the email was sent (or, in the background, queued).
    """
    if settings.ACCOUNTS_EMAIL_IN_BACKGROUND:
        _submit(lambda: _render_and_send(template, to, context))
        return True
    return _render_and_send(template, to, context)


def wait_for_pending_emails(timeout: float = 10.0) -> None:
    """Block until queued emails are sent (tests, and process shutdown)."""
    wait(list(_pending), timeout=timeout)


atexit.register(wait_for_pending_emails)
