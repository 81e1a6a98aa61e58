"""Issuing and redeeming the single-use tokens sent in email links."""

import uuid
from datetime import timedelta
from typing import TypeVar

from django.utils import timezone

from accounts.exceptions import TokenExpired, TokenInvalid, TokenUsed
from accounts.models import (
    EmailLinkToken,
    EmailSignInCode,
    EmailVerificationToken,
    Passkey,
    PasswordResetToken,
    SocialIdentity,
    User,
)
from accounts.tokens import generate_token, hash_token, is_well_formed, token_matches

# The token models are reached through ``_default_manager`` (their ``objects``):
# the abstract EmailLinkToken declares no manager for the type checker to see.
TokenModel = TypeVar("TokenModel", bound=EmailLinkToken)
# A value of a column that only some kinds of token have (an EmailVerificationToken's purpose, email, session…).
TokenField = str | bool | uuid.UUID | Passkey | SocialIdentity | None


def issue_token(
    *, model: type[EmailLinkToken], user: User, lifetime_seconds: int, replace_older: bool = True, **fields: TokenField
) -> str:
    """Create a token for ``user``, replacing that user's unused ones of this kind
    (unless ``replace_older`` is false), so only the newest link works.

    Returns the raw token, which exists only in the email from then on.
    """
    if replace_older:
        same_kind = {"purpose": fields["purpose"]} if "purpose" in fields else {}
        model._default_manager.filter(user=user, used_at__isnull=True, **same_kind).delete()
    raw = generate_token()
    model._default_manager.create(
        user=user,
        token_hash=hash_token(raw),
        expires_at=timezone.now() + timedelta(seconds=lifetime_seconds),
        **fields,
    )
    return raw


def find_redeemable_token(*, model: type[TokenModel], raw_token: str | None, inactive_too: bool = False) -> TokenModel:
    """The token row for ``raw_token`` if it can still be used, else raise.

    Unknown, malformed and foreign-kind tokens are all TokenInvalid, as are
    tokens of a deactivated account unless ``inactive_too``, and those of no
    account (a sign-in code asked for an address without one).
    """
    if not is_well_formed(raw_token):
        raise TokenInvalid
    row = model._default_manager.select_related("user").filter(token_hash=hash_token(raw_token)).first()
    if row is None or not token_matches(raw_token, row.token_hash):
        raise TokenInvalid
    if row.used_at is not None:
        raise TokenUsed
    if timezone.now() >= row.expires_at:
        raise TokenExpired
    if row.user is None or (not row.user.is_active and not inactive_too):
        raise TokenInvalid
    return row


def mark_token_used(token: EmailLinkToken) -> None:
    """Consume ``token``; of two concurrent redemptions exactly one succeeds."""
    now = timezone.now()
    claimed = type(token)._default_manager.filter(pk=token.pk, used_at__isnull=True).update(used_at=now)
    if claimed != 1:
        raise TokenUsed
    token.used_at = now


def retire_emailed_links(*, user: User, undo_links_from: EmailVerificationToken | None = None) -> None:
    """Make every unused emailed link of ``user`` useless: reset, verification,
    email-change links and sign-in codes (the one being redeemed is already marked used).

    Links that cancel or undo an email change survive: an intruder who moved
    the account must not be able to take the owner's way back with a reset of
    their own. Only ``undo_links_from`` (the undo link being used) and those
    issued after it go too: the later ones can only lead to addresses the
    account moved to afterwards, while the oldest way back always stays.
    "After" is by row id, which the database hands out in order, never by an
    app server's clock, which may be behind another's.
    """
    undo = EmailVerificationToken.Purpose.CANCEL_CHANGE
    PasswordResetToken.objects.filter(user=user, used_at__isnull=True).delete()
    EmailSignInCode.objects.filter(user=user, used_at__isnull=True).delete()
    # Links that remove a passkey the owner did not add survive too, for the same reason: they go
    # only with their passkey, when used, or when they expire.
    # So do those that disconnect a provider the owner did not connect.
    links = EmailVerificationToken.objects.filter(user=user, used_at__isnull=True).exclude(
        purpose__in=[EmailVerificationToken.Purpose.REMOVE_PASSKEY, EmailVerificationToken.Purpose.REMOVE_SOCIAL]
    )
    if undo_links_from is None:
        links = links.exclude(purpose=undo)
    else:
        links = links.exclude(purpose=undo, pk__lt=undo_links_from.pk)
    links.delete()
