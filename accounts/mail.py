"""Rendering the account emails and putting them in the outbox (accounts.outbox sends them)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.template.loader import render_to_string
from django.urls import reverse

from accounts.exceptions import InvalidName
from accounts.flows.deliverability import suppression_reason
from accounts.flows.profile import clean_display_name
from accounts.outbox import EmailContent, enqueue_email, record_suppressed_email

if TYPE_CHECKING:
    from accounts.models import OutboundEmail, User

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


def render_email(template: str, context: dict[str, Any]) -> EmailContent:
    """``templates/emails/<template>/``: subject.txt (one line), body.txt and body.html."""
    full_context = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    return EmailContent(
        subject=" ".join(render_to_string(f"emails/{template}/subject.txt", full_context).split()),
        text=render_to_string(f"emails/{template}/body.txt", full_context),
        html=render_to_string(f"emails/{template}/body.html", full_context),
    )


def send_account_email(
    *, template: str, to: str, context: dict[str, Any], greet: User | None = None, after: OutboundEmail | None = None
) -> OutboundEmail | None:
    """Render ``templates/emails/<template>/`` for one address and put it in the outbox.

    Call it inside the transaction of the change the email is about: the email is enqueued in
    it (accounts.outbox), so it is sent if and only if the change commits, and the worker sends
    it, so the provider's speed never shows in an answer. ``greet`` is the account the email is
    about: its name opens the email only where greeting_name allows. ``after``: send only once
    that email has been sent, and never if it fails for good. To an address mail does not reach
    (accounts.flows.deliverability) only the emails a person asks for are sent; the rest are
    recorded as suppressed. A template that fails to render is
    logged and swallowed (None): the caller's answer must not change, as that could say whether
    an account exists.
    """
    context = {**context, "greeting_name": greeting_name(greet, to)}
    try:
        content = render_email(template, context)
    except Exception as exc:  # a broken template must not break the change it is about
        logger.error("Rendering the %r email failed: %s: %s", template, type(exc).__name__, exc)
        return None
    # A deleted account's farewell is sent too, but belongs to no account any more.
    user = greet if greet is not None and greet.pk else None
    suppressed = suppression_reason(address=to, template=template)
    if suppressed is not None:
        # Rendered all the same: an answer takes the same work whatever the address's state.
        return record_suppressed_email(template=template, to=to, user=user, reason=suppressed)
    return enqueue_email(template=template, to=to, content=content, user=user, after=after)
