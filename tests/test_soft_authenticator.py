"""The software WebAuthn authenticator of tests/support/webauthn.py, checked against py_webauthn's own verification."""

import json
import uuid
from typing import Any

import pytest
import webauthn
from webauthn.helpers import base64url_to_bytes
from webauthn.helpers.exceptions import InvalidAuthenticationResponse, InvalidRegistrationResponse
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    CredentialDeviceType,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)
from webauthn.registration.verify_registration_response import VerifiedRegistration

from tests.support.webauthn import SoftAuthenticator

RP_ID = "localhost"
ORIGIN = "http://localhost"


def registration_options(**overrides: Any) -> dict[str, Any]:
    options = webauthn.generate_registration_options(
        rp_id=RP_ID,
        rp_name="Todo",
        user_name="a@example.com",
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        **overrides,
    )
    return json.loads(webauthn.options_to_json(options))


def authentication_options(*credential_ids: bytes) -> dict[str, Any]:
    options = webauthn.generate_authentication_options(
        rp_id=RP_ID,
        allow_credentials=[PublicKeyCredentialDescriptor(id=credential_id) for credential_id in credential_ids],
        user_verification=UserVerificationRequirement.REQUIRED,
    )
    return json.loads(webauthn.options_to_json(options))


def verify_registration(options: dict[str, Any], response: dict[str, Any]) -> VerifiedRegistration:
    return webauthn.verify_registration_response(
        credential=response,
        expected_challenge=base64url_to_bytes(options["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        require_user_verification=True,
    )


def verify_authentication(
    options: dict[str, Any], response: dict[str, Any], registration: VerifiedRegistration, current_sign_count: int
) -> int:
    """The new sign count py_webauthn accepts for ``response``."""
    verified = webauthn.verify_authentication_response(
        credential=response,
        expected_challenge=base64url_to_bytes(options["challenge"]),
        expected_rp_id=RP_ID,
        expected_origin=ORIGIN,
        credential_public_key=registration.credential_public_key,
        credential_current_sign_count=current_sign_count,
        require_user_verification=True,
    )
    assert verified.user_verified
    return verified.new_sign_count


def register(authenticator: SoftAuthenticator) -> VerifiedRegistration:
    options = registration_options()
    return verify_registration(options, authenticator.create(options))


def test_a_registration_verifies_as_a_single_device_credential():
    authenticator = SoftAuthenticator()
    options = registration_options(user_id=b"user-handle-1")

    response = authenticator.create(options)
    verified = verify_registration(options, response)

    assert verified.user_verified
    assert verified.fmt == "none"
    assert verified.sign_count == 0
    assert verified.credential_device_type == CredentialDeviceType.SINGLE_DEVICE
    assert not verified.credential_backed_up
    assert verified.aaguid == str(uuid.UUID(bytes=bytes(16)))
    (credential,) = authenticator.credentials
    assert verified.credential_id == credential.credential_id == base64url_to_bytes(response["rawId"])
    assert credential.user_handle == b"user-handle-1"
    assert credential.rp_id == RP_ID
    assert response["response"]["transports"] == ["internal"]
    assert response["authenticatorAttachment"] == "platform"


def test_a_synced_passkey_registers_as_multi_device_with_its_aaguid():
    aaguid = uuid.uuid4()
    authenticator = SoftAuthenticator(backup_eligible=True, backed_up=True, aaguid=aaguid.bytes)

    verified = register(authenticator)

    assert verified.credential_device_type == CredentialDeviceType.MULTI_DEVICE
    assert verified.credential_backed_up
    assert verified.aaguid == str(aaguid)


def test_an_assertion_verifies_and_its_sign_count_increments():
    authenticator = SoftAuthenticator()
    registration = register(authenticator)

    sign_count = 0
    for expected_count in (1, 2):
        options = authentication_options(registration.credential_id)
        response = authenticator.get(options)
        sign_count = verify_authentication(options, response, registration, sign_count)
        assert sign_count == expected_count
        assert base64url_to_bytes(response["response"]["userHandle"]) == authenticator.credentials[0].user_handle
    assert authenticator.credentials[0].sign_count == 2


def test_a_discoverable_assertion_uses_the_newest_credential_and_a_zero_counter_stays_zero():
    authenticator = SoftAuthenticator(counter=False)
    register(authenticator)
    newest = register(authenticator)

    options = authentication_options()
    response = authenticator.get(options)

    assert base64url_to_bytes(response["rawId"]) == newest.credential_id
    assert verify_authentication(options, response, newest, 0) == 0


@pytest.mark.parametrize(
    "bent",
    [{"origin": "http://evil.example"}, {"rp_id": "evil.example"}, {"user_verified": False}],
    ids=["wrong-origin", "wrong-rp-id", "no-user-verification"],
)
def test_py_webauthn_refuses_a_bent_registration(bent: dict[str, Any]):
    options = registration_options()
    response = SoftAuthenticator().create(options, **bent)

    with pytest.raises(InvalidRegistrationResponse):
        verify_registration(options, response)


@pytest.mark.parametrize(
    "bent",
    [
        {"origin": "http://evil.example"},
        {"rp_id": "evil.example"},
        {"user_verified": False},
        {"tamper_signature": True},
        {"challenge": "c29tZS1vdGhlci1jaGFsbGVuZ2U"},
    ],
    ids=["wrong-origin", "wrong-rp-id", "no-user-verification", "tampered-signature", "wrong-challenge"],
)
def test_py_webauthn_refuses_a_bent_assertion(bent: dict[str, Any]):
    authenticator = SoftAuthenticator()
    registration = register(authenticator)
    options = authentication_options(registration.credential_id)

    response = authenticator.get(options, **bent)

    with pytest.raises(InvalidAuthenticationResponse):
        verify_authentication(options, response, registration, 0)


def test_a_clone_signs_with_the_same_key_and_counter():
    original = SoftAuthenticator()
    registration = register(original)
    options = authentication_options(registration.credential_id)
    stored_count = verify_authentication(options, original.get(options), registration, 0)

    clone = original.clone()
    assert clone.credentials[0] is not original.credentials[0]
    options = authentication_options(registration.credential_id)
    stored_count = verify_authentication(options, clone.get(options), registration, stored_count)
    assert stored_count == 2

    # The original's counter did not move with the clone's, so its next assertion repeats count 2: a clone.
    options = authentication_options(registration.credential_id)
    with pytest.raises(InvalidAuthenticationResponse, match="sign count"):
        verify_authentication(options, original.get(options), registration, stored_count)


def test_the_authenticator_refuses_like_a_browser():
    authenticator = SoftAuthenticator()
    registration = register(authenticator)

    with pytest.raises(ValueError, match="InvalidStateError"):
        authenticator.create(
            registration_options(exclude_credentials=[PublicKeyCredentialDescriptor(id=registration.credential_id)])
        )
    with pytest.raises(ValueError, match="NotAllowedError"):
        authenticator.get(authentication_options(b"a credential held elsewhere"))
