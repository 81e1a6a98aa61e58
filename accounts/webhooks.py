"""The ESPs' tracking webhooks (anymail's views at /anymail/<esp>/tracking/), handing reports to deliverability.

Only anymail's tracking views are routed (no inbound mail is taken), each refusing every request
while ANYMAIL_WEBHOOK_SECRET is unset (anymail itself would only warn and accept anyone), and
each answering a payload it cannot read with a 400 instead of a 500 (which an ESP retries for
days). An error of our own while recording stays a 500, so the ESP sends the event again.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from anymail import urls as anymail_urls
from anymail.exceptions import AnymailError, AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent, tracking
from django.conf import settings
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path

from accounts.flows.deliverability import ReportedEvent, record_delivery_event


class _MalformedPayload(Exception):
    pass


def _checked(view_class: Any) -> Any:
    class CheckedTrackingView(view_class):
        warn_if_no_basic_auth = False  # with no secret it refuses everyone (below) instead of warning

        def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
            if not settings.ANYMAIL.get("WEBHOOK_SECRET"):
                return JsonResponse({"code": "not_found", "detail": "Not found."}, status=404)
            try:
                return super().post(request, *args, **kwargs)
            except AnymailWebhookValidationFailure:
                return JsonResponse(
                    {
                        "code": "webhook_refused",
                        "detail": "The webhook's credentials or its headers did not check out.",
                    },
                    status=403,
                )
            except _MalformedPayload:
                return JsonResponse({"code": "malformed_event", "detail": "The payload could not be read."}, status=400)

        def run_validators(self, request: HttpRequest) -> None:
            try:
                super().run_validators(request)
            except AnymailWebhookValidationFailure:
                raise
            except (AnymailError, ValueError, KeyError, TypeError, AttributeError) as error:
                raise _MalformedPayload from error

        def parse_events(self, request: HttpRequest) -> list:
            try:
                return list(super().parse_events(request))
            except AnymailWebhookValidationFailure:
                raise
            except (AnymailError, ValueError, KeyError, TypeError, AttributeError, IndexError) as error:
                raise _MalformedPayload from error

    CheckedTrackingView.__name__ = CheckedTrackingView.__qualname__ = view_class.__name__
    return CheckedTrackingView


def tracking_urlpatterns() -> list[URLPattern]:
    """anymail's tracking routes (``<esp>/tracking/``), each through _checked."""
    patterns = []
    for pattern in anymail_urls.urlpatterns:
        view_class = getattr(pattern.callback, "view_class", None)
        if isinstance(pattern, URLPattern) and view_class is not None and view_class.signal is tracking:
            patterns.append(path(str(pattern.pattern), _checked(view_class).as_view(), name=str(pattern.name)))
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
        )
    )


tracking.connect(on_tracking_event, dispatch_uid="accounts.webhooks.on_tracking_event")
