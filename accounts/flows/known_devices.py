"""New-device sign-in notices: a returning browser known by its device cookie, the owner told of a new one.

Every sign-in (pages or API, once any second step is done) passes the browser's device cookie
here, in the transaction that opens its device session. The cookie holds 256 random bits; the
account keeps only their SHA-256 (KnownDevice). A browser with no cookie, a cookie this account
has not seen, or one that is not of our making is a new device; a cookie no account has seen gets
a fresh id (another account's stays: one browser, several accounts),
and the owner gets an email with when, the approximate device, the IP address and links to the
devices page and to a password reset. No third party is asked anything.

The first device an account ever signs in on is remembered silently: there is nothing yet to
call it new against. An account that signed in before, but has no known device (it signed in
before this feature arrived, or its devices were forgotten), is told of the next one. At most
ACCOUNTS_NEW_DEVICE_NOTICES_PER_DAY notices go out per account a day (someone scripting sign-ins
without cookies would otherwise flood the owner's inbox); every new device is remembered anyway.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from accounts.client_info import ClientInfo
from accounts.flows.account_lock import lock_account
from accounts.mail import send_account_email, site_link
from accounts.models import USER_AGENT_MAX_LENGTH, KnownDevice, OutboundEmail, User
from accounts.tokens import generate_token, hash_token, is_well_formed
from accounts.user_agents import describe_user_agent

NOTICE = "new_device_sign_in"


def recognise_device(*, user: User, device_id: str | None, client: ClientInfo) -> str:
    """Remember the browser signing in to ``user`` and tell the owner if it is new; returns the
    device id the browser's cookie must hold from now on (the one it sent, when it was ours)."""
    now = timezone.now()
    with transaction.atomic():
        if is_well_formed(device_id):
            seen = KnownDevice.objects.filter(user=user, device_hash=hash_token(device_id)).update(last_seen_at=now)
            if seen:
                return device_id
        if not is_well_formed(device_id) or not KnownDevice.objects.filter(device_hash=hash_token(device_id)).exists():
            # None, or an id no account has seen (not one we made, or planted by someone who
            # knows it): this browser gets a fresh one.
            device_id = generate_token()
        # The account's row, locked: two new devices at once still count against the same day's notices.
        lock_account(user)
        # The very first sign-in only (last_login is set after this): an account that signed in
        # before this feature arrived, or whose devices were all forgotten, is told of the next one.
        first_device = user.last_login is None and not KnownDevice.objects.filter(user=user).exists()
        noticed_today = OutboundEmail.objects.filter(
            user=user, template=NOTICE, created_at__gte=now - timedelta(days=1)
        ).count()
        _device, created = KnownDevice.objects.get_or_create(
            user=user,
            device_hash=hash_token(device_id),
            defaults={
                "user_agent": client.user_agent[:USER_AGENT_MAX_LENGTH],
                "first_seen_at": now,
                "last_seen_at": now,
            },
        )
        if created and not first_device and noticed_today < settings.ACCOUNTS_NEW_DEVICE_NOTICES_PER_DAY:
            _tell_owner(user=user, client=client, when=now)
    return device_id


def _tell_owner(*, user: User, client: ClientInfo, when: datetime) -> None:
    send_account_email(
        template=NOTICE,
        to=user.email,
        greet=user,
        context={
            "when": when,
            # Never the raw header: its text is whatever the signing-in client chose to write into the email.
            "device": describe_user_agent(client.user_agent, raw_fallback=False),
            "ip_address": client.ip_address or "unknown",
            "devices_link": site_link("accounts:sessions"),
            "reset_link": site_link("accounts:password_reset"),
        },
    )
