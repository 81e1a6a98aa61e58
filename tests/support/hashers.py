"""Password hashing in the suite: the product's own Argon2id hasher at the lowest cost Argon2 allows, the
real cost for the tests marked ``real_argon2``, and a hasher that counts its work.

The hasher stays ``accounts.hashers.ConfiguredArgon2PasswordHasher``, which reads its cost from
settings when it hashes: the suite lowers ARGON2_TIME_COST, ARGON2_MEMORY_COST_KIB and
ARGON2_PARALLELISM (conftest.py, at start-up), so every code path (identify_hasher, must_update,
the same-work dummy hashes) is the product's and only the cost differs. Production settings are
never changed: the real values stay what config/settings.py loaded.
"""

from contextlib import AbstractContextManager

from django.test.utils import override_settings

from accounts.hashers import ConfiguredArgon2PasswordHasher

COST_SETTINGS = ("ARGON2_TIME_COST", "ARGON2_MEMORY_COST_KIB", "ARGON2_PARALLELISM")
# Argon2's minimum: one pass over 8 KiB, one lane (tens of microseconds instead of tens of milliseconds).
FAST_COST = {"ARGON2_TIME_COST": 1, "ARGON2_MEMORY_COST_KIB": 8, "ARGON2_PARALLELISM": 1}
_real_cost: dict[str, int] = {}

# Dotted path for settings.PASSWORD_HASHERS. Replace the first hasher rather than
# prepend: Django maps each algorithm name ("argon2") to the last one listed.
COUNTING_HASHER = "tests.support.hashers.CountingArgon2Hasher"


def use_fast_argon2() -> None:
    """For the whole run: Argon2id at FAST_COST (the real cost is kept for ``real_argon2``)."""
    from django.conf import settings

    _real_cost.update({name: getattr(settings, name) for name in COST_SETTINGS})
    override_settings(**FAST_COST).enable()


def real_argon2() -> AbstractContextManager:
    """Argon2id at the cost config/settings.py configured, for a test about the parameters themselves."""
    assert _real_cost, "use_fast_argon2() runs first (conftest.py)"
    return override_settings(**_real_cost)


class CountingArgon2Hasher(ConfiguredArgon2PasswordHasher):
    """The configured hasher (at whichever cost is active), counting every hash it computes (encode and verify)."""

    calls = 0

    def encode(self, password, salt):
        CountingArgon2Hasher.calls += 1
        return super().encode(password, salt)

    def verify(self, password, encoded):
        CountingArgon2Hasher.calls += 1
        return super().verify(password, encoded)


def install_counting_hasher(settings) -> type[CountingArgon2Hasher]:
    """Make the counting hasher the configured one (through pytest-django's ``settings``), its count at zero."""
    settings.PASSWORD_HASHERS = [COUNTING_HASHER, *settings.PASSWORD_HASHERS[1:]]
    CountingArgon2Hasher.calls = 0
    return CountingArgon2Hasher
