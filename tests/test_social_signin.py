"""Social sign-in against a real OpenID provider (django-oauth-toolkit, own process): the round trip, its failures."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from django.conf import settings as django_settings

from accounts import amr as methods
from accounts.models import DeviceSession, SecurityEvent, SocialIdentity, User
from tests.support.accounts import STRONG_PASSWORD
from tests.support.api import refresh
from tests.support.mail import mails_to
from tests.support.mfa import enable_totp, totp_code
from tests.support.pages import browser, submit
from tests.support.social import CALLBACK, LOGIN, leave_for_provider, round_trip, social_sign_in, use_acme

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"


@pytest.fixture
def acme(settings, provider):
    use_acme(settings, provider)
    return provider


@pytest.fixture
def trusted(settings, provider):
    """The provider, trusted for the addresses it verifies (SOCIAL_ACME_TRUST_EMAIL=true)."""
    use_acme(settings, provider, trust_email=True)
    return provider


def error_code(response) -> str:
    """The stable code of the social error page."""
    match = re.search(r'data-code="([a-z_]+)"', response.content.decode())
    assert match is not None, response.content.decode()[:1000]
    return match.group(1)


def failures(reason: str | None = None):
    events = SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SOCIAL_FAILED)
    return events.filter(detail__reason=reason) if reason else events


def page_device_session(client) -> DeviceSession:
    from accounts.flows.signin import DEVICE_SESSION_KEY

    return DeviceSession.objects.get(pk=client.session[DEVICE_SESSION_KEY])


# --- The authorization request ---------------------------------------------------------------------


def test_the_button_redirects_with_pkce_s256_state_and_nonce(acme):
    client = browser()
    url = leave_for_provider(client)
    parts = urlsplit(url)
    query = {key: values[0] for key, values in parse_qs(parts.query).items()}
    assert f"{parts.scheme}://{parts.netloc}{parts.path}".startswith(acme.issuer)
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43  # base64url of a SHA-256
    assert len(query["state"]) >= 43 and len(query["nonce"]) >= 43
    assert query["state"] != query["nonce"]
    assert query["redirect_uri"] == f"{django_settings.SITE_URL}{CALLBACK}"
    assert set(query["scope"].split()) == {"openid", "email", "profile"}
    # The verifier stays on the server: nothing of it is in the URL.
    flows = client.session["_social_flows"]
    assert list(flows) == [query["state"]]
    assert flows[query["state"]]["code_verifier"] not in url


def test_the_button_needs_the_csrf_token_so_no_site_can_start_a_sign_in(acme):
    client = browser()
    assert client.post(LOGIN).status_code == 403


def test_the_button_is_a_post(acme):
    assert browser().get(LOGIN).status_code == 405


def test_an_unknown_provider_is_404(acme):
    client = browser()
    assert submit(client, "/accounts/social/nobody/login/").status_code == 404
    assert client.get("/accounts/social/nobody/callback/?state=x&code=y").status_code == 404


def test_buttons_show_only_for_configured_providers(settings, provider):
    settings.SOCIAL_PROVIDERS = {}
    assert b"/accounts/social/" not in browser().get("/accounts/login/").content
    use_acme(settings, provider)
    for page in ("/accounts/login/", "/accounts/signup/"):
        html = browser().get(page).content.decode()
        assert 'action="/accounts/social/acme/login/"' in html
        assert "Acme" in html


def test_the_spa_lists_the_providers(acme):
    response = browser().get("/api/auth/social/providers/")
    assert response.status_code == 200
    assert response.json() == [{"name": "acme", "display_name": "Acme", "login_url": LOGIN}]


# --- New accounts -----------------------------------------------------------------------------------


def test_a_trusted_providers_new_verified_address_makes_a_verified_account_and_signs_in(trusted, mailoutbox):
    sub = trusted.add_user(email=ALICE, email_verified=True, name="Alice Liddell")
    client = browser()
    response = social_sign_in(client, trusted, email=ALICE, data={"next": "/app/"})
    assert response.status_code == 302 and response["Location"] == "/app/"
    user = User.objects.get(email=ALICE)
    assert user.email_verified and not user.has_usable_password() and user.name == "Alice Liddell"
    identity = SocialIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject, identity.provider) == (trusted.issuer, sub, "acme")
    session = page_device_session(client)
    assert session.amr == [methods.FEDERATED]
    # The SPA continues from the refresh cookie, as after a password sign-in.
    assert django_settings.ACCOUNTS_REFRESH_COOKIE_NAME in response.cookies
    spa = refresh(client)
    assert spa.status_code == 200 and spa.json()["access"]
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SIGN_UP, user=user).exists()


def test_signing_in_again_finds_the_account_by_issuer_and_subject_not_email(trusted):
    trusted.add_user(email="first@example.com", email_verified=True)
    assert social_sign_in(browser(), trusted, email="first@example.com").status_code == 302
    user = User.objects.get(email="first@example.com")
    # The person changes their address at the provider: the same subject still signs in to the same account.
    user.email = "changed-here@example.com"
    user.save(update_fields=["email"])
    client = browser()
    assert social_sign_in(client, trusted, email="first@example.com").status_code == 302
    assert page_device_session(client).user_id == user.pk
    assert User.objects.count() == 1
    assert SocialIdentity.objects.get().last_used_at is not None


def test_a_new_unverified_address_waits_for_its_emailed_link(acme, mailoutbox):
    acme.add_user(email=ALICE, email_verified=False)
    client = browser()
    response = social_sign_in(client, acme, email=ALICE)
    assert response.status_code == 302 and response["Location"] == "/accounts/signup/done/"
    user = User.objects.get(email=ALICE)
    assert not user.email_verified
    assert not DeviceSession.objects.filter(user=user).exists()
    assert "_auth_user_id" not in client.session
    [mail] = mails_to(mailoutbox, ALICE)
    assert "/accounts/verify-email/" in mail.body
    # Until it is verified, the provider does not sign in either.
    again = social_sign_in(browser(), acme, email=ALICE)
    assert again.status_code == 403 and error_code(again) == "email_not_verified"


def test_the_browser_that_signed_up_verifies_and_keeps_the_provider(acme, mailoutbox):
    from tests.support.mail import link_path_in

    acme.add_user(email=ALICE, email_verified=False)
    client = browser()
    social_sign_in(client, acme, email=ALICE)
    link = link_path_in(mails_to(mailoutbox, ALICE)[0], "/accounts/verify-email/")
    client.get(link)
    confirmed = submit(client, "/accounts/verify-email/confirm/")
    assert confirmed.status_code == 302
    user = User.objects.get(email=ALICE)
    assert user.email_verified
    assert SocialIdentity.objects.filter(user=user).exists()
    assert social_sign_in(browser(), acme, email=ALICE).status_code == 302


def test_another_browser_verifying_the_address_removes_the_provider_connected_before(acme, mailoutbox):
    """Pre-account takeover through a provider that does not verify addresses: the intruder's identity
    must not stay on the account once the mailbox's owner proves the address."""
    from tests.support.mail import link_path_in

    acme.add_user(email=ALICE, email_verified=False)
    social_sign_in(browser(), acme, email=ALICE)  # the intruder, giving Alice's address to the provider
    owner = browser()
    owner.get(link_path_in(mails_to(mailoutbox, ALICE)[0], "/accounts/verify-email/"))
    assert b"new-password1" in owner.get("/accounts/verify-email/confirm/").content  # a new password is asked for
    response = submit(
        owner,
        "/accounts/verify-email/confirm/",
        {"proof": "new_password", "new-password1": STRONG_PASSWORD, "new-password2": STRONG_PASSWORD},
    )
    assert response.status_code == 302
    user = User.objects.get(email=ALICE)
    assert user.email_verified and user.check_password(STRONG_PASSWORD)
    assert not SocialIdentity.objects.filter(user=user).exists()
    removed = SecurityEvent.objects.get(kind=SecurityEvent.Kind.SOCIAL_DISCONNECTED, user=user)
    assert removed.detail["by"] == "address proven"
    # The intruder's provider account now meets a verified account it is not linked to, and does not sign in.
    intruder = browser()
    social_sign_in(intruder, acme, email=ALICE)
    assert "_auth_user_id" not in intruder.session
    assert not SocialIdentity.objects.filter(user=user).exists()


def test_an_id_token_without_the_address_takes_it_from_the_user_info_endpoint(trusted):
    trusted.add_user(email=ALICE, email_verified=True)
    trusted.fault("no_email")
    client = browser()
    assert social_sign_in(client, trusted, email=ALICE).status_code == 302
    assert User.objects.get(email=ALICE).email_verified


def test_no_email_from_the_provider_is_a_clear_error(settings, provider):
    use_acme(settings, provider, scopes=["openid"])  # the person shares no address
    provider.add_user(email=ALICE)
    response = social_sign_in(browser(), provider, email=ALICE)
    assert response.status_code == 400 and error_code(response) == "social_email_missing"
    assert not User.objects.exists()
    assert failures("social_email_missing").exists()


# --- Existing accounts ------------------------------------------------------------------------------


def test_a_trusted_provider_links_a_verified_address_to_its_verified_account(settings, provider, make_user, mailoutbox):
    use_acme(settings, provider, trust_email=True)
    owner = make_user(email=ALICE)
    provider.add_user(email=ALICE, email_verified=True)
    client = browser()
    response = social_sign_in(client, provider, email=ALICE)
    assert response.status_code == 302
    assert page_device_session(client).user_id == owner.pk
    assert SocialIdentity.objects.get().user_id == owner.pk
    [notice] = [mail for mail in mails_to(mailoutbox, ALICE) if "connected" in mail.subject]
    assert "/accounts/social/not-me/" in notice.body
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SOCIAL_CONNECTED, user=owner).exists()


def test_an_untrusted_provider_never_links_by_address_and_answers_as_for_a_new_one(acme, make_user, mailoutbox):
    owner = make_user(email=ALICE)
    acme.add_user(email=ALICE, email_verified=True)
    acme.add_user(email="nobody@example.com", email_verified=True)
    existing, new = browser(), browser()
    for_existing = social_sign_in(existing, acme, email=ALICE)
    for_new = social_sign_in(new, acme, email="nobody@example.com")
    assert (for_existing.status_code, for_existing["Location"]) == (302, "/accounts/signup/done/")
    assert (for_new.status_code, for_new["Location"]) == (302, "/accounts/signup/done/")
    assert set(for_existing.cookies) == set(for_new.cookies)
    assert not SocialIdentity.objects.filter(user=owner).exists()
    assert "_auth_user_id" not in existing.session
    assert not DeviceSession.objects.filter(user=owner).exists()
    [told] = mails_to(mailoutbox, ALICE)
    assert "not connected" in told.body and "/accounts/security/" in told.body


@pytest.mark.parametrize("reason", ["the provider did not verify it", "the provider is not trusted"])
def test_a_new_account_waits_for_its_emailed_link_unless_a_trusted_provider_verified_it(
    settings, provider, mailoutbox, reason
):
    """An untrusted provider's "verified" is worth no more than an unverified address: else it could make a
    verified account in someone's name that a trusted provider would later link to by itself."""
    use_acme(settings, provider, trust_email=reason == "the provider did not verify it")
    provider.add_user(email=ALICE, email_verified=reason == "the provider is not trusted")
    client = browser()
    response = social_sign_in(client, provider, email=ALICE)
    assert (response.status_code, response["Location"]) == (302, "/accounts/signup/done/")
    user = User.objects.get(email=ALICE)
    assert not user.email_verified
    assert "_auth_user_id" not in client.session
    assert not DeviceSession.objects.filter(user=user).exists()
    [mail] = mails_to(mailoutbox, ALICE)
    assert "/accounts/verify-email/" in mail.body


def test_proving_the_account_with_its_password_then_connects_it(settings, trusted, make_user, mailoutbox):
    """A trusted provider meets an account whose address is not verified yet (allowed to sign in when
    verification is optional): its owner signs in, then confirms the connection."""
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    owner = make_user(email=ALICE, verified=False)
    trusted.add_user(email=ALICE, email_verified=True)
    client = browser()
    response = social_sign_in(client, trusted, email=ALICE)
    assert response["Location"] == "/accounts/login/?next=%2Faccounts%2Fsocial%2Fconnect%2F"
    assert not SocialIdentity.objects.exists()
    assert "_auth_user_id" not in client.session
    signed_in = submit(client, response["Location"], {"email": ALICE, "password": STRONG_PASSWORD})
    assert signed_in.status_code == 302 and signed_in["Location"] == "/accounts/social/connect/"
    page = client.get("/accounts/social/connect/")
    assert page.status_code == 200 and b"Connect Acme" in page.content
    assert not SocialIdentity.objects.exists()  # not before the owner confirms
    connected = submit(client, "/accounts/social/connect/")
    assert connected.status_code == 302 and connected["Location"] == "/accounts/security/"
    assert SocialIdentity.objects.get().user_id == owner.pk
    assert [mail for mail in mails_to(mailoutbox, ALICE) if "connected" in mail.subject]
    # From now on the provider signs in directly.
    again = browser()
    assert social_sign_in(again, trusted, email=ALICE).status_code == 302
    assert page_device_session(again).user_id == owner.pk


def test_a_waiting_connection_is_only_for_the_account_at_its_address(settings, trusted, make_user):
    """The identity held back for Alice's account must not attach to whichever account this browser signs in to."""
    settings.ACCOUNTS_EMAIL_VERIFICATION = "optional"
    make_user(email=ALICE, verified=False)
    other = make_user(email="mallory@example.com")
    trusted.add_user(email=ALICE, email_verified=True)
    client = browser()
    response = social_sign_in(client, trusted, email=ALICE)
    submit(client, response["Location"], {"email": "mallory@example.com", "password": STRONG_PASSWORD})
    assert page_device_session(client).user_id == other.pk
    page = client.get("/accounts/social/connect/")
    assert page.status_code == 302 and page["Location"] == "/accounts/security/"
    assert submit(client, "/accounts/social/connect/").status_code == 302
    assert not SocialIdentity.objects.exists()


def test_a_connect_page_without_a_waiting_provider_goes_back(acme, user):
    from tests.support.accounts import force_page_login

    client = browser()
    force_page_login(client, user)
    response = client.get("/accounts/social/connect/")
    assert response.status_code == 302 and response["Location"] == "/accounts/security/"


def test_an_unverified_local_account_is_never_linked_even_by_a_trusted_provider(settings, provider, make_user):
    """Pre-account takeover: someone signed up first with the address (and a password of theirs)."""
    use_acme(settings, provider, trust_email=True)
    squatter = make_user(email=ALICE, verified=False)
    provider.add_user(email=ALICE, email_verified=True)
    client = browser()
    response = social_sign_in(client, provider, email=ALICE)
    assert response["Location"].startswith("/accounts/login/")
    assert not SocialIdentity.objects.exists()
    assert not DeviceSession.objects.filter(user=squatter).exists()


def test_an_unverified_provider_address_of_an_existing_account_answers_as_a_new_one(acme, make_user, mailoutbox):
    """Anyone can give a provider any address: the answer must not say whether it has an account here."""
    owner = make_user(email=ALICE)
    acme.add_user(email=ALICE, email_verified=False)
    acme.add_user(email="nobody@example.com", email_verified=False)
    existing, new = browser(), browser()
    for_existing = social_sign_in(existing, acme, email=ALICE)
    for_new = social_sign_in(new, acme, email="nobody@example.com")
    assert (for_existing.status_code, for_existing["Location"]) == (for_new.status_code, for_new["Location"])
    assert set(for_existing.cookies) == set(for_new.cookies)
    assert not SocialIdentity.objects.filter(user=owner).exists()
    [told] = mails_to(mailoutbox, ALICE)
    assert "security" in told.body and "not connected" in told.body


def test_a_deactivated_account_does_not_sign_in(acme, make_user):
    acme.add_user(email=ALICE)
    social_sign_in(browser(), acme, email=ALICE)
    User.objects.filter(email=ALICE).update(is_active=False)
    response = social_sign_in(browser(), acme, email=ALICE)
    assert response.status_code == 403 and error_code(response) == "account_inactive"


# --- The second step ----------------------------------------------------------------------------------


def test_an_account_with_two_factor_passes_the_second_step_after_the_provider(trusted):
    trusted.add_user(email=ALICE)
    social_sign_in(browser(), trusted, email=ALICE)
    user = User.objects.get(email=ALICE)
    secret = enable_totp(user)
    client = browser()
    response = social_sign_in(client, trusted, email=ALICE, data={"next": "/app/"})
    assert response.status_code == 302 and response["Location"] == "/accounts/login/mfa/?next=%2Fapp%2F"
    assert "_auth_user_id" not in client.session
    assert not DeviceSession.objects.filter(user=user).exclude(revoked_at__isnull=False).count() > 1
    done = submit(client, response["Location"], {"code": totp_code(secret)})
    assert done.status_code == 302 and done["Location"] == "/app/"
    assert page_device_session(client).amr == [methods.FEDERATED, methods.ONE_TIME_CODE, methods.MULTI_FACTOR]


# --- Failures -----------------------------------------------------------------------------------------


def test_a_state_this_browser_never_got_is_refused(acme):
    acme.add_user(email=ALICE)
    victim, attacker = browser(), browser()
    victim.get("/accounts/login/")
    trip = round_trip(attacker, acme, email=ALICE)
    # Login CSRF: the attacker's callback URL, opened in the victim's browser, signs nobody in.
    response = victim.get(trip.callback)
    assert response.status_code == 400 and error_code(response) == "social_state_invalid"
    assert "_auth_user_id" not in victim.session
    assert not User.objects.exists()
    assert failures("social_state_invalid").exists()


def test_a_missing_or_wrong_state_is_refused(acme):
    client = browser()
    leave_for_provider(client)
    for query in ("?code=abc", "?state=not-the-state&code=abc", "?state=&code=abc"):
        response = client.get(CALLBACK + query)
        assert response.status_code == 400 and error_code(response) == "social_state_invalid"


def test_a_replayed_callback_is_refused(acme):
    acme.add_user(email=ALICE)
    client = browser()
    trip = round_trip(client, acme, email=ALICE)
    assert client.get(trip.callback).status_code == 302
    replayed = client.get(trip.callback)
    assert replayed.status_code == 400 and error_code(replayed) == "social_state_invalid"


def test_a_used_code_with_a_fresh_state_is_refused_by_the_provider(acme):
    acme.add_user(email=ALICE)
    client = browser()
    first = round_trip(client, acme, email=ALICE)
    code = parse_qs(urlsplit(first.callback).query)["code"][0]
    assert client.get(first.callback).status_code == 302
    fresh = urlsplit(leave_for_provider(client))
    state = parse_qs(fresh.query)["state"][0]
    response = client.get(f"{CALLBACK}?state={state}&code={code}")
    assert response.status_code == 400 and error_code(response) == "social_token_invalid"
    assert failures("social_token_invalid").exists()


def test_an_expired_flow_is_refused(acme, settings):
    acme.add_user(email=ALICE)
    client = browser()
    trip = round_trip(client, acme, email=ALICE)
    settings.SOCIAL_FLOW_LIFETIME = 0
    response = client.get(trip.callback)
    assert response.status_code == 400 and error_code(response) == "social_state_invalid"
    assert not User.objects.exists()


def test_denied_consent_ends_on_a_clear_page(settings, provider):
    use_acme(settings, provider, skip_consent=False)
    provider.add_user(email=ALICE)
    client = browser()
    trip = round_trip(client, provider, email=ALICE, consent=False)
    assert "error=access_denied" in trip.callback
    response = client.get(trip.callback)
    assert response.status_code == 400 and error_code(response) == "social_denied"
    assert failures("social_denied").exists()
    assert not User.objects.exists()


@pytest.mark.parametrize(
    "fault", ["tamper_id_token", "expired_id_token", "wrong_nonce", "wrong_audience", "wrong_issuer", "unsigned"]
)
def test_an_id_token_that_does_not_verify_signs_nobody_in(acme, fault):
    acme.add_user(email=ALICE)
    client = browser()
    trip = round_trip(client, acme, email=ALICE)
    acme.fault(fault)
    response = client.get(trip.callback)
    assert response.status_code == 400 and error_code(response) == "social_token_invalid"
    assert not User.objects.exists() and not DeviceSession.objects.exists()
    assert "_auth_user_id" not in client.session
    assert failures("social_token_invalid").count() == 1


def test_a_provider_that_is_down_before_the_round_trip(acme):
    acme.fault("unavailable")
    response = submit(browser(), LOGIN)
    assert response.status_code == 503 and error_code(response) == "social_provider_unavailable"


def test_a_provider_that_goes_down_during_the_round_trip(acme):
    acme.add_user(email=ALICE)
    client = browser()
    trip = round_trip(client, acme, email=ALICE)
    acme.fault("unavailable")
    response = client.get(trip.callback)
    assert response.status_code == 503 and error_code(response) == "social_provider_unavailable"
    assert failures("social_provider_unavailable").exists()


def test_a_provider_nobody_answers_at(settings, provider):
    from bench.harness import free_port

    use_acme(settings, provider, issuer=f"http://127.0.0.1:{free_port()}/o")
    response = submit(browser(), LOGIN)
    assert response.status_code == 503 and error_code(response) == "social_provider_unavailable"


def test_a_discovery_document_for_another_issuer_is_refused(settings, provider):
    import requests

    # The same provider under another host name: its document answers, but names 127.0.0.1 as its issuer.
    elsewhere = provider.issuer.replace("127.0.0.1", "localhost")
    assert requests.get(f"{elsewhere}/.well-known/openid-configuration", timeout=10).json()["issuer"] == provider.issuer
    use_acme(settings, provider, issuer=elsewhere)
    response = submit(browser(), LOGIN)
    assert response.status_code == 503 and error_code(response) == "social_provider_unavailable"


def test_starting_sign_ins_is_rate_limited_per_ip(acme, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "social_sign_ins_per_ip": "2/m"}
    client = browser()
    assert submit(client, LOGIN).status_code == 302
    assert submit(client, LOGIN).status_code == 302
    assert submit(client, LOGIN).status_code == 429


def test_a_provider_error_other_than_denial_is_a_clear_page(acme):
    client = browser()
    state = parse_qs(urlsplit(leave_for_provider(client)).query)["state"][0]
    response = client.get(f"{CALLBACK}?state={state}&error=server_error")
    assert response.status_code == 400 and error_code(response) == "social_failed"


def test_garbage_on_the_callback_is_a_4xx(acme):
    client = browser()
    for query in ("?state=" + "x" * 5000, "?code=%00%ff&state=%00", "?error=" + "y" * 5000):
        assert 400 <= client.get(CALLBACK + query).status_code < 500


# --- From the security review -------------------------------------------------------------------------


def test_a_new_account_from_a_provider_is_told_with_a_not_me_link(trusted, mailoutbox):
    """A provider vouching for an address it does not own must not make an account in its owner's name unseen."""
    trusted.add_user(email=ALICE, email_verified=True)
    social_sign_in(browser(), trusted, email=ALICE)
    [notice] = mails_to(mailoutbox, ALICE)
    assert "account was just made" in notice.body and "/accounts/social/not-me/" in notice.body


def test_a_provider_sign_in_and_a_password_are_not_two_factors():
    assert methods.combine([methods.PASSWORD], [methods.FEDERATED]) == [methods.PASSWORD, methods.FEDERATED]
    assert methods.MULTI_FACTOR in methods.combine([methods.FEDERATED], [methods.ONE_TIME_CODE])
    assert methods.MULTI_FACTOR in methods.combine([methods.FEDERATED], [methods.SOFTWARE_KEY])


def test_an_answer_nobody_asked_for_writes_no_session(acme):
    client = browser()
    response = client.get(CALLBACK + "?state=made-up&code=x")
    assert response.status_code == 400
    assert django_settings.SESSION_COOKIE_NAME not in response.cookies


def test_answers_nobody_asked_for_are_rate_limited(acme, settings):
    settings.ACCOUNTS_RATE_LIMITS = {**settings.ACCOUNTS_RATE_LIMITS, "social_sign_ins_per_ip": "3/m"}
    client = browser()
    statuses = [client.get(CALLBACK + f"?state=made-up-{n}&code=x").status_code for n in range(5)]
    assert statuses == [400, 400, 400, 429, 429]
    assert failures("social_state_invalid").count() == 3


@pytest.mark.parametrize(
    ("given", "kept"),
    [
        ("Alice@Example.COM", "alice@example.com"),
        ("a" * 250 + "@example.com", None),
        ("alice@example.com\nignore the rest", None),
        ("", None),
        (None, None),
        (["alice@example.com"], None),
    ],
)
def test_a_providers_address_is_kept_only_in_canonical_form(given, kept):
    from accounts.flows.social_providers import canonical_email

    assert canonical_email(given) == kept


def test_only_a_provider_configured_at_microsoft_may_name_microsofts_tenant_issuers(acme):
    """Else any configured provider could sign in as any Microsoft identity linked here, by naming its issuer."""
    acme.add_user(email=ALICE)
    acme.fault("microsoft_issuer")
    response = submit(browser(), LOGIN)
    assert response.status_code == 503 and error_code(response) == "social_provider_unavailable"
    assert not SocialIdentity.objects.exists()


def test_an_oversized_discovery_document_is_refused(acme):
    acme.fault("huge_discovery")
    response = submit(browser(), LOGIN)
    assert response.status_code == 503 and error_code(response) == "social_provider_unavailable"


@pytest.mark.parametrize(
    ("claims", "expected"),
    [
        (
            {"tid": "9188040d-6c67-4c5b-b112-36a304b66dad"},
            "https://login.microsoftonline.com/9188040d-6c67-4c5b-b112-36a304b66dad/v2.0",
        ),
        ({}, None),
        ({"tid": ""}, None),
        ({"tid": 42}, None),
        ({"tid": "../../evil.example"}, None),
        ({"tid": "9188040d-6c67-4c5b-b112-36a304b66dad/x"}, None),
    ],
)
def test_microsofts_tenant_comes_only_from_a_tenant_id(claims, expected):
    from accounts.exceptions import SocialTokenRefused
    from accounts.flows.social_providers import Endpoints, token_issuer

    where = Endpoints(
        issuer="https://login.microsoftonline.com/{tenantid}/v2.0", authorization="https://a", token="https://t"
    )
    if expected is None:
        with pytest.raises(SocialTokenRefused):
            token_issuer(where, claims)
    else:
        assert token_issuer(where, claims) == expected


def test_an_issuer_without_the_placeholder_is_the_documents_own():
    from accounts.flows.social_providers import Endpoints, token_issuer

    where = Endpoints(issuer="https://idp.example", authorization="https://a", token="https://t")
    assert token_issuer(where, {"tid": "9188040d-6c67-4c5b-b112-36a304b66dad"}) == "https://idp.example"
