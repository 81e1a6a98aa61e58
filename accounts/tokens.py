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


def seal_successor(successor: str, *, presented: str) -> str:
    """The successor of ``presented``, sealed for storage beside the rotated token's hash (hex).

    A rotation's successor is a fresh random token; a retry of the same presented token within
    the grace window must get that same successor back, so it is kept, but never as such: it is
    XORed with a one-time pad, an HMAC of the presented token under a key derived from
    SECRET_KEY. Only someone holding both the presented token (which the database does not
    hold, only its hash) and the server key can unseal it. The pad is used once, because each
    token is rotated once.
    """
    return bytes(a ^ b for a, b in zip(_token_bytes(successor), _pad(presented), strict=True)).hex()


def unseal_successor(sealed: str, *, presented: str) -> Iterator[str]:
    """The successor sealed under SECRET_KEY, then under each fallback key: a rotation just
    before a key change is still recognised after it (the caller checks against the stored hash).
    Nothing for a value that is not one seal_successor made."""
    if not is_sealed_successor(sealed):
        return
    data = bytes.fromhex(sealed)
    for secret in [None, *settings.SECRET_KEY_FALLBACKS]:
        raw = bytes(a ^ b for a, b in zip(data, _pad(presented, secret=secret), strict=True))
        yield base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def is_sealed_successor(value: str) -> bool:
    """Whether a stored value has the shape seal_successor gives (32 bytes in hex)."""
    return _SEALED_SHAPE.fullmatch(value) is not None


_SEALED_SHAPE = re.compile(r"^[0-9a-f]{64}$")
_SUCCESSOR_SALT = "accounts.tokens.seal_successor"


def _pad(presented: str, *, secret: str | None = None) -> bytes:
    return salted_hmac(_SUCCESSOR_SALT, presented, secret=secret, algorithm="sha256").digest()


def _token_bytes(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=")


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)
