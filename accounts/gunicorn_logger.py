"""gunicorn's access logger with one-time tokens removed from every logged value."""

from gunicorn.glogging import Logger

from accounts.log_redaction import redact


class RedactingGunicornLogger(Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        for key, value in atoms.items():
            if isinstance(value, str):
                atoms[key] = redact(value)
        return atoms
