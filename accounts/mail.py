"""Rendering and sending the account emails through Django's email API."""

import logging
from typing import Any

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.urls import reverse

logger = logging.getLogger(__name__)


def site_link(viewname: str, **kwargs: Any) -> str:
    """An absolute link on SITE_URL: never on the Host header of the request."""
    return settings.SITE_URL + reverse(viewname, kwargs=kwargs or None)


def send_account_email(*, template: str, to: str, context: dict[str, Any]) -> bool:
    """Send ``templates/emails/<template>/`` to one address; True if handed over.

    A failure is logged and swallowed: the caller's answer to the person must not
    change (that would reveal whether an account exists), and a lost email is
    recovered by asking again.
    """
    full_context = {"site_name": settings.SITE_NAME, "site_url": settings.SITE_URL, **context}
    subject = " ".join(render_to_string(f"emails/{template}/subject.txt", full_context).split())
    text_body = render_to_string(f"emails/{template}/body.txt", full_context)
    html_body = render_to_string(f"emails/{template}/body.html", full_context)
    message = EmailMultiAlternatives(subject=subject, body=text_body, to=[to])
    message.attach_alternative(html_body, "text/html")
    try:
        message.send()
    except Exception as exc:  # any backend, any failure: log it, never surface it
        logger.error("Sending the %r email failed: %s: %s", template, type(exc).__name__, exc)
        return False
    return True
