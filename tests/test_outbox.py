"""The email outbox: enqueued in the transaction of the change, retried with backoff, failed for
good after the last attempt, content encrypted and then dropped, visible to support."""

import logging
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
import time_machine
from django.db import transaction
from django.utils import timezone
from django_tasks_db.models import DBTaskResult

from accounts.models import OutboundEmail
from accounts.outbox import STOPPED_MID_SEND, deliver, deliver_due_emails, message_id
from tests.support.mail import LIVE_TOKEN, enqueue_reset_email, install_unreachable_email

pytestmark = pytest.mark.django_db

Status = OutboundEmail.Status
TOKEN = LIVE_TOKEN
ALICE = "alice@example.com"


def enqueue(to: str = ALICE) -> OutboundEmail:
    return enqueue_reset_email(to)


def tasks_for(email: OutboundEmail) -> list[DBTaskResult]:
    return [
        task
        for task in DBTaskResult.objects.filter(task_path="accounts.outbox.deliver_email").order_by("run_after")
        if task.args_kwargs["args"] == [str(email.pk)]
    ]


# --- In the transaction of the change ---------------------------------------------------------------


def test_an_email_and_its_task_commit_with_the_change(mailoutbox):
    with transaction.atomic():
        email = enqueue()
    assert OutboundEmail.objects.get().status == Status.QUEUED
    assert len(tasks_for(email)) == 1
    assert [message.to for message in mailoutbox] == [[ALICE]]  # the worker sends it


def test_a_rolled_back_change_sends_nothing(mailoutbox):
    class ChangeFailed(Exception):
        pass

    with pytest.raises(ChangeFailed), transaction.atomic():
        enqueue()
        raise ChangeFailed
    assert not OutboundEmail.objects.exists()
    assert not DBTaskResult.objects.exists()
    assert len(mailoutbox) == 0


def test_a_flow_rolled_back_after_its_email_sends_nothing(user, password, mailoutbox):
    """Deleting an account tells its address in the same transaction: rolled back, the account
    stays and nothing is sent (the old in-process sender had already sent it by then)."""
    from accounts.flows.account_deletion import delete_account

    user_id = user.pk

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), transaction.atomic():
        delete_account(user=user, password=password)
        assert OutboundEmail.objects.filter(template="account_deleted").exists()
        raise Interrupted
    assert type(user).objects.filter(pk=user_id).exists()
    assert not OutboundEmail.objects.exists()
    assert len(mailoutbox) == 0


def test_the_content_is_encrypted_at_rest_and_dropped_once_sent(settings, mailoutbox):
    email = enqueue()
    stored = OutboundEmail.objects.get(pk=email.pk)
    assert TOKEN not in stored.content_encrypted and stored.content_encrypted and stored.content_key_id
    assert not [task for task in DBTaskResult.objects.all() if TOKEN in str(task.args_kwargs)]
    deliver(email_id=email.pk)
    stored.refresh_from_db()
    assert stored.status == Status.SENT and stored.sent_at is not None and stored.attempts == 1
    assert stored.content_encrypted == stored.content_key_id == ""
    [message] = mailoutbox
    assert TOKEN in message.body
    host = urlsplit(settings.SITE_URL).hostname
    assert message.extra_headers["Message-ID"] == message_id(stored) == f"<{stored.pk}@{host}>"


def test_an_email_is_sent_once_however_often_its_task_runs(mailoutbox):
    email = enqueue()
    for _ in range(3):
        deliver(email_id=email.pk)
    assert len(mailoutbox) == 1


def test_an_unknown_email_id_is_nothing_to_do(mailoutbox):
    import uuid

    deliver(email_id=uuid.uuid4())
    assert len(mailoutbox) == 0


# --- Retries ------------------------------------------------------------------------------------------


def test_a_failed_attempt_is_retried_with_exponential_backoff(settings, caplog):
    settings.ACCOUNTS_EMAIL_RETRY_SECONDS = 30
    settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 10
    unreachable = install_unreachable_email(settings)
    email = enqueue()
    with time_machine.travel(timezone.now(), tick=False) as clock:
        delays = []
        for attempt in range(1, 5):
            before = timezone.now()
            deliver(email_id=email.pk)
            email.refresh_from_db()
            assert email.status == Status.QUEUED and email.attempts == attempt
            assert "ConnectionRefusedError" in email.last_error
            delays.append((email.next_attempt_at - before).total_seconds())
            assert email.next_attempt_at in [task.run_after for task in tasks_for(email)]  # its retry is queued
            deliver(email_id=email.pk)  # too early: nothing is tried
            assert len(unreachable.attempted) == attempt
            clock.shift(email.next_attempt_at - timezone.now())
    assert delays == [30, 60, 120, 240]
    assert TOKEN not in caplog.text


def test_the_backoff_stops_growing_at_its_maximum(settings):
    from accounts.outbox import _backoff

    settings.ACCOUNTS_EMAIL_RETRY_SECONDS = 30
    settings.ACCOUNTS_EMAIL_RETRY_MAX_SECONDS = 3600
    assert [_backoff(n).total_seconds() for n in (1, 2, 7, 8, 20)] == [30, 60, 1920, 3600, 3600]


def test_after_the_last_attempt_the_email_is_failed_for_good(settings, caplog):
    settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 3
    install_unreachable_email(settings)
    email = enqueue()
    with time_machine.travel(timezone.now(), tick=False) as clock, caplog.at_level(logging.ERROR):
        for _ in range(3):
            deliver(email_id=email.pk)
            clock.shift(timedelta(hours=2))
    email.refresh_from_db()
    assert email.status == Status.FAILED and email.attempts == 3
    assert email.content_encrypted == "" and "ConnectionRefusedError" in email.last_error
    assert "failed for good" in caplog.text and TOKEN not in caplog.text
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert deliver_due_emails() == 0  # nothing more is tried


def test_the_provider_recovering_sends_the_waiting_email(settings, mailoutbox):
    install_unreachable_email(settings)
    email = enqueue()
    deliver(email_id=email.pk)
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    with time_machine.travel(timezone.now() + timedelta(minutes=1)):
        deliver(email_id=email.pk)
    email.refresh_from_db()
    assert email.status == Status.SENT and email.attempts == 2 and email.last_error == ""


def test_an_attempt_cut_short_is_made_again_once_its_lease_ran_out(settings, mailoutbox):
    """The worker was killed mid-send: the follow-up task committed with the claim sends it again."""
    settings.ACCOUNTS_EMAIL_LEASE_SECONDS = 60
    email = enqueue()
    claimed_at = timezone.now()
    OutboundEmail.objects.filter(pk=email.pk).update(
        status=Status.SENDING, attempts=1, lease_until=claimed_at + timedelta(seconds=60)
    )
    deliver(email_id=email.pk)  # another worker's attempt is still within its lease: left alone
    assert len(mailoutbox) == 0
    with time_machine.travel(claimed_at + timedelta(seconds=61)):
        deliver(email_id=email.pk)
    email.refresh_from_db()
    assert email.status == Status.SENT and email.attempts == 2
    assert len(mailoutbox) == 1


def test_an_attempt_cut_short_on_the_last_attempt_is_failed(settings, mailoutbox):
    settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 2
    email = enqueue()
    OutboundEmail.objects.filter(pk=email.pk).update(
        status=Status.SENDING, attempts=2, lease_until=timezone.now() - timedelta(seconds=1)
    )
    deliver(email_id=email.pk)
    email.refresh_from_db()
    assert email.status == Status.FAILED and email.last_error == STOPPED_MID_SEND
    assert len(mailoutbox) == 0


def test_each_claim_commits_the_follow_up_that_recovers_it(settings):
    """Before anything is sent, a task for the end of the attempt's lease is in the queue."""
    settings.ACCOUNTS_EMAIL_LEASE_SECONDS = 60
    seen: list = []

    class Watching:
        def __init__(self, *args, **kwargs):
            pass

        def send_messages(self, messages):
            seen.append([task.run_after for task in tasks_for(email)])
            return len(messages)

    import tests.test_outbox as this

    this.Watching = Watching
    settings.EMAIL_BACKEND = "tests.test_outbox.Watching"
    email = enqueue()
    deliver(email_id=email.pk)
    email.refresh_from_db()
    [run_afters] = seen
    assert len(run_afters) == 2  # its first task, and the follow-up
    assert run_afters[-1] > timezone.now() + timedelta(seconds=55)


def test_an_unreadable_email_fails_at_once(settings, mailoutbox):
    email = enqueue()
    OutboundEmail.objects.filter(pk=email.pk).update(content_encrypted="not a ciphertext")
    deliver(email_id=email.pk)
    email.refresh_from_db()
    assert email.status == Status.FAILED and email.attempts == 1 and "SecretUnreadable" in email.last_error
    assert len(mailoutbox) == 0


# --- Keeping the outbox small ----------------------------------------------------------------------


def test_old_sent_emails_and_finished_tasks_are_pruned(settings, mailoutbox):
    settings.ACCOUNTS_EMAIL_KEEP_DAYS = 30
    with time_machine.travel(timezone.now() - timedelta(days=31)):
        old = enqueue("old@example.com")
        deliver(email_id=old.pk)
        DBTaskResult.objects.update(status="SUCCESSFUL", finished_at=timezone.now())
    new = enqueue()
    deliver(email_id=new.pk)
    assert list(OutboundEmail.objects.values_list("to", flat=True)) == [ALICE]
    assert len(tasks_for(old)) == 0 and len(tasks_for(new)) >= 1


def test_a_task_a_killed_worker_left_running_is_pruned_once_old(settings, mailoutbox):
    settings.ACCOUNTS_EMAIL_KEEP_DAYS = 30
    with time_machine.travel(timezone.now() - timedelta(days=31)):
        abandoned = enqueue("abandoned@example.com")
        DBTaskResult.objects.update(status="RUNNING", started_at=timezone.now())
    recent = enqueue("recent@example.com")
    DBTaskResult.objects.filter(pk__in=[task.pk for task in tasks_for(recent)]).update(
        status="RUNNING", started_at=timezone.now()
    )
    deliver(email_id=enqueue().pk)
    assert tasks_for(abandoned) == []
    assert [task.status for task in tasks_for(recent)] == ["RUNNING"]


# --- In process (local development) -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_in_process_the_email_is_sent_once_the_change_commits(settings, mailoutbox):
    from django.core import mail

    settings.ACCOUNTS_EMAIL_QUEUE = "immediate"
    with transaction.atomic():
        enqueue()
        assert mail.outbox == []  # not before the commit
    assert [message.to for message in mail.outbox] == [[ALICE]]
    assert OutboundEmail.objects.get().status == Status.SENT
    assert not DBTaskResult.objects.exists()  # no worker involved


@pytest.mark.django_db(transaction=True)
def test_in_process_a_rolled_back_change_sends_nothing(settings):
    from django.core import mail

    settings.ACCOUNTS_EMAIL_QUEUE = "immediate"
    with pytest.raises(ZeroDivisionError), transaction.atomic():
        enqueue()
        _ = 1 / 0
    assert mail.outbox == [] and not OutboundEmail.objects.exists()


# --- Support ---------------------------------------------------------------------------------------


def test_support_sees_the_outbox_but_never_the_content(client, make_user, settings):
    from django.contrib.auth.models import Group

    from tests.support.accounts import force_page_login

    settings.ACCOUNTS_EMAIL_MAX_ATTEMPTS = 1
    install_unreachable_email(settings)
    failed = enqueue("bounced@example.com")
    deliver(email_id=failed.pk)
    staff = make_user(email="desk@example.com", is_staff=True)
    staff.groups.add(Group.objects.get(name="Support"))
    force_page_login(client, staff, second_factor=True)
    listing = client.get("/admin/accounts/outboundemail/?status__exact=failed")
    assert listing.status_code == 200
    page = listing.content.decode()
    assert "bounced@example.com" in page and "ConnectionRefusedError" in page
    detail = client.get(f"/admin/accounts/outboundemail/{failed.pk}/change/")
    assert detail.status_code == 200 and TOKEN not in detail.content.decode()
    assert "content_encrypted" not in detail.content.decode()
    assert client.post(f"/admin/accounts/outboundemail/{failed.pk}/delete/", {"post": "yes"}).status_code == 403
    assert client.get("/admin/accounts/outboundemail/?content_encrypted__contains=x").status_code == 400
