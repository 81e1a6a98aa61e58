"""What a request says about the client: its IP address and user agent.

Not django-ipware: by default it trusts a list of headers (X-Real-IP,
CF-Connecting-IP, ...) that any client can send when no such proxy is in front;
the one rule wanted here (REMOTE_ADDR, or the entry of X-Forwarded-For that the
configured number of trusted proxies appended) is a few lines that a reviewer
reads in one place.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.conf import settings
from django.http import HttpRequest

from accounts.models import USER_AGENT_MAX_LENGTH


def _parse_ip(raw: str) -> str | None:
    try:
        return str(ipaddress.ip_address(raw.strip()))
    except ValueError:
        return None


def client_ip(request: HttpRequest) -> str | None:
    """The client's address.

    REMOTE_ADDR, unless ACCOUNTS_TRUSTED_PROXY_COUNT proxies stand in front of
    the app: then the address the outermost of them saw, i.e. that many entries
    from the right of X-Forwarded-For. Entries further left are whatever the
    client wrote, so forging the header never changes the answer.
    """
    remote = _parse_ip(request.META.get("REMOTE_ADDR", ""))
    proxies = settings.ACCOUNTS_TRUSTED_PROXY_COUNT
    if proxies <= 0:
        return remote
    forwarded = [part for part in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
    if len(forwarded) < proxies:
        return remote
    return _parse_ip(forwarded[-proxies]) or remote


def user_agent(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH]


@dataclass(frozen=True)
class ClientInfo:
    """The client facts that flows record (device sessions, the audit log) and limit by."""

    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> ClientInfo:
        return cls(ip_address=client_ip(request), user_agent=user_agent(request))
