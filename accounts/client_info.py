"""What a request says about the client: its IP address and user agent."""

import ipaddress

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
