"""Logging filters: one-time tokens out of every line, and one line per request during a database outage."""

import logging
import re

# A path segment after an emailed-link prefix, and any free-standing run that
# has the exact shape of our tokens (43 URL-safe base64 characters).
_LINK_TOKEN = re.compile(r"(/(?:verify-email|password/reset)/)(?!resend/|set-password/|confirm/|sent/)[^/\s?\"']+")
_BARE_TOKEN = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")
REDACTED = "[redacted]"


def redact(text: str) -> str:
    text = _LINK_TOKEN.sub(lambda m: m.group(1) + REDACTED, text)
    return _BARE_TOKEN.sub(REDACTED, text)


class RedactTokensFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record is logging's problem, not ours
            return True
        cleaned = redact(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


class CollapseDatabaseOutageFilter(logging.Filter):
    """While the database is unreachable every request fails the same way: log
    the error's one-line summary instead of a traceback per request."""

    def filter(self, record: logging.LogRecord) -> bool:
        from django.db import InterfaceError, OperationalError

        if record.exc_info and isinstance(record.exc_info[1], (OperationalError, InterfaceError)):
            error = record.exc_info[1]
            first_line = str(error).strip().splitlines()[0] if str(error).strip() else ""
            record.msg = f"{record.getMessage()} ({type(error).__name__}: {first_line})"
            record.args = None
            record.exc_info = None
            record.exc_text = None
        return True
