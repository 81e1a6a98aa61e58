"""Account enumeration: sign-in, sign-up, password reset and resend verification answer alike, and work alike,
whether or not an address has an account; their emails leave in the background."""

import re
import threading
import time

import pytest
from django.conf import settings as django_settings
from django.core.mail.backends.base import BaseEmailBackend
from django.test import Client

from accounts.background import wait_for_background_work
from accounts.models import PasswordResetToken, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.pages import CLOCK_HEADERS, without_csrf

pytestmark = pytest.mark.django_db

# Same length as the known addresses, so that even Content-Length cannot differ.
KNOWN = "alice@example.com"
UNKNOWN = "alicx@example.com"
UNVERIFIED = "ulric@example.com"
INACTIVE = "ivana@example.com"
WRONG_PASSWORD = "not the right passphrase"
NEW_PASSWORD = "an entirely new passphrase"
PLACEHOLDER = "ADDRESS@PLACEHOLDER"

# Headers that legitimately differ between two responses: the clock (Date, and the Expires that
# never_cache derives from it); Set-Cookie is compared separately, without the values.
UNCOMPARED_HEADERS = CLOCK_HEADERS | {"set-cookie"}


# --- Comparing answers ---------------------------------------------------------------------------


def comparable(response, entered: str) -> dict:
    """Everything a client sees, with the per-response CSRF token and the echoed input made neutral."""
    body = response.content.decode()
    body = without_csrf(body).replace(entered, PLACEHOLDER)
    headers = {
        name.lower(): value for name, value in response.headers.items() if name.lower() not in UNCOMPARED_HEADERS
    }
    cookies = {
        name: {key: value for key, value in morsel.items() if key != "expires"} | {"empty": morsel.value == ""}
        for name, morsel in response.cookies.items()
    }
    return {"status": response.status_code, "headers": headers, "cookies": cookies, "body": body}


def assert_identical(first, first_input: str, second, second_input: str) -> None:
    assert comparable(first, first_input) == comparable(second, second_input)


# --- Users ---------------------------------------------------------------------------------------


@pytest.fixture
def accounts(make_user):
    """A verified, an unverified and an inactive account (none of them is UNKNOWN)."""
    make_user(email=KNOWN)
    make_user(email=UNVERIFIED, name="Ulric", verified=False)
    make_user(email=INACTIVE, name="Ivana", is_active=False)
    return User.objects.count()


def page_sign_in(email: str, password: str = WRONG_PASSWORD):
    return Client().post("/accounts/login/", {"email": email, "password": password})


def api_sign_in(email: str, password: str = WRONG_PASSWORD):
    return Client().post("/api/auth/login/", {"email": email, "password": password}, content_type="application/json")


def page_sign_up(email: str, password: str = NEW_PASSWORD):
    client = Client()
    response = client.post(
        "/accounts/signup/", {"email": email, "name": "Sam", "password1": password, "password2": password}
    )
    return client, response


def api_sign_up(email: str, password: str = NEW_PASSWORD):
    body = {"email": email, "password": password, "name": "Sam"}
    return Client().post("/api/auth/register/", body, content_type="application/json")


def page_reset(email: str):
    client = Client()
    return client, client.post("/accounts/password/reset/", {"email": email})


def api_reset(email: str):
    return Client().post("/api/auth/password/reset/", {"email": email}, content_type="application/json")


def page_resend(email: str):
    client = Client()
    return client, client.post("/accounts/verify-email/resend/", {"email": email})


def api_resend(email: str):
    return Client().post("/api/auth/email/verify/resend/", {"email": email}, content_type="application/json")


def page_email_login(email: str):
    client = Client()
    return client, client.post("/accounts/login/email/", {"email": email})


def api_email_login(email: str):
    return Client().post("/api/auth/login/email/", {"email": email}, content_type="application/json")


def api_email_code(email: str, code: str = "ABCD-EFGH"):
    body = {"email": email, "code": code}
    return Client().post("/api/auth/login/email/verify/", body, content_type="application/json")


# --- Sign-in -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("email", "password"),
    [(KNOWN, WRONG_PASSWORD), (INACTIVE, WRONG_PASSWORD), (INACTIVE, STRONG_PASSWORD), (UNVERIFIED, WRONG_PASSWORD)],
    ids=["wrong_password", "inactive_wrong_password", "inactive_right_password", "unverified_wrong_password"],
)
def test_sign_in_page_answers_a_known_address_like_an_unknown_one(accounts, email, password):
    known = page_sign_in(email, password)
    unknown = page_sign_in(UNKNOWN, password)
    assert known.status_code == 200
    assert "The email address or password is not correct." in known.content.decode()
    assert_identical(known, email, unknown, UNKNOWN)


@pytest.mark.parametrize(
    ("email", "password"),
    [(KNOWN, WRONG_PASSWORD), (INACTIVE, WRONG_PASSWORD), (INACTIVE, STRONG_PASSWORD), (UNVERIFIED, WRONG_PASSWORD)],
    ids=["wrong_password", "inactive_wrong_password", "inactive_right_password", "unverified_wrong_password"],
)
def test_sign_in_api_answers_a_known_address_like_an_unknown_one(accounts, email, password):
    known = api_sign_in(email, password)
    unknown = api_sign_in(UNKNOWN, password)
    assert known.status_code == 401
    assert known.json()["code"] == "invalid_credentials"
    assert_identical(known, email, unknown, UNKNOWN)


def test_sign_in_with_the_right_password_is_not_the_generic_failure(accounts):
    """The comparison above is able to tell answers apart."""
    right = api_sign_in(KNOWN, STRONG_PASSWORD)
    wrong = api_sign_in(KNOWN, WRONG_PASSWORD)
    assert comparable(right, KNOWN) != comparable(wrong, KNOWN)
    assert right.status_code == 200


# --- Sign-up -------------------------------------------------------------------------------------


@pytest.mark.parametrize("existing", [KNOWN, UNVERIFIED, INACTIVE])
def test_sign_up_page_answers_an_existing_address_like_a_new_one(accounts, existing, mailoutbox):
    known_client, known = page_sign_up(existing)
    unknown_client, unknown = page_sign_up(UNKNOWN)
    assert known.status_code == 302
    assert known["Location"] == "/accounts/signup/done/"
    assert_identical(known, existing, unknown, UNKNOWN)
    assert_identical(known_client.get(known["Location"]), existing, unknown_client.get(unknown["Location"]), UNKNOWN)
    assert User.objects.count() == accounts + 1
    assert sorted(message.to[0] for message in mailoutbox) == sorted([existing, UNKNOWN])


@pytest.mark.parametrize("existing", [KNOWN, UNVERIFIED, INACTIVE])
def test_sign_up_api_answers_an_existing_address_like_a_new_one(accounts, existing, mailoutbox):
    known = api_sign_up(existing)
    unknown = api_sign_up(UNKNOWN)
    assert known.status_code == 202
    assert_identical(known, existing, unknown, UNKNOWN)
    assert User.objects.count() == accounts + 1
    assert len(mailoutbox) == 2


@pytest.mark.parametrize("weak_password", ["short", "password1234", "alice@example.com"])
def test_sign_up_refuses_a_weak_password_alike_for_existing_and_new_addresses(accounts, weak_password, mailoutbox):
    known = api_sign_up(KNOWN, weak_password)
    unknown = api_sign_up(UNKNOWN, weak_password)
    assert known.status_code == 400
    assert_identical(known, KNOWN, unknown, UNKNOWN)
    _, known_page = page_sign_up(KNOWN, weak_password)
    _, unknown_page = page_sign_up(UNKNOWN, weak_password)
    assert known_page.status_code == 200
    assert_identical(known_page, KNOWN, unknown_page, UNKNOWN)
    assert User.objects.count() == accounts
    assert mailoutbox == []


# --- Asking for an emailed link or code: the same answer for every address ---------------------------

PAGE_REQUESTS = {"reset": page_reset, "resend": page_resend, "email_sign_in": page_email_login}
API_REQUESTS = {"reset": api_reset, "resend": api_resend, "email_sign_in": api_email_login}


@pytest.mark.parametrize("existing", [KNOWN, UNVERIFIED, INACTIVE])
@pytest.mark.parametrize("send", PAGE_REQUESTS.values(), ids=list(PAGE_REQUESTS))
def test_a_page_asking_for_an_email_answers_a_known_address_like_an_unknown_one(accounts, send, existing):
    known_client, known = send(existing)
    unknown_client, unknown = send(UNKNOWN)
    assert known.status_code == 302
    assert_identical(known, existing, unknown, UNKNOWN)
    assert_identical(known_client.get(known["Location"]), existing, unknown_client.get(unknown["Location"]), UNKNOWN)


@pytest.mark.parametrize("existing", [KNOWN, UNVERIFIED, INACTIVE])
@pytest.mark.parametrize("send", API_REQUESTS.values(), ids=list(API_REQUESTS))
def test_the_api_asking_for_an_email_answers_a_known_address_like_an_unknown_one(accounts, send, existing):
    known = send(existing)
    unknown = send(UNKNOWN)
    assert known.status_code == 202
    assert_identical(known, existing, unknown, UNKNOWN)


# --- Password reset ------------------------------------------------------------------------------


def test_reset_mails_only_active_accounts(accounts, mailoutbox):
    for email in (KNOWN, UNVERIFIED, INACTIVE, UNKNOWN):
        api_reset(email)
    assert sorted(message.to[0] for message in mailoutbox) == sorted([KNOWN, UNVERIFIED])
    assert PasswordResetToken.objects.count() == 2


# --- Resend verification -------------------------------------------------------------------------


def test_resend_mails_only_active_unverified_accounts(accounts, mailoutbox):
    for email in (KNOWN, UNVERIFIED, INACTIVE, UNKNOWN):
        api_resend(email)
    assert [message.to for message in mailoutbox] == [[UNVERIFIED]]


# --- Sign-in by emailed code --------------------------------------------------------------------


def test_email_sign_in_mails_codes_to_active_accounts_and_says_no_account_to_unknown_ones(accounts, mailoutbox):
    for email in (KNOWN, UNVERIFIED, INACTIVE, UNKNOWN):
        api_email_login(email)
    subjects = {message.to[0]: message.subject for message in mailoutbox}
    assert set(subjects) == {KNOWN, UNVERIFIED, UNKNOWN}
    assert "sign-in code" in subjects[KNOWN] and "sign-in code" in subjects[UNVERIFIED]
    assert subjects[UNKNOWN].startswith("No ")


@pytest.mark.parametrize("existing", [KNOWN, UNVERIFIED, INACTIVE])
def test_a_wrong_code_gets_the_same_answer_and_work_for_every_address(accounts, existing):
    """With a code asked for both, a wrong code does the same statements for an account and for none."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def attempt(email):
        with CaptureQueriesContext(connection) as queries:
            response = api_email_code(email)
        # The audit event names the account, or (for none) the address's keyed hash: its content, not more work.
        shapes = [
            re.sub(r"\bNULL\b", "<n>", statement_shape(q["sql"], email)).replace(
                "<n>, <n>, '', ", "<n>, <n>, '<hash>', "
            )
            for q in queries.captured_queries
        ]
        return response, shapes

    for email in (existing, UNKNOWN):
        assert api_email_login(email).status_code == 202
    known, known_work = attempt(existing)
    unknown, unknown_work = attempt(UNKNOWN)
    assert known.status_code == 400 and known.json()["code"] == "invalid_code"
    assert_identical(known, existing, unknown, UNKNOWN)
    assert known_work == unknown_work
    assert any("UPDATE" in sql and "email_sign_in_codes" in sql for sql in known_work)  # an attempt was spent


def test_a_code_never_asked_for_gets_the_same_answer_as_a_wrong_one(accounts):
    assert api_email_login(KNOWN).status_code == 202
    asked = api_email_code(KNOWN)
    never = api_email_code(UNVERIFIED)
    assert_identical(asked, KNOWN, never, UNVERIFIED)


# --- Rate limits count known and unknown addresses alike ---------------------------------------------


@pytest.mark.parametrize(
    ("send", "allowed"),
    [(api_reset, 3), (api_resend, 3), (api_email_login, 5)],
    ids=["reset", "resend", "email_sign_in"],
)
def test_mail_limits_refuse_known_and_unknown_addresses_at_the_same_request(accounts, send, allowed):
    statuses = {email: [send(email).status_code for _ in range(allowed + 1)] for email in (UNVERIFIED, UNKNOWN)}
    assert statuses[UNVERIFIED] == statuses[UNKNOWN] == [202] * allowed + [429]


def test_sign_in_limit_refuses_known_and_unknown_addresses_at_the_same_attempt(accounts):
    known = [api_sign_in(KNOWN) for _ in range(6)]
    unknown = [api_sign_in(UNKNOWN) for _ in range(6)]
    assert [response.status_code for response in known] == [401] * 5 + [429]
    assert [response.status_code for response in unknown] == [401] * 5 + [429]
    # Retry-After depends on where each address's counting window starts (django-ratelimit offsets
    # windows by a hash of the key), not on whether the address has an account.
    for response in (known[-1], unknown[-1]):
        assert 1 <= int(response["Retry-After"]) <= 300
        del response["Retry-After"]
    assert_identical(known[-1], KNOWN, unknown[-1], UNKNOWN)


# --- The same hashing work -----------------------------------------------------------------------


@pytest.fixture
def hashes(hash_counter, accounts):
    """hashes(request) -> how many passwords the request hashed or checked."""

    def count(request) -> int:
        hash_counter.calls = 0
        request()
        return hash_counter.calls

    return count


@pytest.mark.parametrize("via", [page_sign_in, api_sign_in], ids=["page", "api"])
def test_sign_in_hashes_once_for_every_failure(hashes, via):
    counts = {
        "unknown": hashes(lambda: via(UNKNOWN)),
        "wrong_password": hashes(lambda: via(KNOWN)),
        "inactive": hashes(lambda: via(INACTIVE)),
        "inactive_right_password": hashes(lambda: via(INACTIVE, STRONG_PASSWORD)),
        "unverified_wrong_password": hashes(lambda: via(UNVERIFIED)),
    }
    assert counts == dict.fromkeys(counts, 1)


@pytest.mark.parametrize("via", [page_sign_in, api_sign_in], ids=["page", "api"])
def test_sign_in_hashes_nothing_for_input_that_is_not_an_address(hashes, via):
    assert hashes(lambda: via("not an address")) == 0


@pytest.mark.parametrize("via", [page_sign_up, api_sign_up], ids=["page", "api"])
def test_sign_up_hashes_alike_for_existing_and_new_addresses(hashes, via):
    existing = hashes(lambda: via(KNOWN))
    new = hashes(lambda: via(UNKNOWN))
    inactive = hashes(lambda: via(INACTIVE))
    assert existing == new == inactive == 1


@pytest.mark.parametrize(
    "via",
    [page_reset, api_reset, page_resend, api_resend],
    ids=["reset_page", "reset_api", "resend_page", "resend_api"],
)
def test_reset_and_resend_hash_nothing(hashes, via):
    counts = [hashes(lambda email=email: via(email)) for email in (KNOWN, UNVERIFIED, INACTIVE, UNKNOWN)]
    assert counts == [0, 0, 0, 0]


# --- Emails leave after the answer -----------------------------------------------------------------


BLOCK_SECONDS = 10


class BlockingEmailBackend(BaseEmailBackend):
    """Holds every send until the test releases it (a very slow email provider)."""

    release = threading.Event()
    started = threading.Event()
    delivered: list = []

    def send_messages(self, email_messages):
        BlockingEmailBackend.started.set()
        BlockingEmailBackend.release.wait(timeout=BLOCK_SECONDS)
        BlockingEmailBackend.delivered.extend(email_messages)
        return len(email_messages)


@pytest.fixture
def slow_mail(settings, accounts):
    settings.ACCOUNTS_EMAIL_IN_BACKGROUND = True
    settings.EMAIL_BACKEND = f"{__name__}.BlockingEmailBackend"
    BlockingEmailBackend.release.clear()
    BlockingEmailBackend.started.clear()
    BlockingEmailBackend.delivered.clear()
    yield BlockingEmailBackend
    BlockingEmailBackend.release.set()
    wait_for_background_work()


def answer_of(result):
    return result[1] if isinstance(result, tuple) else result


BACKGROUND_CASES = [
    (lambda: page_sign_up(KNOWN), 302, KNOWN),
    (lambda: page_sign_up(UNKNOWN), 302, UNKNOWN),
    (lambda: api_sign_up(KNOWN), 202, KNOWN),
    (lambda: api_sign_up(UNKNOWN), 202, UNKNOWN),
    (lambda: page_reset(KNOWN), 302, KNOWN),
    (lambda: api_reset(KNOWN), 202, KNOWN),
    (lambda: page_resend(UNVERIFIED), 302, UNVERIFIED),
    (lambda: api_resend(UNVERIFIED), 202, UNVERIFIED),
    (lambda: page_email_login(KNOWN), 302, KNOWN),
    (lambda: api_email_login(KNOWN), 202, KNOWN),
    (lambda: api_email_login(UNKNOWN), 202, UNKNOWN),
]
BACKGROUND_IDS = [
    "sign_up_page_existing",
    "sign_up_page_new",
    "sign_up_api_existing",
    "sign_up_api_new",
    "reset_page",
    "reset_api",
    "resend_page",
    "resend_api",
    "email_sign_in_page",
    "email_sign_in_api",
    "email_sign_in_api_no_account",
]


# The work after the answer runs on another thread, with its own database
# connection: it must see committed rows, as in production.
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("request_", "status", "recipient"), BACKGROUND_CASES, ids=BACKGROUND_IDS)
def test_answer_does_not_wait_for_the_email(slow_mail, request_, status, recipient):
    """The database queue (production): the account's work runs after the answer and enqueues
    the email; the worker sends it, so the provider's speed never reaches an answer."""
    from django_tasks_db.models import DBTaskResult

    from accounts.models import OutboundEmail
    from accounts.outbox import deliver_due_emails

    started = time.perf_counter()
    response = answer_of(request_())
    elapsed = time.perf_counter() - started
    assert response.status_code == status
    assert elapsed < BLOCK_SECONDS / 2
    wait_for_background_work()
    assert not slow_mail.started.is_set(), "the email was sent by the web process"
    [email] = OutboundEmail.objects.filter(to=recipient)
    assert email.status == OutboundEmail.Status.QUEUED
    tasks = DBTaskResult.objects.filter(task_path="accounts.outbox.deliver_email")
    assert [task.args_kwargs["args"] for task in tasks] == [[str(email.pk)]]  # for the worker, nothing secret

    slow_mail.release.set()
    assert deliver_due_emails() == 1  # what the worker does
    assert [message.to for message in slow_mail.delivered] == [[recipient]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize(("request_", "status", "recipient"), BACKGROUND_CASES, ids=BACKGROUND_IDS)
def test_sent_in_process_the_answer_still_does_not_wait_for_the_email(slow_mail, settings, request_, status, recipient):
    """ACCOUNTS_EMAIL_QUEUE=immediate (local development): sent on a thread of this process, after the answer."""
    settings.ACCOUNTS_EMAIL_QUEUE = "immediate"
    started = time.perf_counter()
    response = answer_of(request_())
    elapsed = time.perf_counter() - started
    assert response.status_code == status
    assert slow_mail.delivered == [], "the email was sent before the answer"
    assert elapsed < BLOCK_SECONDS / 2
    assert slow_mail.started.wait(timeout=5), "the email was never handed to the backend"
    assert slow_mail.delivered == []

    slow_mail.release.set()
    wait_for_background_work()
    assert [message.to for message in slow_mail.delivered] == [[recipient]]


@pytest.mark.django_db(transaction=True)
def test_unknown_addresses_queue_no_email_in_the_background(slow_mail):
    from accounts.models import OutboundEmail

    for request_ in (
        lambda: page_reset(UNKNOWN),
        lambda: api_reset(UNKNOWN),
        lambda: api_resend(UNKNOWN),
        lambda: api_resend(KNOWN),
    ):
        assert answer_of(request_()).status_code in {202, 302}
    slow_mail.release.set()
    wait_for_background_work()
    assert not OutboundEmail.objects.exists()
    assert not slow_mail.started.is_set()
    assert slow_mail.delivered == []


@pytest.mark.django_db(transaction=True)
def test_email_is_sent_during_the_request_when_not_in_the_background(settings, accounts):
    """In process and not in the background, the request itself waits for the provider."""
    settings.ACCOUNTS_EMAIL_QUEUE = "immediate"
    settings.ACCOUNTS_EMAIL_IN_BACKGROUND = False
    settings.EMAIL_BACKEND = f"{__name__}.BlockingEmailBackend"
    BlockingEmailBackend.delivered.clear()
    BlockingEmailBackend.release.set()  # do not actually block
    response = api_reset(KNOWN)
    assert response.status_code == 202
    assert [message.to for message in BlockingEmailBackend.delivered] == [[KNOWN]]
    assert django_settings.ACCOUNTS_EMAIL_IN_BACKGROUND is False


# --- The same work before the answer -------------------------------------------------------------------------


@pytest.fixture
def queued(settings, monkeypatch):
    """Work after the answer is queued, never run: what a request does before answering is all that runs."""
    from concurrent.futures import Future

    from accounts import background

    settings.ACCOUNTS_EMAIL_IN_BACKGROUND = True
    jobs: list[str] = []

    class RecordingExecutor:
        def submit(self, function, job, name):
            jobs.append(name)
            future = Future()
            future.set_result(None)
            return future

    monkeypatch.setattr(background, "_executor_instance", RecordingExecutor)
    return jobs


def work_before_the_answer(queued, request_, entered: str) -> dict:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    queued.clear()
    with CaptureQueriesContext(connection) as queries:
        response = answer_of(request_())
    assert response.status_code in {202, 302}
    return {
        "sql": [statement_shape(query["sql"], entered) for query in queries.captured_queries],
        "queued": list(queued),
    }


def statement_shape(sql: str, entered: str) -> str:
    """The statement without what legitimately differs between two requests: the clock, savepoint names, ids."""
    sql = sql.replace(entered, PLACEHOLDER)
    sql = re.sub(r"'\d{4}-\d\d-\d\d[ T][\d:.+]+'", "'<time>'", sql)
    sql = re.sub(r'"s\d+_x\d+"', '"<savepoint>"', sql)
    # Keyed hashes of the address (a limit's or a code's key) and a page session's key and signed data.
    sql = re.sub(r"'[0-9a-f]{64}'", "'<hash>'", sql)
    sql = re.sub(r"'[A-Za-z0-9_:.-]{32,}'", "'<opaque>'", sql)
    return re.sub(r"\b\d+\b", "<n>", sql)


SAME_WORK_CASES = {
    "reset_page": (page_reset, KNOWN),
    "reset_api": (api_reset, KNOWN),
    "reset_api_inactive": (api_reset, INACTIVE),
    "resend_page": (page_resend, UNVERIFIED),
    "resend_api": (api_resend, UNVERIFIED),
    "resend_api_verified": (api_resend, KNOWN),
    "sign_up_page": (lambda email: page_sign_up(email), KNOWN),
    "sign_up_api": (lambda email: api_sign_up(email), KNOWN),
    "sign_up_api_unverified": (lambda email: api_sign_up(email), UNVERIFIED),
    "email_sign_in_page": (page_email_login, KNOWN),
    "email_sign_in_api": (api_email_login, KNOWN),
    "email_sign_in_api_inactive": (api_email_login, INACTIVE),
}


@pytest.mark.parametrize(("send", "known"), SAME_WORK_CASES.values(), ids=list(SAME_WORK_CASES))
def test_known_and_unknown_addresses_do_the_same_work_before_the_answer(accounts, queued, send, known):
    """Statement for statement: an account's rows are read and written only after the answer."""
    for_known = work_before_the_answer(queued, lambda: send(known), known)
    for_unknown = work_before_the_answer(queued, lambda: send(UNKNOWN), UNKNOWN)
    assert for_known == for_unknown
    assert len(for_known["queued"]) == 1  # everything that depends on the account is in that one job
    assert not any("accounts_user" in sql for sql in for_known["sql"])


def test_an_email_change_does_the_same_work_for_a_taken_and_a_free_address(accounts, queued):
    from tests.support.api import bearer, login

    client = Client()
    access = login(client, KNOWN)

    def change(new_email):
        body = {"new_email": new_email, "password": STRONG_PASSWORD}
        return client.post("/api/auth/email/change/", body, content_type="application/json", **bearer(access))

    change("warm-up@example.com")  # the session's state is cached from now on, for both
    taken = work_before_the_answer(queued, lambda: change(UNVERIFIED), UNVERIFIED)
    free = work_before_the_answer(queued, lambda: change(UNKNOWN), UNKNOWN)
    assert taken == free
    assert taken["queued"] == ["email change"]


def test_work_handed_over_during_a_request_starts_only_once_the_answer_is_sent(queued):
    from django.core.signals import request_finished, request_started

    from accounts.background import after_answer

    request_started.send(sender=None)
    after_answer(lambda: None, name="first")
    after_answer(lambda: None, name="second")
    assert queued == []  # still answering
    request_finished.send(sender=None)
    assert queued == ["first", "second"]
    after_answer(lambda: None, name="outside a request")
    assert queued == ["first", "second", "outside a request"]  # nothing to wait for: at once
