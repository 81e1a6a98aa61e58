"""Argon2id password hasher whose cost parameters come from settings."""

from django.conf import settings
from django.contrib.auth.hashers import Argon2PasswordHasher


class ConfiguredArgon2PasswordHasher(Argon2PasswordHasher):
    """Django's Argon2id hasher with explicit, configurable parameters.

    It keeps the algorithm name "argon2", so hashes made with other parameters
    still verify and ``must_update`` re-hashes them on the next sign-in.
    """

    # Properties in place of Django's class attributes (hence the ignores): the
    # settings are read when a password is hashed, so overriding them works.
    @property
    def time_cost(self) -> int:  # type: ignore[override]
        return settings.ARGON2_TIME_COST

    @property
    def memory_cost(self) -> int:  # type: ignore[override]
        return settings.ARGON2_MEMORY_COST_KIB

    @property
    def parallelism(self) -> int:  # type: ignore[override]
        return settings.ARGON2_PARALLELISM
