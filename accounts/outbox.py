"""The durable email outbox: enqueued in the caller's transaction, sent by the worker with retries.

``enqueue_email`` writes an OutboundEmail row (its content encrypted) and, with the database queue
(ACCOUNTS_EMAIL_QUEUE=database, django-tasks' DatabaseBackend), the task that sends it, both in the
caller's transaction: a change rolled back sends nothing, and a change committed has its email
committed with it, whatever happens to the process next. ``python manage.py db_worker`` runs
``deliver_email``. Each attempt is claimed under the row's lock before anything is sent, and the
claim commits a follow-up task for when its lease ends, so an attempt cut short (SIGKILL, a
deploy) is retried by that follow-up; a failed attempt is retried with exponential backoff until
ACCOUNTS_EMAIL_MAX_ATTEMPTS, then recorded as failed (the admin shows it). The row's id is the
email's Message-ID, the same on every attempt, so a receiver can drop a duplicate. The content,
which may hold a live link, is dropped as soon as the email is sent or has failed for good.

ACCOUNTS_EMAIL_QUEUE=immediate (local development) sends in this process once the transaction
commits, with no worker to run and no retry.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django_tasks import task

from accounts.background import after_answer
from accounts.encryption import EncryptedSecret, SecretUnreadable, decrypt_secret, encrypt_secret
from accounts.log_redaction import redact
from accounts.models import OutboundEmail, User

logger = logging.getLogger(__name__)

Status = OutboundEmail.Status
# An attempt that the worker did not see through is taken for one that failed this way.
STOPPED_MID_SEND = "The worker stopped while sending (killed or restarted); sent again."
WAITED_FOR_FAILED = "Not sent: the email it had to wait for failed."
# Old rows (and the queue's finished tasks) go a few at a time, after a successful send.
PRUNE_BATCH = 100


@dataclass(frozen=True)
class EmailContent:
    subject: str
    text: str
    html: str


def enqueue_email(
    *, template: str, to: str, content: EmailContent, user: User | None = None, after: OutboundEmail | None = None
) -> OutboundEmail:
    """Put one email in the outbox, in the caller's transaction (or its own); ``after``: not before
    that email is sent, and never if it fails for good."""
    secret = encrypt_secret(json.dumps(asdict(content)))
    with transaction.atomic():
        email = OutboundEmail.objects.create(
            template=template,
            to=to,
            user=user,
            content_encrypted=secret.ciphertext,
            content_key_id=secret.key_id,
            send_after=after,
        )
        _send_later(email.pk)
    return email


def record_suppressed_email(*, template: str, to: str, user: User | None, reason: str) -> OutboundEmail:
    """Record an email that is not sent because its address is undeliverable: support sees why it never came."""
    return OutboundEmail.objects.create(
        template=template,
        to=to,
        user=user,
        status=Status.SUPPRESSED,
        last_error=f"Not sent: the address is undeliverable ({reason}).",
    )


def _send_later(email_id: uuid.UUID, *, at: datetime | None = None) -> None:
    if settings.ACCOUNTS_EMAIL_QUEUE == "database":
        (deliver_email if at is None else deliver_email.using(run_after=at)).enqueue(str(email_id))
    elif at is None:
        # Not before the change commits (a rolled-back one sends nothing), and after the answer.
        transaction.on_commit(lambda: after_answer(lambda: deliver(email_id=email_id), name="email"))


@task()
def deliver_email(email_id: str) -> None:
    """The worker's task: one attempt at sending one outbox email (or nothing, if none is due)."""
    deliver(email_id=uuid.UUID(email_id))


def _backoff(attempts: int) -> timedelta:
    seconds = settings.ACCOUNTS_EMAIL_RETRY_SECONDS * 2 ** max(0, attempts - 1)
    return timedelta(seconds=min(seconds, settings.ACCOUNTS_EMAIL_RETRY_MAX_SECONDS))


@dataclass(frozen=True)
class _Claim:
    email: OutboundEmail
    content: EmailContent | None  # None: unreadable (its key is gone): fails for good


def _claim(email_id: uuid.UUID) -> _Claim | None:
    """Take the email for one attempt, if it is due and nobody else is sending it."""
    now = timezone.now()
    with transaction.atomic():
        email = OutboundEmail.objects.select_for_update(skip_locked=True).filter(pk=email_id).first()
        if email is None or email.status in (Status.SENT, Status.FAILED, Status.SUPPRESSED):
            return None  # done, gone, never to be sent, or being claimed by another worker right now
        if email.status == Status.SENDING:
            if email.lease_until is not None and email.lease_until > now:
                return None  # another attempt is under way; its follow-up is queued
            email.last_error = STOPPED_MID_SEND
            if email.attempts >= settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS:
                _give_up(email)
                return None
        elif email.next_attempt_at > now:
            return None  # a retry that is not due yet; its task is queued for then
        if email.send_after_id is not None:
            first = OutboundEmail.objects.filter(pk=email.send_after_id).values_list("status", flat=True).first()
            if first == Status.FAILED:
                email.last_error = WAITED_FOR_FAILED
                _give_up(email)
                return None
            if first is not None and first not in (Status.SENT, Status.SUPPRESSED):
                return None  # sending that one sends this one next (one never sent waits for nothing)
        email.status = Status.SENDING
        email.attempts += 1
        email.lease_until = now + timedelta(seconds=settings.ACCOUNTS_EMAIL_LEASE_SECONDS)
        email.save(update_fields=["status", "attempts", "lease_until", "last_error"])
        # Committed with the claim: if this attempt never ends, this task takes over once its lease has.
        _send_later(email.pk, at=email.lease_until + timedelta(seconds=1))
    try:
        content = EmailContent(
            **json.loads(decrypt_secret(EncryptedSecret(email.content_key_id, email.content_encrypted)))
        )
    except (SecretUnreadable, ValueError, TypeError):
        content = None
    return _Claim(email=email, content=content)


def _give_up(email: OutboundEmail) -> None:
    email.status = Status.FAILED
    email.lease_until = None
    email.content_encrypted = email.content_key_id = ""
    email.save(update_fields=["status", "lease_until", "content_encrypted", "content_key_id", "last_error"])
    for waiting in OutboundEmail.objects.filter(send_after=email.pk, status=Status.QUEUED).select_for_update():
        waiting.last_error = WAITED_FOR_FAILED
        _give_up(waiting)
    logger.error(
        "Email %s (%s) failed for good after %d attempts: %s",
        email.pk,
        email.template,
        email.attempts,
        email.last_error,
    )


def message_id(email: OutboundEmail) -> str:
    return f"<{email.pk}@{urlsplit(settings.SITE_URL).hostname or 'localhost'}>"


def _send(email: OutboundEmail, content: EmailContent) -> str:
    """Hand the email to the backend; the provider's id for it, when it gives one."""
    message = EmailMultiAlternatives(
        subject=content.subject, body=content.text, to=[email.to], headers={"Message-ID": message_id(email)}
    )
    message.attach_alternative(content.html, "text/html")
    message.send()
    status = getattr(message, "anymail_status", None)
    return str(getattr(status, "message_id", None) or "")


def deliver(*, email_id: uuid.UUID) -> bool:
    """One attempt at sending the email, if it is due: sent, retried later, or failed for good.
    False: no attempt (not due, waiting for another email, being sent elsewhere, or done)."""
    claim = _claim(email_id)
    if claim is None:
        return False
    email = claim.email
    try:
        if claim.content is None:
            raise SecretUnreadable("no configured key decrypts this email")
        provider_id = _send(email, claim.content)
    except Exception as error:  # any backend, any failure: the attempt failed
        _attempt_failed(email, error)
        return True
    with transaction.atomic():
        OutboundEmail.objects.filter(pk=email.pk, status=Status.SENDING, attempts=email.attempts).update(
            status=Status.SENT,
            sent_at=timezone.now(),
            lease_until=None,
            content_encrypted="",
            content_key_id="",
            provider_message_id=provider_id[:255],
            last_error="",
        )
        waiting = OutboundEmail.objects.filter(send_after=email.pk, status=Status.QUEUED).values_list("pk", flat=True)
        for waiting_id in waiting:
            _send_later(waiting_id)
    _prune()
    return True


def _attempt_failed(email: OutboundEmail, error: Exception) -> None:
    # Redacted before it is cut short (a cut token would escape the redaction): some providers
    # quote the message they refused, links included; this goes to the logs and the admin.
    reason = redact(f"{type(error).__name__}: {error}")[:500]
    logger.warning("Sending email %s (%s), attempt %d, failed: %s", email.pk, email.template, email.attempts, reason)
    with transaction.atomic():
        current = (
            OutboundEmail.objects.select_for_update()
            .filter(pk=email.pk, status=Status.SENDING, attempts=email.attempts)
            .first()
        )
        if current is None:
            return  # its lease ran out and another attempt took over
        current.last_error = reason
        if current.attempts >= settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS or isinstance(error, SecretUnreadable):
            _give_up(current)
            return
        current.status = Status.QUEUED
        current.lease_until = None
        current.next_attempt_at = timezone.now() + _backoff(current.attempts)
        current.save(update_fields=["status", "lease_until", "next_attempt_at", "last_error"])
        _send_later(current.pk, at=current.next_attempt_at)


def _due(now: datetime) -> Q:
    """Emails that should be sent now: waiting and due, or in an attempt whose lease ran out."""
    return Q(status=Status.QUEUED, next_attempt_at__lte=now) | Q(status=Status.SENDING, lease_until__lt=now)


def due_emails() -> list[uuid.UUID]:
    return list(OutboundEmail.objects.filter(_due(timezone.now())).order_by("created_at").values_list("pk", flat=True))


def deliver_due_emails() -> int:
    """Send every due email here and now (tests; recovering a queue whose tasks were lost); how many
    were tried. Passes again while one does something: an email that waits for another (``after``),
    listed first because both were made in the same instant, goes once that one has."""
    tried: set[uuid.UUID] = set()
    while due := [email_id for email_id in due_emails() if email_id not in tried]:
        for email_id in due:
            if deliver(email_id=email_id):
                tried.add(email_id)
        if not tried.intersection(due):
            break  # everything left waits for something that is not going to happen now
    return len(tried)


@dataclass(frozen=True)
class QueueHealth:
    waiting: int
    oldest_due_seconds: int
    failed_last_day: int

    @property
    def stuck(self) -> bool:
        return self.oldest_due_seconds > settings.ACCOUNTS_EMAIL_STUCK_SECONDS


def queue_health() -> QueueHealth:
    """How the outbox is doing: emails waiting, how late the most overdue one is, recent failures."""
    now = timezone.now()
    waiting = OutboundEmail.objects.filter(status__in=(Status.QUEUED, Status.SENDING))
    oldest = (
        waiting.filter(
            Q(status=Status.QUEUED, next_attempt_at__lte=now) | Q(status=Status.SENDING, lease_until__lt=now)
        )
        .order_by("next_attempt_at")
        .values_list("next_attempt_at", flat=True)
        .first()
    )
    return QueueHealth(
        waiting=waiting.count(),
        oldest_due_seconds=int((now - oldest).total_seconds()) if oldest else 0,
        failed_last_day=OutboundEmail.objects.filter(
            status=Status.FAILED, created_at__gte=now - timedelta(days=1)
        ).count(),
    )


def _prune() -> None:
    """Drop sent, failed and suppressed emails older than ACCOUNTS_EMAIL_KEEP_DAYS (and the queue's finished tasks)."""
    cutoff = timezone.now() - timedelta(days=settings.ACCOUNTS_EMAIL_KEEP_DAYS)
    old = OutboundEmail.objects.filter(
        status__in=(Status.SENT, Status.FAILED, Status.SUPPRESSED), created_at__lt=cutoff
    )
    OutboundEmail.objects.filter(pk__in=list(old.values_list("pk", flat=True)[:PRUNE_BATCH])).delete()
    if settings.ACCOUNTS_EMAIL_QUEUE == "database":
        from django_tasks_db.models import DBTaskResult

        finished = DBTaskResult.objects.finished().filter(finished_at__lt=cutoff)
        # A worker killed mid-task leaves its row RUNNING for good; that long ago, it is one of those.
        abandoned = DBTaskResult.objects.running().filter(started_at__lt=cutoff)
        for done in (finished, abandoned):
            DBTaskResult.objects.filter(pk__in=list(done.values_list("pk", flat=True)[:PRUNE_BATCH])).delete()
