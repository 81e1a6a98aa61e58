"""Bounces and complaints: the ESPs' tracking webhooks (real Postmark and Amazon SES payloads), their
authentication and deduplication, the suppression they cause, the banner, and support clearing it."""

import base64
import copy
import json
from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test import Client, override_settings
from django.utils import timezone

from accounts.audit import EventKind
from accounts.flows.email_change import request_email_change
from accounts.flows.password_change import change_password
from accounts.flows.password_reset import request_password_reset
from accounts.models import DeliveryEvent, OutboundEmail, SecurityEvent, UndeliverableAddress
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import get_me, login
from tests.support.mail import mails_to
from tests.support.races import run_at_once

pytestmark = pytest.mark.django_db

SECRET = "esp-hook:Jm3v9qLr2xWc7Tn4"
ALICE = "alice@example.com"
POSTMARK = "/anymail/postmark/tracking/"
SES = "/anymail/amazon_ses/tracking/"
NEW_PASSWORD = "a brand new passphrase 2"


def hours_ago(hours: float) -> str:
    return (timezone.now() - timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


RECENT = hours_ago(1)

# Postmark's bounce webhook, as its documentation shows it (https://postmarkapp.com/developer/webhooks/bounce-webhook).
POSTMARK_HARD_BOUNCE = {
    "RecordType": "Bounce",
    "MessageStream": "outbound",
    "ID": 4323372036854775807,
    "Type": "HardBounce",
    "TypeCode": 1,
    "Name": "Hard bounce",
    "Tag": "",
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "Metadata": {},
    "ServerID": 23,
    "Description": "The server was unable to deliver your message (ex: unknown user, mailbox not found).",
    "Details": "smtp;550 5.1.1 The email account that you tried to reach does not exist.",
    "Email": ALICE,
    "From": "no-reply@todo.example",
    "BouncedAt": RECENT,
    "DumpAvailable": True,
    "Inactive": True,
    "CanActivate": True,
    "Subject": "Reset your password",
    "Content": "",
}
POSTMARK_SOFT_BOUNCE = {
    **POSTMARK_HARD_BOUNCE,
    "Type": "SoftBounce",
    "TypeCode": 4096,
    "Name": "Soft bounce/Undeliverable",
    "Description": "Unable to temporarily deliver this email.",
    "Details": "smtp;452 4.2.2 The email account that you tried to reach is over quota.",
    "Inactive": False,
}
POSTMARK_SPAM_COMPLAINT = {
    **POSTMARK_HARD_BOUNCE,
    "RecordType": "SpamComplaint",
    "ID": 42,
    "Type": "SpamComplaint",
    "TypeCode": 512,
    "Name": "Spam complaint",
    "Description": "",
    "Details": "Test spam complaint details",
    "CanActivate": False,
}
POSTMARK_DELIVERY = {
    "RecordType": "Delivery",
    "MessageStream": "outbound",
    "ServerID": 23,
    "MessageID": "00000000-0000-0000-0000-000000000000",
    "Recipient": ALICE,
    "Tag": "",
    "DeliveredAt": RECENT,
    "Details": "smtp;250 2.0.0 OK",
    "Metadata": {},
}
POSTMARK_OPEN = {
    "RecordType": "Open",
    "MessageStream": "outbound",
    "FirstOpen": True,
    "Recipient": ALICE,
    "MessageID": "883953f4-6105-42a2-a16a-77a8eac79483",
    "ReceivedAt": "2026-11-06T16:40:00Z",
    "Platform": "WebMail",
    "ReadSeconds": 5,
    "Tag": "",
    "UserAgent": "Mozilla/5.0",
    "Metadata": {},
}

# Amazon SES event publishing through SNS, as AWS documents it
# (https://docs.aws.amazon.com/ses/latest/dg/event-publishing-retrieving-sns-examples.html).
SES_MAIL = {
    "timestamp": "2026-11-05T00:40:02.012Z",
    "source": "Todo <no-reply@todo.example>",
    "sourceArn": "arn:aws:ses:us-east-1:123456789012:identity/todo.example",
    "sendingAccountId": "123456789012",
    "messageId": "EXAMPLE7c191be45-e9aedb9a-02f9-4d12-a87d-dd0099a07f8a-000000",
    "destination": [ALICE],
    "headersTruncated": False,
    "headers": [{"name": "Subject", "value": "Reset your password"}],
    "commonHeaders": {"from": ["Todo <no-reply@todo.example>"], "to": [ALICE], "subject": "Reset your password"},
    "tags": {"ses:configuration-set": ["ConfigSet"]},
}
SES_PERMANENT_BOUNCE = {
    "eventType": "Bounce",
    "bounce": {
        "bounceType": "Permanent",
        "bounceSubType": "General",
        "bouncedRecipients": [
            {
                "emailAddress": ALICE,
                "action": "failed",
                "status": "5.1.1",
                "diagnosticCode": "smtp; 550 5.1.1 user unknown",
            }
        ],
        "timestamp": "2026-11-05T00:41:02.669Z",
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "reportingMTA": "dsn; mta.example.com",
    },
    "mail": SES_MAIL,
}
SES_TRANSIENT_BOUNCE = copy.deepcopy(SES_PERMANENT_BOUNCE)
SES_TRANSIENT_BOUNCE["bounce"].update(bounceType="Transient", bounceSubType="MailboxFull")
SES_TRANSIENT_BOUNCE["bounce"]["bouncedRecipients"][0].update(status="4.2.2", diagnosticCode="smtp; 452 4.2.2 full")
SES_COMPLAINT = {
    "eventType": "Complaint",
    "complaint": {
        "feedbackId": "01000157c44f053b-61b59c11-9236-11e6-8f96-7be8aexample-000000",
        "complaintSubType": None,
        "complainedRecipients": [{"emailAddress": ALICE}],
        "timestamp": "2026-11-05T00:41:02.669Z",
        "userAgent": "Mozilla/5.0 (Windows NT 10.0; Win64; x64)",
        "complaintFeedbackType": "abuse",
        "arrivalDate": "2026-11-05T00:41:02.669Z",
    },
    "mail": SES_MAIL,
}
SES_DELIVERY = {
    "eventType": "Delivery",
    "mail": SES_MAIL,
    "delivery": {
        "timestamp": "2026-11-06T00:41:02.669Z",
        "processingTimeMillis": 546,
        "recipients": [ALICE],
        "smtpResponse": "250 2.6.0 Message received",
        "reportingMTA": "mta.example.com",
    },
}


def ses_bounce_of(email_id: str) -> dict:
    """A transient SES bounce of another email (its own SES messageId)."""
    bounce = copy.deepcopy(SES_TRANSIENT_BOUNCE)
    bounce["mail"]["messageId"] = email_id
    return bounce


@pytest.fixture(autouse=True)
def webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    settings.ANYMAIL_ESP = "postmark"  # from_ses switches to Amazon SES for its request


def esp_client(secret: str | None = SECRET) -> Client:
    headers = {}
    if secret is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(secret.encode()).decode()
    return Client(enforce_csrf_checks=True, **headers)


def from_postmark(payload: dict, *, secret: str | None = SECRET, **changes):
    with override_settings(ANYMAIL_ESP="postmark"):
        return esp_client(secret).post(POSTMARK, {**payload, **changes}, content_type="application/json")


def sns_notification(ses_event: dict, *, message_id: str, at: str = RECENT) -> dict:
    return {
        "Type": "Notification",
        "MessageId": message_id,
        "TopicArn": "arn:aws:sns:us-east-1:123456789012:ses-events",
        "Subject": "Amazon SES Email Event Notification",
        "Message": json.dumps(ses_event),
        "Timestamp": at,
        "SignatureVersion": "1",
        "Signature": "EXAMPLEw6JRN...",
        "SigningCertURL": "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-EXAMPLE.pem",
        "UnsubscribeURL": "https://sns.us-east-1.amazonaws.com/?Action=Unsubscribe&SubscriptionArn=EXAMPLE",
    }


def from_ses(
    ses_event: dict, *, message_id: str, secret: str | None = SECRET, header_id: str | None = None, at: str = RECENT
):
    # SNS posts JSON as text/plain, naming the message's type and id in headers too.
    with override_settings(ANYMAIL_ESP="amazon_ses"):
        return esp_client(secret).post(
            SES,
            json.dumps(sns_notification(ses_event, message_id=message_id, at=at)),
            content_type="text/plain; charset=UTF-8",
            HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
            HTTP_X_AMZ_SNS_MESSAGE_ID=header_id or message_id,
        )


def reason_for(address: str = ALICE) -> str | None:
    return UndeliverableAddress.objects.filter(address=address).values_list("reason", flat=True).first()


def signed_in_page(user) -> Client:
    client = Client()
    force_page_login(client, user)
    return client


# --- Postmark -----------------------------------------------------------------------------------------


def test_a_postmark_hard_bounce_marks_the_address_and_the_owner_is_told(user):
    response = from_postmark(POSTMARK_HARD_BOUNCE)
    assert response.status_code == 200
    assert reason_for() == "hard_bounce"
    event = SecurityEvent.objects.get(kind=EventKind.EMAIL_UNDELIVERABLE)
    assert event.user == user and event.detail == {"reason": "hard_bounce"}
    page = signed_in_page(user).get("/accounts/").content.decode()
    assert 'id="undeliverable-email"' in page and "is not getting through" in page
    assert get_me(login(Client()), Client()).json()["email_undeliverable"] == "hard_bounce"


def test_a_complaint_has_its_own_banner_text(user):
    assert from_postmark(POSTMARK_SPAM_COMPLAINT).status_code == 200
    page = signed_in_page(user).get("/accounts/").content.decode()
    assert "was reported as spam, so we send it only security notices and the emails you ask for." in page
    assert "is not getting through" not in page


def test_an_address_nobody_reported_shows_no_banner(user):
    page = signed_in_page(user).get("/accounts/").content.decode()
    assert 'id="undeliverable-email"' not in page
    assert get_me(login(Client()), Client()).json()["email_undeliverable"] is None


def test_postmark_soft_bounces_mark_the_address_only_once_repeated(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 3
    for event_id in (1, 2):
        assert from_postmark(POSTMARK_SOFT_BOUNCE, ID=event_id, MessageID=f"m-{event_id}").status_code == 200
    assert reason_for() is None
    assert from_postmark(POSTMARK_SOFT_BOUNCE, ID=3, MessageID="m-3").status_code == 200
    assert reason_for() == "soft_bounces"


def test_the_same_event_delivered_again_counts_once(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 3
    for _ in range(3):
        assert from_postmark(POSTMARK_SOFT_BOUNCE, ID=7).status_code == 200  # the ESP retried its webhook
    assert reason_for() is None
    assert DeliveryEvent.objects.filter(address=ALICE).count() == 1


def test_soft_bounces_older_than_the_window_do_not_count(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 2
    settings.ACCOUNTS_SOFT_BOUNCE_WINDOW_DAYS = 7
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=1, MessageID="m-1", BouncedAt=hours_ago(8 * 24))
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=2, MessageID="m-2", BouncedAt=hours_ago(2))
    assert reason_for() is None
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=3, MessageID="m-3", BouncedAt=hours_ago(1))
    assert reason_for() == "soft_bounces"


def test_a_delivery_between_soft_bounces_starts_the_count_again(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 2
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=1, MessageID="m-1", BouncedAt=hours_ago(4))
    from_postmark(POSTMARK_DELIVERY, MessageID="m-0", DeliveredAt=hours_ago(3))
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=2, MessageID="m-2", BouncedAt=hours_ago(2))
    assert reason_for() is None
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=3, MessageID="m-3", BouncedAt=hours_ago(1))
    assert reason_for() == "soft_bounces"


def test_a_postmark_spam_complaint_marks_the_address():
    assert from_postmark(POSTMARK_SPAM_COMPLAINT).status_code == 200
    assert reason_for() == "complaint"


def test_a_postmark_reject_marks_the_address():
    assert from_postmark(POSTMARK_HARD_BOUNCE, Type="ManuallyDeactivated", ID=9).status_code == 200
    assert reason_for() == "rejected"


def test_a_delivery_after_a_bounce_clears_it(user):
    from_postmark(POSTMARK_HARD_BOUNCE, BouncedAt=hours_ago(2))
    assert from_postmark(POSTMARK_DELIVERY, DeliveredAt=hours_ago(1)).status_code == 200
    assert reason_for() is None
    cleared = SecurityEvent.objects.get(kind=EventKind.EMAIL_DELIVERABLE_AGAIN)
    assert cleared.user == user and cleared.detail == {"reason": "hard_bounce", "why": "delivered"}


def test_a_delivery_does_not_undo_a_complaint():
    from_postmark(POSTMARK_SPAM_COMPLAINT)
    from_postmark(POSTMARK_DELIVERY)
    assert reason_for() == "complaint"


def test_a_bounce_after_a_complaint_keeps_the_complaint():
    from_postmark(POSTMARK_SPAM_COMPLAINT)
    from_postmark(POSTMARK_HARD_BOUNCE, ID=99)
    assert reason_for() == "complaint"


def test_events_that_change_nothing_are_not_kept():
    assert from_postmark(POSTMARK_OPEN).status_code == 200
    assert from_postmark(POSTMARK_DELIVERY).status_code == 200  # to an address with no bounces
    assert not DeliveryEvent.objects.exists()
    assert reason_for() is None


def test_an_event_for_something_that_is_not_an_address_is_ignored():
    assert from_postmark(POSTMARK_HARD_BOUNCE, Email="not an address").status_code == 200
    assert not DeliveryEvent.objects.exists() and not UndeliverableAddress.objects.exists()


def test_the_address_is_kept_in_its_canonical_form(user):
    from_postmark(POSTMARK_HARD_BOUNCE, Email="  Alice@EXAMPLE.com ")
    assert reason_for(ALICE) == "hard_bounce"


# --- Amazon SES ---------------------------------------------------------------------------------------


def test_an_ses_permanent_bounce_marks_the_address(user):
    assert from_ses(SES_PERMANENT_BOUNCE, message_id="sns-1").status_code == 200
    assert reason_for() == "hard_bounce"
    assert DeliveryEvent.objects.get().description == "Permanent: General"


def test_ses_transient_bounces_mark_the_address_only_once_repeated(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 3
    for n in (1, 2):
        assert from_ses(ses_bounce_of(f"email-{n}"), message_id=f"sns-{n}").status_code == 200
    assert reason_for() is None
    from_ses(ses_bounce_of("email-3"), message_id="sns-3")
    assert reason_for() == "soft_bounces"


def test_the_same_sns_notification_delivered_again_counts_once(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 2
    for _ in range(3):
        assert from_ses(SES_TRANSIENT_BOUNCE, message_id="sns-same").status_code == 200
    assert reason_for() is None and DeliveryEvent.objects.count() == 1


def test_an_ses_complaint_marks_the_address():
    assert from_ses(SES_COMPLAINT, message_id="sns-c").status_code == 200
    assert reason_for() == "complaint"


def test_an_ses_delivery_clears_a_bounce():
    from_ses(SES_PERMANENT_BOUNCE, message_id="sns-1", at=hours_ago(2))
    assert from_ses(SES_DELIVERY, message_id="sns-2", at=hours_ago(1)).status_code == 200
    assert reason_for() is None


def test_an_sns_message_whose_headers_do_not_match_its_body_is_refused():
    response = from_ses(SES_PERMANENT_BOUNCE, message_id="sns-1", header_id="sns-other")
    assert response.status_code == 403 and response.json()["code"] == "webhook_refused"
    assert reason_for() is None


def test_sns_is_asked_for_credentials_before_it_sends_them():
    response = from_ses(SES_PERMANENT_BOUNCE, message_id="sns-1", secret=None)
    assert response.status_code == 401 and response["WWW-Authenticate"].startswith("Basic")
    assert reason_for() is None


# --- Authentication and bad input ---------------------------------------------------------------------


@pytest.mark.parametrize("secret", ["esp-hook:wrong", "", "nobody:" + SECRET.split(":")[1]])
def test_a_webhook_with_wrong_credentials_is_refused_and_changes_nothing(secret):
    response = from_postmark(POSTMARK_HARD_BOUNCE, secret=secret)
    assert response.status_code == 401 and response.json()["code"] == "webhook_refused"
    assert response["WWW-Authenticate"].startswith("Basic")
    assert not DeliveryEvent.objects.exists() and reason_for() is None


def test_a_webhook_without_credentials_is_refused():
    response = from_postmark(POSTMARK_HARD_BOUNCE, secret=None)
    assert response.status_code == 401
    assert reason_for() is None


def test_without_a_webhook_secret_the_webhooks_refuse_everyone(settings):
    settings.ANYMAIL = {key: value for key, value in settings.ANYMAIL.items() if key != "WEBHOOK_SECRET"}
    response = from_postmark(POSTMARK_HARD_BOUNCE, secret="anyone:anything")
    assert response.status_code == 404 and response.json()["code"] == "not_found"
    assert from_ses(SES_PERMANENT_BOUNCE, message_id="sns-1").status_code == 404
    assert reason_for() is None


def test_only_tracking_webhooks_are_served():
    response = esp_client().post("/anymail/postmark/inbound/", {}, content_type="application/json")
    assert response.status_code == 404


def test_a_get_is_not_allowed():
    assert esp_client().get(POSTMARK).status_code == 405


@pytest.mark.parametrize("body", [b"not json", b"[1, 2]", b'"a string"', b"", b'{"RecordType": [1]}'])
def test_a_postmark_payload_that_cannot_be_read_is_a_400(body):
    response = esp_client().post(POSTMARK, body, content_type="application/json")
    assert response.status_code == 400 and response.json()["code"] == "malformed_event"
    assert reason_for() is None


def test_a_postmark_bounce_for_a_recipient_that_is_no_address_is_ignored():
    response = from_postmark(POSTMARK_HARD_BOUNCE, Email=5)
    assert response.status_code == 200
    assert not DeliveryEvent.objects.exists() and reason_for() is None


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        json.dumps({"Type": "Notification", "MessageId": "m1", "Message": "not json", "Timestamp": "x"}),
        json.dumps({"Type": "Notification", "MessageId": "m1", "Message": json.dumps({"eventType": "Bounce"})}),
    ],
)
def test_an_sns_payload_that_cannot_be_read_is_a_400(body, settings):
    settings.ANYMAIL_ESP = "amazon_ses"
    response = esp_client().post(
        SES,
        body,
        content_type="text/plain",
        HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification",
        HTTP_X_AMZ_SNS_MESSAGE_ID="m1",
    )
    assert response.status_code == 400 and response.json()["code"] == "malformed_event"
    assert reason_for() is None


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL; runs in CI's PostgreSQL pass")
@pytest.mark.django_db(transaction=True)
def test_the_same_event_delivered_twice_at_once_is_recorded_once(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 2
    outcomes = run_at_once([lambda: from_postmark(POSTMARK_SOFT_BOUNCE, ID=5).status_code] * 4)
    assert [outcome.value for outcome in outcomes] == [200] * 4
    assert DeliveryEvent.objects.count() == 1 and reason_for() is None


# --- Suppression --------------------------------------------------------------------------------------


def test_notices_to_an_undeliverable_address_are_suppressed_and_recorded(user, password, mailoutbox):
    from_postmark(POSTMARK_HARD_BOUNCE)
    change_password(user=user, current_password=password, new_password=NEW_PASSWORD)
    assert mails_to(mailoutbox, ALICE) == []
    suppressed = OutboundEmail.objects.get(template="password_changed")
    assert suppressed.status == OutboundEmail.Status.SUPPRESSED
    assert suppressed.content_encrypted == "" and "undeliverable (hard_bounce)" in suppressed.last_error


def test_emails_a_person_asks_for_still_go_to_an_undeliverable_address(user, mailoutbox):
    from_postmark(POSTMARK_SPAM_COMPLAINT)
    request_password_reset(email=ALICE)
    [reset] = mails_to(mailoutbox, ALICE)
    assert "/accounts/password/reset/" in reset.body


def test_other_addresses_are_not_affected(make_user, mailoutbox):
    bob = make_user(email="bob@example.com")
    from_postmark(POSTMARK_HARD_BOUNCE)
    change_password(user=bob, current_password=STRONG_PASSWORD, new_password=NEW_PASSWORD)
    assert len(mails_to(mailoutbox, "bob@example.com")) == 1


def test_moving_off_an_undeliverable_address_is_not_held_up_by_its_suppressed_notice(user, password, mailoutbox):
    from_postmark(POSTMARK_HARD_BOUNCE)
    request_email_change(user=user, password=password, new_email="alice.new@example.com")
    [confirm] = mails_to(mailoutbox, "alice.new@example.com")  # sent, though the notice before it was not
    assert "To confirm, open this link" in confirm.body
    assert OutboundEmail.objects.get(to=ALICE).status == OutboundEmail.Status.SUPPRESSED


# --- Support ------------------------------------------------------------------------------------------

MARKS = "/admin/accounts/undeliverableaddress/"


def staff_browser(member) -> Client:
    client = Client()
    force_page_login(client, member)
    return client


@pytest.fixture
def support(make_user):
    member = make_user(email="sam@support.example", is_staff=True)
    member.groups.add(Group.objects.get(name="Support"))
    return member


def test_support_sees_undeliverable_addresses_and_clears_one(support, user):
    from_postmark(POSTMARK_HARD_BOUNCE)
    desk = staff_browser(support)
    listing = desk.get(MARKS)
    assert listing.status_code == 200 and ALICE in listing.content.decode()
    mark = UndeliverableAddress.objects.get()
    response = desk.post(MARKS, {"action": "clear", "_selected_action": [mark.pk]}, follow=True)
    assert response.status_code == 200 and "Email goes to 1 address(es) again." in response.content.decode()
    assert reason_for() is None
    cleared = SecurityEvent.objects.get(kind=EventKind.EMAIL_DELIVERABLE_AGAIN)
    assert cleared.actor == support and cleared.user == user and cleared.detail["why"] == "cleared_by_staff"


def test_support_cannot_change_or_delete_a_mark_directly(support):
    from_postmark(POSTMARK_HARD_BOUNCE)
    desk = staff_browser(support)
    mark = UndeliverableAddress.objects.get()
    assert desk.post(f"{MARKS}{mark.pk}/delete/", {"post": "yes"}).status_code == 403
    assert desk.post(f"{MARKS}add/", {"address": "x@example.com", "reason": "hard_bounce"}).status_code == 403
    assert reason_for() == "hard_bounce"


def test_staff_without_the_permission_cannot_clear(make_user):
    from_postmark(POSTMARK_HARD_BOUNCE)
    viewer = make_user(email="viewer@support.example", is_staff=True)
    from django.contrib.auth.models import Permission

    viewer.user_permissions.add(Permission.objects.get(codename="view_undeliverableaddress"))
    desk = staff_browser(viewer)
    mark = UndeliverableAddress.objects.get()
    desk.post(MARKS, {"action": "clear", "_selected_action": [mark.pk]})
    assert reason_for() == "hard_bounce"
    assert not SecurityEvent.objects.filter(kind=EventKind.EMAIL_DELIVERABLE_AGAIN).exists()


# --- From the security review: classification, ordering, ranks, the gate --------------------------------


@pytest.mark.parametrize("postmark_type", ["SpamNotification", "VirusNotification", "Blocked", "DMARCPolicy"])
def test_postmark_bounces_about_the_message_or_the_sender_say_nothing_about_the_address(postmark_type):
    assert from_postmark(POSTMARK_HARD_BOUNCE, Type=postmark_type, ID=11).status_code == 200
    assert reason_for() is None and not DeliveryEvent.objects.exists()


def test_an_ses_reject_of_the_message_says_nothing_about_the_address():
    reject = {"eventType": "Reject", "mail": SES_MAIL, "reject": {"reason": "Bad content"}}
    assert from_ses(reject, message_id="sns-r").status_code == 200
    assert reason_for() is None


def test_one_email_bounced_again_and_again_is_one_soft_bounce(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 2
    for event_id in (21, 22, 23):  # the ESP's retries of the same email, each its own event
        from_postmark(POSTMARK_SOFT_BOUNCE, ID=event_id, MessageID="same-email")
    assert DeliveryEvent.objects.count() == 3 and reason_for() is None
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=24, MessageID="another-email")
    assert reason_for() == "soft_bounces"


def test_soft_bounces_from_another_esp_are_told_apart_by_its_own_payload(settings):
    from accounts.flows.deliverability import ReportedEvent, record_delivery_event

    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 2

    def brevo(event_id: str, event: str) -> None:
        record_delivery_event(
            event=ReportedEvent(
                esp="brevo",
                event_id=event_id,
                recipient=ALICE,
                event_type="bounced",
                reject_reason="bounced",
                description="",
                occurred_at=None,
                esp_event={"event": event, "email": ALICE},
                message_id=event_id,
            )
        )

    brevo("b1", "soft_bounce")
    assert reason_for() is None
    brevo("b2", "hard_bounce")
    assert reason_for() == "hard_bounce"


def test_a_delivery_older_than_the_bounce_does_not_clear_it():
    from_postmark(POSTMARK_HARD_BOUNCE, BouncedAt=hours_ago(1))
    from_postmark(POSTMARK_DELIVERY, DeliveredAt=hours_ago(3))  # arrived late, happened before
    assert reason_for() == "hard_bounce"


def test_a_second_hard_bounce_moves_the_mark_on_so_an_older_delivery_cannot_clear_it():
    from_postmark(POSTMARK_HARD_BOUNCE, ID=51, BouncedAt=hours_ago(5))
    from_postmark(POSTMARK_HARD_BOUNCE, ID=52, MessageID="m-52", BouncedAt=hours_ago(1))
    from_postmark(POSTMARK_DELIVERY, DeliveredAt=hours_ago(3))  # after the first bounce, before the second
    assert reason_for() == "hard_bounce"


def test_a_report_from_the_future_counts_as_now(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 5
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=31, MessageID="m-31", BouncedAt="2099-01-01T00:00:00Z")
    recorded = DeliveryEvent.objects.get()
    assert recorded.occurred_at <= timezone.now()


def test_a_mark_only_rises(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 2
    from_postmark(POSTMARK_HARD_BOUNCE, ID=41, BouncedAt=hours_ago(5))
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=44, MessageID="m-44", BouncedAt=hours_ago(4))
    from_postmark(POSTMARK_SOFT_BOUNCE, ID=45, MessageID="m-45", BouncedAt=hours_ago(3))
    assert reason_for() == "hard_bounce"  # not downgraded to soft bounces
    from_postmark(POSTMARK_SPAM_COMPLAINT, BouncedAt=hours_ago(2))
    assert reason_for() == "complaint"


def test_a_very_long_event_id_is_kept_as_its_hash():
    from_postmark(POSTMARK_HARD_BOUNCE, ID="9" * 400)
    assert DeliveryEvent.objects.get().event_id.startswith("sha256:")
    from_postmark(POSTMARK_HARD_BOUNCE, ID="9" * 400)
    assert DeliveryEvent.objects.count() == 1


def test_a_stranger_is_refused_before_anything_is_parsed(settings):
    nested = "[" * 100_000 + "]" * 100_000  # would exhaust the parser's recursion
    settings.ANYMAIL_ESP = "amazon_ses"
    stranger = esp_client("someone:else").post(
        SES, nested, content_type="text/plain", HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification"
    )
    assert stranger.status_code == 401
    known = esp_client().post(SES, nested, content_type="text/plain", HTTP_X_AMZ_SNS_MESSAGE_TYPE="Notification")
    assert known.status_code == 400 and known.json()["code"] == "malformed_event"


def test_only_the_configured_esps_webhook_answers(settings):
    settings.ANYMAIL_ESP = "postmark"
    assert from_ses(SES_PERMANENT_BOUNCE, message_id="sns-1").status_code == 200  # from_ses sets amazon_ses
    assert esp_client().post("/anymail/mailgun/tracking/", {}).status_code == 404
    assert esp_client().head(POSTMARK).status_code == 200
    settings.ANYMAIL = {}
    assert esp_client().head(POSTMARK).status_code == 404


def test_a_configured_esp_missing_its_own_webhook_setting_is_a_503_not_a_500(settings):
    settings.ANYMAIL_ESP = "mailgun"  # its webhook needs MAILGUN_WEBHOOK_SIGNING_KEY too
    response = esp_client().post("/anymail/mailgun/tracking/", {})
    assert response.status_code == 503 and response.json()["code"] == "webhook_not_configured"


def test_every_email_is_classified_for_suppression():
    from pathlib import Path

    from accounts.flows.deliverability import REQUESTED_TEMPLATES, SECURITY_NOTICES

    templates = {
        path.name for path in (Path(__file__).parent.parent / "templates" / "emails").iterdir() if path.is_dir()
    }
    # Suppressed to any marked address ("no account here" goes to whoever the address is).
    ordinary = {"account_deleted", "email_change_taken", "email_login_no_account"}
    assert templates >= REQUESTED_TEMPLATES | SECURITY_NOTICES
    assert not REQUESTED_TEMPLATES & SECURITY_NOTICES
    assert templates == REQUESTED_TEMPLATES | SECURITY_NOTICES | ordinary


def test_security_notices_still_go_to_an_address_that_complained(user, password, mailoutbox):
    from_postmark(POSTMARK_SPAM_COMPLAINT)
    change_password(user=user, current_password=password, new_password=NEW_PASSWORD)
    [notice] = mails_to(mailoutbox, ALICE)
    assert "password" in notice.subject.lower()


def test_an_address_change_away_from_one_that_complained_tells_it_first(user, password, mailoutbox):
    from_postmark(POSTMARK_SPAM_COMPLAINT)
    request_email_change(user=user, password=password, new_email="alice.new@example.com")
    assert len(mails_to(mailoutbox, ALICE)) == 1  # the notice with its "not me" link
    assert len(mails_to(mailoutbox, "alice.new@example.com")) == 1


def test_ordinary_email_is_not_sent_to_an_address_that_complained(user, password, mailoutbox):
    from accounts.flows.account_deletion import delete_account

    from_postmark(POSTMARK_SPAM_COMPLAINT)
    delete_account(user=user, password=password)
    assert mails_to(mailoutbox, ALICE) == []
    # What the ESPs said about the address goes with the account.
    assert not UndeliverableAddress.objects.exists() and not DeliveryEvent.objects.exists()


def test_support_clearing_records_a_staff_action_with_where_from(support, user):
    from_postmark(POSTMARK_HARD_BOUNCE)
    desk = Client(REMOTE_ADDR="192.0.2.77")
    force_page_login(desk, support)
    desk.post(MARKS, {"action": "clear", "_selected_action": [UndeliverableAddress.objects.get().pk]})
    action = SecurityEvent.objects.get(kind=EventKind.STAFF_ACTION)
    assert action.actor == support and action.user == user and action.detail["action"] == "clear_undeliverable"
    assert action.ip_address == "192.0.2.77"
    assert SecurityEvent.objects.get(kind=EventKind.EMAIL_DELIVERABLE_AGAIN).ip_address == "192.0.2.77"


@pytest.mark.skipif(connection.vendor != "postgresql", reason="needs PostgreSQL; runs in CI's PostgreSQL pass")
@pytest.mark.django_db(transaction=True)
def test_soft_bounces_of_different_emails_at_once_see_each_other(settings):
    settings.ACCOUNTS_SOFT_BOUNCE_LIMIT = 3
    calls = [
        (lambda n=n: from_postmark(POSTMARK_SOFT_BOUNCE, ID=50 + n, MessageID=f"m-5{n}").status_code) for n in range(3)
    ]
    assert [outcome.value for outcome in run_at_once(calls)] == [200] * 3
    assert reason_for() == "soft_bounces"
