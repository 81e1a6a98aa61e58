"""Changing the account's email address: confirm the password, prove the new address; and the owner's way back.

Whoever asks for a change has the password, which an intruder may have too.
So the current address is told at once and gets a link that cancels the
change (or, once it was confirmed, undoes it) and sets a new password; the
change can only be confirmed while the device session that asked is live;
and every security reset retires the pending change link.
"""

import logging

from django.conf import settings
from django.db import IntegrityError, transaction

from accounts.audit import EventKind, record_event
from accounts.background import after_answer
from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, mask_email, normalize_email
from accounts.exceptions import EmailUnchanged, InvalidEmail, TokenInvalid
from accounts.flows.account_deletion import erase_account
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import EndReason
from accounts.flows.email_tokens import find_redeemable_token, mark_token_used
from accounts.flows.passwords import send_password_changed_notice, set_new_password, validate_new_password
from accounts.flows.reauthentication import confirm_password, record_authentication, require_recent_second_factor
from accounts.flows.security_reset import security_reset
from accounts.flows.verification import Purpose, issue_verification_link, prove_address
from accounts.mail import send_account_email, site_link
from accounts.models import EmailVerificationToken, User
from accounts.revocation import SessionId
from accounts.user_agents import describe_user_agent

logger = logging.getLogger(__name__)


def request_email_change(
    *,
    user: User,
    password: str,
    new_email: str,
    session_id: SessionId | None = None,
    client: ClientInfo | None = None,
) -> None:
    """Send a confirmation link to ``new_email`` and a notice with a cancel link
    to the current address; the account keeps its address until confirmed.

    If another account has ``new_email``, the answer is the same (and takes the
    same time: the lookup happens after it) and that account's owner is told
    instead, so the flow never reveals who is registered.
    """
    client = client or ClientInfo()
    try:
        canonical = normalize_email(new_email)
    except InvalidEmailAddress as error:
        raise InvalidEmail(str(error), field="new_email") from None
    require_recent_second_factor(user=user, session_id=session_id)
    confirm_password(user=user, password=password, client=client)
    if canonical == user.email:
        raise EmailUnchanged
    with transaction.atomic():
        record_authentication(session_id=session_id)
        record_event(kind=EventKind.EMAIL_CHANGE_REQUESTED, user=user, client=client)
    after_answer(
        lambda: _send_change_links(user_id=user.pk, new_email=canonical, session_id=session_id, client=client),
        name="email change",
    )


def _send_change_links(*, user_id: int, new_email: str, session_id: SessionId | None, client: ClientInfo) -> None:
    user = User.objects.get(pk=user_id)
    owner = User.objects.find_by_email(new_email)
    with transaction.atomic():
        if owner is None:
            confirm_link = issue_verification_link(
                user=user, email=new_email, purpose=Purpose.CHANGE, session_id=session_id
            )
        else:
            # The newest request wins either way: an older link to another address stops working.
            EmailVerificationToken.objects.filter(user=user, purpose=Purpose.CHANGE, used_at__isnull=True).delete()
        cancel_link = issue_verification_link(
            user=user,
            email=user.email,
            purpose=Purpose.CANCEL_CHANGE,
            lifetime_seconds=settings.ACCOUNTS_EMAIL_CHANGE_UNDO_TIMEOUT,
            replace_older=False,  # each change keeps its own way back
            viewname="accounts:email_change_cancel",
            undo_allowed=user.email_verified,
        )
        told = send_account_email(
            template="email_change_requested",
            to=user.email,
            context={
                "new_email": mask_email(new_email),
                "device": describe_user_agent(client.user_agent, raw_fallback=False),
                "ip_address": client.ip_address or "unknown",
                "cancel_link": cancel_link,
                "valid_days": settings.ACCOUNTS_EMAIL_CHANGE_UNDO_TIMEOUT // 86400,
            },
            greet=user,
        )
        if told is None:
            # No change the current address has not heard of: the request ends
            # here, and the person asks again once mail gets through.
            EmailVerificationToken.objects.filter(user=user, purpose=Purpose.CHANGE, used_at__isnull=True).delete()
            logger.warning("Email change of user %s dropped: the notice to the current address failed.", user.pk)
            return
        if owner is None:
            # Only once the current address has been told (and never if that fails for good): an
            # intruder must not move the account to their address behind its owner's back.
            send_account_email(
                template="email_change_confirm",
                to=new_email,
                context={"link": confirm_link, "valid_hours": settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT // 3600},
                after=told,
            )
        else:
            send_account_email(
                template="email_change_taken",
                to=owner.email,
                context={"reset_link": site_link("accounts:password_reset")},
                greet=owner,
            )


def check_email_change_cancel_token(*, token: str | None) -> EmailVerificationToken:
    """The redeemable cancel-or-undo token for ``token``, without using it up.

    It works on a deactivated account too, so that deactivating the account
    until the link expires cannot take the owner's way back.
    """
    row = find_redeemable_token(model=EmailVerificationToken, raw_token=token, inactive_too=True)
    if row.purpose != Purpose.CANCEL_CHANGE:
        raise TokenInvalid
    return row


def cancel_email_change(*, token: str | None, new_password: str, client: ClientInfo | None = None) -> User:
    """ "Not me": cancel the pending change, or undo it if it was confirmed, and secure the account.

    The account keeps (or gets back) the address the notice went to, takes
    ``new_password`` (the old one is known to whoever asked), and every session
    and every other emailed link ends, undo links sent after this one included
    (older ones, which lead further back, stay). Returns the user, who signs in anew.
    """
    with transaction.atomic():
        row = check_email_change_cancel_token(token=token)
        lock_account(row.user_id)
        row = check_email_change_cancel_token(token=token)
        user = row.user
        validate_new_password(password=new_password, user=user, field="new_password")
        mark_token_used(row)
        moved_to = user.email if user.email != row.email else None
        if moved_to is not None:
            if not row.undo_allowed:
                raise TokenInvalid(
                    "The change was already confirmed, and this address was not verified when it was asked for, "
                    "so this link cannot move the account back. Please contact support."
                )
            _reclaim_address(row.email, client=client)
            user.email = row.email
            try:
                with transaction.atomic():
                    user.save(update_fields=["email"])
            except IntegrityError:
                raise TokenInvalid(
                    "The previous address now belongs to another account, so the change cannot be undone here. "
                    "Please contact support."
                ) from None
            user.email_verified_at = None  # proven again just below, by this link
        # The link reached this address: it is proven, and whatever someone
        # who never proved it chose (the password, the name) goes.
        prove_address(user=user, password_replaced=True)
        set_new_password(user=user, password=new_password)
        ended = security_reset(user=user, reason=EndReason.ACCOUNT_SECURED, record=False, undo_links_from=row)
        record_event(
            kind=EventKind.EMAIL_CHANGE_CANCELLED,
            user=user,
            client=client,
            undone=moved_to is not None,
            sessions_ended=ended,
        )
        send_password_changed_notice(user=user, all_devices_signed_out=True)
        if moved_to is not None:
            send_account_email(
                template="email_change_undone",
                to=moved_to,
                context={"old_email": mask_email(user.email)},
            )
    return user


def _reclaim_address(email: str, *, client: ClientInfo | None) -> None:
    """Free ``email`` from an account that never proved it and was never used
    (someone registered it once the owner's account had moved away, to block
    the way back): the holder of this link proved the mailbox. Any other
    account keeps the address, and the undo asks for support instead."""
    squatter = (
        User.objects.select_for_update()
        .filter(
            email=email, email_verified_at__isnull=True, last_login__isnull=True, is_staff=False, is_superuser=False
        )
        .first()
    )
    if squatter is not None:
        erase_account(user=squatter, client=client, reason="address_reclaimed")
