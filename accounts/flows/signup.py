"""Sign-up: creating an account without revealing whether the address already has one."""

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction

from accounts.audit import EventKind, record_event
from accounts.background import after_answer
from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.exceptions import InvalidEmail
from accounts.flows.password_reset import issue_password_reset_link
from accounts.flows.passwords import validate_new_password
from accounts.flows.profile import clean_display_name
from accounts.flows.verification import Purpose, issue_verification_link, send_verification_link, signup_proof
from accounts.mail import send_account_email, site_link
from accounts.models import User
from accounts.rate_limits import (
    SIGN_UP_IP,
    SIGN_UP_MAIL_ADDRESS,
    RateLimited,
    RateLimitUnavailable,
    address_key,
    hit,
    ip_key,
)


def sign_up(*, email: str, password: str, name: str, client: ClientInfo | None = None) -> str:
    """Register ``email``, or tell the owner of an existing account that someone tried.

    Before the answer, both outcomes do the same work: check the input, hash
    the password once. Whether the address has an account is looked up after
    the answer (accounts.background), so the answer is the same, and takes the
    same time, for a new and an existing address.

    Returns the sign-up proof for this browser or client (a cookie): with it,
    verifying the new account needs nothing more. For an existing address it
    matches nothing, and looks the same.
    """
    client = client or ClientInfo()
    hit(SIGN_UP_IP, ip_key(client.ip_address), client=client)
    try:
        canonical = normalize_email(email)
    except InvalidEmailAddress as error:
        raise InvalidEmail(str(error)) from None
    name = clean_display_name(name)
    validate_new_password(password=password, user=User(email=canonical, name=name))
    password_hash = make_password(password)
    after_answer(
        lambda: _register(email=canonical, name=name, password_hash=password_hash, client=client), name="sign-up"
    )
    return signup_proof(password_hash)


def _register(*, email: str, name: str, password_hash: str, client: ClientInfo) -> None:
    existing = User.objects.find_by_email(email)
    if existing is None:
        try:
            with transaction.atomic():
                user = User.objects.create(email=email, name=name, password=password_hash)
                link = issue_verification_link(user=user, email=user.email, purpose=Purpose.VERIFY)
                record_event(kind=EventKind.SIGN_UP, user=user, client=client)
                send_verification_link(user=user, link=link)
        except IntegrityError:
            # A concurrent sign-up for the same address won the race.
            existing = User.objects.find_by_email(email)
            if existing is None:
                raise
        else:
            return
    _tell_owner(existing=existing, client=client)


def _tell_owner(*, existing: User, client: ClientInfo) -> None:
    """Email the owner of ``existing`` that someone tried to sign up with its address.

    If the account is not verified yet, its password was chosen by whoever
    signed up first, who may not be the address's owner: the email leads
    straight to choosing a new password, which proves the address and
    replaces that password.
    """
    with transaction.atomic():
        record_event(kind=EventKind.SIGN_UP_EXISTING, user=existing, client=client)
    try:
        hit(SIGN_UP_MAIL_ADDRESS, address_key(existing.email), client=client, email=existing.email)
    except (RateLimited, RateLimitUnavailable):
        return  # the owner has been told recently enough
    with transaction.atomic():
        set_password_link = None
        if existing.is_active and not existing.email_verified:
            set_password_link = issue_password_reset_link(user=existing)
        send_account_email(
            template="account_exists",
            to=existing.email,
            context={
                "login_link": site_link("accounts:login"),
                "reset_link": site_link("accounts:password_reset"),
                "set_password_link": set_password_link,
            },
            greet=existing,
        )
