"""Argon2id with the same parameters as the app (t=2, m=19456 KiB, p=1)."""

from django.contrib.auth.hashers import Argon2PasswordHasher


class BenchArgon2PasswordHasher(Argon2PasswordHasher):
    time_cost = 2
    memory_cost = 19456
    parallelism = 1
