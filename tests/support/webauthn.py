"""A software WebAuthn authenticator for tests: ES256 (P-256) passkeys, attestation "none", browser-shaped JSON."""

import dataclasses
import hashlib
import json
import secrets
from dataclasses import dataclass, field
from typing import Any

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from webauthn.helpers import base64url_to_bytes, bytes_to_base64url

# Authenticator data flag bits (WebAuthn §6.1).
FLAG_USER_PRESENT = 0x01
FLAG_USER_VERIFIED = 0x04
FLAG_BACKUP_ELIGIBLE = 0x08
FLAG_BACKED_UP = 0x10
FLAG_ATTESTED_CREDENTIAL_DATA = 0x40

# COSE identifiers of an EC2 P-256 key used with ES256 (RFC 9053).
COSE_KEY_TYPE_EC2 = 2
COSE_ALG_ES256 = -7
COSE_CURVE_P256 = 1

CREDENTIAL_ID_LENGTH = 32


@dataclass
class SoftCredential:
    """One passkey the authenticator holds: its id, private key, the user it belongs to, its RP and counter."""

    credential_id: bytes
    private_key: ec.EllipticCurvePrivateKey
    user_handle: bytes
    rp_id: str
    sign_count: int = 0


@dataclass(kw_only=True)
class SoftAuthenticator:
    """A platform authenticator plus the browser around it: ``create`` and ``get`` take the server's options JSON
    and return what ``PublicKeyCredential.toJSON()`` gives; keyword arguments bend one answer for negative tests."""

    rp_id: str = "localhost"
    origin: str = "http://localhost"
    user_verification: bool = True
    backup_eligible: bool = False
    backed_up: bool = False
    # False models authenticators (many synced passkeys) that always report a signature counter of 0.
    counter: bool = True
    aaguid: bytes = bytes(16)
    credentials: list[SoftCredential] = field(default_factory=list, init=False)

    def __post_init__(self) -> None:
        if len(self.aaguid) != 16:
            raise ValueError("an AAGUID is 16 bytes")

    def create(
        self,
        options: dict[str, Any],
        *,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool | None = None,
        challenge: str | None = None,
        credential_id_length: int = CREDENTIAL_ID_LENGTH,
    ) -> dict[str, Any]:
        """Register a new credential for the creation ``options``; returns the RegistrationResponseJSON.

        Raises ValueError("InvalidStateError") when ``excludeCredentials`` names a credential held here and
        ValueError("NotSupportedError") when ``pubKeyCredParams`` does not offer ES256, as a browser does."""
        excluded_ids = {base64url_to_bytes(descriptor["id"]) for descriptor in options.get("excludeCredentials", [])}
        if any(credential.credential_id in excluded_ids for credential in self.credentials):
            raise ValueError("InvalidStateError")
        offered_algorithms = [param.get("alg") for param in options.get("pubKeyCredParams", [])]
        if offered_algorithms and COSE_ALG_ES256 not in offered_algorithms:
            raise ValueError("NotSupportedError")

        credential = SoftCredential(
            credential_id=secrets.token_bytes(credential_id_length),
            private_key=ec.generate_private_key(ec.SECP256R1()),
            user_handle=base64url_to_bytes(options["user"]["id"]),
            rp_id=rp_id or options.get("rp", {}).get("id") or self.rp_id,
        )
        self.credentials.append(credential)

        authenticator_data = self._authenticator_data(
            credential.rp_id,
            user_verified=user_verified,
            sign_count=0,
            attested_credential_data=self._attested_credential_data(credential),
        )
        attestation_object = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": authenticator_data})
        client_data_json = self._client_data_json(
            "webauthn.create", challenge or options["challenge"], origin or self.origin
        )
        encoded_id = bytes_to_base64url(credential.credential_id)
        return {
            "id": encoded_id,
            "rawId": encoded_id,
            "type": "public-key",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data_json),
                "attestationObject": bytes_to_base64url(attestation_object),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict[str, Any],
        *,
        credential: SoftCredential | None = None,
        origin: str | None = None,
        rp_id: str | None = None,
        user_verified: bool | None = None,
        sign_count: int | None = None,
        challenge: str | None = None,
        user_handle: bytes | None = None,
        tamper_signature: bool = False,
    ) -> dict[str, Any]:
        """Sign an assertion for the request ``options``; returns the AuthenticationResponseJSON.

        The credential is ``credential``, else the newest one held that ``allowCredentials`` names (raising
        ValueError("NotAllowedError") if none), else the newest one held for the request's RP. ``rp_id`` only
        changes the RP ID hashed into the authenticator data (the credential is still chosen by the request's).
        The counter goes up by one first (with ``counter``); ``sign_count`` is sent and stored as given instead."""
        requested_rp_id = options.get("rpId") or self.rp_id
        if credential is None:
            credential = self._choose_credential(options, requested_rp_id)

        if sign_count is not None:
            credential.sign_count = sign_count
            reported_count = sign_count
        elif self.counter:
            credential.sign_count += 1
            reported_count = credential.sign_count
        else:
            reported_count = 0

        authenticator_data = self._authenticator_data(
            rp_id or requested_rp_id, user_verified=user_verified, sign_count=reported_count
        )
        client_data_json = self._client_data_json(
            "webauthn.get", challenge or options["challenge"], origin or self.origin
        )
        signed_data = authenticator_data + hashlib.sha256(client_data_json).digest()
        if tamper_signature:
            # Sign slightly different bytes than those sent, so the signature is well-formed but does not verify.
            signed_data = bytes([signed_data[0] ^ 0x01]) + signed_data[1:]
        signature = credential.private_key.sign(signed_data, ec.ECDSA(hashes.SHA256()))

        encoded_id = bytes_to_base64url(credential.credential_id)
        return {
            "id": encoded_id,
            "rawId": encoded_id,
            "type": "public-key",
            "response": {
                "clientDataJSON": bytes_to_base64url(client_data_json),
                "authenticatorData": bytes_to_base64url(authenticator_data),
                "signature": bytes_to_base64url(signature),
                "userHandle": bytes_to_base64url(user_handle if user_handle is not None else credential.user_handle),
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def clone(self) -> "SoftAuthenticator":
        """A copy holding the same credentials (same keys, same counters) whose counters then move on their own:
        a cloned authenticator, which the RP should catch by its signature counter."""
        # The keys are immutable and cryptography's key objects cannot be deep-copied, so the copies share them.
        twin = dataclasses.replace(self)
        twin.credentials = [dataclasses.replace(credential) for credential in self.credentials]
        return twin

    def _choose_credential(self, options: dict[str, Any], requested_rp_id: str) -> SoftCredential:
        allowed_ids = {base64url_to_bytes(descriptor["id"]) for descriptor in options.get("allowCredentials") or []}
        if allowed_ids:
            candidates = [credential for credential in self.credentials if credential.credential_id in allowed_ids]
        else:
            candidates = [credential for credential in self.credentials if credential.rp_id == requested_rp_id]
        if not candidates:
            raise ValueError("NotAllowedError")
        return candidates[-1]

    def _authenticator_data(
        self,
        rp_id: str,
        *,
        user_verified: bool | None,
        sign_count: int,
        attested_credential_data: bytes | None = None,
    ) -> bytes:
        flags = FLAG_USER_PRESENT
        if self.user_verification if user_verified is None else user_verified:
            flags |= FLAG_USER_VERIFIED
        if self.backup_eligible:
            flags |= FLAG_BACKUP_ELIGIBLE
        if self.backed_up:
            flags |= FLAG_BACKED_UP
        if attested_credential_data is not None:
            flags |= FLAG_ATTESTED_CREDENTIAL_DATA
        return (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([flags])
            + sign_count.to_bytes(4, "big")
            + (attested_credential_data or b"")
        )

    def _attested_credential_data(self, credential: SoftCredential) -> bytes:
        public_numbers = credential.private_key.public_key().public_numbers()
        cose_key = cbor2.dumps(
            {
                1: COSE_KEY_TYPE_EC2,
                3: COSE_ALG_ES256,
                -1: COSE_CURVE_P256,
                -2: public_numbers.x.to_bytes(32, "big"),
                -3: public_numbers.y.to_bytes(32, "big"),
            }
        )
        credential_id = credential.credential_id
        return self.aaguid + len(credential_id).to_bytes(2, "big") + credential_id + cose_key

    @staticmethod
    def _client_data_json(ceremony_type: str, challenge: str, origin: str) -> bytes:
        client_data = {"type": ceremony_type, "challenge": challenge, "origin": origin, "crossOrigin": False}
        return json.dumps(client_data, separators=(",", ":")).encode()
