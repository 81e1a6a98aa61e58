"""Addresses mail cannot reach: the ESP's bounce and complaint reports, the suppression they cause, and clearing it.

The ESP reports through django-anymail's tracking webhook (accounts.webhooks hands each event
here). A hard bounce, a reject or a spam complaint marks the address undeliverable at once;
soft bounces do when ACCOUNTS_SOFT_BOUNCE_LIMIT of them arrive within
ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS. Every event is recorded once, by (ESP, event id, recipient):
ESPs deliver a webhook again when they are unsure it arrived, and a soft bounce must not count
twice. While an address is marked, only the emails a person asks for (REQUESTED_TEMPLATES) are
sent to it; the rest are recorded as suppressed. A delivery to it afterwards proves a bounced
mailbox works again and clears the mark; a complaint or a reject stays until support clears
it or the account moves to another address.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.models import DeliveryEvent, UndeliverableAddress, User

logger = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind
Reason = UndeliverableAddress.Reason

# The emails a person asks for themselves: sent even to a marked address, since they are how
# the person proves the mailbox works again (and asking for one is not mail they did not want).
REQUESTED_TEMPLATES = frozenset(
    {
        "verify_email",
        "account_exists",  # the answer to a sign-up with the address, in place of verify_email
        "password_reset",
        "choose_password",  # the answer to a reset for an account with no password
        "email_change_confirm",
        "email_login",
        "email_login_no_account",
    }
)
# Marks a delivery clears: the mailbox was full or gone and works again. A complaint or a
# reject is a person's or the ESP's decision, which one delivered email does not undo.
CLEARED_BY_DELIVERY = frozenset({Reason.HARD_BOUNCE, Reason.SOFT_BOUNCES})
_MARKS: dict[str, str] = {
    Kind.HARD_BOUNCE: Reason.HARD_BOUNCE,
    Kind.REJECTED: Reason.REJECTED,
    Kind.COMPLAINT: Reason.COMPLAINT,
}
_DESCRIPTION_LIMIT = 200


@dataclass(frozen=True)
class ReportedEvent:
    """One event of an ESP's tracking webhook, in anymail's terms (anymail.signals.AnymailTrackingEvent)."""

    esp: str
    event_id: str
    recipient: str
    event_type: str
    reject_reason: str | None
    description: str
    occurred_at: datetime | None
    esp_event: Any  # the ESP's own payload: only read to tell a hard bounce from a soft one


def classify(event: ReportedEvent) -> str:
    """What the event means for the address. anymail reports Postmark's soft bounces and both kinds
    of SES bounce as "bounced", so the ESP's own payload decides which kind it was."""
    payload = event.esp_event if isinstance(event.esp_event, dict) else {}
    if event.event_type == "bounced":
        if event.esp == "postmark" and payload.get("Type") in {"SoftBounce", "Transient", "DnsError"}:
            return Kind.SOFT_BOUNCE
        if event.esp == "amazon_ses":
            bounce_type = (payload.get("bounce") or {}).get("bounceType")
            if bounce_type != "Permanent":  # Transient, or Undetermined: maybe the next one arrives
                return Kind.SOFT_BOUNCE
        return Kind.HARD_BOUNCE if event.reject_reason in (None, "bounced", "invalid") else Kind.REJECTED
    if event.event_type == "deferred":
        return Kind.SOFT_BOUNCE
    if event.event_type == "rejected":
        return Kind.REJECTED
    if event.event_type == "complained":
        return Kind.COMPLAINT
    if event.event_type == "delivered":
        return Kind.DELIVERED
    return Kind.OTHER


def record_delivery_event(*, event: ReportedEvent) -> bool:
    """Record one reported event and mark or clear its address. False: seen before, nothing done."""
    try:
        address = normalize_email(event.recipient)
    except InvalidEmailAddress:
        logger.warning("A %s tracking event for an address that is not one was ignored.", event.esp)
        return False
    kind = classify(event)
    if kind == Kind.OTHER or (kind == Kind.DELIVERED and not _has_bounce_history(address)):
        return False  # opens, clicks, sends; and the many deliveries that change nothing: not kept
    try:
        with transaction.atomic():
            DeliveryEvent.objects.create(
                esp=event.esp[:32],
                event_id=event.event_id[:255],
                address=address,
                kind=kind,
                description=(event.description or "")[:_DESCRIPTION_LIMIT],
                occurred_at=event.occurred_at or timezone.now(),
            )
            if kind in _MARKS:
                _mark(address, reason=_MARKS[kind], description=event.description)
            elif kind == Kind.SOFT_BOUNCE and _soft_bounces_lately(address) >= settings.ACCOUNTS_SOFT_BOUNCE_LIMIT:
                _mark(address, reason=Reason.SOFT_BOUNCES, description=event.description)
            elif kind == Kind.DELIVERED:
                _clear(address, reasons=CLEARED_BY_DELIVERY, why="delivered")
    except IntegrityError:
        return False  # the same event again (the ESP retried its webhook), or at once from two deliveries
    return True


def _has_bounce_history(address: str) -> bool:
    since = timezone.now() - timedelta(days=settings.ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS)
    return (
        UndeliverableAddress.objects.filter(address=address).exists()
        or DeliveryEvent.objects.filter(address=address, kind=Kind.SOFT_BOUNCE, occurred_at__gte=since).exists()
    )


def _soft_bounces_lately(address: str) -> int:
    since = timezone.now() - timedelta(days=settings.ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS)
    last_delivery = (
        DeliveryEvent.objects.filter(address=address, kind=Kind.DELIVERED, occurred_at__gte=since)
        .order_by("-occurred_at")
        .values_list("occurred_at", flat=True)
        .first()
    )
    # A delivery in between shows the mailbox worked: only the bounces after it count.
    return DeliveryEvent.objects.filter(
        address=address, kind=Kind.SOFT_BOUNCE, occurred_at__gte=max(since, last_delivery or since)
    ).count()


def _mark(address: str, *, reason: str, description: str) -> None:
    mark, created = UndeliverableAddress.objects.select_for_update().get_or_create(
        address=address, defaults={"reason": reason, "description": (description or "")[:_DESCRIPTION_LIMIT]}
    )
    if not created:
        if mark.reason == Reason.COMPLAINT or mark.reason == reason:
            return  # a complaint outranks a bounce; the same reason again changes nothing
        mark.reason = reason
        mark.description = (description or "")[:_DESCRIPTION_LIMIT]
        mark.save(update_fields=["reason", "description"])
    owner = User.objects.filter(email=address).first()
    record_event(kind=EventKind.EMAIL_UNDELIVERABLE, user=owner, email=address, reason=reason)
    logger.info("Email to an address is suppressed from now on: %s.", reason)


def _clear(
    address: str,
    *,
    reasons: frozenset[str] | None,
    why: str,
    actor: User | None = None,
    client: ClientInfo | None = None,
) -> bool:
    marks = UndeliverableAddress.objects.filter(address=address)
    if reasons is not None:
        marks = marks.filter(reason__in=reasons)
    reason = marks.values_list("reason", flat=True).first()
    if reason is None or not marks.delete()[0]:
        return False
    owner = User.objects.filter(email=address).first()
    record_event(kind=EventKind.EMAIL_DELIVERABLE_AGAIN, user=owner, actor=actor, email=address, reason=reason, why=why)
    return True


def clear_undeliverable(*, address: str, actor: User, client: ClientInfo | None = None) -> bool:
    """Support lets email go to the address again (the person fixed their mailbox). False: it was not marked."""
    with transaction.atomic():
        return _clear(address, reasons=None, why="cleared_by_staff", actor=actor, client=client)


def undeliverable_reason(address: str) -> str | None:
    """Why mail is not sent to the address, or None when it is."""
    try:
        canonical = normalize_email(address)
    except InvalidEmailAddress:
        return None
    return UndeliverableAddress.objects.filter(address=canonical).values_list("reason", flat=True).first()


def suppression_reason(*, address: str, template: str) -> str | None:
    """Why this email must not go to the address (it is marked and the person did not ask for the email), or None."""
    return None if template in REQUESTED_TEMPLATES else undeliverable_reason(address)
