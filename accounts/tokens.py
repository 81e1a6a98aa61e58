"""Opaque one-time tokens: generation, SHA-256 hashing for storage, constant-time checks.

Not Django's PasswordResetTokenGenerator: its tokens are stateless HMACs that stay
valid until they expire or the password changes, while these are stored (as hashes)
so that each is used once, a newer one replaces older ones, and a security reset
retires them all. The standard library's secrets and hashlib do the cryptography.
"""

import base64
import hashlib
import hmac
import re
import secrets
from collections.abc import Iterator
from typing import TypeGuard

from django.conf import settings
from django.utils.crypto import salted_hmac

# 32 random bytes = 256 bits, URL-safe base64 without padding: 43 characters.
TOKEN_BYTES = 32
_TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{43}$")


def generate_token() -> str:
    return secrets.token_urlsafe(TOKEN_BYTES)


def hash_token(token: str) -> str:
    """The only form in which a token is ever stored."""
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def is_well_formed(token: str | None) -> TypeGuard[str]:
    """Cheap shape check, so garbage never reaches the database.

    None (no token in the page session or cookie) is not well formed. The type
    check stays at run time too: a page session or a JSON body can hold anything.
    True tells the type checker that ``token`` is a string.
    """
    return isinstance(token, str) and _TOKEN_SHAPE.fullmatch(token) is not None


def successor_token(token: str, *, secret: str | None = None) -> str:
    """The refresh token that replaces ``token`` when it is rotated.

    An HMAC of the presented token under a key derived from SECRET_KEY, so every
    presentation of one token yields the same successor (a retry after a lost
    answer, or many tabs at once, all converge on the one live token) while the
    database still holds only hashes: the successor cannot be computed from
    what is stored, only from the token itself and the server's key.
    """
    digest = salted_hmac(_SUCCESSOR_SALT, token, secret=secret, algorithm="sha256").digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def successor_candidates(token: str) -> Iterator[str]:
    """The successor under SECRET_KEY, then under each fallback key: a rotation
    just before a key change still has its successor recognised after it."""
    yield successor_token(token)
    for secret in settings.SECRET_KEY_FALLBACKS:
        yield successor_token(token, secret=secret)


_SUCCESSOR_SALT = "accounts.tokens.successor_token"


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)
