"""gunicorn's access logger with one-time tokens removed from every logged value."""

from datetime import timedelta
from typing import Any

# gunicorn ships no type information (typeshed's types-gunicorn would provide it).
from gunicorn.glogging import Logger  # type: ignore[import-untyped]

from accounts.log_redaction import redact


class RedactingGunicornLogger(Logger):
    # ``resp`` and ``req`` are gunicorn's own (untyped) response and request objects.
    def atoms(self, resp: Any, req: Any, environ: dict[str, Any], request_time: timedelta) -> dict[str, Any]:
        atoms: dict[str, Any] = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = redact(value)
        return atoms
