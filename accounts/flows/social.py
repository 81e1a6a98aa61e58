"""Sign-in with a provider (OpenID Connect, GitHub): the round trip, what an identity signs in to, and linking.

An identity is found by (issuer, subject) alone. A new one never takes over an account by its email
address: it links to an existing account by itself only when the provider verified the address,
the provider is trusted for that (SOCIAL_<NAME>_TRUST_EMAIL) and the account's own address is
verified. Otherwise the person proves the account first (signs in to it) and then connects the
identity, and the owner is told either way. A new address makes a new account, verified at once
only if a trusted provider verified it; any other needs its emailed link like any sign-up (and
the answer is the same whether the address has an account), and an
identity connected before the address was proven goes when someone else proves it (see
accounts.flows.verification.prove_address). Every sign-in ends in signin.finish_first_factor, so an
account with a second factor still needs it.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

from django.conf import settings
from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.crypto import constant_time_compare

from accounts import amr as methods
from accounts.audit import EventKind, record_event
from accounts.background import after_answer
from accounts.client_info import ClientInfo
from accounts.exceptions import (
    AccountInactive,
    EmailNotVerified,
    InvalidName,
    SocialDenied,
    SocialEmailMissing,
    SocialIdentityMismatch,
    SocialIdentityNotFound,
    SocialIdentityTaken,
    SocialLastSignInMethod,
    SocialSignInFailed,
    SocialStateInvalid,
    TokenInvalid,
)
from accounts.flows.account_lock import lock_account
from accounts.flows.device_sessions import EndReason
from accounts.flows.email_tokens import mark_token_used, retire_emailed_links
from accounts.flows.passwords import send_password_changed_notice, set_new_password, validate_new_password
from accounts.flows.profile import clean_display_name
from accounts.flows.reauthentication import SensitiveAction, record_authentication, require_recent_authentication
from accounts.flows.second_factor import has_passkey
from accounts.flows.security_reset import security_reset
from accounts.flows.signin import SecondStepRequired, SignedIn, finish_first_factor
from accounts.flows.social_providers import (
    ProviderConfig,
    ProviderIdentity,
    authorization_request,
    configured_providers,
    identity_from_code,
    provider_named,
)
from accounts.flows.verification import (
    find_not_me_link,
    issue_verification_link,
    send_verification_link,
    signup_proof,
)
from accounts.mail import send_account_email, site_link
from accounts.models import EmailVerificationToken, SocialIdentity, User
from accounts.rate_limits import (
    SIGN_UP_MAIL_ADDRESS,
    SOCIAL_IP,
    RateLimited,
    RateLimitUnavailable,
    address_key,
    hit,
    ip_key,
)
from accounts.revocation import SessionId

EmailPurpose = EmailVerificationToken.Purpose


class Intent(StrEnum):
    """Why the person went to the provider."""

    SIGN_IN = "sign_in"  # also signs up
    CONNECT = "connect"  # add the identity to the signed-in account
    REAUTHENTICATE = "reauthenticate"  # prove again, on this device, that it is them


@dataclass(frozen=True)
class SocialFlow:
    """One round trip to a provider, kept by the front end (the page session) until the browser comes back."""

    provider: str
    intent: str
    state: str
    nonce: str
    code_verifier: str
    started_at: float
    next_url: str = ""
    user_id: int | None = None  # CONNECT and REAUTHENTICATE: whose

    def as_data(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_data(cls, data: object) -> SocialFlow | None:
        try:
            return cls(**data) if isinstance(data, dict) else None
        except TypeError:
            return None


def redirect_uri(provider: ProviderConfig) -> str:
    """The callback registered with the provider: on SITE_URL, never on the request's Host header."""
    return site_link("accounts:social_callback", provider=provider.name)


def _provider(name: str) -> ProviderConfig:
    provider = provider_named(name)
    if provider is None:
        raise SocialStateInvalid  # the front ends answer 404 before this for an unknown name
    return provider


def begin_social_flow(
    *,
    provider: str,
    intent: Intent,
    client: ClientInfo,
    user: User | None = None,
    session_id: SessionId | None = None,
    next_url: str = "",
) -> tuple[str, SocialFlow]:
    """The provider URL to send the browser to, and the flow for the front end to keep.

    Connecting needs a recent authentication on this device (and its second factor, when the
    account has one); RateLimited past the per-IP limit; SocialProviderUnavailable."""
    config = _provider(provider)
    if intent == Intent.CONNECT:
        if user is None:
            raise ValueError("connecting needs the signed-in user")
        require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_SIGN_IN_METHODS, user=user)
    hit(SOCIAL_IP, ip_key(client.ip_address), client=client)
    request = authorization_request(config, redirect_uri=redirect_uri(config))
    flow = SocialFlow(
        provider=config.name,
        intent=str(intent),
        state=request.state,
        nonce=request.nonce,
        code_verifier=request.code_verifier,
        started_at=time.time(),
        next_url=next_url,
        user_id=user.pk if user is not None else None,
    )
    return request.url, flow


def finish_social_flow(
    *, provider: str, flow: SocialFlow | None, params: dict[str, str], client: ClientInfo
) -> tuple[SocialFlow, ProviderIdentity]:
    """The flow the answer's state named (``flow``, as the front end kept it), and the identity the
    provider's answer proves.

    SocialStateInvalid for an unknown, used, expired or other provider's state; SocialDenied when the
    person said no; SocialTokenRefused for a refused code or a bad ID token;
    SocialProviderUnavailable. Every failure is audited."""
    user = User.objects.filter(pk=flow.user_id).first() if flow and flow.user_id else None
    try:
        if (
            flow is None
            or flow.provider != provider
            or not constant_time_compare(params.get("state", ""), flow.state)
            or time.time() - flow.started_at > settings.SOCIAL_FLOW_LIFETIME
        ):
            raise SocialStateInvalid
        if params.get("error"):
            raise SocialDenied if params["error"] == "access_denied" else SocialSignInFailed
        code = params.get("code", "")
        if not code:
            raise SocialStateInvalid
        config = _provider(provider)
        identity = identity_from_code(
            config, code=code, code_verifier=flow.code_verifier, nonce=flow.nonce, redirect_uri=redirect_uri(config)
        )
        return flow, identity
    except SocialSignInFailed as error:
        _record_failure(provider=provider, reason=error.code, user=user, client=client)
        raise


def _record_failure(*, provider: str, reason: str, client: ClientInfo, user: User | None = None) -> None:
    with transaction.atomic():
        record_event(kind=EventKind.SOCIAL_FAILED, user=user, client=client, provider=provider, reason=reason)


# --- What an identity signs in to ------------------------------------------------------------------


@dataclass(frozen=True)
class LinkRequired:
    """An account already has the identity's address, and it may not be linked without the account's
    owner: they sign in to it first, then connect (``connect_identity``)."""

    identity: ProviderIdentity
    email: str


@dataclass(frozen=True)
class CheckInbox:
    """The answer for an address the provider did not verify, the same whether it has an account or
    not: a new account waits for its emailed link (``proof``: the sign-up proof for this browser);
    an existing one's owner is told how to connect the provider."""

    proof: str


def sign_in_with_identity(
    *, identity: ProviderIdentity, client: ClientInfo
) -> SignedIn | SecondStepRequired | LinkRequired | CheckInbox:
    """What a proven identity leads to: the account it is linked to (then the second step, if any),
    a new link or account, or a step the person must take first."""
    return _sign_in_with_identity(identity, client, may_retry=True)


def _sign_in_with_identity(
    identity: ProviderIdentity, client: ClientInfo, *, may_retry: bool
) -> SignedIn | SecondStepRequired | LinkRequired | CheckInbox:
    email = identity.email  # already in canonical form (or None), social_providers.ProviderIdentity
    # The address first, then the identity: a sign-up racing this one commits its account and
    # identity together, so whoever sees that account sees its identity too (and signs in to it).
    account = User.objects.find_by_email(email) if email else None
    existing_link = (
        SocialIdentity.objects.select_related("user").filter(issuer=identity.issuer, subject=identity.subject).first()
    )
    if existing_link is not None:
        return _sign_in(existing_link.user, existing_link, client)
    if email is None:
        _record_failure(provider=identity.provider, reason=SocialEmailMissing.code, client=client)
        raise SocialEmailMissing
    config = _provider(identity.provider)
    # Only a trusted provider's word proves an address here. An untrusted one that vouches for an
    # address it does not own would otherwise make a verified account in its owner's name (one a
    # trusted provider would later link to by itself, and a password reset would not take back),
    # or learn from a different answer that the address has an account.
    if not (identity.email_verified and config.trust_email):
        return _unverified_address(identity, email, client)
    if account is None:
        return _sign_up(identity, email, client, may_retry=may_retry)
    if account.email_verified and account.is_active:
        link = _link(account, identity, client, how="verified email")
        return _sign_in(account, link, client)
    return LinkRequired(identity=identity, email=email)


def _sign_in(user: User, link: SocialIdentity, client: ClientInfo) -> SignedIn | SecondStepRequired:
    if not user.is_active:
        _record_failure(provider=link.provider, reason=AccountInactive.code, user=user, client=client)
        raise AccountInactive
    if settings.ACCOUNTS_EMAIL_VERIFICATION == "mandatory" and not user.email_verified:
        _record_failure(provider=link.provider, reason=EmailNotVerified.code, user=user, client=client)
        raise EmailNotVerified(user)
    SocialIdentity.objects.filter(pk=link.pk).update(last_used_at=timezone.now())
    return finish_first_factor(user=user, amr=[methods.FEDERATED])


def _display_name(identity: ProviderIdentity) -> str:
    try:
        return clean_display_name(identity.name)
    except InvalidName:
        return ""  # the provider's name breaks our rule: the person can set one later


def _sign_up(
    identity: ProviderIdentity, email: str, client: ClientInfo, *, may_retry: bool
) -> SignedIn | SecondStepRequired | LinkRequired | CheckInbox:
    """A new account for an address a trusted provider verified (a concurrent twin may win the race).

    The address is told, with a "not me" link, as for any connection: a provider that vouches for
    an address it does not own could otherwise make an account in its owner's name unseen, one a
    password reset would not take back from its identity."""
    try:
        with transaction.atomic():
            user = User.objects.create(email=email, name=_display_name(identity), password=make_password(None))
            user.mark_email_verified()
            record_event(kind=EventKind.SIGN_UP, user=user, client=client, provider=identity.provider)
            link, not_me_link = _connect(user, identity, client, how="sign-up")
            _tell_connected(user, identity, not_me_link, new_account=True)
    except IntegrityError:
        if not may_retry:
            raise SocialIdentityTaken from None  # never endless: what stopped us is not a twin that won
        return _sign_in_with_identity(identity, client, may_retry=False)  # the twin made it: as it is now
    return _sign_in(user, link, client)


def _unverified_address(identity: ProviderIdentity, email: str, client: ClientInfo) -> CheckInbox:
    """An address the provider did not verify, or an untrusted provider's, is proven by its emailed
    link, as at sign-up, and the answer does not say whether it has an account (anyone can give some
    providers any address). An existing account's owner is told how to connect the provider instead."""
    password_hash = make_password(None)  # random: the new account's sign-up proof is an HMAC of it
    after_answer(
        lambda: _register_unverified(identity=identity, email=email, password_hash=password_hash, client=client),
        name="social sign-up",
    )
    return CheckInbox(proof=signup_proof(password_hash))


def _register_unverified(*, identity: ProviderIdentity, email: str, password_hash: str, client: ClientInfo) -> None:
    existing = User.objects.find_by_email(email)
    if existing is None:
        try:
            with transaction.atomic():
                user = User.objects.create(email=email, name=_display_name(identity), password=password_hash)
                SocialIdentity.objects.create(
                    user=user, provider=identity.provider, issuer=identity.issuer, subject=identity.subject, email=email
                )
                link = issue_verification_link(user=user, email=email, purpose=EmailPurpose.VERIFY)
                record_event(kind=EventKind.SIGN_UP, user=user, client=client, provider=identity.provider)
                send_verification_link(user=user, link=link)
        except IntegrityError:
            pass  # a concurrent request made the account or the link: its answer went out already
        return
    try:
        hit(SIGN_UP_MAIL_ADDRESS, address_key(existing.email), client=client, email=existing.email)
    except (RateLimited, RateLimitUnavailable):
        return  # the owner has been told recently enough
    send_account_email(
        template="social_sign_in_attempt",
        to=existing.email,
        greet=existing,
        context={"provider_name": _provider(identity.provider).display_name, "security_link": _security_link()},
    )


# --- Connecting and disconnecting -------------------------------------------------------------------


def _security_link() -> str:
    return site_link("accounts:security")


def _link(user: User, identity: ProviderIdentity, client: ClientInfo, *, how: str) -> SocialIdentity:
    """Connect ``identity`` to ``user``, audit it and tell the owner (with a "not me" link)."""
    with transaction.atomic():
        lock_account(user)
        try:
            with transaction.atomic():
                link, not_me_link = _connect(user, identity, client, how=how)
                _tell_connected(user, identity, not_me_link, new_account=False)
        except IntegrityError:
            current = SocialIdentity.objects.filter(issuer=identity.issuer, subject=identity.subject).first()
            if current is not None and current.user_id == user.pk:
                return current  # a concurrent request of the same person connected it (and told the owner)
            raise SocialIdentityTaken from None
    return link


def _connect(user: User, identity: ProviderIdentity, client: ClientInfo, *, how: str) -> tuple[SocialIdentity, str]:
    """Inside the caller's transaction: the link, its audit event, and the "not me" link for its notice."""
    link = SocialIdentity.objects.create(
        user=user,
        provider=identity.provider,
        issuer=identity.issuer,
        subject=identity.subject,
        email=identity.email or "",
    )
    record_event(kind=EventKind.SOCIAL_CONNECTED, user=user, client=client, provider=identity.provider, how=how)
    # A new way into the account: links sent before it must not outlive it (as for a new factor).
    retire_emailed_links(user=user)
    not_me_link = issue_verification_link(
        user=user,
        email=user.email,
        purpose=EmailPurpose.REMOVE_SOCIAL,
        lifetime_seconds=settings.ACCOUNTS_SOCIAL_NOT_ME_TIMEOUT,
        replace_older=False,  # each connection keeps its own way out
        viewname="accounts:social_not_me",
        social_identity=link,
    )
    return link, not_me_link


def _tell_connected(user: User, identity: ProviderIdentity, not_me_link: str, *, new_account: bool) -> None:
    send_account_email(
        template="social_connected",
        to=user.email,
        greet=user,
        context={
            "provider_name": _provider(identity.provider).display_name,
            "provider_email": identity.email or "",
            "new_account": new_account,
            "security_link": _security_link(),
            "not_me_link": not_me_link,
            "valid_days": max(1, settings.ACCOUNTS_SOCIAL_NOT_ME_TIMEOUT // 86400),
        },
    )


def connect_identity(
    *, user: User, identity: ProviderIdentity, session_id: SessionId | None, client: ClientInfo
) -> SocialIdentity:
    """Add ``identity`` to the signed-in ``user``: it needs a recent authentication on this device
    (its second factor when the account has one); SocialIdentityTaken if another account has it.
    Connecting one already connected here changes nothing."""
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_SIGN_IN_METHODS, user=user)
    current = SocialIdentity.objects.filter(issuer=identity.issuer, subject=identity.subject).first()
    if current is not None:
        if current.user_id != user.pk:
            _record_failure(provider=identity.provider, reason=SocialIdentityTaken.code, user=user, client=client)
            raise SocialIdentityTaken
        return current
    return _link(user, identity, client, how="signed in")


def is_waiting_for(*, user: User, identity: ProviderIdentity) -> bool:
    """Whether ``identity``, held back because its address had an account (LinkRequired), may be
    connected to ``user``, who has signed in since: only to the account at that address, never to
    whichever account the browser signed in to next."""
    if identity.email is None:
        return False
    account = User.objects.find_by_email(identity.email)
    return account is not None and account.pk == user.pk


def reauthenticate_with_identity(
    *, user: User, identity: ProviderIdentity, session_id: SessionId | None, flow: SocialFlow, client: ClientInfo
) -> None:
    """The provider proved, just now, an identity connected to ``user``: this device authenticated again."""
    if flow.user_id != user.pk:
        raise SocialStateInvalid  # begun for someone else, who has since signed out here
    if not SocialIdentity.objects.filter(user=user, issuer=identity.issuer, subject=identity.subject).exists():
        _record_failure(provider=identity.provider, reason=SocialIdentityMismatch.code, user=user, client=client)
        raise SocialIdentityMismatch
    record_authentication(session_id=session_id, amr=[methods.FEDERATED])


def connected_identities(*, user: User) -> list[SocialIdentity]:
    return list(SocialIdentity.objects.filter(user=user).order_by("created_at"))


def connected_providers(*, user: User) -> list[ProviderConfig]:
    """The configured providers ``user`` has an identity at (to re-authenticate with)."""
    names = set(SocialIdentity.objects.filter(user=user).values_list("provider", flat=True))
    return [provider for provider in configured_providers() if provider.name in names]


def can_sign_in_without(user: User, identity: SocialIdentity) -> bool:
    """Whether ``user`` keeps a way to sign in once ``identity`` goes: a password, a passkey, another provider."""
    others = SocialIdentity.objects.filter(user=user).exclude(pk=identity.pk).exists()
    return user.has_usable_password() or has_passkey(user) or others


def _own_identity(user: User, identity_id: object) -> SocialIdentity:
    try:
        key = uuid.UUID(str(identity_id))
    except ValueError:
        raise SocialIdentityNotFound from None
    identity = SocialIdentity.objects.filter(user=user, pk=key).first()
    if identity is None:
        raise SocialIdentityNotFound
    return identity


def disconnect_identity(*, user: User, identity_id: object, session_id: SessionId | None, client: ClientInfo) -> None:
    """Remove one of ``user``'s connected identities: it needs a recent authentication (as connecting
    does), and is refused (SocialLastSignInMethod) when nothing else could sign in."""
    require_recent_authentication(session_id=session_id, action=SensitiveAction.MANAGE_SIGN_IN_METHODS, user=user)
    with transaction.atomic():
        lock_account(user)  # in turn with a concurrent removal of the password's alternative
        identity = _own_identity(user, identity_id)
        user.refresh_from_db(fields=["password"])
        if not can_sign_in_without(user, identity):
            raise SocialLastSignInMethod
        identity.delete()
        record_event(kind=EventKind.SOCIAL_DISCONNECTED, user=user, client=client, provider=identity.provider)
        retire_emailed_links(user=user)  # a way in changed: links sent before must not outlive it
        config = provider_named(identity.provider)
        send_account_email(
            template="social_disconnected",
            to=user.email,
            greet=user,
            context={
                "provider_name": config.display_name if config else identity.provider,
                "provider_email": identity.email,
                "security_link": _security_link(),
            },
        )


# --- "Not me": the owner's way out of a provider someone else connected ----------------------------


@dataclass(frozen=True)
class SocialNotMeLink:
    """A redeemable "not me" link: the identity it is about, and those connected after it, which go too."""

    row: EmailVerificationToken
    identity: SocialIdentity
    later: list[SocialIdentity]

    @property
    def removes(self) -> list[SocialIdentity]:
        return [self.identity, *self.later]


def check_social_not_me_token(*, token: str | None) -> SocialNotMeLink:
    """The redeemable "not me" link of the provider-connected notice, without using it up.

    A connected provider signs in without the password, so a password reset alone would not shut
    out whoever connected it (someone who knew the password, or held a signed-in device). Like the
    passkey's, this link survives security resets, goes with its identity, and stops working once
    the account's address changed."""
    row = find_not_me_link(token=token, purpose=EmailPurpose.REMOVE_SOCIAL)
    try:
        identity = row.social_identity
    except SocialIdentity.DoesNotExist:
        identity = None
    if identity is None:
        raise TokenInvalid
    later = list(SocialIdentity.objects.filter(user_id=identity.user_id, created_at__gt=identity.created_at))
    return SocialNotMeLink(row=row, identity=identity, later=later)


def disconnect_social_not_me(*, token: str | None, new_password: str, client: ClientInfo | None = None) -> User:
    """ "Not me": disconnect the identity the notice was about (and any connected after it), give the
    account ``new_password`` and end every session, pending sign-in and other emailed link."""
    with transaction.atomic():
        lock_account(check_social_not_me_token(token=token).row.user_id)
        link = check_social_not_me_token(token=token)  # again, now that nothing else changes the account
        user = link.row.user
        validate_new_password(password=new_password, user=user, field="new_password")
        mark_token_used(link.row)
        set_new_password(user=user, password=new_password)
        ended = security_reset(user=user, reason=EndReason.ACCOUNT_SECURED, record=False)
        for identity in link.removes:
            identity.delete()
            record_event(
                kind=EventKind.SOCIAL_DISCONNECTED,
                user=user,
                client=client,
                provider=identity.provider,
                by="emailed link",
                sessions_ended=ended,
            )
        send_password_changed_notice(user=user, all_devices_signed_out=True)
    return user
