"""The ESP's tracking webhook (anymail's view at /anymail/<esp>/tracking/), handing its reports to deliverability.

Only anymail's tracking views are routed (no inbound mail is taken), and each request passes a
gate before anymail sees it: the route must be the configured ESP's (ANYMAIL_ESP), and the
request must carry ANYMAIL_WEBHOOK_SECRET as HTTP basic auth (compared in constant time). So a
stranger's request is never parsed, whatever it holds: with no secret the webhook answers 404
(anymail itself would only warn and accept anyone), and without the right credentials 401
(SNS sends them only once asked). A payload anymail cannot read is a 400 instead of a 500,
which ESPs retry for days; an error of our own while recording stays a 500, so the ESP sends
the event again.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
from collections.abc import Callable
from typing import Any

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailConfigurationError, AnymailError, AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django.utils.crypto import constant_time_compare
from django.views.decorators.csrf import csrf_exempt

from accounts.flows.deliverability import ReportedEvent, record_delivery_event

logger = logging.getLogger(__name__)

# What anymail or the standard library raise on a payload they cannot read.
_UNREADABLE = (AnymailError, ValueError, KeyError, TypeError, AttributeError, IndexError, RecursionError)


class _MalformedPayload(Exception):
    pass


def _error(status: int, code: str, detail: str) -> JsonResponse:
    return JsonResponse({"code": code, "detail": detail}, status=status)


def _secrets() -> list[str]:
    configured: str | list[str] = settings.ANYMAIL.get("WEBHOOK_SECRET") or []
    return [configured] if isinstance(configured, str) else [str(secret) for secret in configured]


def _presented_secret(request: HttpRequest) -> str | None:
    scheme, _, credentials = request.META.get("HTTP_AUTHORIZATION", "").partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        return base64.b64decode(credentials.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None


def _authenticated(request: HttpRequest) -> bool:
    presented = _presented_secret(request)
    # Every configured secret is compared, so the time taken says nothing about which came close.
    matches = [constant_time_compare(presented or "", secret) for secret in _secrets()]
    return presented is not None and any(matches)


def _checked(view_class: Any) -> Any:
    class CheckedTrackingView(view_class):
        warn_if_no_basic_auth = False  # the gate below refuses everyone while no secret is set

        def run_validators(self, request: HttpRequest) -> None:
            try:
                super().run_validators(request)
            except AnymailWebhookValidationFailure:
                raise
            except _UNREADABLE as error:
                raise _MalformedPayload from error

        def parse_events(self, request: HttpRequest) -> list:
            try:
                return list(super().parse_events(request))
            except AnymailWebhookValidationFailure:
                raise
            except _UNREADABLE as error:
                raise _MalformedPayload from error

    CheckedTrackingView.__name__ = CheckedTrackingView.__qualname__ = view_class.__name__
    return CheckedTrackingView


def _gated(esp: str, view_class: Any) -> Callable[..., HttpResponse]:
    checked = _checked(view_class)

    @csrf_exempt
    def webhook(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not _secrets() or esp != settings.ANYMAIL_ESP:
            return _error(404, "not_found", "Not found.")
        if not _authenticated(request):
            response = _error(401, "webhook_refused", "Wrong or missing webhook credentials.")
            response["WWW-Authenticate"] = 'Basic realm="ESP webhook"'
            return response
        try:
            view = checked.as_view()
            return view(request, *args, **kwargs)
        except AnymailConfigurationError as error:
            logger.error("The %s tracking webhook is misconfigured: %s", esp, error)
            return _error(503, "webhook_not_configured", "The webhook is not configured.")
        except AnymailWebhookValidationFailure:
            return _error(403, "webhook_refused", "The webhook's signature or headers did not check out.")
        except _MalformedPayload:
            return _error(400, "malformed_event", "The payload could not be read.")

    return webhook


def tracking_urlpatterns() -> list[URLPattern]:
    """anymail's tracking routes (``<esp>/tracking/``), each behind _gated."""
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        view_class = getattr(pattern.callback, "view_class", None)
        if isinstance(pattern, URLPattern) and view_class is not None and view_class.signal is tracking:
            route = str(pattern.pattern)
            patterns.append(path(route, _gated(route.split("/", 1)[0], view_class), name=str(pattern.name)))
    return patterns


def esp_key(esp_name: str) -> str:
    """anymail's display name of an ESP as the key deliverability knows it by: "Amazon SES" -> "amazon_ses"."""
    return esp_name.strip().lower().replace(" ", "_")


def _payload_fingerprint(payload: object) -> str:
    # Some ESPs give some events no id (Postmark's deliveries): the same payload twice is one event.
    return "sha256:" + hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()


def on_tracking_event(sender: object, event: AnymailTrackingEvent, esp_name: str, **kwargs: object) -> None:
    record_delivery_event(
        event=ReportedEvent(
            esp=esp_key(esp_name),
            event_id=str(event.event_id) if event.event_id else _payload_fingerprint(event.esp_event),
            recipient=str(event.recipient or ""),
            event_type=str(event.event_type or ""),
            reject_reason=event.reject_reason,
            description=str(event.description or ""),
            occurred_at=event.timestamp,
            esp_event=event.esp_event,
            message_id=str(event.message_id or ""),
        )
    )


tracking.connect(on_tracking_event, dispatch_uid="accounts.webhooks.on_tracking_event")
