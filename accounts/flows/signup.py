"""Sign-up: creating an account without revealing whether the address already has one."""

from django.contrib.auth.hashers import make_password
from django.db import IntegrityError, transaction

from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.exceptions import InvalidEmail
from accounts.flows.passwords import validate_new_password
from accounts.flows.profile import clean_display_name
from accounts.audit import EventKind, record_event
from accounts.flows.verification import Purpose, issue_verification_link, send_verification_link
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


def sign_up(*, email: str, password: str, name: str, client: ClientInfo | None = None) -> None:
    """Register ``email``, or tell the owner of an existing account that someone tried.

    Both outcomes return nothing, hash the password once, commit one
    transaction that writes an audit event and send one email, so the answer
    is the same, and takes the same time, for a new and an existing address.
    """
    client = client or ClientInfo()
    hit(SIGN_UP_IP, ip_key(client.ip_address), client=client)
    try:
        canonical = normalize_email(email)
    except InvalidEmailAddress as error:
        raise InvalidEmail(str(error)) from None
    name = clean_display_name(name)
    validate_new_password(password=password, user=User(email=canonical, name=name))

    existing = User.objects.find_by_email(canonical)
    if existing is None:
        try:
            with transaction.atomic():
                user = User.objects.create_user(email=canonical, password=password, name=name)
                link = issue_verification_link(user=user, email=user.email, purpose=Purpose.VERIFY)
                record_event(kind=EventKind.SIGN_UP, user=user, client=client)
        except IntegrityError:
            # A concurrent sign-up for the same address won the race; the
            # password was already hashed once, as on the other path.
            existing = User.objects.find_by_email(canonical)
            if existing is None:
                raise
        else:
            send_verification_link(user=user, link=link)
            return
    else:
        make_password(password)  # the same hashing work as creating the account
    with transaction.atomic():
        record_event(kind=EventKind.SIGN_UP_EXISTING, user=existing, client=client)
    try:
        hit(SIGN_UP_MAIL_ADDRESS, address_key(canonical), client=client, email=canonical)
    except (RateLimited, RateLimitUnavailable):
        return  # the owner has been told recently enough; the answer must not change

    send_account_email(
        template="account_exists",
        to=existing.email,
        context={
            "user": existing,
            "login_link": site_link("accounts:login"),
            "reset_link": site_link("accounts:password_reset"),
            "resend_link": site_link("accounts:resend_verification"),
        },
    )
