"""JWT access tokens: the signing key ring, issuing and verifying them on top of simplejwt.

simplejwt (on PyJWT) signs and checks the claims; what it lacks is written here: a
key ring with ``kid`` headers, verifying-only fallback keys during a rotation, the
published JWKS, and a per-process cache of tokens already verified.
"""

from __future__ import annotations

import base64
import hashlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache, lru_cache
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes, PublicKeyTypes
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.signals import setting_changed
from django.dispatch import receiver
from jwt.algorithms import OKPAlgorithm
from rest_framework_simplejwt.backends import TokenBackend
from rest_framework_simplejwt.exceptions import ExpiredTokenError, TokenBackendError, TokenBackendExpiredToken
from rest_framework_simplejwt.models import TokenUser
from rest_framework_simplejwt.tokens import Token
from rest_framework_simplejwt.utils import datetime_from_epoch

from accounts.checks import MIN_HMAC_KEY_BYTES
from accounts.revocation import SessionId

# RFC 9068: the media type of OAuth 2.0 JWT access tokens.
ACCESS_TOKEN_TYPE = "at+jwt"  # noqa: S105 a media type, not a secret
REQUIRED_CLAIMS = ["sub", "sid", "jti", "iat", "exp", "iss", "aud"]

# The header ``alg`` values each JWT_ALGORITHM accepts. RFC 9864 deprecates the polymorphic
# ``EdDSA`` (Ed25519 or Ed448) for the fully specified ``Ed25519``; with an Ed25519 key both
# name the same signature, so either setting accepts both: tokens signed before a switch (or a
# rollback) verify until they expire, and so do those of processes already switched during a
# rolling deploy. Nothing else is accepted (no HS/ES/none confusion). Tuples, not sets: a
# header's ``alg`` may be any JSON value, and ``in`` must not need it to be hashable.
ACCEPTED_ALGORITHMS: dict[str, tuple[str, ...]] = {
    "HS256": ("HS256",),
    "Ed25519": ("Ed25519", "EdDSA"),
    "EdDSA": ("EdDSA", "Ed25519"),
    "ES256": ("ES256",),
}
ED25519_ALGORITHMS = {"Ed25519", "EdDSA"}


# The keys each JWT_ALGORITHM uses: the HMAC secret's bytes, or an Ed25519 / P-256 key pair.
PublicKey = ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey
PrivateKey = ed25519.Ed25519PrivateKey | ec.EllipticCurvePrivateKey


@dataclass(frozen=True)
class VerifyingKey:
    kid: str
    key: bytes | PublicKey
    jwk: dict[str, str] | None  # the public JWK, for asymmetric keys only


@dataclass(frozen=True)
class KeyRing:
    """The key that signs new tokens and every key whose tokens are still accepted."""

    algorithm: str
    signing_kid: str
    signing_key: bytes | PrivateKey
    verifying_keys: dict[str, VerifyingKey] = field(default_factory=dict)

    @property
    def public_jwks(self) -> list[dict[str, str]]:
        return [key.jwk for key in self.verifying_keys.values() if key.jwk is not None]


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _kid(material: bytes) -> str:
    # A fingerprint, so operators need not name keys; for HMAC keys it is a
    # hash of the secret, which reveals nothing about it.
    return hashlib.sha256(material).hexdigest()[:16]


def _load_hmac_key(secret: str) -> tuple[str, bytes, VerifyingKey]:
    material = secret.encode()
    if len(material) < MIN_HMAC_KEY_BYTES:
        raise ImproperlyConfigured(f"HS256 JWT keys must be at least {MIN_HMAC_KEY_BYTES} bytes.")
    if secret == settings.SECRET_KEY:
        raise ImproperlyConfigured("The JWT signing key must not be SECRET_KEY.")
    kid = _kid(b"hmac:" + hashlib.sha256(material).digest())
    return kid, material, VerifyingKey(kid=kid, key=material, jwk=None)


def _public_jwk(algorithm: str, public_key: PublicKey, kid: str) -> dict[str, str]:
    if isinstance(public_key, ed25519.Ed25519PublicKey):
        raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
        return {"kty": "OKP", "crv": "Ed25519", "x": _b64url(raw), "kid": kid, "alg": algorithm, "use": "sig"}
    numbers = public_key.public_numbers()
    return {
        "kty": "EC",
        "crv": "P-256",
        "x": _b64url(numbers.x.to_bytes(32, "big")),
        "y": _b64url(numbers.y.to_bytes(32, "big")),
        "kid": kid,
        "alg": algorithm,
        "use": "sig",
    }


def _checked_public_key(algorithm: str, public_key: PublicKeyTypes) -> PublicKey:
    if algorithm in ED25519_ALGORITHMS and isinstance(public_key, ed25519.Ed25519PublicKey):
        return public_key
    if (
        algorithm == "ES256"
        and isinstance(public_key, ec.EllipticCurvePublicKey)
        and public_key.curve.name == "secp256r1"
    ):
        return public_key
    raise ImproperlyConfigured(f"The JWT key is not a key for {algorithm}.")


def _load_pem_key(algorithm: str, pem: str, *, private: bool) -> tuple[PrivateKey | None, VerifyingKey]:
    """The key pair of a PEM private key, or the public key of a PEM public key."""
    data = pem.encode()
    loaded_private: PrivateKeyTypes | None
    try:
        if private or b"PRIVATE KEY" in data:
            loaded_private = serialization.load_pem_private_key(data, password=None)
            loaded_public = loaded_private.public_key()
        else:
            loaded_private = None
            loaded_public = serialization.load_pem_public_key(data)
    except ValueError as error:
        raise ImproperlyConfigured(f"A JWT key is not a valid PEM key: {error}") from None
    public_key = _checked_public_key(algorithm, loaded_public)
    # A checked public key's private key is of the matching kind: this narrows the type only.
    private_key = (
        loaded_private if isinstance(loaded_private, (ed25519.Ed25519PrivateKey, ec.EllipticCurvePrivateKey)) else None
    )
    der = public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    kid = _kid(der)
    return private_key, VerifyingKey(kid=kid, key=public_key, jwk=_public_jwk(algorithm, public_key, kid))


def _load_asymmetric_signing_key(algorithm: str, pem: str) -> tuple[str, PrivateKey, VerifyingKey]:
    private_key, verifying_key = _load_pem_key(algorithm, pem, private=True)
    if private_key is None:
        raise ImproperlyConfigured("JWT_SIGNING_KEY must be a private key.")
    return verifying_key.kid, private_key, verifying_key


@cache
def key_ring() -> KeyRing:
    """Load (once per process) the keys that the settings name."""
    algorithm = settings.JWT_ALGORITHM
    signing_key: bytes | PrivateKey
    if algorithm == "HS256":
        signing_kid, signing_key, current = _load_hmac_key(settings.JWT_SIGNING_KEY)
        fallbacks = [_load_hmac_key(secret)[2] for secret in settings.JWT_VERIFYING_KEY_FALLBACKS]
    elif algorithm in {*ED25519_ALGORITHMS, "ES256"}:
        signing_kid, signing_key, current = _load_asymmetric_signing_key(algorithm, settings.JWT_SIGNING_KEY)
        fallbacks = [_load_pem_key(algorithm, pem, private=False)[1] for pem in settings.JWT_VERIFYING_KEY_FALLBACKS]
    else:
        raise ImproperlyConfigured(f"Unsupported JWT_ALGORITHM {algorithm!r}.")
    verifying = {key.kid: key for key in [current, *fallbacks]}
    return KeyRing(algorithm=algorithm, signing_kid=signing_kid, signing_key=signing_key, verifying_keys=verifying)


@receiver(setting_changed)
def _reload_keys_when_settings_change(*, setting: str, **kwargs: Any) -> None:
    if setting.startswith("JWT_") or setting in {"SECRET_KEY", "SITE_URL"}:
        key_ring.cache_clear()
        token_backend.cache_clear()
        _verify_once.cache_clear()


class _Ed25519Algorithm(OKPAlgorithm):
    """RFC 9864's ``Ed25519``: PyJWT's EdDSA, which would also take Ed448 keys, held to Ed25519."""

    def prepare_key(self, key: Any) -> ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey:
        prepared = super().prepare_key(key)
        if isinstance(prepared, (ed25519.Ed25519PrivateKey, ed25519.Ed25519PublicKey)):
            return prepared
        raise jwt.InvalidKeyError("The Ed25519 algorithm takes Ed25519 keys only.")


def _pyjwt_with_ed25519() -> jwt.PyJWT:
    # PyJWT knows only ``EdDSA``. Registering ``Ed25519`` on an instance of our own, not on PyJWT's
    # global one, leaves every other user of PyJWT (simplejwt included) as it was. PyJWT offers
    # register_algorithm on PyJWS only, so this reaches the instance's own PyJWS. Should a later
    # PyJWT know ``Ed25519`` itself, this one (held to Ed25519 keys) still replaces it.
    instance = jwt.PyJWT()
    if "Ed25519" in instance._jws.get_algorithms():
        instance._jws.unregister_algorithm("Ed25519")
    instance._jws.register_algorithm("Ed25519", _Ed25519Algorithm())
    return instance


_PYJWT = _pyjwt_with_ed25519()


class KeyRingTokenBackend(TokenBackend):
    """simplejwt's backend, extended with ``kid``/``typ`` headers and key rotation.

    Only the configured algorithm is accepted (both names of Ed25519 for an
    Ed25519 ring: ACCEPTED_ALGORITHMS), so ``none`` and HS/ES/RS confusion fail;
    the header must say ``typ: at+jwt`` and name a known ``kid``, and every
    claim in REQUIRED_CLAIMS must be present and valid.
    """

    def __init__(self, ring: KeyRing, *, audience: str, issuer: str):
        super().__init__(ring.algorithm, signing_key=None, audience=audience, issuer=issuer)
        self.ring = ring
        self.accepted_algorithms = ACCEPTED_ALGORITHMS[ring.algorithm]

    def _validate_algorithm(self, algorithm: str) -> None:
        # simplejwt's own list has PyJWT's names only, not RFC 9864's Ed25519.
        if algorithm not in ACCEPTED_ALGORITHMS:
            raise TokenBackendError(f"Unsupported JWT algorithm {algorithm!r}")

    def encode(self, payload: dict[str, Any]) -> str:
        claims = {**payload, "aud": self.audience, "iss": self.issuer}
        headers = {"kid": self.ring.signing_kid, "typ": ACCESS_TOKEN_TYPE}
        return _PYJWT.encode(claims, self.ring.signing_key, algorithm=self.algorithm, headers=headers)

    # simplejwt annotates the encoded JWT as ``Token``; it is the header's bytes (or text).
    def decode(self, token: bytes | str, verify: bool = True) -> dict[str, Any]:  # type: ignore[override]
        if not verify:
            raise TokenBackendError("Unverified decoding is not allowed.")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.InvalidTokenError as error:
            raise TokenBackendError("Token is invalid") from error
        if str(header.get("typ", "")).lower() not in {ACCESS_TOKEN_TYPE, f"application/{ACCESS_TOKEN_TYPE}"}:
            raise TokenBackendError("Token has the wrong type")
        if header.get("alg") not in self.accepted_algorithms:
            raise TokenBackendError("Token uses the wrong algorithm")
        kid = header.get("kid")  # PyJWT has checked that a kid, if present, is a string
        verifying_key = self.ring.verifying_keys.get(kid) if isinstance(kid, str) else None
        if verifying_key is None:
            raise TokenBackendError("Token was signed with an unknown key")
        try:
            return _PYJWT.decode(
                token,
                verifying_key.key,
                algorithms=list(self.accepted_algorithms),
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS, "verify_signature": True},
            )
        except jwt.ExpiredSignatureError as error:
            raise TokenBackendExpiredToken("Token is expired") from error
        except jwt.InvalidTokenError as error:
            raise TokenBackendError("Token is invalid") from error


@cache
def token_backend() -> KeyRingTokenBackend:
    return KeyRingTokenBackend(key_ring(), audience=settings.JWT_AUDIENCE, issuer=settings.JWT_ISSUER)


class AccessToken(Token):
    """A short-lived access token naming a user (``sub``) and a device session (``sid``)."""

    token_type = "access"  # noqa: S105 the token kind, not a secret

    # A property rather than simplejwt's class attribute: the lifetime setting is read at issue time.
    @property
    def lifetime(self) -> timedelta:  # type: ignore[override]
        return timedelta(seconds=settings.JWT_ACCESS_TOKEN_LIFETIME)

    @property
    def token_backend(self) -> KeyRingTokenBackend:
        return token_backend()

    def verify_token_type(self) -> None:
        # The type is the ``typ: at+jwt`` header, checked by the backend.
        return None

    @classmethod
    def for_session(
        cls,
        *,
        user_id: int,
        session_id: SessionId,
        email_verified: bool,
        amr: list[str] | None = None,
        auth_time: datetime | None = None,
    ) -> AccessToken:
        token = cls()
        token.payload.pop("token_type", None)
        token["sub"] = str(user_id)
        token["sid"] = str(session_id)
        token["email_verified"] = email_verified
        # How and when the person last authenticated on this device (RFC 8176, OpenID Connect).
        token["amr"] = list(amr) if amr is not None else ["pwd"]
        if auth_time is not None:
            token["auth_time"] = int(auth_time.timestamp())
        return token

    @property
    def expires_at(self) -> datetime:
        return datetime_from_epoch(self["exp"])


# Each live access token is presented on every API call for its whole lifetime;
# a process verifies each one once. Only tokens that verified are kept (an
# exception is never cached), so garbage cannot fill it; 2048 entries of about
# 2 KB each bound the memory.
VERIFIED_TOKENS_PER_PROCESS = 2048


@lru_cache(maxsize=VERIFIED_TOKENS_PER_PROCESS)
def _verify_once(raw_token: bytes | str) -> AccessToken:
    # simplejwt annotates the encoded token it decodes as ``Token``; it is the JWT's bytes or text.
    return AccessToken(raw_token)  # type: ignore[arg-type]


def verified_access_token(raw_token: bytes | str) -> AccessToken:
    """The access token, if its signature, header and claims are valid and it has not expired.

    Raises simplejwt's TokenError otherwise. Whether its session is still live is
    a separate question (accounts.revocation), asked on every request.
    """
    token = _verify_once(raw_token)
    # Verified before, perhaps long ago: expiry is the one check that time changes.
    if token["exp"] <= time.time():
        raise ExpiredTokenError("Token is expired")
    return token


class AccessTokenUser(TokenUser):
    """The user behind a verified access token, without a database query.

    What the API views read of it: ``id`` (the account's primary key),
    ``session_id`` (the device session's id, as the ``sid`` claim has it),
    ``email_verified`` and ``is_authenticated`` (always True).
    """

    # simplejwt's TokenUser gives the ``sub`` claim as text; this app's user ids are integers.
    @property
    def id(self) -> int:  # type: ignore[override]
        return int(self.token["sub"])

    @property
    def pk(self) -> int:  # type: ignore[override]
        return self.id

    @property
    def session_id(self) -> str:
        return str(self.token["sid"])

    @property
    def email_verified(self) -> bool:
        return bool(self.token.get("email_verified", False))

    @property
    def amr(self) -> list[str]:
        return [str(method) for method in self.token.get("amr", [])]
