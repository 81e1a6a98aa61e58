"""What a request says about the client: its IP address and user agent."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

from django.http import HttpRequest

from accounts.models import USER_AGENT_MAX_LENGTH


def client_ip(request: HttpRequest) -> str | None:
    """The peer address; X-Forwarded-For is not trusted (a client can forge it)."""
    raw = request.META.get("REMOTE_ADDR", "")
    try:
        return str(ipaddress.ip_address(raw))
    except ValueError:
        return None


def user_agent(request: HttpRequest) -> str:
    return request.META.get("HTTP_USER_AGENT", "")[:USER_AGENT_MAX_LENGTH]


@dataclass(frozen=True)
class ClientInfo:
    """The client facts that flows record (device sessions, the audit log)."""

    ip_address: str | None = None
    user_agent: str = ""

    @classmethod
    def from_request(cls, request: HttpRequest) -> ClientInfo:
        return cls(ip_address=client_ip(request), user_agent=user_agent(request))
