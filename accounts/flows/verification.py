"""Email verification: sending the link, resending it, and confirming it (also for a new address).

Proving an address must never leave a verified account with a password that
nobody proved they know (pre-account takeover: an intruder signs up with
someone else's address and waits for its owner to verify it). So
verifying an unverified account needs, besides the emailed link, one of:

- the sign-up proof: a cookie that only the browser or API client that signed
  up holds, an HMAC of the password hash it chose (it stops matching once the
  password changes);
- a page session signed in as the account;
- the account's current password;
- a new password, which replaces the old one and ends every session.

Confirming a new address needs the link, a live device session that asked
for it, and the account's password or a page session signed in as the
account: whoever reads the new mailbox must not confirm a move they did not
ask for (an intruder's own account moved onto a victim's address).
"""

from dataclasses import dataclass

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils.crypto import constant_time_compare, salted_hmac

from accounts.audit import EventKind, record_event
from accounts.background import after_answer
from accounts.client_info import ClientInfo
from accounts.email_address import mask_email
from accounts.exceptions import PasswordProofRequired, TokenInvalid
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import EndReason
from accounts.flows.email_tokens import find_redeemable_token, issue_token, mark_token_used, retire_emailed_links
from accounts.flows.passwords import send_password_changed_notice, set_new_password, validate_new_password
from accounts.flows.reauthentication import confirm_password
from accounts.flows.second_factor import remove_factors
from accounts.flows.security_reset import security_reset
from accounts.mail import send_account_email, site_link
from accounts.models import DeviceSession, EmailVerificationToken, KnownDevice, Passkey, SocialIdentity, User
from accounts.rate_limits import VERIFY_MAIL_ADDRESS, VERIFY_MAIL_IP, may_send_link
from accounts.revocation import SessionId

Purpose = EmailVerificationToken.Purpose
_SIGNUP_PROOF_SALT = "accounts.flows.verification.signup_proof"


@dataclass(frozen=True)
class Verifier:
    """What the person redeeming a verification link brings to show that they
    chose the account's password (see the module docstring)."""

    signup_proof: str | None = None
    signed_in_user_id: int | None = None
    password: str | None = None
    new_password: str | None = None


def signup_proof(password_hash: str) -> str:
    """The sign-up proof for an account whose password hash is ``password_hash``."""
    return salted_hmac(_SIGNUP_PROOF_SALT, password_hash, algorithm="sha256").hexdigest()


def holds_signup_proof(user: User, proof: str | None) -> bool:
    """Whether ``proof`` is the sign-up proof of ``user``'s current password (see the module docstring)."""
    if not proof:
        return False
    # An account made by a provider sign-in has an unusable password: random too, and just as secret.
    return bool(user.password) and constant_time_compare(signup_proof(user.password), proof)


def issue_verification_link(
    *,
    user: User,
    email: str,
    purpose: str,
    session_id: SessionId | None = None,
    lifetime_seconds: int | None = None,
    replace_older: bool = True,
    viewname: str = "accounts:verify_email",
    undo_allowed: bool = False,
    passkey: Passkey | None = None,
    social_identity: SocialIdentity | None = None,
) -> str:
    """A new emailed link for ``email`` (retiring older unused ones of that purpose unless told otherwise)."""
    raw = issue_token(
        model=EmailVerificationToken,
        user=user,
        lifetime_seconds=lifetime_seconds or settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT,
        replace_older=replace_older,
        email=email,
        purpose=purpose,
        session_id=session_id,
        undo_allowed=undo_allowed,
        passkey=passkey,
        social_identity=social_identity,
    )
    return site_link(viewname, token=raw)


def find_not_me_link(*, token: str | None, purpose: str) -> EmailVerificationToken:
    """The redeemable "not me" link of a notice (a passkey added, a provider connected), without using it up.

    It works on a deactivated account too, and proves the mailbox the notice went to: so it stops
    working once the account's address changed (that address may now be someone else's)."""
    row = find_redeemable_token(model=EmailVerificationToken, raw_token=token, inactive_too=True)
    if row.purpose != purpose:
        raise TokenInvalid
    if row.email != row.user.email:
        raise TokenInvalid(
            "The account's email address has changed since this link was sent, so it cannot be used. "
            "If you did not change it, use the link in the email about that change first."
        )
    return row


def send_verification_email(*, user: User) -> None:
    """Issue a fresh verification token (retiring older ones) and email its link."""
    with transaction.atomic():
        link = issue_verification_link(user=user, email=user.email, purpose=Purpose.VERIFY)
        send_verification_link(user=user, link=link)


def send_verification_link(*, user: User, link: str) -> None:
    send_account_email(
        template="verify_email",
        to=user.email,
        context={"link": link, "valid_hours": settings.ACCOUNTS_EMAIL_VERIFICATION_TIMEOUT // 3600},
        greet=user,
    )


def resend_verification_email(*, email: str, client: ClientInfo | None = None) -> None:
    """Send a new link if ``email`` belongs to an active, unverified account.

    Returns nothing in every case, so that callers answer identically whether
    or not the address has an account, and looks the address up only after
    the answer, so the answer takes the same time too; past the per-address
    or per-IP limit, RateLimited (alike for every address).
    """
    client = client or ClientInfo()
    if may_send_link(per_address=VERIFY_MAIL_ADDRESS, per_ip=VERIFY_MAIL_IP, email=email, client=client):
        after_answer(lambda: _resend(email=email), name="resend verification")


def _resend(*, email: str) -> None:
    user = User.objects.find_by_email(email)
    if user is not None and user.is_active and not user.email_verified:
        send_verification_email(user=user)


def check_verification_token(*, token: str | None, lock: bool = False) -> EmailVerificationToken:
    """The redeemable verification or address-change token for ``token``, without using it up.

    ``lock`` (inside a transaction) also holds the asking session's row, so that
    ending that session and confirming its change never interleave.
    """
    row = find_redeemable_token(model=EmailVerificationToken, raw_token=token)
    if row.purpose == Purpose.VERIFY:
        if row.email != row.user.email:
            raise TokenInvalid  # sent to an address the account no longer has
    elif row.purpose == Purpose.CHANGE:
        _check_change_still_wanted(row, lock=lock)
    else:
        raise TokenInvalid  # another kind of link (cancelling a change has its own page)
    return row


def _check_change_still_wanted(row: EmailVerificationToken, *, lock: bool) -> None:
    """A change is confirmed only while it is the newest request and the device
    session that asked is live: a reset, signing out everywhere or support
    ending the sessions ends the request too (the owner's recovery wins)."""
    if row.email == row.user.email:
        raise TokenInvalid
    asked_from_live_session = False
    if row.session_id is not None:
        asking = DeviceSession.objects.live().filter(pk=row.session_id, user_id=row.user_id)
        if lock:
            asking = asking.select_for_update(of=("self",))
        asked_from_live_session = bool(list(asking.values_list("pk", flat=True)))
    newer_request = EmailVerificationToken.objects.filter(
        user_id=row.user_id,
        purpose=Purpose.CHANGE,
        pk__gt=row.pk,  # ids, not clocks, tell which is newer
    ).exists()
    if not asked_from_live_session or newer_request:
        raise TokenInvalid(
            "This link no longer works: the device that asked for the change has signed out, "
            "or a newer change was asked for. Sign in and ask again."
        )


def _proven_without_a_password(row: EmailVerificationToken, verifier: Verifier) -> str | None:
    """What already shows that the verifier holds the account's password, if anything."""
    user = row.user
    if row.purpose == Purpose.VERIFY:
        if user.email_verified:
            return "already_verified"  # nothing left to prove
        if holds_signup_proof(user, verifier.signup_proof):
            return "sign_up_proof"
    if verifier.signed_in_user_id == user.pk:
        return "signed_in"
    return None


def verification_needs_password(*, row: EmailVerificationToken, verifier: Verifier) -> bool:
    """Whether redeeming ``row`` needs the account's password (or, to verify it, a new one) from this verifier."""
    return _proven_without_a_password(row, verifier) is None


def can_replace_password(row: EmailVerificationToken) -> bool:
    """Whether a new password is a way to redeem ``row``: verifying an unverified account only."""
    return row.purpose == Purpose.VERIFY and not row.user.email_verified


def prove_address(*, user: User, password_replaced: bool) -> None:
    """An emailed link to the account's current address was just used.

    The address counts as verified from now on. If it was not before and the
    password was replaced by whoever proved it, the display name and any second
    factor go too: chosen by someone who never proved the address, the name
    must not open emails to it, nor the factor keep its owner out.
    """
    if user.email_verified_at is not None:
        return
    user.mark_email_verified(save=False)
    fields = ["email_verified_at"]
    if password_replaced and user.name:
        user.name = ""
        fields.append("name")
    user.save(update_fields=fields)
    if password_replaced:
        # Second factors are set up only on proven addresses; one that is there anyway was not the
        # mailbox owner's to keep either, nor a provider connected by whoever signed up, nor the
        # browsers they signed in on (known, they would sign in again without a new-device notice).
        remove_factors(user=user)
        KnownDevice.objects.filter(user=user).delete()
        for identity in SocialIdentity.objects.filter(user=user):
            identity.delete()
            record_event(kind=EventKind.SOCIAL_DISCONNECTED, user=user, provider=identity.provider, by="address proven")


def verify_unproven_address(
    *, user: User, proved_by: str, client: ClientInfo | None, replace_password: bool, new_password: str | None = None
) -> None:
    """An emailed link or code to ``user``'s unverified address was just used: the address is verified.

    ``replace_password``: whoever used it did not show that they chose the password (pre-account
    takeover), so it goes, for ``new_password`` or for none (the owner sets one with a reset),
    with every session, pending link and what prove_address drops. Nothing for a verified account.
    """
    if user.email_verified:
        return
    ended = None
    if replace_password:
        if new_password:
            set_new_password(user=user, password=new_password)
        else:
            user.set_unusable_password()
            user.save(update_fields=["password"])
        ended = security_reset(user=user, reason=EndReason.PASSWORD_RESET, record=False)
    prove_address(user=user, password_replaced=replace_password)
    if ended is None:  # no sessions ended: the event says nothing about them
        record_event(kind=EventKind.EMAIL_VERIFIED, user=user, client=client, proved_by=proved_by)
    else:
        record_event(kind=EventKind.EMAIL_VERIFIED, user=user, client=client, proved_by=proved_by, sessions_ended=ended)


def verify_email(*, token: str | None, verifier: Verifier | None = None, client: ClientInfo | None = None) -> User:
    """Redeem a verification token: mark the address verified, or switch the
    account to the new address it confirms (and tell the old address).

    Verifying an unverified account needs what ``verification_needs_password``
    asks for: PasswordProofRequired without it, InvalidPassword for a wrong
    current password, PasswordRejected for a new one that breaks the policy.
    """
    verifier = verifier or Verifier()
    old_email, replaced = None, False
    row = check_verification_token(token=token)
    # Before any lock: Argon2 holds no row, and a refusal's rate-limit event is
    # not rolled back with the transaction. Whatever changes the password
    # meanwhile is a security reset, which retires this link (checked below).
    proved_by = _prove_password(row, verifier, client)
    with transaction.atomic():
        lock_account(row.user_id)  # serialised with security resets of the account
        row = check_verification_token(token=token, lock=True)
        user = row.user
        if row.purpose == Purpose.CHANGE:
            old_email = _confirm_new_address(row, client)
        else:
            # A new password is offered only to verify an unverified account (can_replace_password);
            # verified meanwhile (by a sign-in code from the sign-up browser), it is not set.
            replaced = proved_by == "new_password" and not user.email_verified
            mark_token_used(row)
            verify_unproven_address(
                user=user,
                proved_by=proved_by,
                client=client,
                replace_password=replaced,
                new_password=verifier.new_password,
            )
        if old_email is not None:
            send_account_email(
                template="email_changed",
                to=old_email,
                context={
                    "new_email": mask_email(user.email),
                    "undo_days": settings.ACCOUNTS_EMAIL_CHANGE_UNDO_TIMEOUT // 86400,
                },
            )
        elif replaced:
            send_password_changed_notice(user=user, all_devices_signed_out=True)
    return user


def _prove_password(row: EmailVerificationToken, verifier: Verifier, client: ClientInfo | None) -> str:
    """Check what the verifier brought; returns what proved the password is theirs
    (for the audit log), "new_password" when a new one is to be set."""
    user = row.user
    if verifier.new_password and can_replace_password(row):
        validate_new_password(password=verifier.new_password, user=user, field="new_password")
        return "new_password"
    proven = _proven_without_a_password(row, verifier)
    if proven is not None:
        return proven
    if verifier.password:
        confirm_password(user=user, password=verifier.password, client=client)
        return "current_password"
    raise PasswordProofRequired


def _confirm_new_address(row: EmailVerificationToken, client: ClientInfo | None) -> str:
    """Move the account to the address ``row`` proves; returns the old address."""
    user = row.user
    mark_token_used(row)
    old_email = user.email
    user.email = row.email
    user.mark_email_verified(save=False)
    try:
        with transaction.atomic():
            user.save(update_fields=["email", "email_verified_at"])
    except IntegrityError:
        # Someone registered the address meanwhile.
        raise TokenInvalid from None
    # Links sent before must not act on the account any more; the owner's way
    # to undo the change (sent to the old address) stays.
    retire_emailed_links(user=user)
    record_event(kind=EventKind.EMAIL_CHANGE_CONFIRMED, user=user, client=client)
    return old_email
