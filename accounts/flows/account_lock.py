"""Holding an account's row for the rest of the transaction, so that changes to who controls it take turns."""

from accounts.models import User


def lock_account(user: User | int) -> None:
    """Hold the account's row until the transaction ends (PostgreSQL; SQLite
    serialises writers anyway), so that a security reset and the redemption of
    an emailed link never interleave, nor a passkey's removal and a sign-in with
    it: one of them sees the other's result."""
    user_id = user if isinstance(user, int) else user.pk
    list(User.objects.select_for_update().filter(pk=user_id).values_list("pk", flat=True))
