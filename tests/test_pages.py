"""Server-rendered pages: links, stylesheet, no scripts, labelled CSRF-protected forms, no-store caching."""

import pytest
from django.contrib.staticfiles import finders

from tests.support.accounts import force_page_login
from tests.support.html import Form, parse_page

pytestmark = pytest.mark.django_db

HOME = "/"
SIGNUP = "/accounts/signup/"
LOGIN = "/accounts/login/"
PASSWORD_RESET = "/accounts/password/reset/"
RESEND_VERIFICATION = "/accounts/verify-email/resend/"
ACCOUNT = "/accounts/"
STYLESHEET = "/static/css/site.css"

PUBLIC_PAGES = [HOME, SIGNUP, LOGIN, PASSWORD_RESET, RESEND_VERIFICATION]
ACCOUNT_FORM_PAGES = [SIGNUP, LOGIN, PASSWORD_RESET, RESEND_VERIFICATION]


def visible_inputs(form: Form) -> list[dict]:
    return [attrs for attrs in form.inputs if attrs.get("type") not in {"hidden", "submit", "button"}]


# --- Home page links ----------------------------------------------------------------


@pytest.mark.parametrize("target", [SIGNUP, LOGIN, PASSWORD_RESET, RESEND_VERIFICATION])
def test_home_links_anonymous_visitors_to_the_account_pages(client, target):
    assert target in parse_page(client.get(HOME)).links


def test_home_does_not_link_anonymous_visitors_to_the_account_area(client):
    assert ACCOUNT not in parse_page(client.get(HOME)).links


def test_home_links_signed_in_users_to_their_account(client, user):
    force_page_login(client, user)
    response = client.get(HOME)
    assert ACCOUNT in parse_page(response).links
    assert user.email in response.content.decode()


@pytest.mark.parametrize("target", [SIGNUP, LOGIN])
def test_home_does_not_offer_sign_up_or_sign_in_when_signed_in(client, user, target):
    force_page_login(client, user)
    assert target not in parse_page(client.get(HOME)).links


# --- Every page -----------------------------------------------------------------------


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_page_is_served(client, path):
    response = client.get(path)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_page_uses_the_site_stylesheet(client, path):
    assert parse_page(client.get(path)).stylesheets == [STYLESHEET]


# The one script of the account pages: passkeys need WebAuthn's JavaScript API. Served from static/,
# never inline (the CSP allows 'self' only), and only where a passkey can be used.
PASSKEY_SCRIPT = "/static/accounts/passkeys.js"
PAGES_WITH_THE_PASSKEY_SCRIPT = {LOGIN}


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_page_has_no_script_but_the_passkey_script_where_passkeys_sign_in(client, path):
    response = client.get(path)
    expected = [PASSKEY_SCRIPT] if path in PAGES_WITH_THE_PASSKEY_SCRIPT else []
    assert parse_page(response).script_sources == expected
    assert response.content.lower().count(b"<script") == len(expected)


@pytest.mark.parametrize("path", [*PUBLIC_PAGES, ACCOUNT])
def test_signed_in_pages_have_no_script_but_the_passkey_script(client, user, path):
    force_page_login(client, user)
    response = client.get(path)
    assert response.status_code == 200
    expected = [PASSKEY_SCRIPT] if path in PAGES_WITH_THE_PASSKEY_SCRIPT else []
    assert parse_page(response).script_sources == expected


@pytest.mark.parametrize("path", ACCOUNT_FORM_PAGES)
def test_page_has_a_post_form(client, path):
    forms = parse_page(client.get(path)).forms
    assert forms
    assert all(form.attrs.get("method", "").lower() == "post" for form in forms)


@pytest.mark.parametrize("path", [*PUBLIC_PAGES, ACCOUNT])
def test_every_form_carries_a_csrf_token(client, user, path):
    if path in {HOME, ACCOUNT}:
        force_page_login(client, user)  # signed in, these pages carry the sign-out form
    forms = parse_page(client.get(path)).forms
    assert forms
    for form in forms:
        tokens = [attrs for attrs in form.inputs if attrs.get("name") == "csrfmiddlewaretoken"]
        assert len(tokens) == 1
        assert tokens[0].get("type") == "hidden"
        assert tokens[0].get("value")


@pytest.mark.parametrize("path", PUBLIC_PAGES)
def test_every_visible_input_has_a_label(client, path):
    page = parse_page(client.get(path))
    assert not page.inputs_outside_forms
    for form in page.forms:
        for attrs in visible_inputs(form):
            assert attrs.get("id"), f"input {attrs.get('name')} has no id"
            assert attrs["id"] in page.label_targets, f"input {attrs.get('name')} has no <label for>"


def test_signup_form_asks_for_email_name_and_two_passwords(client):
    form = parse_page(client.get(SIGNUP)).forms[0]
    by_name = {attrs.get("name"): attrs for attrs in visible_inputs(form)}
    assert set(by_name) == {"email", "name", "password1", "password2"}
    assert by_name["email"]["type"] == "email"
    assert by_name["password1"]["type"] == by_name["password2"]["type"] == "password"
    assert by_name["password1"]["autocomplete"] == "new-password"


def test_login_form_asks_for_email_and_current_password(client):
    form = parse_page(client.get(LOGIN)).forms[0]
    by_name = {attrs.get("name"): attrs for attrs in visible_inputs(form)}
    assert set(by_name) == {"email", "password"}
    assert by_name["password"]["type"] == "password"
    assert by_name["password"]["autocomplete"] == "current-password"


def test_labels_survive_a_rejected_submission(client):
    response = client.post(SIGNUP, {"email": "not-an-address", "name": "", "password1": "x", "password2": "y"})
    assert response.status_code == 200
    page = parse_page(response)
    assert page.scripts == 0
    for attrs in visible_inputs(page.forms[0]):
        assert attrs["id"] in page.label_targets


def test_rejected_submission_does_not_echo_the_password(client):
    secret = "a secret that must not come back"
    response = client.post(LOGIN, {"email": "not-an-address", "password": secret})
    assert response.status_code == 200
    assert secret not in response.content.decode()


# --- Caching ------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ACCOUNT_FORM_PAGES)
def test_account_pages_are_not_stored_by_caches(client, path):
    assert "no-store" in client.get(path)["Cache-Control"]


def test_signed_in_account_page_is_not_stored_by_caches(client, user):
    force_page_login(client, user)
    response = client.get(ACCOUNT)
    assert response.status_code == 200
    assert "no-store" in response["Cache-Control"]
    assert "private" in response["Cache-Control"]


def test_account_page_redirects_anonymous_visitors_to_sign_in(client):
    response = client.get(ACCOUNT)
    assert response.status_code == 302
    assert response["Location"].startswith(LOGIN)
    assert "next=/accounts/" in response["Location"]


@pytest.mark.parametrize("path", ACCOUNT_FORM_PAGES)
def test_account_pages_refuse_other_methods(client, path):
    assert client.put(path).status_code == 405


def test_unknown_page_is_not_found(client):
    assert client.get("/accounts/no-such-page/extra/").status_code == 404


def test_pages_refuse_framing(client):
    assert client.get(LOGIN)["X-Frame-Options"] == "DENY"


# --- Stylesheet -----------------------------------------------------------------------------


def test_stylesheet_exists_in_the_static_files():
    path = finders.find("css/site.css")
    assert path
    with open(path, encoding="utf-8") as handle:
        assert "{" in handle.read()


def test_stylesheet_is_served_as_css(client, settings):
    # Outside DEBUG, WhiteNoise serves collected files; in tests it looks them up
    # through the finders as it does in local development.
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    response = client.get(STYLESHEET)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/css")
    body = b"".join(response.streaming_content) if response.streaming else response.content
    with open(finders.find("css/site.css"), "rb") as handle:
        assert body == handle.read()


def test_missing_static_file_is_not_found(client, settings):
    settings.WHITENOISE_USE_FINDERS = True
    settings.WHITENOISE_AUTOREFRESH = True
    assert client.get("/static/css/no-such-file.css").status_code == 404
