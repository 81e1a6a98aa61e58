"""Deactivating and reactivating accounts."""

from django.db import transaction

from accounts.flows.device_sessions import EndReason
from accounts.flows.security_reset import security_reset
from accounts.models import User


def deactivate_user(*, user: User) -> int:
    """Block sign-in, end every device session at once and retire every unused
    emailed link (a reactivated account starts clean); returns how many sessions ended."""
    with transaction.atomic():
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        return security_reset(user=user, reason=EndReason.USER_DEACTIVATED, record=False)


def reactivate_user(*, user: User) -> None:
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
