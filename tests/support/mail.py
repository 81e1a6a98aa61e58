"""The links, tokens and HTML parts of the emails the tests receive (django.core.mail.outbox), and a
provider that is down."""

import re
from urllib.parse import urlsplit

from django.core.mail.backends.base import BaseEmailBackend

_LINK = re.compile(r"https?://[^\s\"'<>]+")


def links_in(message) -> list[str]:
    """Every absolute link in an email's text body."""
    return _LINK.findall(message.body)


def link_in(message, fragment: str) -> str:
    """The first link of ``message`` that contains ``fragment``."""
    return next(link for link in links_in(message) if fragment in link)


def link_path_in(message, fragment: str) -> str:
    """The path of the first link of ``message`` that contains ``fragment`` (to open with a test client)."""
    return urlsplit(link_in(message, fragment)).path


def token_from_link(link: str) -> str:
    """The token an emailed link ends with."""
    return link.rstrip("/").rsplit("/", 1)[-1]


def token_in(message, fragment: str) -> str:
    """The token of the first link of ``message`` that contains ``fragment``."""
    return token_from_link(link_in(message, fragment))


def mails_to(outbox, address: str) -> list:
    """The messages sent to ``address`` alone, oldest first."""
    return [message for message in outbox if message.to == [address]]


def html_of(message) -> str:
    """The HTML alternative of a message (every email has exactly one)."""
    [(content, mimetype)] = message.alternatives
    assert mimetype == "text/html"
    return content


class UnreachableEmailBackend(BaseEmailBackend):
    """An email backend whose provider is unreachable; it remembers what it was asked to send."""

    attempted: list = []

    def send_messages(self, email_messages):
        UnreachableEmailBackend.attempted.extend(email_messages)
        raise ConnectionRefusedError("connection to the mail provider refused")


def install_unreachable_email(settings) -> type[UnreachableEmailBackend]:
    """Make every email fail to send (through pytest-django's ``settings``), with nothing attempted yet."""
    settings.EMAIL_BACKEND = "tests.support.mail.UnreachableEmailBackend"
    UnreachableEmailBackend.attempted = []
    return UnreachableEmailBackend
