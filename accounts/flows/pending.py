"""The pending sign-in: a first factor proven, the second awaited, no session yet.

Server-side and single use: its handle (random, 256 bits) is stored only as a hash; it lasts
ACCOUNTS_MFA_PENDING_LIFETIME and takes ACCOUNTS_MFA_PENDING_ATTEMPTS codes. Spending an attempt
and completing it are each one conditional UPDATE, so concurrent requests cannot get more
attempts than allowed, nor complete it twice.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.exceptions import PendingSignInInvalid
from accounts.models import PendingSignIn, User
from accounts.tokens import generate_token, hash_token, is_well_formed

# How many sign-ins of one account may wait for their second factor at once.
OPEN_PER_ACCOUNT = 3


@sensitive_variables("handle")
def start_pending_sign_in(*, user: User, amr: list[str]) -> str:
    """A new pending sign-in for ``user``; returns its handle (to keep in the page session or a cookie)."""
    handle = generate_token()
    now = timezone.now()
    # A few open at once (two tabs, a retry); older ones end, so that each password entry does not
    # bring another set of attempts with it.
    open_ones = PendingSignIn.objects.filter(user=user, completed_at__isnull=True, expires_at__gt=now)
    older = list(open_ones.order_by("-created_at").values_list("pk", flat=True)[OPEN_PER_ACCOUNT - 1 :])
    if older:
        PendingSignIn.objects.filter(pk__in=older).update(expires_at=now)
    PendingSignIn.objects.create(
        user=user,
        handle_hash=hash_token(handle),
        amr=amr,
        created_at=now,
        expires_at=now + timedelta(seconds=settings.ACCOUNTS_MFA_PENDING_LIFETIME),
        attempts_left=settings.ACCOUNTS_MFA_PENDING_ATTEMPTS,
    )
    return handle


def _usable(now: datetime) -> dict[str, object]:
    # The row's own columns only: an UPDATE filtered through a join becomes "id IN (subquery)", which
    # PostgreSQL does not re-check after waiting for a concurrent update's row lock.
    return {"completed_at__isnull": True, "expires_at__gt": now, "attempts_left__gt": 0}


@sensitive_variables("handle")
def pending_sign_in(handle: str | None) -> PendingSignIn:
    """The pending sign-in this handle names, if it can still be completed; PendingSignInInvalid otherwise."""
    if not is_well_formed(handle):
        raise PendingSignInInvalid
    pending = (
        PendingSignIn.objects.select_related("user")
        .filter(handle_hash=hash_token(handle), **_usable(timezone.now()))
        .first()
    )
    if pending is None or not pending.user.is_active:
        raise PendingSignInInvalid
    return pending


def spend_attempt(pending: PendingSignIn) -> None:
    """One code may be tried: PendingSignInInvalid once none is left (or it expired or finished)."""
    spent = PendingSignIn.objects.filter(pk=pending.pk, **_usable(timezone.now())).update(
        attempts_left=F("attempts_left") - 1
    )
    if spent != 1:
        raise PendingSignInInvalid


def complete_pending(pending: PendingSignIn) -> None:
    """The second factor is proven: the pending sign-in is used up (once; PendingSignInInvalid after)."""
    completed = PendingSignIn.objects.filter(
        pk=pending.pk, completed_at__isnull=True, expires_at__gt=timezone.now()
    ).update(completed_at=timezone.now())
    if completed != 1:
        raise PendingSignInInvalid


def end_pending_sign_ins(*, user: User) -> int:
    """End every sign-in of ``user`` still waiting for its second factor (a security reset)."""
    return PendingSignIn.objects.filter(user=user, completed_at__isnull=True).update(expires_at=timezone.now())
