"""Connected providers: connecting and disconnecting them, re-authenticating with one, "not me", GitHub, settings."""

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import connection
from django.utils import timezone

from accounts.mail import site_link
from accounts.middleware import content_security_policy
from accounts.models import DeviceSession, SecurityEvent, SocialIdentity, User
from tests.support.accounts import STRONG_PASSWORD, force_page_login
from tests.support.api import access_token_for, api_client, assert_api_error, bearer
from tests.support.mail import link_path_in, mails_to
from tests.support.mfa import enable_totp
from tests.support.pages import browser, submit
from tests.support.races import run_at_once
from tests.support.social import CALLBACK, leave_for_provider, round_trip, social_sign_in, use_acme

pytestmark = pytest.mark.django_db

ALICE = "alice@example.com"
SECURITY = "/accounts/security/"


@pytest.fixture
def acme(settings, provider):
    use_acme(settings, provider)
    return provider


def signed_in(user) -> "tuple":
    client = browser()
    session = force_page_login(client, user)
    return client, session


def make_stale(session: DeviceSession) -> None:
    DeviceSession.objects.filter(pk=session.pk).update(authenticated_at=timezone.now() - timedelta(days=1))


def connect(client, provider, *, email: str = ALICE):
    trip = round_trip(client, provider, email=email, data={"intent": "connect"})
    return client.get(trip.callback)


def social_only_account(provider, email: str = ALICE) -> User:
    provider.add_user(email=email, email_verified=True)
    assert social_sign_in(browser(), provider, email=email).status_code == 302
    return User.objects.get(email=email)


# --- Connecting from the security page ----------------------------------------------------------------


def test_the_security_page_offers_to_connect_a_configured_provider(acme, user):
    client, _ = signed_in(user)
    html = client.get(SECURITY).content.decode()
    assert "Sign-in providers" in html and "Connect Acme" in html


def test_connecting_a_provider_from_the_security_page(acme, user, mailoutbox):
    acme.add_user(email="alice.work@example.com", email_verified=False)  # any address: the person is signed in
    client, _ = signed_in(user)
    response = connect(client, acme, email="alice.work@example.com")
    assert response.status_code == 302 and response["Location"] == SECURITY
    identity = SocialIdentity.objects.get()
    assert identity.user_id == user.pk and identity.email == "alice.work@example.com"
    assert "alice.work@example.com" in client.get(SECURITY).content.decode()
    [notice] = [mail for mail in mails_to(mailoutbox, user.email) if "connected" in mail.subject]
    assert "/accounts/social/not-me/" in notice.body
    # And it signs in from now on.
    other = browser()
    assert social_sign_in(other, acme, email="alice.work@example.com").status_code == 302
    assert int(other.session["_auth_user_id"]) == user.pk


def test_connecting_needs_a_recent_authentication(acme, user):
    client, session = signed_in(user)
    make_stale(session)
    response = submit(client, "/accounts/social/acme/login/", {"intent": "connect"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert not client.session.get("_social_flows")


def test_connecting_needs_the_second_factor_when_the_account_has_one(acme, user):
    enable_totp(user)
    client, _ = signed_in(user)  # a password-only session
    response = submit(client, "/accounts/social/acme/login/", {"intent": "connect"})
    assert response.status_code == 302 and "factor=code" in response["Location"]


def test_a_session_gone_stale_during_the_round_trip_connects_nothing(acme, user):
    acme.add_user(email=ALICE)
    client, session = signed_in(user)
    trip = round_trip(client, acme, email=ALICE, data={"intent": "connect"})
    make_stale(session)
    response = client.get(trip.callback)
    assert response.status_code == 302 and response["Location"].startswith("/accounts/reauthenticate/")
    assert not SocialIdentity.objects.exists()


def test_an_identity_of_another_account_is_not_taken_over(acme, make_user):
    first = social_only_account(acme)
    second = make_user(email="bob@example.com")
    client, _ = signed_in(second)
    response = connect(client, acme, email=ALICE)
    assert response.status_code == 400 and b"social_identity_taken" in response.content
    assert SocialIdentity.objects.get().user_id == first.pk


def test_connecting_while_signed_out_asks_to_sign_in(acme):
    response = submit(browser(), "/accounts/social/acme/login/", {"intent": "connect"})
    assert response.status_code == 302 and response["Location"].startswith("/accounts/login/")


def test_a_connect_round_trip_finished_after_signing_out_connects_nothing(acme, user):
    acme.add_user(email=ALICE)
    client, _ = signed_in(user)
    trip = round_trip(client, acme, email=ALICE, data={"intent": "connect"})
    flows = client.session["_social_flows"]
    client.logout()
    session = client.session
    session["_social_flows"] = flows  # the same browser, signed out, brings the provider's answer back
    session.save()
    response = client.get(trip.callback)
    assert response.status_code == 400
    assert not SocialIdentity.objects.exists()


# --- Disconnecting --------------------------------------------------------------------------------------


def test_disconnecting_with_a_password_left(acme, user, mailoutbox):
    acme.add_user(email=ALICE)
    client, _ = signed_in(user)
    connect(client, acme)
    identity = SocialIdentity.objects.get()
    response = submit(client, f"/accounts/security/social/{identity.pk}/disconnect/")
    assert response.status_code == 302
    assert not SocialIdentity.objects.exists()
    assert [mail for mail in mails_to(mailoutbox, user.email) if "disconnected" in mail.subject]
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SOCIAL_DISCONNECTED, user=user).exists()


def test_the_only_way_to_sign_in_cannot_be_disconnected(acme):
    owner = social_only_account(acme)
    client, _ = signed_in(owner)
    identity = SocialIdentity.objects.get()
    response = submit(client, f"/accounts/security/social/{identity.pk}/disconnect/")
    assert response.status_code == 302
    assert SocialIdentity.objects.filter(pk=identity.pk).exists()
    assert "only way to sign in" in client.get(SECURITY).content.decode()


def test_a_passkey_or_another_provider_is_a_way_to_sign_in(settings, provider):
    from tests.support.social import acme_settings

    settings.SOCIAL_PROVIDERS = {
        **acme_settings(provider),
        "other": {**acme_settings(provider)["acme"], "name": "other", "display_name": "Other"},
    }
    # "other" shares the issuer: give it its own, as two providers would have.
    owner = social_only_account(provider)
    first = SocialIdentity.objects.get()
    second = SocialIdentity.objects.create(
        user=owner, provider="other", issuer="https://other.example", subject="42", email=ALICE
    )
    client, _ = signed_in(owner)
    assert submit(client, f"/accounts/security/social/{first.pk}/disconnect/").status_code == 302
    assert not SocialIdentity.objects.filter(pk=first.pk).exists()
    # Now the other one is the last.
    submit(client, f"/accounts/security/social/{second.pk}/disconnect/")
    assert SocialIdentity.objects.filter(pk=second.pk).exists()


def test_disconnecting_needs_a_recent_authentication(acme, user):
    acme.add_user(email=ALICE)
    client, session = signed_in(user)
    connect(client, acme)
    identity = SocialIdentity.objects.get()
    make_stale(session)
    response = submit(client, f"/accounts/security/social/{identity.pk}/disconnect/")
    assert response["Location"].startswith("/accounts/reauthenticate/")
    assert SocialIdentity.objects.exists()


def test_another_accounts_identity_cannot_be_disconnected(acme, make_user):
    social_only_account(acme)
    intruder = make_user(email="mallory@example.com")
    client, _ = signed_in(intruder)
    identity = SocialIdentity.objects.get()
    for target in (identity.pk, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        submit(client, f"/accounts/security/social/{target}/disconnect/")
    assert SocialIdentity.objects.filter(pk=identity.pk).exists()


# --- The API ------------------------------------------------------------------------------------------------


def test_the_api_lists_and_disconnects_my_providers(acme, user):
    acme.add_user(email=ALICE)
    client, _ = signed_in(user)
    connect(client, acme)
    token = access_token_for(user)
    api = api_client()
    listed = api.get("/api/auth/social/identities/", **bearer(token))
    assert listed.status_code == 200
    [item] = listed.json()
    assert item["provider"] == "acme" and item["display_name"] == "Acme" and item["email"] == ALICE
    assert api.delete(f"/api/auth/social/identities/{item['id']}/", **bearer(token)).status_code == 204
    assert api.get("/api/auth/social/identities/", **bearer(token)).json() == []


def test_the_api_refuses_to_disconnect_the_last_way_in(acme):
    owner = social_only_account(acme)
    identity = SocialIdentity.objects.get()
    token = access_token_for(owner)
    response = api_client().delete(f"/api/auth/social/identities/{identity.pk}/", **bearer(token))
    assert_api_error(response, 409, "social_last_sign_in_method")


@pytest.mark.parametrize("identity_id", ["nope", "00000000-0000-0000-0000-000000000000", "%00"])
def test_the_api_answers_404_for_no_such_identity(acme, user, identity_id):
    response = api_client().delete(f"/api/auth/social/identities/{identity_id}/", **bearer(access_token_for(user)))
    assert_api_error(response, 404, "social_identity_not_found")


def test_the_api_needs_a_recent_authentication_to_disconnect(acme, user):
    acme.add_user(email=ALICE)
    client, _ = signed_in(user)
    connect(client, acme)
    identity = SocialIdentity.objects.get()
    token = access_token_for(user)
    from tests.support.api import session_of

    make_stale(session_of(token))
    response = api_client().delete(f"/api/auth/social/identities/{identity.pk}/", **bearer(token))
    assert_api_error(response, 403, "reauthentication_required")
    assert SocialIdentity.objects.exists()


def test_the_api_needs_a_signed_in_user(acme):
    assert api_client().get("/api/auth/social/identities/").status_code == 401


# --- Re-authenticating with the provider ---------------------------------------------------------------------


def test_a_social_only_account_re_authenticates_with_its_provider(acme):
    owner = social_only_account(acme)
    client, session = signed_in(owner)
    make_stale(session)
    page = client.get("/accounts/reauthenticate/?next=/accounts/security/").content.decode()
    assert "Continue with Acme" in page
    trip = round_trip(client, acme, email=ALICE, data={"intent": "reauthenticate", "next": "/accounts/security/"})
    response = client.get(trip.callback)
    assert response.status_code == 302 and response["Location"] == "/accounts/security/"
    session.refresh_from_db()
    assert session.authenticated_at > timezone.now() - timedelta(minutes=1)
    assert "fed" in session.amr


def test_re_authenticating_with_an_identity_not_connected_here_is_refused(acme, user):
    acme.add_user(email="stranger@example.com")
    client, session = signed_in(user)
    make_stale(session)
    trip = round_trip(client, acme, email="stranger@example.com", data={"intent": "reauthenticate"})
    response = client.get(trip.callback)
    assert response.status_code == 400 and b"social_identity_mismatch" in response.content
    session.refresh_from_db()
    assert session.authenticated_at < timezone.now() - timedelta(hours=1)


# --- "Not me" ----------------------------------------------------------------------------------------


def test_the_not_me_link_disconnects_the_provider_and_secures_the_account(acme, user, mailoutbox):
    acme.add_user(email="intruder@example.com")
    client, _ = signed_in(user)  # an intruder at a signed-in device
    connect(client, acme, email="intruder@example.com")
    notice = [mail for mail in mails_to(mailoutbox, user.email) if "connected" in mail.subject][-1]
    owner = browser()
    owner.get(link_path_in(notice, "/accounts/social/not-me/"))
    page = owner.get("/accounts/social/not-me/")
    assert page.status_code == 200 and b"intruder@example.com" in page.content
    new_password = "a brand new passphrase for alice"
    response = submit(owner, "/accounts/social/not-me/", {"password1": new_password, "password2": new_password})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.check_password(new_password)
    assert not SocialIdentity.objects.exists()
    assert not DeviceSession.objects.live().filter(user=user).exists()
    # The intruder's provider account signs in no more.
    again = browser()
    social_sign_in(again, acme, email="intruder@example.com")
    assert "_auth_user_id" not in again.session or int(again.session["_auth_user_id"]) != user.pk


def test_the_not_me_link_survives_a_password_reset_and_is_single_use(acme, user, mailoutbox):
    from accounts.flows.security_reset import security_reset

    acme.add_user(email="intruder@example.com")
    client, _ = signed_in(user)
    connect(client, acme, email="intruder@example.com")
    notice = [mail for mail in mails_to(mailoutbox, user.email) if "connected" in mail.subject][-1]
    link = link_path_in(notice, "/accounts/social/not-me/")
    security_reset(user=user, reason="password_reset")
    owner = browser()
    owner.get(link)
    new_password = "a brand new passphrase for alice"
    assert (
        submit(owner, "/accounts/social/not-me/", {"password1": new_password, "password2": new_password}).status_code
        == 302
    )
    reused = browser()
    reused.get(link)
    assert b"cannot be used" in reused.get("/accounts/social/not-me/").content


def test_the_not_me_link_stops_working_once_the_address_changed(acme, user, mailoutbox):
    acme.add_user(email="intruder@example.com")
    client, _ = signed_in(user)
    connect(client, acme, email="intruder@example.com")
    notice = [mail for mail in mails_to(mailoutbox, user.email) if "connected" in mail.subject][-1]
    owner = browser()
    owner.get(link_path_in(notice, "/accounts/social/not-me/"))
    User.objects.filter(pk=user.pk).update(email="moved@example.com")
    new_password = "a brand new passphrase for alice"
    response = submit(owner, "/accounts/social/not-me/", {"password1": new_password, "password2": new_password})
    assert response.status_code == 400 and b"email address has changed" in response.content
    assert SocialIdentity.objects.exists()
    user.refresh_from_db()
    assert user.check_password(STRONG_PASSWORD)


# --- GitHub (plain OAuth 2) --------------------------------------------------------------------------------


@pytest.fixture
def github(settings, provider):
    client_id, client_secret = provider.register_client(
        redirect_uris=[site_link("accounts:social_callback", provider="github")]
    )
    settings.SOCIAL_PROVIDERS = {
        "github": {
            "name": "github",
            "kind": "github",
            "display_name": "GitHub",
            "client_id": client_id,
            "client_secret": client_secret,
            "scopes": ["read:user", "user:email"],
            "trust_email": True,  # GitHub verifies the addresses it marks verified
            "issuer": provider.github_url,
            "api_url": provider.github_api_url,
        }
    }
    return provider


def github_sign_in(client, provider, email: str):
    authorize_url = leave_for_provider(client, name="github")
    query = parse_qs(urlsplit(authorize_url).query)
    assert urlsplit(authorize_url).path == "/login/oauth/authorize"
    assert query["code_challenge_method"] == ["S256"] and "nonce" not in query
    location = urlsplit(provider.authorize(authorize_url, email=email))
    return client.get(f"{location.path}?{location.query}")


def test_github_signs_up_with_its_primary_verified_address(github):
    sub = github.add_user(email="octo@example.com", email_verified=True, name="Octo Cat")
    client = browser()
    response = github_sign_in(client, github, "octo@example.com")
    assert response.status_code == 302
    user = User.objects.get(email="octo@example.com")
    assert user.email_verified and user.name == "Octo Cat"
    identity = SocialIdentity.objects.get(user=user)
    assert (identity.issuer, identity.subject) == (github.github_url, sub)


def test_github_without_a_primary_address_is_a_clear_error(github):
    github.add_user(email="octo@example.com")
    github.fault("github_no_primary_email")
    response = github_sign_in(browser(), github, "octo@example.com")
    assert response.status_code == 400 and b"social_email_missing" in response.content


def test_github_with_an_unverified_primary_address_waits_for_the_emailed_link(github, mailoutbox):
    github.add_user(email="octo@example.com", email_verified=False)
    response = github_sign_in(browser(), github, "octo@example.com")
    assert response["Location"] == "/accounts/signup/done/"
    assert not User.objects.get(email="octo@example.com").email_verified


# --- Settings -----------------------------------------------------------------------------------------


def test_the_policy_lets_the_buttons_go_on_to_the_providers(settings, provider):
    settings.SOCIAL_PROVIDERS = {}
    assert re.search(r"form-action 'self'(;|$)", content_security_policy())
    use_acme(settings, provider)
    policy = content_security_policy()
    assert f"form-action 'self' {provider.base_url}" in policy
    assert browser().get("/accounts/login/")["Content-Security-Policy"] == policy


def test_a_provider_over_plain_http_stops_production(settings):
    from accounts.checks import check_production_settings

    settings.SOCIAL_PROVIDERS = {
        "acme": {"name": "acme", "issuer": "http://id.acme.example", "kind": "oidc"},
    }
    assert "accounts.E011" in [problem.id for problem in check_production_settings()]
    settings.SOCIAL_PROVIDERS = {"acme": {"name": "acme", "issuer": "https://id.acme.example", "kind": "oidc"}}
    assert "accounts.E011" not in [problem.id for problem in check_production_settings()]


def _load(**env):
    from tests.test_settings import load_settings

    return load_settings(**env)


def test_providers_come_from_the_environment():
    loaded = _load(
        DEBUG="true",
        SOCIAL_PROVIDERS="google, GitHub,acme",
        SOCIAL_GOOGLE_CLIENT_ID="g-id",
        SOCIAL_GOOGLE_CLIENT_SECRET="g-secret",
        SOCIAL_GOOGLE_TRUST_EMAIL="true",
        SOCIAL_GITHUB_CLIENT_ID="gh-id",
        SOCIAL_GITHUB_CLIENT_SECRET="gh-secret",
        SOCIAL_ACME_CLIENT_ID="a-id",
        SOCIAL_ACME_CLIENT_SECRET="a-secret",
        SOCIAL_ACME_ISSUER="https://id.acme.example/realms/staff/",
        SOCIAL_ACME_SCOPES="openid,email",
        SOCIAL_ACME_DISPLAY_NAME="Acme staff",
    )
    providers = loaded["SOCIAL_PROVIDERS"]
    assert list(providers) == ["google", "github", "acme"]
    assert providers["google"]["issuer"] == "https://accounts.google.com" and providers["google"]["trust_email"]
    assert providers["github"]["kind"] == "github" and providers["github"]["api_url"] == "https://api.github.com"
    assert providers["acme"]["issuer"] == "https://id.acme.example/realms/staff"
    assert providers["acme"]["scopes"] == ["openid", "email"] and providers["acme"]["display_name"] == "Acme staff"
    assert not providers["acme"]["trust_email"]


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"SOCIAL_PROVIDERS": "acme", "SOCIAL_ACME_CLIENT_ID": "x", "SOCIAL_ACME_CLIENT_SECRET": "y"}, "ISSUER"),
        ({"SOCIAL_PROVIDERS": "google", "SOCIAL_GOOGLE_CLIENT_ID": "x"}, "SOCIAL_GOOGLE_CLIENT_SECRET"),
        ({"SOCIAL_PROVIDERS": "bad-name"}, "letters and digits"),
        (
            {
                "SOCIAL_PROVIDERS": "google",
                "SOCIAL_GOOGLE_CLIENT_ID": "x",
                "SOCIAL_GOOGLE_CLIENT_SECRET": "y",
                "SOCIAL_GOOGLE_SCOPES": "email",
            },
            "openid",
        ),
    ],
)
def test_an_incomplete_provider_refuses_to_load(env, named):
    from tests.test_settings import settings_error

    assert named in settings_error(DEBUG="true", **env)


def test_no_provider_changes_nothing(settings):
    settings.SOCIAL_PROVIDERS = {}
    html = browser().get("/accounts/login/").content.decode()
    assert "social" not in html
    assert api_client().get("/api/auth/social/providers/").json() == []
    assert submit(browser(), "/accounts/social/acme/login/").status_code == 404
    assert browser().get(CALLBACK).status_code == 404


# --- Races (PostgreSQL: real row locks and unique constraints across connections) -------------------------

on_postgresql = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="needs PostgreSQL row locks; runs in CI's PostgreSQL pass"
)
OFFLINE_ACME = {
    "acme": {
        "name": "acme",
        "kind": "oidc",
        "display_name": "Acme",
        "client_id": "id",
        "client_secret": "secret",
        "scopes": ["openid"],
        "trust_email": False,
        "issuer": "https://id.acme.example",
    }
}


TRUSTED_OFFLINE_ACME = {"acme": {**OFFLINE_ACME["acme"], "trust_email": True}}


def _identity(subject: str = "1", email: str = ALICE):
    from accounts.flows.social_providers import ProviderIdentity

    return ProviderIdentity(
        provider="acme", issuer="https://id.acme.example", subject=subject, email=email, email_verified=True, name=""
    )


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_two_first_sign_ins_with_one_identity_at_once_make_one_account(settings):
    from accounts.client_info import ClientInfo
    from accounts.flows.signin import SignedIn
    from accounts.flows.social import sign_in_with_identity

    settings.SOCIAL_PROVIDERS = TRUSTED_OFFLINE_ACME
    outcomes = run_at_once([lambda: sign_in_with_identity(identity=_identity(), client=ClientInfo())] * 4)
    assert [outcome.error for outcome in outcomes] == [None] * 4
    assert all(isinstance(outcome.value, SignedIn) for outcome in outcomes), [outcome.value for outcome in outcomes]
    [user] = User.objects.all()
    assert {outcome.value.user.pk for outcome in outcomes} == {user.pk}
    assert SocialIdentity.objects.get().user_id == user.pk


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_disconnecting_two_providers_at_once_keeps_one_way_in(settings):
    from accounts.client_info import ClientInfo
    from accounts.exceptions import SocialLastSignInMethod
    from accounts.flows.device_sessions import start_device_session
    from accounts.flows.social import disconnect_identity

    settings.SOCIAL_PROVIDERS = OFFLINE_ACME
    owner = User.objects.create_user(email=ALICE, password=None)
    first = SocialIdentity.objects.create(user=owner, provider="acme", issuer="https://a.example", subject="1")
    second = SocialIdentity.objects.create(user=owner, provider="acme", issuer="https://b.example", subject="1")
    session = start_device_session(user=owner, ip_address="127.0.0.1", user_agent="pytest").session

    def disconnect(identity):
        return lambda: disconnect_identity(
            user=User.objects.get(pk=owner.pk), identity_id=identity.pk, session_id=session.pk, client=ClientInfo()
        )

    outcomes = run_at_once([disconnect(first), disconnect(second)])
    errors = [type(outcome.error) for outcome in outcomes if outcome.error is not None]
    assert errors == [SocialLastSignInMethod]
    assert SocialIdentity.objects.filter(user=owner).count() == 1


@on_postgresql
@pytest.mark.django_db(transaction=True)
def test_linking_by_a_trusted_address_at_once_links_once(settings, mailoutbox):
    from django.utils import timezone as tz

    from accounts.client_info import ClientInfo
    from accounts.flows.signin import SignedIn
    from accounts.flows.social import sign_in_with_identity

    settings.SOCIAL_PROVIDERS = TRUSTED_OFFLINE_ACME
    owner = User.objects.create_user(email=ALICE, password=STRONG_PASSWORD, email_verified_at=tz.now())
    outcomes = run_at_once([lambda: sign_in_with_identity(identity=_identity(), client=ClientInfo())] * 4)
    assert [outcome.error for outcome in outcomes] == [None] * 4
    assert all(isinstance(o.value, SignedIn) and o.value.user.pk == owner.pk for o in outcomes)
    assert SocialIdentity.objects.get().user_id == owner.pk
    assert SecurityEvent.objects.filter(kind=SecurityEvent.Kind.SOCIAL_CONNECTED, user=owner).count() == 1
