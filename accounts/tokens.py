"""Opaque one-time tokens: generation, SHA-256 hashing for storage, constant-time checks.

Not Django's PasswordResetTokenGenerator: its tokens are stateless HMACs that stay
valid until they expire or the password changes, while these are stored (as hashes)
so that each is used once, a newer one replaces older ones, and a security reset
retires them all. The standard library's secrets and hashlib do the cryptography.
"""

import hashlib
import hmac
import re
import secrets
from typing import TypeGuard

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


def token_matches(token: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_token(token), stored_hash)
