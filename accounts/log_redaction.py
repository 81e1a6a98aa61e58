"""Logging filter that keeps one-time tokens out of every log line."""

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

