"""The emails the tests receive (the outbox delivered into django.core.mail.outbox), their links,
tokens and HTML parts, and a provider that is down."""

import re
from collections.abc import Iterator, Sequence
from urllib.parse import urlsplit

from django.core import mail
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


NEW_DEVICE_SUBJECT = "New sign-in to your"


def is_device_notice(message) -> bool:
    """A new-device sign-in notice (accounts.flows.known_devices)."""
    return message.subject.startswith(NEW_DEVICE_SUBJECT)


def without_device_notices(outbox) -> list:
    """The messages but the new-device notices a test's sign-ins from fresh clients cause."""
    return [message for message in outbox if not is_device_notice(message)]


def device_notices_to(outbox, address: str) -> list:
    return [message for message in outbox if message.to == [address] and is_device_notice(message)]


def mails_to(outbox, address: str) -> list:
    """The messages sent to ``address`` alone, oldest first, but new-device notices (device_notices_to)."""
    return [message for message in without_device_notices(outbox) if message.to == [address]]


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


LIVE_TOKEN = "L" * 43  # the shape of a live emailed token


def enqueue_reset_email(to: str):
    """A password-reset email carrying a live-looking link, put in the outbox in its own transaction."""
    from django.conf import settings

    from accounts.mail import send_account_email

    email = send_account_email(
        template="password_reset",
        to=to,
        context={"link": f"{settings.SITE_URL}/accounts/password/reset/{LIVE_TOKEN}/", "valid_minutes": 30},
    )
    assert email is not None
    return email


def deliver_outbox() -> None:
    """Send every email the outbox holds that is due, as the worker would (accounts.outbox)."""
    from accounts.outbox import deliver_due_emails

    try:
        deliver_due_emails()
    except RuntimeError as error:  # a test without database access: it cannot have enqueued any
        if "Database access not allowed" not in str(error):
            raise


class DeliveredMail(Sequence):
    """django.core.mail.outbox as the worker would have filled it by now: every read first sends
    what the outbox holds that is due (the ``mailoutbox`` fixture, tests/conftest.py)."""

    def _messages(self) -> list:
        deliver_outbox()
        return mail.outbox

    def __getitem__(self, index):  # type: ignore[override]
        return self._messages()[index]

    def __len__(self) -> int:
        return len(self._messages())

    def __iter__(self) -> Iterator:
        return iter(list(self._messages()))

    def __eq__(self, other: object) -> bool:
        return self._messages() == other

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return repr(self._messages())

    def clear(self) -> None:
        """Forget what was sent so far (sending first what is due, so that it is not seen later)."""
        self._messages().clear()


def delivered() -> DeliveredMail:
    return DeliveredMail()
