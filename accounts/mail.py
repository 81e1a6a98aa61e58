"""Rendering and sending the account emails through Django's email API."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.background import after_answer
from accounts.exceptions import InvalidName
from accounts.flows.profile import clean_display_name

if TYPE_CHECKING:
    from accounts.models import User

logger = logging.getLogger(__name__)


def site_link(viewname: str, **kwargs: Any) -> str:
    """An absolute link on SITE_URL: never on the Host header of the request."""
    return settings.SITE_URL + reverse(viewname, kwargs=kwargs or None)


def greeting_name(user: User | None, to: str) -> str:
    """The name an email may greet its recipient with: only the account's own
    name, sent to the account's own proven address. Everything else ("Hello,")
    keeps a name chosen by someone else out of mail to an address they picked."""
    if user is None or not user.name or not user.email_verified or user.email != to:
        return ""
    try:
        return clean_display_name(user.name)
    except InvalidName:
        return ""  # stored before names were checked: never into an email


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


def send_account_email(*, template: str, to: str, context: dict[str, Any], greet: User | None = None) -> bool:
    """Send ``templates/emails/<template>/`` to one address, after the answer.

    ``greet`` is the account the email is about: its name opens the email only
    where greeting_name allows. A failure is logged and swallowed: the caller's
    answer to the person must not change (that would reveal whether an account
    exists), and a lost email is recovered by asking again. With
    ACCOUNTS_EMAIL_IN_BACKGROUND (the default in production) rendering and
    sending happen on a worker thread, so a slow email provider cannot make
    "account exists" answers slower than "no such account". Returns False
    only when the email was sent here and now and the backend refused it.
    """
    context = {**context, "greeting_name": greeting_name(greet, to)}
    sent = after_answer(lambda: _render_and_send(template, to, context), name=f"email {template}")
    return sent is not False
