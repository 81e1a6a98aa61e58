"""A Django email backend whose provider is always down (bench/faults.py, scenario c)."""

from django.core.mail.backends.base import BaseEmailBackend


class FailingEmailBackend(BaseEmailBackend):
    def send_messages(self, email_messages):
        raise ConnectionRefusedError("bench: the email provider is unreachable")
