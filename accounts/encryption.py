"""Secrets at rest (TOTP secrets): encrypted with MultiFernet under keys from MFA_ENCRYPTION_KEYS.

Fernet (cryptography's AES-128-CBC with HMAC-SHA256) does the cryptography. Beside each ciphertext
the database keeps the id of the key that made it (a short hash of the key, never the key), so a
rotation can tell which rows still need re-encrypting, and decryption tries that key first.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

logger = logging.getLogger(__name__)

KEY_ID_LENGTH = 16


class SecretUnreadable(Exception):
    """No configured key decrypts this value (its key was removed too early, or it is damaged)."""


@dataclass(frozen=True)
class EncryptedSecret:
    key_id: str
    ciphertext: str


def key_id_of(key: str) -> str:
    """A short public name of a key: lets an operator see which key a row needs, reveals nothing of it."""
    return hashlib.sha256(b"accounts.encryption.key-id:" + key.encode()).hexdigest()[:KEY_ID_LENGTH]


def configured_keys() -> list[str]:
    """The keys in order (the first encrypts; config/settings.py derives one under DEBUG when none is set)."""
    return [key.strip() for key in settings.MFA_ENCRYPTION_KEYS if key.strip()]


def invalid_keys(keys: list[str]) -> list[int]:
    """The positions (from 1) of keys that are not Fernet keys."""
    bad = []
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key)
        except (ValueError, TypeError):
            bad.append(position)
    return bad


@lru_cache(maxsize=4)
def _ring(keys: tuple[str, ...]) -> tuple[MultiFernet, dict[str, Fernet]]:
    if not keys:
        raise ImproperlyConfigured("MFA_ENCRYPTION_KEYS is empty: no key to encrypt second-factor secrets with.")
    fernets = [Fernet(key) for key in keys]
    return MultiFernet(fernets), {key_id_of(key): fernet for key, fernet in zip(keys, fernets, strict=True)}


def _current() -> tuple[MultiFernet, dict[str, Fernet], str]:
    keys = tuple(configured_keys())
    multi, by_id = _ring(keys)
    return multi, by_id, key_id_of(keys[0])


def encrypt_secret(plaintext: str) -> EncryptedSecret:
    multi, _by_id, primary_id = _current()
    return EncryptedSecret(key_id=primary_id, ciphertext=multi.encrypt(plaintext.encode()).decode("ascii"))


def decrypt_secret(secret: EncryptedSecret) -> str:
    """The plaintext; SecretUnreadable if no configured key opens it."""
    multi, by_id, _primary_id = _current()
    token = secret.ciphertext.encode("ascii")
    try:
        own_key = by_id.get(secret.key_id)
        return (own_key.decrypt(token) if own_key is not None else multi.decrypt(token)).decode()
    except InvalidToken:
        raise SecretUnreadable from None


def reencrypt_secret(secret: EncryptedSecret) -> EncryptedSecret:
    """The same plaintext under the first key (MultiFernet.rotate); SecretUnreadable as decrypt_secret."""
    multi, _by_id, primary_id = _current()
    try:
        rotated = multi.rotate(secret.ciphertext.encode("ascii"))
    except InvalidToken:
        raise SecretUnreadable from None
    return EncryptedSecret(key_id=primary_id, ciphertext=rotated.decode("ascii"))


def primary_key_id() -> str:
    return _current()[2]
