"""Passkeys (WebAuthn) through the JSON API: registering, managing, signing in, second step, re-authentication."""

import functools
import json
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import cbor2
import pytest
import webauthn
from django.conf import settings as django_settings
from django.db import connection
from django.test import Client
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

from accounts.access_tokens import verified_access_token
from accounts.models import DeviceSession, Passkey, PendingSignIn, RecoveryCode, SecurityEvent, User, WebAuthnChallenge
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import (
    access_token_for,
    api_client,
    assert_api_error,
    bearer,
    csrf_header,
    delete_json,
    login_response,
    patch_json,
    post_json,
    refresh_cookie_value,
    session_of,
)
from tests.support.mail import mails_to
from tests.support.mfa import enable_totp, totp_code
from tests.support.passkeys import (
    MFA_PASSKEY_OPTIONS_URL,
    PASSKEYS_URL,
    REAUTHENTICATE_OPTIONS_URL,
    REAUTHENTICATE_URL,
    REGISTER_OPTIONS_URL,
    REGISTER_URL,
    SIGN_IN_OPTIONS_URL,
    SIGN_IN_URL,
    VERIFY_URL,
)
from tests.support.races import run_at_once
from tests.support.webauthn import SoftAuthenticator, SoftCredential

pytestmark = pytest.mark.django_db

START = datetime(2033, 7, 1, 9, 0, 5, tzinfo=UTC)

ALICE = "alice@example.com"
BOB = "bob@example.com"
RP_ID = "localhost"
ORIGIN = "http://localhost:8000"

MFA_URL = "/api/auth/mfa/"

PENDING_COOKIE = "todo_mfa_pending"
PAST_THE_WINDOW = timedelta(minutes=5, seconds=1)
PASSKEY_BODY_KEYS = {"id", "name", "created_at", "last_used_at", "synced", "backed_up"}
REFUSALS = {"passkey_refused", "passkey_unknown", "passkey_cloned", "passkey_challenge_invalid", "invalid_input"}


# --- Fixtures and helpers -------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _stopped_clock(clock):
    return clock


@pytest.fixture
def long_access_tokens(settings):
    """Access tokens outlive a time travel past the re-authentication window."""
    settings.JWT_ACCESS_TOKEN_LIFETIME = 3600


def authenticator(**knobs) -> SoftAuthenticator:
    return SoftAuthenticator(rp_id=RP_ID, origin=ORIGIN, **knobs)


def detail_url(passkey_id) -> str:
    return f"{PASSKEYS_URL}{passkey_id}/"


def registration_options(access: str, **extra):
    return post_json(api_client(), REGISTER_OPTIONS_URL, **bearer(access), **extra)


def options_for_registration(access: str) -> dict:
    response = registration_options(access)
    assert response.status_code == 200, response.content
    return response.json()


def post_registration(access: str, credential, name="My laptop"):
    return post_json(api_client(), REGISTER_URL, {"credential": credential, "name": name}, **bearer(access))


def register(access: str, key: SoftAuthenticator, name: str = "My laptop", **create_knobs):
    """Options, the authenticator's answer, and the registration's response (whatever it is)."""
    credential = key.create(options_for_registration(access), **create_knobs)
    return post_registration(access, credential, name)


@dataclass
class PasskeyAccount:
    """An account with one passkey, registered through the API on a fresh session ``access``."""

    user: User
    key: SoftAuthenticator
    passkey: Passkey
    access: str
    body: dict

    @property
    def credential(self) -> SoftCredential:
        return self.key.credentials[-1]


def add_passkey(user: User, key: SoftAuthenticator | None = None, *, access: str | None = None) -> PasskeyAccount:
    key = key or authenticator()
    access = access or access_token_for(user)
    response = register(access, key)
    assert response.status_code == 201, response.content
    body = response.json()
    return PasskeyAccount(user, key, Passkey.objects.get(pk=body["id"]), access, body)


@pytest.fixture
def alice(user) -> PasskeyAccount:
    return add_passkey(user)


@pytest.fixture
def bob(make_user) -> PasskeyAccount:
    return add_passkey(make_user(email=BOB, name="Bob"))


def sign_in_options(client: Client | None = None) -> dict:
    response = post_json(client or api_client(), SIGN_IN_OPTIONS_URL)
    assert response.status_code == 200, response.content
    return response.json()


def post_sign_in(credential, client: Client | None = None):
    return post_json(client or api_client(), SIGN_IN_URL, {"credential": credential})


def sign_in(key: SoftAuthenticator, client: Client | None = None, **get_knobs):
    """A passkey sign-in: fresh options, the authenticator's assertion, the response."""
    client = client or api_client()
    return post_sign_in(key.get(sign_in_options(client), **get_knobs), client)


def signed_in_access(key: SoftAuthenticator) -> str:
    response = sign_in(key)
    assert response.status_code == 200, response.content
    return response.json()["access"]


def pending_client(email: str = ALICE) -> Client:
    """A client past the password step of an account with a second factor (the pending cookie)."""
    client = api_client()
    response = login_response(client, email, STRONG_PASSWORD)
    assert response.status_code == 202, response.content
    assert client.cookies[PENDING_COOKIE].value
    return client


def second_step_options(client: Client) -> dict:
    response = post_json(client, MFA_PASSKEY_OPTIONS_URL, **csrf_header(client))
    assert response.status_code == 200, response.content
    return response.json()


def verify(client: Client, data: dict):
    return post_json(client, VERIFY_URL, data, **csrf_header(client))


def reauthentication_options(access: str):
    return post_json(api_client(), REAUTHENTICATE_OPTIONS_URL, **bearer(access))


def reauthenticate(access: str, **data):
    return post_json(api_client(), REAUTHENTICATE_URL, data, **bearer(access))


def amr_of(access: str) -> list[str]:
    return list(verified_access_token(access)["amr"])


def events(kind: str, user: User | None = None):
    found = SecurityEvent.objects.filter(kind=kind)
    return found.filter(user=user) if user is not None else found


def refused_events(reason: str, user: User | None = None):
    return events(SecurityEvent.Kind.PASSKEY_REFUSED, user).filter(detail__reason=reason)


def mfa_status(access: str) -> dict:
    response = api_client().get(MFA_URL, **bearer(access))
    assert response.status_code == 200, response.content
    return response.json()


def second_factor_token(user: User) -> str:
    """A fresh device session that proved the password and a TOTP code (as a full sign-in leaves it)."""
    from accounts.flows.device_sessions import start_device_session

    return start_device_session(
        user=user, ip_address="127.0.0.1", user_agent="pytest", amr=["pwd", "otp", "mfa"], second_factor=True
    ).access_token


def b64(data: bytes) -> str:
    return bytes_to_base64url(data)


def with_response(credential: dict, **fields) -> dict:
    """``credential`` with some of its ``response`` fields replaced."""
    return {**credential, "response": {**credential["response"], **fields}}


def assert_refused(response, status: int, code: str) -> None:
    """A refused passkey: the error (400s name the credential field) and no session for anyone."""
    assert_api_error(response, status, code, fields={"credential"} if status == 400 else None)
    assert "access" not in response.json()
    assert django_settings.ACCOUNTS_REFRESH_COOKIE_NAME not in response.cookies


# --- Registration: options ------------------------------------------------------------------------


def test_registration_options_ask_for_a_discoverable_credential_with_user_verification(user):
    options = options_for_registration(access_token_for(user))

    assert options["rp"]["id"] == RP_ID
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    assert options["user"]["name"] == ALICE
    assert len(base64url_to_bytes(options["user"]["id"])) == 32
    assert len(base64url_to_bytes(options["challenge"])) == 32
    assert options["excludeCredentials"] == []
    assert -7 in [param["alg"] for param in options["pubKeyCredParams"]]
    assert options["timeout"] == django_settings.WEBAUTHN_CHALLENGE_LIFETIME * 1000
    # Only the challenge's hash is kept.
    (challenge,) = WebAuthnChallenge.objects.filter(user=user)
    assert challenge.purpose == "register"
    assert options["challenge"] not in challenge.challenge_hash


def test_the_relying_party_comes_from_settings_not_from_the_host_header(user):
    options = registration_options(access_token_for(user), HTTP_HOST="127.0.0.1").json()
    assert options["rp"]["id"] == RP_ID
    response = api_client().post(SIGN_IN_OPTIONS_URL, content_type="application/json", HTTP_HOST="127.0.0.1")
    assert response.json()["rpId"] == RP_ID


def test_registration_options_exclude_the_existing_passkeys_and_keep_the_user_handle(alice):
    options = options_for_registration(alice.access)

    assert [entry["id"] for entry in options["excludeCredentials"]] == [b64(alice.credential.credential_id)]
    assert base64url_to_bytes(options["user"]["id"]) == alice.credential.user_handle
    assert bytes(alice.passkey.user_handle) == alice.credential.user_handle
    # The same authenticator refuses to make a second passkey for the account, as a browser does.
    with pytest.raises(ValueError, match="InvalidStateError"):
        alice.key.create(options)


def test_a_second_passkey_gets_the_same_user_handle(alice):
    second = add_passkey(alice.user, access=alice.access)
    assert bytes(second.passkey.user_handle) == bytes(alice.passkey.user_handle)
    assert second.credential.user_handle == alice.credential.user_handle


# --- Registration: success ------------------------------------------------------------------------


def test_the_first_passkey_comes_with_ten_recovery_codes_and_turns_two_factor_on(user, clock, mailoutbox):
    access = access_token_for(user)
    assert mfa_status(access)["enabled"] is False

    response = register(access, authenticator(), name="  Work   laptop ")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == PASSKEY_BODY_KEYS | {"recovery_codes"}
    assert body["name"] == "Work laptop"
    assert body["synced"] is False and body["backed_up"] is False
    assert body["last_used_at"] is None
    assert datetime.fromisoformat(body["created_at"]) == clock.now()
    assert len(body["recovery_codes"]) == 10 == len(set(body["recovery_codes"]))
    assert mfa_status(access) == {"enabled": True, "totp_enabled": False, "passkeys": 1, "recovery_codes_remaining": 10}
    listed = api_client().get(PASSKEYS_URL, **bearer(access)).json()
    assert listed == [{key: body[key] for key in PASSKEY_BODY_KEYS}]


def test_a_second_passkey_comes_without_recovery_codes(alice):
    response = register(alice.access, authenticator(), name="Phone")

    assert response.status_code == 201, response.content
    assert set(response.json()) == PASSKEY_BODY_KEYS
    assert RecoveryCode.objects.filter(user=alice.user).count() == 10
    assert [entry["name"] for entry in api_client().get(PASSKEYS_URL, **bearer(alice.access)).json()] == [
        "My laptop",
        "Phone",
    ]


def test_registering_emails_the_address_and_writes_the_audit_events(user, mailoutbox):
    added = add_passkey(user)

    (mail,) = mails_to(mailoutbox, ALICE)
    assert "A passkey was added" in mail.subject
    assert '"My laptop"' in mail.body
    (event,) = events(SecurityEvent.Kind.PASSKEY_ADDED, user)
    assert event.detail["passkey"] == str(added.passkey.pk)
    assert event.detail["name"] == "My laptop"
    assert event.detail["synced"] is False
    (enabled,) = events(SecurityEvent.Kind.MFA_ENABLED, user)
    assert enabled.detail["method"] == "passkey"
    add_passkey(user, access=added.access)
    assert events(SecurityEvent.Kind.PASSKEY_ADDED, user).count() == 2
    assert events(SecurityEvent.Kind.MFA_ENABLED, user).count() == 1


def test_the_stored_passkey_holds_only_public_material(alice):
    row = alice.passkey
    credential = alice.credential
    assert bytes(row.credential_id) == credential.credential_id
    cose_key = cbor2.loads(bytes(row.public_key))
    assert set(cose_key) == {1, 3, -1, -2, -3}  # no -4 (the private scalar)
    public = credential.private_key.public_key().public_numbers()
    assert cose_key[-2] == public.x.to_bytes(32, "big") and cose_key[-3] == public.y.to_bytes(32, "big")
    private_scalar = credential.private_key.private_numbers().private_value.to_bytes(32, "big")
    row.refresh_from_db()
    for field in Passkey._meta.concrete_fields:
        value = getattr(row, field.attname)
        stored = bytes(value) if isinstance(value, bytes | memoryview) else str(value).encode()
        assert private_scalar not in stored and private_scalar.hex().encode() not in stored, field.name
    assert row.sign_count == 0
    assert row.backup_eligible is False and row.backed_up is False
    assert row.transports == ["internal"]
    assert row.aaguid == "00000000-0000-0000-0000-000000000000"


def test_a_synced_authenticator_registers_a_synced_passkey(user):
    synced = add_passkey(user, authenticator(backup_eligible=True, backed_up=True))

    assert synced.body["synced"] is True and synced.body["backed_up"] is True
    assert synced.passkey.backup_eligible is True and synced.passkey.backed_up is True
    assert events(SecurityEvent.Kind.PASSKEY_ADDED, user).get().detail["synced"] is True


def test_registering_makes_the_session_count_as_two_factor(user):
    access = access_token_for(user)
    assert session_of(access).second_factor_at is None
    add_passkey(user, access=access)
    session = session_of(access)
    assert session.second_factor_at is not None
    assert "hwk" in session.amr and "mfa" in session.amr


def test_with_totp_on_a_recent_code_lets_a_first_passkey_in_without_new_recovery_codes(user):
    _, codes = enable_totp(user, recovery_codes=True)
    response = register(second_factor_token(user), authenticator())

    assert response.status_code == 201, response.content
    assert "recovery_codes" not in response.json()
    assert RecoveryCode.objects.filter(user=user).count() == len(codes) == 10
    assert not events(SecurityEvent.Kind.MFA_ENABLED, user).exists()


# --- Registration: refused ------------------------------------------------------------------------


def test_registration_on_a_stale_session_needs_reauthentication(long_access_tokens, user, clock):
    access = access_token_for(user)
    options = options_for_registration(access)
    clock.advance(PAST_THE_WINDOW)

    assert_api_error(registration_options(access), 403, "reauthentication_required")
    assert_api_error(post_registration(access, authenticator().create(options)), 403, "reauthentication_required")
    assert not Passkey.objects.exists()


def test_with_totp_on_registration_needs_a_recent_second_factor(user):
    enable_totp(user)
    access = access_token_for(user)  # a fresh sign-in, with the password only

    assert_api_error(registration_options(access), 403, "reauthentication_required")
    assert not WebAuthnChallenge.objects.exists()


def test_an_unverified_address_cannot_add_a_passkey(make_user):
    carol = make_user(email="carol@example.com", verified=False)
    assert_api_error(registration_options(access_token_for(carol)), 403, "email_not_verified")
    assert not WebAuthnChallenge.objects.exists()


def test_a_registration_from_another_origin_is_refused_and_logged(user):
    response = register(access_token_for(user), authenticator(), origin="https://evil.example")

    assert_refused(response, 401, "passkey_refused")
    assert not Passkey.objects.exists()
    (event,) = refused_events("passkey_refused", user)
    assert event.detail["purpose"] == "register"
    assert not RecoveryCode.objects.filter(user=user).exists()


def test_a_registration_for_another_relying_party_is_refused(user):
    response = register(access_token_for(user), authenticator(), rp_id="evil.example")
    assert_refused(response, 401, "passkey_refused")
    assert not Passkey.objects.exists()


def test_a_registration_without_user_verification_is_refused(user):
    response = register(access_token_for(user), authenticator(), user_verified=False)
    assert_refused(response, 401, "passkey_refused")
    assert not Passkey.objects.exists()
    assert refused_events("passkey_refused", user).exists()


def test_the_same_registration_posted_twice_is_refused_the_second_time(user):
    access = access_token_for(user)
    credential = authenticator().create(options_for_registration(access))

    assert post_registration(access, credential).status_code == 201
    assert_refused(post_registration(access, credential), 400, "passkey_challenge_invalid")
    assert Passkey.objects.count() == 1


def test_a_refused_registration_uses_its_challenge_up(user):
    access = access_token_for(user)
    options = options_for_registration(access)
    key = authenticator()
    assert_refused(
        post_registration(access, key.create(options, origin="https://evil.example")), 401, "passkey_refused"
    )
    assert_refused(post_registration(access, key.create(options)), 400, "passkey_challenge_invalid")
    assert not Passkey.objects.exists()


def test_an_expired_registration_challenge_is_refused(user, clock, settings):
    settings.WEBAUTHN_CHALLENGE_LIFETIME = 60
    access = access_token_for(user)
    credential = authenticator().create(options_for_registration(access))
    clock.advance(timedelta(seconds=61))

    assert_refused(post_registration(access, credential), 400, "passkey_challenge_invalid")
    assert not Passkey.objects.exists()
    assert refused_events("passkey_challenge_invalid", user).exists()


def test_a_registration_challenge_is_fine_until_it_expires(user, clock, settings):
    settings.WEBAUTHN_CHALLENGE_LIFETIME = 60
    access = access_token_for(user)
    credential = authenticator().create(options_for_registration(access))
    clock.advance(timedelta(seconds=59))
    assert post_registration(access, credential).status_code == 201


def test_alice_cannot_answer_bobs_registration_options(user, make_user):
    bob_user = make_user(email=BOB, name="Bob")
    bobs_options = options_for_registration(access_token_for(bob_user))
    alice_access = access_token_for(user)

    response = post_registration(alice_access, authenticator().create(bobs_options))

    assert_refused(response, 400, "passkey_challenge_invalid")
    assert not Passkey.objects.exists()
    # Bob's challenge is still his to use.
    assert WebAuthnChallenge.objects.get(user=bob_user).used_at is None


# Names the passkey rule refuses (one line of 1 to 64 printable characters, as display names are).
NOT_A_PASSKEY_NAME = {
    "65 characters": "x" * 65,
    "65 after collapsing spaces": "x" * 33 + "   " + "x" * 31,
    "bell": "tab\x07bell",
    "escape": "colour\x1b[31m",
    "delete": "del\x7f",
    "C1 control (CSI)": "Laptop\x9b31m",
    "right-to-left override": "Laptop\u202egnp.exe",
    "left-to-right isolate": "Laptop\u2066x",
    "right-to-left mark": "Laptop\u200f",
    "line separator": "line\u2028sep",
    "line break": "Work\nlaptop",
}


@pytest.mark.parametrize("name", NOT_A_PASSKEY_NAME.values(), ids=NOT_A_PASSKEY_NAME.keys())
def test_invalid_passkey_names_are_refused(user, name, mailoutbox):
    access = access_token_for(user)
    response = register(access, authenticator(), name=name)
    assert_api_error(response, 400, "invalid_passkey_name", fields={"name"}, exactly=True)
    assert not Passkey.objects.exists()
    assert mailoutbox == []


@pytest.mark.parametrize("name", ["", "   ", "bad\x00name"], ids=["empty", "blank", "NUL"])
def test_empty_names_and_nul_are_refused_by_the_framework_first(user, name):
    """DRF refuses these itself (as it does for display names), with its own code, about ``name``."""
    response = register(access_token_for(user), authenticator(), name=name)
    assert_api_error(response, 400, "invalid_input", fields={"name"}, exactly=True)
    assert not Passkey.objects.exists()


@pytest.mark.parametrize("name", ["Zoë's YubiKey 5C", "محمد\u200cرضا", "👨\u200d💻 work", "Work   laptop "])
def test_names_of_real_people_are_kept(user, name):
    response = register(access_token_for(user), authenticator(), name=name)
    assert response.status_code == 201, response.content
    assert response.json()["name"] == " ".join(name.split())


def test_transports_that_are_not_known_are_dropped(user):
    access = access_token_for(user)
    credential = authenticator().create(options_for_registration(access))
    credential = with_response(credential, transports=[1, None, {"a": []}, "usb", "carrier-pigeon"])
    assert post_registration(access, credential).status_code == 201
    assert Passkey.objects.get().transports == ["usb"]


def test_a_name_of_64_characters_is_fine(user):
    response = register(access_token_for(user), authenticator(), name="y" * 64)
    assert response.status_code == 201 and response.json()["name"] == "y" * 64


@pytest.mark.parametrize("name", [None, 5, ["Laptop"], {"name": "Laptop"}, "z" * 257])
def test_a_name_that_is_not_a_short_string_is_invalid_input(user, name):
    response = register(access_token_for(user), authenticator(), name=name)
    assert_api_error(response, 400, "invalid_input", fields={"name"})
    assert not Passkey.objects.exists()


def test_the_passkey_limit_refuses_new_options(alice, settings):
    settings.WEBAUTHN_MAX_PASSKEYS = 1
    assert_api_error(registration_options(alice.access), 400, "passkey_limit_reached")


def test_the_passkey_limit_holds_for_options_taken_before_it_was_reached(user, settings):
    settings.WEBAUTHN_MAX_PASSKEYS = 1
    access = access_token_for(user)
    first, second = options_for_registration(access), options_for_registration(access)

    assert post_registration(access, authenticator().create(first)).status_code == 201
    assert_api_error(post_registration(access, authenticator().create(second)), 400, "passkey_limit_reached")
    assert Passkey.objects.count() == 1


def test_a_credential_registered_already_is_refused(make_user):
    """With attestation "none" nothing binds the attestation object to the client data: Carol's
    credential, replayed inside Bob's fresh ceremony, must not become Bob's too."""
    carol_access = access_token_for(make_user(email="carol@example.com", name="Carol"))
    original = authenticator().create(options_for_registration(carol_access))
    assert post_registration(carol_access, original).status_code == 201
    bob_user = make_user(email=BOB, name="Bob")
    bob_access = access_token_for(bob_user)
    replayed = with_response(
        authenticator().create(options_for_registration(bob_access)),
        attestationObject=original["response"]["attestationObject"],
    )
    replayed["id"] = replayed["rawId"] = original["rawId"]

    response = post_registration(bob_access, replayed)

    assert_api_error(response, 400, "passkey_already_registered", fields={"credential"})
    assert not Passkey.objects.filter(user=bob_user).exists()
    assert not RecoveryCode.objects.filter(user=bob_user).exists()


# Deeper than Python's recursion limit: json.loads raises RecursionError, not ValueError.
DEEPLY_NESTED = b"[" * 5000 + b"]" * 5000


def _registration_garbage(real: dict) -> dict[str, object]:
    response = real["response"]
    attestation = cbor2.loads(base64url_to_bytes(response["attestationObject"]))
    return {
        "empty": {},
        "id only": {"id": "x"},
        "client data not json": with_response(real, clientDataJSON=b64(b"not json")),
        "client data a list": with_response(real, clientDataJSON=b64(b"[1, 2]")),
        "client data nested deep": with_response(real, clientDataJSON=b64(DEEPLY_NESTED)),
        "client data without challenge": with_response(
            real, clientDataJSON=b64(json.dumps({"type": "webauthn.create", "origin": ORIGIN}).encode())
        ),
        "client data challenge a list": with_response(
            real,
            clientDataJSON=b64(json.dumps({"type": "webauthn.create", "challenge": [1], "origin": ORIGIN}).encode()),
        ),
        "fields of wrong types": {"id": 1, "rawId": [], "response": "x", "type": 5},
        "response fields of wrong types": with_response(real, clientDataJSON=123, attestationObject={"a": 1}),
        "nested lists": {"id": [[[["x"]]]], "rawId": [[[]]], "response": [[{"clientDataJSON": [[]]}]]},
        "unknown type": {**real, "type": "private-key"},
        "not base64": with_response(real, clientDataJSON="%%%%", attestationObject="!!!!"),
        "attestation not cbor": with_response(real, attestationObject=b64(b"\xff\xfe")),
        "attestation a list": with_response(real, attestationObject=b64(cbor2.dumps([1, 2, 3]))),
        "attestation short auth data": with_response(
            real, attestationObject=b64(cbor2.dumps({**attestation, "authData": b"\x00" * 10}))
        ),
        "attestation auth data a number": with_response(
            real, attestationObject=b64(cbor2.dumps({**attestation, "authData": 7}))
        ),
        "attestation without auth data": with_response(
            real, attestationObject=b64(cbor2.dumps({"fmt": "none", "attStmt": {}}))
        ),
        "attestation of another format": with_response(
            real, attestationObject=b64(cbor2.dumps({**attestation, "fmt": "packed"}))
        ),
        "attestation of an unknown format": with_response(
            real, attestationObject=b64(cbor2.dumps({**attestation, "fmt": "nonsense"}))
        ),
        "auth data truncated in the key": with_response(
            real, attestationObject=b64(cbor2.dumps({**attestation, "authData": attestation["authData"][:-20]}))
        ),
    }


REGISTRATION_GARBAGE = [
    "empty",
    "id only",
    "client data not json",
    "client data a list",
    "client data nested deep",
    "client data without challenge",
    "client data challenge a list",
    "fields of wrong types",
    "response fields of wrong types",
    "nested lists",
    "unknown type",
    "not base64",
    "attestation not cbor",
    "attestation a list",
    "attestation short auth data",
    "attestation auth data a number",
    "attestation without auth data",
    "attestation of another format",
    "attestation of an unknown format",
    "auth data truncated in the key",
]


@pytest.mark.parametrize("case", REGISTRATION_GARBAGE)
def test_garbage_registration_credentials_get_a_4xx_with_a_code(user, case):
    access = access_token_for(user)
    real = authenticator().create(options_for_registration(access))
    credential = _registration_garbage(real)[case]

    response = post_registration(access, credential)

    assert 400 <= response.status_code < 500, (case, response.status_code, response.content)
    assert response.json()["code"] in REFUSALS, response.content
    assert not Passkey.objects.exists()


@pytest.mark.parametrize("credential", ["a string", ["a", "list"], 5, None, True])
def test_a_credential_that_is_not_an_object_is_invalid_input(user, credential):
    response = post_registration(access_token_for(user), credential)
    assert_api_error(response, 400, "invalid_input", fields={"credential"})


def test_registration_needs_an_access_token():
    assert api_client().post(REGISTER_OPTIONS_URL).status_code == 401
    assert post_json(api_client(), REGISTER_URL, {"credential": {}, "name": "x"}).status_code == 401
    assert api_client().get(PASSKEYS_URL).status_code == 401


# --- Listing, renaming, removing ------------------------------------------------------------------


def test_the_list_shows_only_my_passkeys(alice, bob):
    listed = api_client().get(PASSKEYS_URL, **bearer(alice.access)).json()
    assert [entry["id"] for entry in listed] == [str(alice.passkey.pk)]
    assert set(listed[0]) == PASSKEY_BODY_KEYS


def test_renaming_a_passkey(alice):
    response = patch_json(api_client(), detail_url(alice.passkey.pk), {"name": " Yubikey  5 "}, **bearer(alice.access))

    assert response.status_code == 200, response.content
    assert response.json()["name"] == "Yubikey 5"
    assert set(response.json()) == PASSKEY_BODY_KEYS
    alice.passkey.refresh_from_db()
    assert alice.passkey.name == "Yubikey 5"
    (event,) = events(SecurityEvent.Kind.PASSKEY_RENAMED, alice.user)
    assert event.detail == {"passkey": str(alice.passkey.pk), "name": "Yubikey 5"}


def test_renaming_needs_no_recent_authentication(long_access_tokens, alice, clock):
    clock.advance(PAST_THE_WINDOW)
    response = patch_json(api_client(), detail_url(alice.passkey.pk), {"name": "Old key"}, **bearer(alice.access))
    assert response.status_code == 200


def test_renaming_another_accounts_passkey_is_not_found(alice, bob):
    response = patch_json(api_client(), detail_url(bob.passkey.pk), {"name": "Mine now"}, **bearer(alice.access))

    assert_api_error(response, 404, "not_found")
    bob.passkey.refresh_from_db()
    assert bob.passkey.name == "My laptop"
    assert not events(SecurityEvent.Kind.PASSKEY_RENAMED).exists()


@pytest.mark.parametrize("passkey_id", ["not-a-uuid", "00000000-0000-0000-0000-000000000000", "1", "%00", "'; --"])
def test_garbage_passkey_ids_are_not_found(alice, passkey_id):
    url = detail_url(passkey_id)
    assert_api_error(patch_json(api_client(), url, {"name": "x"}, **bearer(alice.access)), 404, "not_found")
    assert_api_error(delete_json(api_client(), url, **bearer(alice.access)), 404, "not_found")
    assert Passkey.objects.count() == 1


@pytest.mark.parametrize("name", ["x" * 65, "line\nbreak\x01", "Laptop\x85\x9b", "Laptop\u202e"])
def test_renaming_to_an_invalid_name_is_refused(alice, name):
    response = patch_json(api_client(), detail_url(alice.passkey.pk), {"name": name}, **bearer(alice.access))
    assert_api_error(response, 400, "invalid_passkey_name", fields={"name"})
    alice.passkey.refresh_from_db()
    assert alice.passkey.name == "My laptop"


def test_removing_the_last_passkey_turns_two_factor_off(alice, mailoutbox):
    access = signed_in_access(alice.key)  # a fresh passkey sign-in: a recent second factor
    mailoutbox.clear()

    response = delete_json(api_client(), detail_url(alice.passkey.pk), **bearer(access))

    assert response.status_code == 204, response.content
    assert not Passkey.objects.exists()
    assert not RecoveryCode.objects.filter(user=alice.user).exists()
    assert mfa_status(access) == {"enabled": False, "totp_enabled": False, "passkeys": 0, "recovery_codes_remaining": 0}
    (mail,) = mails_to(mailoutbox, ALICE)
    assert "removed" in mail.subject
    assert events(SecurityEvent.Kind.PASSKEY_REMOVED, alice.user).get().detail["passkey"] == str(alice.passkey.pk)
    assert events(SecurityEvent.Kind.MFA_DISABLED, alice.user).get().detail["method"] == "passkey"
    # A password sign-in no longer asks for a second step.
    assert login_response(api_client(), ALICE, STRONG_PASSWORD).status_code == 200


def test_removing_a_passkey_keeps_two_factor_while_totp_stays(user):
    _, codes = enable_totp(user, recovery_codes=True)
    added = add_passkey(user, access=second_factor_token(user))

    response = delete_json(api_client(), detail_url(added.passkey.pk), **bearer(added.access))

    assert response.status_code == 204, response.content
    assert RecoveryCode.objects.filter(user=user).count() == len(codes)
    assert mfa_status(added.access)["enabled"] is True
    assert not events(SecurityEvent.Kind.MFA_DISABLED, user).exists()


def test_removing_one_of_two_passkeys_keeps_two_factor(alice):
    second = add_passkey(alice.user, access=alice.access)
    assert delete_json(api_client(), detail_url(alice.passkey.pk), **bearer(alice.access)).status_code == 204
    assert list(Passkey.objects.all()) == [second.passkey]
    assert RecoveryCode.objects.filter(user=alice.user).count() == 10
    assert login_response(api_client(), ALICE, STRONG_PASSWORD).status_code == 202


def test_removing_a_passkey_on_a_stale_session_needs_reauthentication(long_access_tokens, alice, clock):
    access = signed_in_access(alice.key)
    clock.advance(PAST_THE_WINDOW)

    assert_api_error(
        delete_json(api_client(), detail_url(alice.passkey.pk), **bearer(access)), 403, "reauthentication_required"
    )
    assert Passkey.objects.filter(pk=alice.passkey.pk).exists()


def test_removing_a_passkey_after_a_password_sign_in_alone_is_refused(alice):
    access = access_token_for(alice.user)  # the password only, just now
    response = delete_json(api_client(), detail_url(alice.passkey.pk), **bearer(access))
    assert_api_error(response, 403, "reauthentication_required")
    assert Passkey.objects.filter(pk=alice.passkey.pk).exists()


def test_removing_another_accounts_passkey_is_not_found(alice, bob):
    response = delete_json(api_client(), detail_url(bob.passkey.pk), **bearer(alice.access))
    assert_api_error(response, 404, "not_found")
    assert Passkey.objects.filter(pk=bob.passkey.pk).exists()


def test_a_removed_passkey_cannot_sign_in(alice):
    assert delete_json(api_client(), detail_url(alice.passkey.pk), **bearer(alice.access)).status_code == 204
    assert_refused(sign_in(alice.key), 401, "passkey_unknown")
    assert refused_events("passkey_unknown").exists()


# --- Signing in with a passkey --------------------------------------------------------------------


def test_sign_in_options_name_no_credential_and_require_user_verification(alice, bob):
    options = sign_in_options()

    assert not options.get("allowCredentials")
    assert options["userVerification"] == "required"
    assert options["rpId"] == RP_ID
    assert len(base64url_to_bytes(options["challenge"])) == 32
    challenge = WebAuthnChallenge.objects.get(purpose="sign_in")
    assert challenge.user is None and challenge.pending_sign_in is None


def test_sign_in_options_look_the_same_for_everyone(alice):
    signed_in = api_client()
    signed_in.cookies[django_settings.ACCOUNTS_REFRESH_COOKIE_NAME] = "anything"
    shapes = []
    for client in (api_client(), signed_in, api_client(REMOTE_ADDR="198.51.100.7")):
        options = sign_in_options(client)
        options.pop("challenge")
        shapes.append(options)
    assert shapes[0] == shapes[1] == shapes[2]


def test_signing_in_with_a_passkey(alice, clock):
    client = api_client()
    clock.advance(timedelta(seconds=30))

    response = sign_in(alice.key, client)

    assert response.status_code == 200, response.content
    body = response.json()
    assert set(body) == {"access", "access_expires_at", "user"}
    assert body["user"]["email"] == ALICE
    assert refresh_cookie_value(client)
    amr = amr_of(body["access"])
    assert {"hwk", "user", "mfa"} <= set(amr)
    assert "pwd" not in amr and "swk" not in amr
    session = session_of(body["access"])
    assert session.second_factor_at == clock.now()
    assert session.user == alice.user
    alice.passkey.refresh_from_db()
    assert alice.passkey.last_used_at == clock.now()
    assert alice.passkey.sign_count == 1 == alice.credential.sign_count
    event = events(SecurityEvent.Kind.SIGN_IN_SUCCEEDED, alice.user).get(detail__session=str(session.pk))
    assert "hwk" in event.detail["amr"].split()
    # The refresh cookie works.
    refreshed = post_json(client, "/api/auth/refresh/", **csrf_header(client))
    assert refreshed.status_code == 200, refreshed.content


def test_a_synced_passkey_signs_in_as_a_software_key(user):
    synced = add_passkey(user, authenticator(backup_eligible=True, backed_up=True))
    response = sign_in(synced.key)

    assert response.status_code == 200, response.content
    amr = amr_of(response.json()["access"])
    assert {"swk", "user", "mfa"} <= set(amr) and "hwk" not in amr


@pytest.mark.parametrize("synced", [False, True], ids=["device-bound", "synced"])
def test_a_passkey_removed_while_its_answer_is_checked_does_not_sign_in(user, monkeypatch, synced):
    account = add_passkey(user, authenticator(backup_eligible=synced, backed_up=synced))
    check = webauthn.verify_authentication_response

    def removed_meanwhile(**arguments):
        # The owner (or support) removes it between the lookup and the counter's update.
        Passkey.objects.filter(pk=account.passkey.pk).delete()
        return check(**arguments)

    monkeypatch.setattr(webauthn, "verify_authentication_response", removed_meanwhile)
    response = sign_in(account.key)

    assert_refused(response, 401, "passkey_unknown")
    assert refused_events("passkey_unknown", user).get().detail["why"] == "removed while signing in"
    assert not refused_events("passkey_cloned").exists()
    assert not DeviceSession.objects.exclude(pk=session_of(account.access).pk).exists()


def test_a_sign_in_without_user_verification_is_refused(alice):
    response = sign_in(alice.key, user_verified=False)

    assert_refused(response, 401, "passkey_refused")
    event = refused_events("passkey_refused", alice.user).get()
    assert event.detail["purpose"] == "sign_in"
    assert not DeviceSession.objects.exclude(pk=session_of(alice.access).pk).exists()
    alice.passkey.refresh_from_db()
    assert alice.passkey.last_used_at is None and alice.passkey.sign_count == 0


def test_a_sign_in_from_another_origin_is_refused(alice):
    assert_refused(sign_in(alice.key, origin="https://evil.example"), 401, "passkey_refused")
    assert refused_events("passkey_refused", alice.user).exists()


def test_a_sign_in_for_another_relying_party_is_refused(alice):
    assert_refused(sign_in(alice.key, rp_id="evil.example"), 401, "passkey_refused")


def test_a_sign_in_with_a_bad_signature_is_refused(alice):
    assert_refused(sign_in(alice.key, tamper_signature=True), 401, "passkey_refused")
    alice.passkey.refresh_from_db()
    assert alice.passkey.sign_count == 0 and alice.passkey.last_used_at is None


def test_an_unknown_credential_is_refused(user):
    stranger = authenticator()
    stranger.create({"challenge": b64(b"c" * 32), "rp": {"id": RP_ID}, "user": {"id": b64(b"u" * 32)}})
    assert_refused(sign_in(stranger), 401, "passkey_unknown")
    assert refused_events("passkey_unknown").get().user is None


def test_an_assertion_replayed_is_refused(alice):
    credential = alice.key.get(sign_in_options())

    assert post_sign_in(credential).status_code == 200
    assert_refused(post_sign_in(credential), 400, "passkey_challenge_invalid")
    assert DeviceSession.objects.filter(user=alice.user).count() == 2  # the registering one and one sign-in


def test_a_registration_challenge_cannot_be_used_to_sign_in(alice):
    reg_options = options_for_registration(alice.access)
    credential = alice.key.get(sign_in_options(), challenge=reg_options["challenge"])
    assert_refused(post_sign_in(credential), 400, "passkey_challenge_invalid")


def test_a_second_step_or_reauthentication_challenge_cannot_be_used_to_sign_in(alice):
    reauth_options = reauthentication_options(alice.access).json()
    credential = alice.key.get(reauth_options)
    assert_refused(post_sign_in(credential), 400, "passkey_challenge_invalid")
    second_options = second_step_options(pending_client())
    assert_refused(post_sign_in(alice.key.get(second_options)), 400, "passkey_challenge_invalid")


def test_a_made_up_challenge_is_refused(alice):
    credential = alice.key.get(sign_in_options(), challenge=b64(b"m" * 32))
    assert_refused(post_sign_in(credential), 400, "passkey_challenge_invalid")


def test_an_expired_sign_in_challenge_is_refused(alice, clock):
    options = sign_in_options()
    clock.advance(timedelta(seconds=django_settings.WEBAUTHN_CHALLENGE_LIFETIME, microseconds=1))
    assert_refused(post_sign_in(alice.key.get(options)), 400, "passkey_challenge_invalid")


@pytest.mark.parametrize("next_count", [1, 0], ids=["equal", "backwards"])
def test_a_device_bound_passkey_whose_counter_does_not_rise_is_a_clone(alice, next_count):
    assert sign_in(alice.key).status_code == 200  # counter 1
    alice.passkey.refresh_from_db()
    last_used = alice.passkey.last_used_at

    response = sign_in(alice.key.clone(), sign_count=next_count)

    assert_refused(response, 401, "passkey_cloned")
    event = refused_events("passkey_cloned", alice.user).get()
    assert event.detail["purpose"] == "sign_in"
    alice.passkey.refresh_from_db()
    assert alice.passkey.sign_count == 1
    assert alice.passkey.last_used_at == last_used


def test_a_clone_is_caught_once_the_original_moved_on(alice):
    clone = alice.key.clone()
    assert sign_in(alice.key).status_code == 200  # 1
    assert sign_in(alice.key).status_code == 200  # 2
    assert_refused(sign_in(clone), 401, "passkey_cloned")  # the clone's 1
    assert_refused(sign_in(clone), 401, "passkey_cloned")  # the clone's 2
    assert sign_in(clone).status_code == 200  # 3: a counter above every one seen is indistinguishable
    alice.passkey.refresh_from_db()
    assert alice.passkey.sign_count == 3


def test_a_synced_passkey_whose_counter_does_not_rise_is_accepted(user):
    synced = add_passkey(user, authenticator(backup_eligible=True, backed_up=True))
    for count in (5, 5, 3):
        assert sign_in(synced.key, sign_count=count).status_code == 200, count
    synced.passkey.refresh_from_db()
    assert synced.passkey.sign_count == 5  # the highest seen
    assert not refused_events("passkey_cloned").exists()


def test_an_authenticator_without_a_counter_signs_in_again_and_again(user):
    zero = add_passkey(user, authenticator(counter=False))
    for _ in range(2):
        assert sign_in(zero.key).status_code == 200
    zero.passkey.refresh_from_db()
    assert zero.passkey.sign_count == 0 and zero.passkey.last_used_at is not None


def test_a_device_bound_passkey_cannot_fall_back_to_zero_once_it_counted(alice):
    assert sign_in(alice.key, sign_count=7).status_code == 200
    assert_refused(sign_in(alice.key, sign_count=0), 401, "passkey_cloned")


@pytest.mark.parametrize("handle", [b"\x00" * 32, b"short", "bobs"], ids=["zeros", "short", "another account's"])
def test_an_assertion_with_another_user_handle_is_refused(alice, bob, handle):
    handle = bob.credential.user_handle if handle == "bobs" else handle
    assert_refused(sign_in(alice.key, user_handle=handle), 401, "passkey_unknown")
    assert refused_events("passkey_unknown", alice.user).exists()


def test_an_assertion_without_a_user_handle_does_not_sign_in(alice):
    credential = alice.key.get(sign_in_options())
    credential["response"]["userHandle"] = None
    assert_refused(post_sign_in(credential), 401, "passkey_refused")


def test_a_deactivated_account_cannot_sign_in_with_its_passkey(alice):
    User.objects.filter(pk=alice.user.pk).update(is_active=False)
    assert_refused(sign_in(alice.key), 401, "passkey_unknown")
    assert DeviceSession.objects.filter(user=alice.user).count() == 1


def _assertion_garbage(real: dict) -> dict[str, object]:
    return {
        "empty": {},
        "id only": {"id": "x"},
        "client data not json": with_response(real, clientDataJSON=b64(b"not json")),
        "client data nested deep": with_response(real, clientDataJSON=b64(DEEPLY_NESTED)),
        "fields of wrong types": {"id": 1, "rawId": [], "response": "x", "type": 5},
        "response fields of wrong types": with_response(real, authenticatorData=5, signature=[1], userHandle=7),
        "nested lists": {"id": [[["x"]]], "response": [[[{"signature": [[]]}]]]},
        "short authenticator data": with_response(real, authenticatorData=b64(b"\x00" * 10)),
        "empty signature": with_response(real, signature=""),
        "signature not der": with_response(real, signature=b64(b"\x30\x02\x01")),
        "user handle not base64": with_response(real, userHandle="!!!!"),
        "huge user handle": with_response(real, userHandle=b64(b"h" * 4096)),
    }


ASSERTION_GARBAGE = [
    "empty",
    "id only",
    "client data not json",
    "client data nested deep",
    "fields of wrong types",
    "response fields of wrong types",
    "nested lists",
    "short authenticator data",
    "empty signature",
    "signature not der",
    "user handle not base64",
    "huge user handle",
]


@pytest.mark.parametrize("case", ASSERTION_GARBAGE)
def test_garbage_sign_in_credentials_get_a_4xx_with_a_code(alice, case):
    real = alice.key.get(sign_in_options())
    response = post_sign_in(_assertion_garbage(real)[case])

    assert 400 <= response.status_code < 500, (case, response.status_code, response.content)
    assert response.json()["code"] in REFUSALS, response.content
    assert DeviceSession.objects.filter(user=alice.user).count() == 1


@pytest.mark.parametrize("case", ["empty", "client data not json", "nested lists", "short authenticator data"])
def test_garbage_at_the_second_step_gets_a_4xx_and_spends_the_attempt(alice, case):
    client = pending_client()
    real = alice.key.get(second_step_options(client))

    response = verify(client, {"credential": _assertion_garbage(real)[case]})

    assert 400 <= response.status_code < 500, (case, response.status_code, response.content)
    assert response.json()["code"] in REFUSALS, response.content
    assert PendingSignIn.objects.get().attempts_left == django_settings.ACCOUNTS_MFA_PENDING_ATTEMPTS - 1
    assert DeviceSession.objects.filter(user=alice.user).count() == 1


@pytest.mark.parametrize("case", ["empty", "client data not json", "signature not der", "huge user handle"])
def test_garbage_reauthentication_credentials_get_a_4xx(long_access_tokens, alice, clock, case):
    clock.advance(PAST_THE_WINDOW)
    real = alice.key.get(reauthentication_options(alice.access).json())

    response = reauthenticate(alice.access, credential=_assertion_garbage(real)[case])

    assert 400 <= response.status_code < 500, (case, response.status_code, response.content)
    assert response.json()["code"] in REFUSALS, response.content
    assert session_of(alice.access).authenticated_at < clock.now()


def test_a_credential_id_longer_than_webauthn_allows_is_refused_not_a_500(user):
    """1023 bytes at most (WebAuthn Level 3); a few KB would overflow PostgreSQL's unique index."""
    access = access_token_for(user)
    response = register(access, authenticator(), credential_id_length=3000)

    assert_refused(response, 401, "passkey_refused")
    assert not Passkey.objects.exists()
    assert "3000 bytes" in refused_events("passkey_refused", user).get().detail["why"]


def test_a_credential_id_of_1023_bytes_registers(user):
    response = register(access_token_for(user), authenticator(), credential_id_length=1023)
    assert response.status_code == 201, response.content
    assert len(bytes(Passkey.objects.get().credential_id)) == 1023


def test_a_sign_in_naming_an_overlong_credential_id_is_unknown(alice):
    real = alice.key.get(sign_in_options())
    long_id = b64(b"x" * 3000)
    assert_refused(post_sign_in({**real, "id": long_id, "rawId": long_id}), 401, "passkey_unknown")


def test_registration_options_are_rate_limited_per_account(user, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "passkey_prompts_per_ip": "3/10m"}
    access = access_token_for(user)
    for _ in range(3):
        assert registration_options(access).status_code == 200
    assert_api_error(registration_options(access), 429, "rate_limited")
    assert WebAuthnChallenge.objects.filter(user=user).count() == 3


def test_sign_in_options_are_rate_limited_per_ip(settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "passkey_prompts_per_ip": "3/10m"}
    client = api_client()
    for _ in range(3):
        assert post_json(client, SIGN_IN_OPTIONS_URL).status_code == 200
    assert_api_error(post_json(client, SIGN_IN_OPTIONS_URL), 429, "rate_limited")
    assert WebAuthnChallenge.objects.count() == 3


# --- The second step after a password -------------------------------------------------------------


def test_a_password_sign_in_of_a_passkey_account_asks_for_the_second_step(alice):
    response = login_response(api_client(), ALICE, STRONG_PASSWORD)
    assert response.status_code == 202, response.content
    assert response.json() == {"status": "mfa_required", "methods": ["passkey", "recovery_code"]}


def test_with_totp_too_every_second_factor_is_offered(alice):
    enable_totp(alice.user)
    response = login_response(api_client(), ALICE, STRONG_PASSWORD)
    assert response.json()["methods"] == ["passkey", "totp", "recovery_code"]


def test_second_step_options_need_the_pending_cookie(alice):
    client = api_client()
    response = post_json(client, MFA_PASSKEY_OPTIONS_URL, **csrf_header(client))
    assert_api_error(response, 401, "sign_in_expired")
    assert not WebAuthnChallenge.objects.filter(purpose="second_step").exists()


def test_second_step_options_need_the_csrf_header(alice):
    client = pending_client()
    assert_api_error(post_json(client, MFA_PASSKEY_OPTIONS_URL), 403, "csrf_failed")
    credential = alice.key.get(second_step_options(client))
    assert_api_error(post_json(client, VERIFY_URL, {"credential": credential}), 403, "csrf_failed")


def test_second_step_options_name_exactly_the_accounts_passkeys(alice, bob):
    second = add_passkey(alice.user, access=alice.access)
    options = second_step_options(pending_client())

    assert sorted(entry["id"] for entry in options["allowCredentials"]) == sorted(
        [b64(alice.credential.credential_id), b64(second.credential.credential_id)]
    )
    assert options["userVerification"] == "preferred"
    assert options["rpId"] == RP_ID
    challenge = WebAuthnChallenge.objects.get(purpose="second_step")
    assert challenge.user == alice.user and challenge.pending_sign_in is not None


def test_finishing_the_second_step_with_a_passkey(alice, clock):
    client = pending_client()
    credential = alice.key.get(second_step_options(client))

    response = verify(client, {"credential": credential})

    assert response.status_code == 200, response.content
    assert refresh_cookie_value(client)
    assert response.cookies[PENDING_COOKIE].value == ""
    amr = amr_of(response.json()["access"])
    assert {"pwd", "hwk", "user", "mfa"} <= set(amr)
    assert session_of(response.json()["access"]).second_factor_at == clock.now()
    assert PendingSignIn.objects.get().completed_at is not None


def test_the_second_step_accepts_a_passkey_without_user_verification(alice):
    client = pending_client()
    credential = alice.key.get(second_step_options(client), user_verified=False)

    response = verify(client, {"credential": credential})

    assert response.status_code == 200, response.content
    amr = amr_of(response.json()["access"])
    assert {"pwd", "hwk", "mfa"} <= set(amr) and "user" not in amr


def test_the_second_step_cannot_be_finished_twice_with_one_pending_sign_in(alice):
    client = pending_client()
    handle = client.cookies[PENDING_COOKIE].value
    assert verify(client, {"credential": alice.key.get(second_step_options(client))}).status_code == 200
    replay = api_client()
    replay.cookies[PENDING_COOKIE] = handle
    assert_api_error(post_json(replay, MFA_PASSKEY_OPTIONS_URL, **csrf_header(replay)), 401, "sign_in_expired")


def test_bobs_passkey_cannot_finish_alices_sign_in(alice, bob):
    client = pending_client()
    attempts = PendingSignIn.objects.get(user=alice.user).attempts_left
    options = second_step_options(client)

    response = verify(client, {"credential": bob.key.get(options, credential=bob.credential)})

    assert_refused(response, 401, "passkey_unknown")
    assert PendingSignIn.objects.get(user=alice.user).attempts_left == attempts - 1
    assert refused_events("passkey_unknown", alice.user).get().detail["purpose"] == "second_step"
    # The pending sign-in goes on: Alice's own passkey still finishes it.
    assert verify(client, {"credential": alice.key.get(second_step_options(client))}).status_code == 200


def test_a_sign_in_challenge_cannot_finish_the_second_step(alice):
    client = pending_client()
    second_step_options(client)
    credential = alice.key.get(sign_in_options(), credential=alice.credential)
    assert_refused(verify(client, {"credential": credential}), 400, "passkey_challenge_invalid")


def test_another_pending_sign_ins_challenge_cannot_finish_this_one(alice):
    first, second = pending_client(), pending_client()
    options_of_first = second_step_options(first)
    second_step_options(second)
    credential = alice.key.get(options_of_first)
    assert_refused(verify(second, {"credential": credential}), 400, "passkey_challenge_invalid")
    # The first one's challenge was not used up by that.
    assert verify(first, {"credential": credential}).status_code == 200


def test_a_refused_passkey_at_the_second_step_spends_an_attempt(alice, settings):
    client = pending_client()
    for _ in range(settings.ACCOUNTS_MFA_PENDING_ATTEMPTS):
        credential = alice.key.get(second_step_options(client), origin="https://evil.example")
        assert_refused(verify(client, {"credential": credential}), 401, "passkey_refused")
    response = post_json(client, MFA_PASSKEY_OPTIONS_URL, **csrf_header(client))
    assert_api_error(response, 401, "sign_in_expired")


def test_code_and_credential_together_are_invalid_input(alice):
    client = pending_client()
    credential = alice.key.get(second_step_options(client))
    response = verify(client, {"code": "123456", "credential": credential})
    assert_api_error(response, 400, "invalid_input", fields={"credential"})
    assert PendingSignIn.objects.get().attempts_left == django_settings.ACCOUNTS_MFA_PENDING_ATTEMPTS


def test_an_account_with_totp_only_has_no_passkey_options(user):
    secret = enable_totp(user)
    client = pending_client()
    response = post_json(client, MFA_PASSKEY_OPTIONS_URL, **csrf_header(client))
    assert_api_error(response, 400, "no_passkey")
    assert not WebAuthnChallenge.objects.exists()
    assert verify(client, {"code": totp_code(secret)}).status_code == 200


def test_a_recovery_code_still_finishes_a_passkey_accounts_sign_in(alice):
    code = alice.body["recovery_codes"][0]
    response = verify(pending_client(), {"code": code})
    assert response.status_code == 200, response.content
    assert {"pwd", "otp", "mfa"} <= set(amr_of(response.json()["access"]))


# --- Re-authentication ----------------------------------------------------------------------------


def test_reauthentication_options_without_a_passkey(user):
    assert_api_error(reauthentication_options(access_token_for(user)), 400, "no_passkey")


def test_reauthentication_options_name_my_passkeys(alice, bob):
    options = reauthentication_options(alice.access).json()
    assert [entry["id"] for entry in options["allowCredentials"]] == [b64(alice.credential.credential_id)]
    assert options["userVerification"] == "preferred"


def test_reauthenticating_with_a_passkey_opens_the_second_factor_window(long_access_tokens, alice, clock):
    clock.advance(PAST_THE_WINDOW)
    url = detail_url(alice.passkey.pk)
    assert_api_error(delete_json(api_client(), url, **bearer(alice.access)), 403, "reauthentication_required")

    credential = alice.key.get(reauthentication_options(alice.access).json())
    response = reauthenticate(alice.access, credential=credential)

    assert response.status_code == 204, response.content
    assert session_of(alice.access).second_factor_at == clock.now()
    assert delete_json(api_client(), url, **bearer(alice.access)).status_code == 204


def test_a_refused_passkey_does_not_reauthenticate(long_access_tokens, alice, clock):
    clock.advance(PAST_THE_WINDOW)
    before = session_of(alice.access).second_factor_at
    credential = alice.key.get(reauthentication_options(alice.access).json(), tamper_signature=True)

    assert_refused(reauthenticate(alice.access, credential=credential), 401, "passkey_refused")

    assert session_of(alice.access).second_factor_at == before
    assert refused_events("passkey_refused", alice.user).get().detail["purpose"] == "reauthenticate"
    assert_api_error(
        delete_json(api_client(), detail_url(alice.passkey.pk), **bearer(alice.access)),
        403,
        "reauthentication_required",
    )


def test_another_accounts_passkey_does_not_reauthenticate_me(alice, bob):
    options = reauthentication_options(alice.access).json()
    credential = bob.key.get(options, credential=bob.credential)
    assert_refused(reauthenticate(alice.access, credential=credential), 401, "passkey_unknown")


def test_alices_reauthentication_answer_does_not_reauthenticate_bob(alice, bob):
    credential = alice.key.get(reauthentication_options(alice.access).json())
    assert_refused(reauthenticate(bob.access, credential=credential), 400, "passkey_challenge_invalid")


def test_password_and_credential_together_are_invalid_input(alice):
    credential = alice.key.get(reauthentication_options(alice.access).json())
    response = reauthenticate(alice.access, password=STRONG_PASSWORD, credential=credential)
    assert_api_error(response, 400, "invalid_input", fields={"credential"})


# --- Races on PostgreSQL --------------------------------------------------------------------------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks; runs in CI's PostgreSQL pass"
)


def racing(test):
    """A test of concurrent requests: PostgreSQL only, with committed data every thread can see."""
    return on_postgresql(pytest.mark.django_db(transaction=True)(test))


@racing
def test_one_assertion_posted_eight_times_at_once_signs_in_once(alice):
    for _ in range(3):
        credential = alice.key.get(sign_in_options())
        clients = [api_client() for _ in range(8)]
        outcomes = run_at_once([functools.partial(post_sign_in, credential, client) for client in clients])

        assert [outcome.error for outcome in outcomes] == [None] * 8
        statuses = sorted(outcome.value.status_code for outcome in outcomes)
        assert statuses == [200] + [400] * 7, [outcome.value.content for outcome in outcomes]
    assert DeviceSession.objects.filter(user=alice.user).count() == 1 + 3


@racing
def test_two_clones_with_the_same_next_counter_at_once_sign_in_once(alice):
    clone = alice.key.clone()
    for count in range(1, 5):
        first = alice.key.get(sign_in_options(), sign_count=count)
        second = clone.get(sign_in_options(), sign_count=count)
        outcomes = run_at_once([functools.partial(post_sign_in, first), functools.partial(post_sign_in, second)])

        assert [outcome.error for outcome in outcomes] == [None, None]
        responses = sorted((outcome.value for outcome in outcomes), key=lambda response: response.status_code)
        assert [response.status_code for response in responses] == [200, 401], [r.content for r in responses]
        assert responses[1].json()["code"] == "passkey_cloned"
        alice.passkey.refresh_from_db()
        assert alice.passkey.sign_count == count
    assert refused_events("passkey_cloned", alice.user).count() == 4
