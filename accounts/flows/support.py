"""What support staff do for a user from the admin, each recorded with the acting staff member.

Every admin action comes through here, and so does the one rule about who
support may act on (``actionable_by``): support helps users; only superusers
act on staff accounts.
"""

from dataclasses import dataclass
from datetime import timedelta
from enum import StrEnum
from typing import Any, Protocol

from django.conf import settings
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone

from accounts.audit import EventKind, record_event
from accounts.client_info import ClientInfo
from accounts.exceptions import SessionNotFound, StaffAccountProtected
from accounts.flows.account_deletion import erase_account
from accounts.flows.account_lock import lock_account
from accounts.flows.account_status import deactivate_user, reactivate_user
from accounts.flows.deliverability import clear_undeliverable, forget_address
from accounts.flows.device_sessions import EndReason, as_session_uuid, end_device_session, end_user_sessions
from accounts.flows.password_reset import issue_password_reset_link, request_password_reset
from accounts.flows.second_factor import remove_factors
from accounts.flows.security_reset import security_reset
from accounts.flows.verification import prove_address, send_verification_email
from accounts.mail import send_account_email, site_link
from accounts.models import DeviceSession, Passkey, TotpAuthenticator, UndeliverableAddress, User
from accounts.revocation import SessionId


class StaffAction(Protocol):
    """A support action on one user; returns False when there was nothing to do for them."""

    def __call__(self, *, staff: User, user: User, client: ClientInfo | None = None) -> int | None: ...


@dataclass(frozen=True)
class Outcome:
    """What an action on a selection did: how many it acted on, how many staff accounts (or their sessions) it left."""

    done: int
    skipped_staff: int


def actionable_by(staff: User, users: QuerySet[User]) -> QuerySet[User]:
    """The users among ``users`` that ``staff`` may act on: support helps users; only superusers act on staff."""
    if staff.is_superuser:
        return users
    return users.filter(is_staff=False, is_superuser=False)


def may_act_on(staff: User, user: User) -> bool:
    """Whether ``staff`` may act on ``user`` as the database has it now (actionable_by, for one account)."""
    return actionable_by(staff, User.objects.filter(pk=user.pk)).exists()


def _require_may_act_on(staff: User, user: User) -> None:
    if not may_act_on(staff, user):
        raise StaffAccountProtected


def staff_act_on_users(
    *, staff: User, users: QuerySet[User], action: StaffAction, client: ClientInfo | None = None
) -> Outcome:
    """Run ``action`` for each of ``users`` that ``staff`` may act on."""
    actionable = actionable_by(staff, users)
    skipped = users.count() - actionable.count()
    done = sum(1 for user in actionable if action(staff=staff, user=user, client=client) is not False)
    return Outcome(done=done, skipped_staff=skipped)


def staff_end_device_sessions(
    *, staff: User, sessions: QuerySet[DeviceSession], client: ClientInfo | None = None
) -> Outcome:
    """End the selected sessions that are still open, each recorded as ended with ``staff`` as the actor."""
    actionable = sessions.filter(user__in=actionable_by(staff, User.objects.all()))
    skipped = sessions.count() - actionable.count()
    ended = 0
    for session in actionable.filter(revoked_at__isnull=True):
        try:
            end_device_session(
                user=session.user_id,
                session_id=session.pk,
                reason=EndReason.ENDED_BY_STAFF,
                client=client,
                actor=staff,
            )
        except SessionNotFound:
            continue  # it ended meanwhile (signed out, expired, ended by someone else)
        ended += 1
    return Outcome(done=ended, skipped_staff=skipped)


def staff_clear_undeliverable(
    *, staff: User, marks: QuerySet[UndeliverableAddress], client: ClientInfo | None = None
) -> Outcome:
    """Let email go to the selected addresses again, each recorded with ``staff`` as the actor."""
    cleared = 0
    for mark in marks:
        with transaction.atomic():
            if clear_undeliverable(address=mark.address, actor=staff, client=client):
                owner = User.objects.filter(email=mark.address).first()
                record_event(
                    kind=EventKind.STAFF_ACTION,
                    user=owner,
                    actor=staff,
                    client=client,
                    email=mark.address,
                    action="clear_undeliverable",
                )
                cleared += 1
    return Outcome(done=cleared, skipped_staff=0)


def _record(*, staff: User, user: User, action: str, client: ClientInfo | None, **detail: Any) -> None:
    record_event(kind=EventKind.STAFF_ACTION, user=user, actor=staff, client=client, action=action, **detail)


def staff_end_sessions(*, staff: User, user: User, client: ClientInfo | None = None) -> int:
    """End every session and retire every unused emailed link of ``user``."""
    with transaction.atomic():
        ended = security_reset(user=user, reason=EndReason.ENDED_BY_STAFF, actor=staff, client=client, record=False)
        _record(staff=staff, user=user, action="end_sessions", client=client, sessions_ended=ended)
    return ended


def staff_send_password_reset(*, staff: User, user: User, client: ClientInfo | None = None) -> None:
    with transaction.atomic():
        _record(staff=staff, user=user, action="send_password_reset", client=client)
    request_password_reset(email=user.email, client=client)


def staff_resend_verification(*, staff: User, user: User, client: ClientInfo | None = None) -> bool:
    """False when there is nothing to verify (already verified or inactive)."""
    if user.email_verified or not user.is_active:
        return False
    with transaction.atomic():
        _record(staff=staff, user=user, action="resend_verification", client=client)
        send_verification_email(user=user)
    return True


def staff_mark_email_verified(*, staff: User, user: User, client: ClientInfo | None = None) -> bool:
    """Mark the address verified without the owner's link (false if it already is).

    Nobody proved they know the password, which was chosen before anyone
    proved the address (maybe by someone else), so it does not survive: the
    account gets an unusable password, every session and emailed link ends,
    and a link to choose a password goes to the address.
    """
    with transaction.atomic():
        lock_account(user)
        user.refresh_from_db()  # its owner may have just verified it, with a password they proved
        if user.email_verified:
            return False
        user.set_unusable_password()
        user.save(update_fields=["password"])
        ended = security_reset(user=user, reason=EndReason.ENDED_BY_STAFF, record=False)
        prove_address(user=user, password_replaced=True)
        link = issue_password_reset_link(user=user)
        _record(staff=staff, user=user, action="mark_email_verified", client=client, sessions_ended=ended)
        send_account_email(
            template="choose_password",
            to=user.email,
            context={"link": link, "valid_minutes": settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT // 60},
            greet=user,
        )
    return True


def staff_deactivate(*, staff: User, user: User, client: ClientInfo | None = None) -> int:
    with transaction.atomic():
        ended = deactivate_user(user=user)
        _record(staff=staff, user=user, action="deactivate", client=client, sessions_ended=ended)
    return ended


def staff_reactivate(*, staff: User, user: User, client: ClientInfo | None = None) -> None:
    with transaction.atomic():
        reactivate_user(user=user)
        _record(staff=staff, user=user, action="reactivate", client=client)


def staff_save_user(*, staff: User, user: User, client: ClientInfo | None = None) -> None:
    """Save an edit of ``user`` made in the admin's form.

    An edit that clears "active" is a deactivation (every session and emailed
    link ends, recorded as ``staff``'s action), in the same transaction as the
    rest of the edit: if ending the sessions fails, nothing of the edit stays.
    """
    with transaction.atomic():
        lock_account(user)
        _require_may_act_on(staff, user)  # as stored, before this edit (which may clear is_staff)
        deactivates = not user.is_active and User.objects.filter(pk=user.pk, is_active=True).exists()
        user.save()
        if deactivates:
            staff_deactivate(staff=staff, user=user, client=client)


def staff_delete_user(*, staff: User, user: User, client: ClientInfo | None = None) -> None:
    """Delete an account from the admin; its tokens stop working at once.

    No email: the one the owner gets when they delete it themselves says "as you asked".
    """
    _require_may_act_on(staff, user)
    with transaction.atomic():
        erase_account(user=user, client=client, actor=staff, by_staff=True)
        forget_address(address=user.email)


def staff_reset_mfa(*, staff: User, user: User, client: ClientInfo | None = None) -> bool:
    """Turn off a user's second factor (a lost phone and lost recovery codes); False if none was on.

    The owner is emailed at once: if they did not ask, the notice is how they learn that someone
    talked support into it. Only superusers may do it for staff (actionable_by).
    """
    _require_may_act_on(staff, user)
    with transaction.atomic():
        lock_account(user)
        # A passkey is a whole credential: the sessions it signed in end with it.
        ended = end_user_sessions(
            user=user,
            reason=EndReason.PASSKEY_REMOVED,
            client=client,
            actor=staff,
            opened_with=Passkey.objects.filter(user=user),
        )
        if not remove_factors(user=user):
            return False
        _record(staff=staff, user=user, action="reset_mfa", client=client, sessions_ended=ended)
        record_event(kind=EventKind.MFA_DISABLED, user=user, actor=staff, client=client, by_staff=True)
        send_account_email(
            template="mfa_reset_by_support",
            to=user.email,
            greet=user,
            context={
                "security_link": site_link("accounts:security"),
                "reset_link": site_link("accounts:password_reset"),
            },
        )
    return True


class AdminAccess(StrEnum):
    """Whether a signed-in staff member may use the admin now, and if not, what they must do first."""

    ALLOWED = "allowed"
    NOT_STAFF = "not_staff"
    ENROL_MFA = "enrol_mfa"  # staff must have a second factor at all
    PROVE_SECOND_FACTOR = "prove_second_factor"  # this browser's session did not pass it


def admin_access(*, user: User, session_id: SessionId | None) -> AdminAccess:
    """The rule for the admin: active staff, with a second factor, on a device session that proved
    that factor within ACCOUNTS_ADMIN_SECOND_FACTOR_MAX_AGE (and since it was set up: a proof of a
    factor since removed does not count for its successor).

    Support can end sessions, reset factors and send mails for anyone: neither one phished password
    nor one stolen browser session for its whole life must be enough.
    """
    if not (user.is_active and user.is_staff):
        return AdminAccess.NOT_STAFF
    # Since when a factor the account has now has been on: the oldest of them.
    set_up = [
        TotpAuthenticator.objects.filter(user=user, confirmed_at__isnull=False)
        .values_list("confirmed_at", flat=True)
        .first(),
        Passkey.objects.filter(user=user).order_by("created_at").values_list("created_at", flat=True).first(),
    ]
    confirmed_at = min((moment for moment in set_up if moment is not None), default=None)
    if confirmed_at is None:
        return AdminAccess.ENROL_MFA
    session_uuid = as_session_uuid(session_id)
    sessions = DeviceSession.objects.live().filter(pk=session_uuid, user=user) if session_uuid else None
    proven_at = sessions.values_list("second_factor_at", flat=True).first() if sessions is not None else None
    oldest_allowed = max(
        confirmed_at, timezone.now() - timedelta(seconds=settings.ACCOUNTS_ADMIN_SECOND_FACTOR_MAX_AGE)
    )
    passed = proven_at is not None and proven_at >= oldest_allowed
    return AdminAccess.ALLOWED if passed else AdminAccess.PROVE_SECOND_FACTOR
