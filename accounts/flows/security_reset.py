"""What every security reset does: end the account's device sessions and retire its unused emailed links."""

from django.db import transaction

from accounts.client_info import ClientInfo
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import end_user_sessions
from accounts.flows.email_tokens import retire_emailed_links
from accounts.flows.pending import end_pending_sign_ins
from accounts.flows.second_factor import forget_wrong_codes
from accounts.models import EmailVerificationToken, User
from accounts.revocation import SessionId


def security_reset(
    *,
    user: User,
    reason: str,
    keep_session_id: SessionId | None = None,
    client: ClientInfo | None = None,
    actor: User | None = None,
    record: bool = True,
    undo_links_from: EmailVerificationToken | None = None,
) -> int:
    """End every device session of ``user`` but ``keep_session_id``, every sign-in
    still waiting for its second factor, and make every unused reset, verification
    and email-change link useless; returns how many sessions ended.

    Called by password reset and change, ending other sessions, deactivation,
    support's end-sessions, and replacing a password while verifying or
    cancelling an email change (a confirmed email change retires the links
    only): whoever had a session or a pending link before loses it, so a
    request an intruder left behind (an email change to their address) cannot
    outlive the owner's recovery.
    Mark the link being redeemed used before calling this. ``record=False``
    when the calling flow writes its own audit event; ``undo_links_from``:
    see retire_emailed_links.
    """
    with transaction.atomic():
        lock_account(user)
        ended = end_user_sessions(
            user=user, reason=reason, keep_session_id=keep_session_id, client=client, actor=actor, record=record
        )
        retire_emailed_links(user=user, undo_links_from=undo_links_from)
        # A password proven before the reset must not finish signing in after it, and the wrong
        # codes its holder tried must not keep the owner out after it.
        end_pending_sign_ins(user=user)
        forget_wrong_codes(user=user)
    return ended
