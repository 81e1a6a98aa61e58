"""Deactivating and reactivating accounts."""

from django.db import transaction

from accounts.flows.device_sessions import EndReason, end_user_sessions
from accounts.models import User


def deactivate_user(*, user: User) -> int:
    """Block sign-in and end every device session at once; returns how many ended."""
    with transaction.atomic():
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        return end_user_sessions(user=user, reason=EndReason.USER_DEACTIVATED, record=False)


def reactivate_user(*, user: User) -> None:
    if not user.is_active:
        user.is_active = True
        user.save(update_fields=["is_active"])
