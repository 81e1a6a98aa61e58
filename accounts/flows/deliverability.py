"""Addresses mail cannot reach: the ESP's bounce and complaint reports, the suppression they cause, and clearing it.

The ESP reports through django-anymail's tracking webhook (accounts.webhooks hands each event
here). A hard bounce, an address the ESP refuses or a spam complaint marks the address
undeliverable at once; soft bounces do when ACCOUNTS_SOFT_BOUNCE_LIMIT of them, for different
emails, arrive within ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS with no delivery between. Every event is
recorded once, by (ESP, event id, address): ESPs deliver a webhook again when they are unsure it
arrived, and a soft bounce must not count twice. A mark only ever rises (complaint > rejected >
hard bounce > soft bounces). A delivery after it proves a bounced mailbox works again and clears
the mark; a complaint or a refusal stays until support clears it.

While an address is marked, what is sent to it depends on the email:
- the emails a person asks for (REQUESTED_TEMPLATES) always go: they are how the person proves
  the mailbox works again;
- security notices (SECURITY_NOTICES: a changed password or address, a new factor, a new device)
  still go to an address marked for a complaint or for soft bounces, where the mailbox works or
  will again: a missed notice can hide a takeover, which outweighs one more unwanted email. To a
  mailbox that does not exist (a hard bounce, a refusal) they cannot arrive, so they are not sent;
- everything else is not sent.
What is not sent is recorded as suppressed in the outbox, so support sees why it never came.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.models import DeliveryEvent, UndeliverableAddress, User

logger = logging.getLogger(__name__)

Kind = DeliveryEvent.Kind
Reason = UndeliverableAddress.Reason

REQUESTED_TEMPLATES = frozenset(
    {
        "verify_email",
        "account_exists",  # the answer to a sign-up with the address, in place of verify_email
        "password_reset",
        "choose_password",  # the answer to a reset for an account with no password
        "email_change_confirm",
        "email_login",  # a sign-in code and link
    }
)
SECURITY_NOTICES = frozenset(
    {
        "email_change_requested",
        "email_changed",
        "email_change_undone",
        "password_changed",
        "mfa_enabled",
        "mfa_disabled",
        "mfa_reset_by_support",
        "recovery_code_used",
        "recovery_codes_regenerated",
        "passkey_added",
        "passkey_removed",
        "social_connected",
        "social_disconnected",
        "social_sign_in_attempt",
        "new_device_sign_in",
    }
)
# Where no mailbox takes mail at all: nothing sent there can arrive.
UNREACHABLE = frozenset({Reason.HARD_BOUNCE, Reason.REJECTED})
# Marks a delivery clears: the mailbox was full or gone and works again. A complaint or a
# refusal is a person's or the ESP's decision, which one delivered email does not undo.
CLEARED_BY_DELIVERY = frozenset({Reason.HARD_BOUNCE, Reason.SOFT_BOUNCES})
# A mark only rises: a soft bounce after a complaint is still a complaint.
RANK: dict[str, int] = {Reason.SOFT_BOUNCES: 1, Reason.HARD_BOUNCE: 2, Reason.REJECTED: 3, Reason.COMPLAINT: 4}
_MARKS: dict[str, str] = {
    Kind.HARD_BOUNCE: Reason.HARD_BOUNCE,
    Kind.REJECTED: Reason.REJECTED,
    Kind.COMPLAINT: Reason.COMPLAINT,
}
_DESCRIPTION_LIMIT = 200

# Postmark's bounce types (https://postmarkapp.com/developer/api/bounce-api#bounce-types), which
# anymail folds together: which say the address is gone, full for now, or nothing about it.
POSTMARK_HARD = frozenset({"HardBounce", "BadEmailAddress", "ManuallyDeactivated"})
POSTMARK_SOFT = frozenset({"SoftBounce", "Transient", "DnsError", "Undeliverable"})
# SpamNotification, VirusNotification, Blocked, DMARCPolicy, ChallengeVerification, ...: about the
# message or the sender (a content filter, a DMARC setup), not about the address: ignored.


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
    message_id: str = ""  # the ESP's id of the email the event is about


def classify(event: ReportedEvent) -> str:
    """What the event says about the address. anymail folds Postmark's bounce types together and
    reports both kinds of SES bounce as "bounced", so those ESPs' own payloads decide."""
    payload = event.esp_event if isinstance(event.esp_event, dict) else {}
    if event.esp == "postmark" and event.event_type in {"bounced", "rejected", "deferred", "complained"}:
        kind = str(payload.get("Type", ""))
        if kind == "SpamComplaint":
            return Kind.COMPLAINT
        if kind in POSTMARK_HARD:
            return Kind.HARD_BOUNCE if kind != "ManuallyDeactivated" else Kind.REJECTED
        return Kind.SOFT_BOUNCE if kind in POSTMARK_SOFT else Kind.OTHER
    if event.esp == "amazon_ses" and event.event_type == "bounced":
        bounce = payload.get("bounce")
        bounce = bounce if isinstance(bounce, dict) else {}
        # Transient or Undetermined: the next attempt may arrive.
        return Kind.HARD_BOUNCE if bounce.get("bounceType") == "Permanent" else Kind.SOFT_BOUNCE
    if event.esp == "amazon_ses" and event.event_type == "rejected":
        return Kind.OTHER  # SES refused the message (a virus), not the address
    if event.event_type == "bounced":
        if _says_soft(payload):
            return Kind.SOFT_BOUNCE
        return Kind.HARD_BOUNCE if event.reject_reason in (None, "bounced", "invalid") else Kind.OTHER
    if event.event_type == "rejected":
        # The ESP will not send to the address (it bounced before, or is invalid); a refusal for
        # the message's content or for the sender says nothing about the address.
        return Kind.REJECTED if event.reject_reason in ("bounced", "invalid") else Kind.OTHER
    if event.event_type == "complained":
        return Kind.COMPLAINT
    if event.event_type == "delivered":
        return Kind.DELIVERED
    # "deferred" is the ESP still trying (one per retry): only a bounce it gave up on counts.
    return Kind.OTHER


def _says_soft(payload: dict) -> bool:
    """Whether another ESP's own payload calls a bounce soft (Brevo's and Mandrill's "soft_bounce",
    MailerSend's "activity.soft_bounced", SparkPost's bounce classes 20 to 24)."""
    names = " ".join(str(payload.get(key, "")) for key in ("event", "type", "Type")).lower()
    bounce_class = str(payload.get("bounce_class", (payload.get("msys") or {}).get("bounce_class", "")))
    return "soft" in names or bounce_class in {"20", "21", "22", "23", "24"}


def record_delivery_event(*, event: ReportedEvent) -> bool:
    """Record one reported event and mark or clear its address. False: seen before, or nothing to keep."""
    try:
        address = normalize_email(event.recipient)
    except InvalidEmailAddress:
        logger.warning("A %s tracking event for an address that is not one was ignored.", event.esp)
        return False
    kind = classify(event)
    if kind == Kind.OTHER or (kind == Kind.DELIVERED and not _has_bounce_history(address)):
        return False  # opens, clicks, sends; and the many deliveries that change nothing: not kept
    now = timezone.now()
    # An ESP's clock, or a payload, from the future would stretch the soft-bounce window.
    occurred_at = min(event.occurred_at, now) if event.occurred_at else now
    event_id = event.event_id if len(event.event_id) <= 255 else "sha256:" + _digest(event.event_id)
    with transaction.atomic():
        _lock_address(address)
        try:
            with transaction.atomic():  # a savepoint: only the duplicate is undone
                DeliveryEvent.objects.create(
                    esp=event.esp[:32],
                    event_id=event_id,
                    address=address,
                    message_id=event.message_id[:255],
                    kind=kind,
                    description=(event.description or "")[:_DESCRIPTION_LIMIT],
                    occurred_at=occurred_at,
                )
        except IntegrityError:
            return False  # the same event again (the ESP retried its webhook), or at once from two deliveries
        if kind in _MARKS:
            _mark(address, reason=_MARKS[kind], description=event.description, at=occurred_at)
        elif kind == Kind.SOFT_BOUNCE and _soft_bounces_lately(address) >= settings.ACCOUNTS_SOFT_BOUNCE_LIMIT:
            _mark(address, reason=Reason.SOFT_BOUNCES, description=event.description, at=occurred_at)
        elif kind == Kind.DELIVERED:
            _clear(address, reasons=CLEARED_BY_DELIVERY, why="delivered", before=occurred_at)
    return True


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def _lock_address(address: str) -> None:
    """One report of an address at a time: two soft bounces at once must see each other. SQLite
    writes one transaction at a time anyway."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"deliverability:{address}"])


def _has_bounce_history(address: str) -> bool:
    since = timezone.now() - timedelta(days=settings.ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS)
    return (
        UndeliverableAddress.objects.filter(address=address).exists()
        or DeliveryEvent.objects.filter(address=address, kind=Kind.SOFT_BOUNCE, occurred_at__gte=since).exists()
    )


def _soft_bounces_lately(address: str) -> int:
    """Soft bounces of different emails within the window, since the last delivery."""
    since = timezone.now() - timedelta(days=settings.ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS)
    last_delivery = (
        DeliveryEvent.objects.filter(address=address, kind=Kind.DELIVERED, occurred_at__gte=since)
        .order_by("-occurred_at")
        .values_list("occurred_at", flat=True)
        .first()
    )
    # A delivery in between shows the mailbox worked: only the bounces after it count. One email
    # bounced again and again (the ESP's retries, each its own event) is one bounce.
    bounces = DeliveryEvent.objects.filter(
        address=address, kind=Kind.SOFT_BOUNCE, occurred_at__gte=max(since, last_delivery or since)
    ).values_list("message_id", "pk")
    return len({message_id or f"event:{pk}" for message_id, pk in bounces})


def _mark(address: str, *, reason: str, description: str, at: datetime) -> None:
    mark, created = UndeliverableAddress.objects.get_or_create(
        address=address,
        defaults={"reason": reason, "description": (description or "")[:_DESCRIPTION_LIMIT], "marked_at": at},
    )
    if not created:
        if RANK[reason] < RANK[mark.reason]:
            return  # a mark only rises
        if RANK[reason] == RANK[mark.reason]:
            # The same again, later: a delivery older than this one proves nothing about it either.
            if at > mark.marked_at:
                mark.marked_at = at
                mark.save(update_fields=["marked_at"])
            return
        mark.reason = reason
        mark.description = (description or "")[:_DESCRIPTION_LIMIT]
        mark.marked_at = max(mark.marked_at, at)
        mark.save(update_fields=["reason", "description", "marked_at"])
    owner = User.objects.filter(email=address).first()
    record_event(kind=EventKind.EMAIL_UNDELIVERABLE, user=owner, email=address, reason=reason)
    logger.info("Email to an address is suppressed from now on: %s.", reason)


def _clear(
    address: str,
    *,
    reasons: frozenset[str] | None,
    why: str,
    before: datetime | None = None,
    actor: User | None = None,
    client: ClientInfo | None = None,
) -> bool:
    marks = UndeliverableAddress.objects.filter(address=address)
    if reasons is not None:
        marks = marks.filter(reason__in=reasons)
    if before is not None:
        marks = marks.filter(marked_at__lt=before)  # a delivery older than the bounce proves nothing
    reason = marks.values_list("reason", flat=True).first()
    if reason is None or not marks.delete()[0]:
        return False
    owner = User.objects.filter(email=address).first()
    record_event(
        kind=EventKind.EMAIL_DELIVERABLE_AGAIN,
        user=owner,
        actor=actor,
        client=client,
        email=address,
        reason=reason,
        why=why,
    )
    return True


def clear_undeliverable(*, address: str, actor: User, client: ClientInfo | None = None) -> bool:
    """Support lets email go to the address again (the person fixed their mailbox). False: it was not marked."""
    with transaction.atomic():
        return _clear(address, reasons=None, why="cleared_by_staff", actor=actor, client=client)


def forget_address(*, address: str) -> None:
    """An account is deleted: what the ESPs said about its address goes with it."""
    UndeliverableAddress.objects.filter(address=address).delete()
    DeliveryEvent.objects.filter(address=address).delete()


def undeliverable_reason(address: str) -> str | None:
    """Why mail is not sent to the address, or None when it is."""
    try:
        canonical = normalize_email(address)
    except InvalidEmailAddress:
        return None
    return UndeliverableAddress.objects.filter(address=canonical).values_list("reason", flat=True).first()


def suppression_reason(*, address: str, template: str) -> str | None:
    """Why this email must not go to the address (see the module's rules), or None when it goes."""
    if template in REQUESTED_TEMPLATES:
        return None
    reason = undeliverable_reason(address)
    if reason is None or (template in SECURITY_NOTICES and reason not in UNREACHABLE):
        return None
    return reason
