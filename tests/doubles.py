"""Test doubles shared by the suite: a password hasher that counts its work."""

from accounts.hashers import ConfiguredArgon2PasswordHasher

# Dotted path for settings.PASSWORD_HASHERS. Replace the first hasher rather than
# prepend: Django maps each algorithm name ("argon2") to the last one listed.
COUNTING_HASHER = "tests.doubles.CountingArgon2Hasher"


class CountingArgon2Hasher(ConfiguredArgon2PasswordHasher):
    """The configured hasher, counting every hash it computes (encode and verify)."""

    calls = 0

    def encode(self, password, salt):
        CountingArgon2Hasher.calls += 1
        return super().encode(password, salt)

    def verify(self, password, encoded):
        CountingArgon2Hasher.calls += 1
        return super().verify(password, encoded)


def install_counting_hasher(settings) -> type[CountingArgon2Hasher]:
    """Make the counting hasher the configured one, with its count at zero."""
    settings.PASSWORD_HASHERS = [COUNTING_HASHER, *settings.PASSWORD_HASHERS[1:]]
    CountingArgon2Hasher.calls = 0
    return CountingArgon2Hasher
