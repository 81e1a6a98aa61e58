"""The test OpenID Connect provider (tests/oidc_provider, tests/support/oidc.py) is a real one, over real HTTP:
discovery, keys, the code flow with PKCE, ID tokens that verify against its keys, consent, each fault mode, and
GitHub's OAuth 2 app API (authorize, access_token, /user, /user/emails) on the same users."""

import base64
import hashlib
import json
import secrets
import time
import warnings
from dataclasses import dataclass
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests

from tests.support.oidc import NETWORK_TIMEOUT, Provider

with warnings.catch_warnings():
    # Authlib 1.9 deprecates authlib.jose in favour of joserfc; it still works until Authlib 2. (Importing
    # authlib.deprecate first: it turns its own warnings to "always", ahead of any filter set before.)
    import authlib.deprecate  # noqa: F401

    warnings.filterwarnings("ignore", message="authlib.jose module is deprecated")
    from authlib.jose import JsonWebKey, JsonWebToken
    from authlib.jose.errors import (
        BadSignatureError,
        ExpiredTokenError,
        InvalidClaimError,
        JoseError,
        MissingClaimError,
    )

CALLBACK = "http://127.0.0.1:9/callback"  # never visited: authorize() returns the redirect without following it
SCOPE = "openid email profile"
GITHUB_SCOPE = "read:user user:email"
ALICE = "alice@example.com"


@dataclass
class Flow:
    client_id: str
    client_secret: str
    state: str
    nonce: str
    verifier: str
    url: str  # the authorization request
    token_endpoint: str
    jwks_uri: str


def get(url: str) -> requests.Response:
    return requests.get(url, allow_redirects=False, timeout=NETWORK_TIMEOUT)


def discovery(provider: Provider) -> dict:
    response = get(provider.discovery_url)
    assert response.status_code == 200, response.text
    return response.json()


def begin(provider: Provider, *, skip_authorization: bool = True, scope: str = SCOPE, **params: str) -> Flow:
    """A new client, and the authorization URL of a code flow with PKCE (S256), state, nonce and ``params``."""
    client_id, client_secret = provider.register_client(redirect_uris=[CALLBACK], skip_authorization=skip_authorization)
    verifier = secrets.token_urlsafe(48)
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": scope,
        "state": state,
        "nonce": nonce,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
        **params,
    }
    document = discovery(provider)
    url = f"{document['authorization_endpoint']}?{urlencode(query)}"
    return Flow(client_id, client_secret, state, nonce, verifier, url, document["token_endpoint"], document["jwks_uri"])


def s256(verifier: str) -> str:
    """The PKCE S256 challenge of ``verifier``."""
    return base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()


def github_begin(provider: Provider, *, skip_authorization: bool = True) -> Flow:
    """A new client, and the authorization URL of a GitHub sign-in as the app makes it (PKCE S256, state,
    GitHub's scopes, no nonce): a Flow whose token endpoint is GitHub's and which has no keys."""
    client_id, client_secret = provider.register_client(redirect_uris=[CALLBACK], skip_authorization=skip_authorization)
    verifier, state = secrets.token_urlsafe(48), secrets.token_urlsafe(16)
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": CALLBACK,
        "scope": GITHUB_SCOPE,
        "state": state,
        "code_challenge": s256(verifier),
        "code_challenge_method": "S256",
    }
    url = f"{provider.github_url}/login/oauth/authorize?{urlencode(query)}"
    return Flow(
        client_id, client_secret, state, "", verifier, url, f"{provider.github_url}/login/oauth/access_token", ""
    )


def github_api(provider: Provider, path: str, access_token: str | None = None) -> requests.Response:
    headers = {"Accept": "application/vnd.github+json"}
    if access_token is not None:
        headers["Authorization"] = f"Bearer {access_token}"
    return requests.get(
        f"{provider.github_api_url}{path}", headers=headers, allow_redirects=False, timeout=NETWORK_TIMEOUT
    )


def callback_params(location: str, flow: Flow) -> dict[str, str]:
    assert location.startswith(CALLBACK + "?"), location
    params = {name: values[0] for name, values in parse_qs(urlsplit(location).query).items()}
    assert params["state"] == flow.state
    return params


def redeem(provider: Provider, flow: Flow, code: str, *, verifier: str | None = None) -> requests.Response:
    """The token request (client_secret_basic)."""
    return requests.post(
        flow.token_endpoint,
        data={
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": CALLBACK,
            "code_verifier": verifier or flow.verifier,
        },
        auth=(flow.client_id, flow.client_secret),
        headers={"Accept": "application/json"},  # GitHub's token endpoint answers a form without it
        timeout=NETWORK_TIMEOUT,
    )


def sign_in(provider: Provider, flow: Flow, email: str = ALICE) -> dict:
    """The token endpoint's answer for ``email`` signing in through ``flow``."""
    code = callback_params(provider.authorize(flow.url, email=email), flow)["code"]
    response = redeem(provider, flow, code)
    assert response.status_code == 200, response.text
    return response.json()


def verified_claims(provider: Provider, flow: Flow, id_token: str):
    """The ID token's claims, checked as a relying party would: RS256 only, a key from the JWKS, iss, aud,
    nonce and the times."""
    keys = JsonWebKey.import_key_set(get(flow.jwks_uri).json())
    claims = JsonWebToken(["RS256"]).decode(
        id_token,
        keys,
        claims_options={
            "iss": {"essential": True, "value": provider.issuer},
            "aud": {"essential": True, "value": flow.client_id},
            "nonce": {"essential": True, "value": flow.nonce},
        },
    )
    claims.validate()
    return claims


def unverified_part(token: str, index: int) -> dict:
    """The header (0) or the payload (1) of a JWT, unverified."""
    part = token.split(".")[index]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_discovery_document_names_the_issuer_and_its_endpoints(provider):
    document = discovery(provider)

    assert provider.issuer == f"{provider.base_url}/o"
    assert document["issuer"] == provider.issuer
    for endpoint in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri"):
        assert document[endpoint].startswith(provider.issuer + "/")
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert "RS256" in document["id_token_signing_alg_values_supported"]
    assert {"openid", "email", "profile"} <= set(document["scopes_supported"])
    assert {"sub", "email", "email_verified", "name"} <= set(document["claims_supported"])


def test_jwks_publishes_the_rsa_signing_key(provider):
    (key,) = get(discovery(provider)["jwks_uri"]).json()["keys"]

    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["kid"]
    assert "d" not in key  # the public half only


def test_code_flow_with_pkce_gives_an_id_token_that_verifies(provider):
    sub = provider.add_user(email=ALICE, name="Alice Example")
    flow = begin(provider)

    location = provider.authorize(flow.url, email=ALICE)
    code = callback_params(location, flow)["code"]
    response = redeem(provider, flow, code)
    assert response.status_code == 200, response.text
    tokens = response.json()
    claims = verified_claims(provider, flow, tokens["id_token"])

    assert claims["sub"] == sub
    assert claims["email"] == ALICE
    assert claims["email_verified"] is True
    assert claims["name"] == "Alice Example"
    assert claims["nonce"] == flow.nonce
    digest = hashlib.sha256(tokens["access_token"].encode()).digest()
    assert claims["at_hash"] == base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode()
    assert unverified_part(tokens["id_token"], 0)["kid"] == get(flow.jwks_uri).json()["keys"][0]["kid"]

    replayed = redeem(provider, flow, code)
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_grant"


def test_the_email_verified_flag_and_the_scopes_shape_the_claims(provider):
    provider.add_user(email="bob@example.com", email_verified=False, name="Bob")
    flow = begin(provider)
    claims = verified_claims(provider, flow, sign_in(provider, flow, "bob@example.com")["id_token"])
    assert claims["email_verified"] is False

    flow = begin(provider, scope="openid")
    claims = verified_claims(provider, flow, sign_in(provider, flow, "bob@example.com")["id_token"])
    assert not {"email", "email_verified", "name"} & set(claims)


def test_the_code_needs_its_pkce_verifier(provider):
    provider.add_user(email=ALICE)
    flow = begin(provider)
    code = callback_params(provider.authorize(flow.url, email=ALICE), flow)["code"]

    response = redeem(provider, flow, code, verifier=secrets.token_urlsafe(48))

    assert response.status_code == 400
    assert response.json()["error"] == "invalid_grant"


def test_consent_page_allows_and_denies(provider):
    provider.add_user(email=ALICE)

    flow = begin(provider, skip_authorization=False)
    assert "code" in callback_params(provider.authorize(flow.url, email=ALICE, consent=True), flow)

    flow = begin(provider, skip_authorization=False)
    params = callback_params(provider.authorize(flow.url, email=ALICE, consent=False), flow)
    assert params["error"] == "access_denied"
    assert "code" not in params


def test_prompt_none_without_a_session_answers_login_required(provider):
    flow = begin(provider, prompt="none")
    params = callback_params(provider.authorize(flow.url, email=ALICE), flow)
    assert params["error"] == "login_required"


def test_a_wrong_password_lands_on_the_login_page_again(provider):
    provider.add_user(email=ALICE)
    with pytest.raises(AssertionError, match="Sign in"):
        provider.authorize(begin(provider).url, email=ALICE, password="not-the-password")


def _faulty_id_token(provider: Provider, mode: str) -> tuple[Flow, str]:
    provider.add_user(email=ALICE)
    flow = begin(provider)
    provider.fault(mode)
    return flow, sign_in(provider, flow)["id_token"]


def test_tamper_id_token_breaks_the_signature(provider):
    flow, id_token = _faulty_id_token(provider, "tamper_id_token")
    with pytest.raises(BadSignatureError):
        verified_claims(provider, flow, id_token)
    assert unverified_part(id_token, 1)["sub"].endswith("-tampered")


def test_expired_id_token_is_signed_but_expired(provider):
    flow, id_token = _faulty_id_token(provider, "expired_id_token")
    with pytest.raises(ExpiredTokenError):
        verified_claims(provider, flow, id_token)
    claims = unverified_part(id_token, 1)
    assert claims["exp"] <= time.time() - 3500
    assert claims["iat"] < claims["exp"]


@pytest.mark.parametrize(
    ("mode", "claim", "value"),
    [
        ("wrong_nonce", "nonce", None),
        ("wrong_audience", "aud", "someone-else"),
        ("wrong_issuer", "iss", "http://evil.example"),
    ],
)
def test_resigned_id_token_with_a_wrong_claim(provider, mode, claim, value):
    flow, id_token = _faulty_id_token(provider, mode)
    with pytest.raises(InvalidClaimError, match=claim):
        verified_claims(provider, flow, id_token)
    # The signature is the provider's own: only the claim is wrong.
    keys = JsonWebKey.import_key_set(get(flow.jwks_uri).json())
    claims = JsonWebToken(["RS256"]).decode(id_token, keys)
    if value is None:
        assert claims[claim] != flow.nonce
    else:
        assert claims[claim] == value


def test_unsigned_id_token_has_alg_none_and_the_real_claims(provider):
    flow, id_token = _faulty_id_token(provider, "unsigned")
    with pytest.raises(JoseError):
        verified_claims(provider, flow, id_token)
    assert unverified_part(id_token, 0) == {"alg": "none"}
    assert id_token.endswith(".")
    claims = unverified_part(id_token, 1)
    assert claims["iss"] == provider.issuer
    assert claims["aud"] == flow.client_id
    assert claims["nonce"] == flow.nonce
    assert claims["email"] == ALICE


def test_no_email_drops_the_address_claims(provider):
    flow, id_token = _faulty_id_token(provider, "no_email")
    claims = verified_claims(provider, flow, id_token)
    assert claims["sub"]
    assert "email" not in claims
    assert "email_verified" not in claims
    with pytest.raises(MissingClaimError):
        JsonWebToken(["RS256"]).decode(
            id_token,
            JsonWebKey.import_key_set(get(flow.jwks_uri).json()),
            claims_options={"email": {"essential": True}},
        ).validate()


def test_unavailable_answers_503_everywhere_until_reset(provider):
    provider.add_user(email=ALICE)
    flow = begin(provider)
    code = callback_params(provider.authorize(flow.url, email=ALICE), flow)["code"]
    provider.fault("unavailable")

    assert get(provider.discovery_url).status_code == 503
    assert get(flow.jwks_uri).status_code == 503
    assert get(flow.url).status_code == 503
    assert redeem(provider, flow, code).status_code == 503

    provider.reset()
    assert get(provider.discovery_url).status_code == 200
    assert redeem(provider, flow, code).status_code == 200  # the refused request did not use the code up


def test_an_unknown_fault_mode_is_refused(provider):
    with pytest.raises(AssertionError, match="unknown fault mode"):
        provider.fault("on-fire")


def test_github_flow_gives_a_token_for_the_user_and_emails_api(provider):
    sub = provider.add_user(email=ALICE, name="Alice Example")
    oidc = begin(provider)
    assert verified_claims(provider, oidc, sign_in(provider, oidc)["id_token"])["sub"] == sub
    assert provider.github_url == provider.base_url
    assert provider.github_api_url == f"{provider.base_url}/api/v3"
    flow = github_begin(provider, skip_authorization=False)  # GitHub's consent page is DOT's too

    location = provider.authorize(flow.url, email=ALICE, consent=True)
    code = callback_params(location, flow)["code"]
    response = redeem(provider, flow, code)
    assert response.status_code == 200, response.text
    assert response.headers["Content-Type"].startswith("application/json")
    tokens = response.json()

    assert tokens["token_type"] == "Bearer"
    assert set(tokens["scope"].split()) == {"read:user", "user:email"}
    assert "id_token" not in tokens  # plain OAuth 2: no "openid" scope
    user = github_api(provider, "/user", tokens["access_token"])
    assert user.status_code == 200, user.text
    assert user.json() == {"login": "alice", "id": int(sub), "name": "Alice Example", "email": None}
    emails = github_api(provider, "/user/emails", tokens["access_token"])
    assert emails.status_code == 200, emails.text
    assert emails.json() == [
        {"email": ALICE, "primary": True, "verified": True, "visibility": "private"},
        {"email": f"noreply-{sub}@users.noreply.example", "primary": False, "verified": True, "visibility": None},
    ]

    flow = github_begin(provider, skip_authorization=False)
    params = callback_params(provider.authorize(flow.url, email=ALICE, consent=False), flow)
    assert params["error"] == "access_denied"


def test_github_user_without_a_name_or_a_verified_address(provider):
    provider.add_user(email="bob@example.com", email_verified=False)
    flow = github_begin(provider)
    access_token = sign_in(provider, flow, "bob@example.com")["access_token"]

    assert github_api(provider, "/user", access_token).json()["name"] is None
    primary = github_api(provider, "/user/emails", access_token).json()[0]
    assert primary == {"email": "bob@example.com", "primary": True, "verified": False, "visibility": "private"}


def test_github_api_without_a_valid_token_answers_401(provider):
    for path in ("/user", "/user/emails"):
        for access_token in (None, "not-a-token"):
            response = github_api(provider, path, access_token)
            assert response.status_code == 401
            assert response.json() == {"message": "Bad credentials"}


def test_github_code_is_single_use_and_needs_its_verifier(provider):
    provider.add_user(email=ALICE)
    flow = github_begin(provider)
    code = callback_params(provider.authorize(flow.url, email=ALICE), flow)["code"]

    wrong = redeem(provider, flow, code, verifier=secrets.token_urlsafe(48))
    assert wrong.status_code == 400
    assert wrong.json()["error"] == "invalid_grant"

    flow = github_begin(provider)
    code = callback_params(provider.authorize(flow.url, email=ALICE), flow)["code"]
    assert redeem(provider, flow, code).status_code == 200
    replayed = redeem(provider, flow, code)
    assert replayed.status_code == 400
    assert replayed.json()["error"] == "invalid_grant"


def test_github_no_primary_email_leaves_only_the_noreply_address(provider):
    sub = provider.add_user(email=ALICE)
    access_token = sign_in(provider, github_begin(provider))["access_token"]
    provider.fault("github_no_primary_email")

    emails = github_api(provider, "/user/emails", access_token).json()
    assert emails == [
        {"email": f"noreply-{sub}@users.noreply.example", "primary": False, "verified": True, "visibility": None}
    ]
    assert github_api(provider, "/user", access_token).json()["id"] == int(sub)  # /user is unchanged

    provider.reset()
    assert [item["primary"] for item in github_api(provider, "/user/emails", access_token).json()] == [True, False]


def test_unavailable_answers_503_on_githubs_endpoints_too(provider):
    provider.add_user(email=ALICE)
    flow = github_begin(provider)
    code = callback_params(provider.authorize(flow.url, email=ALICE), flow)["code"]
    access_token = sign_in(provider, github_begin(provider))["access_token"]
    provider.fault("unavailable")

    assert get(flow.url).status_code == 503
    assert redeem(provider, flow, code).status_code == 503
    assert github_api(provider, "/user", access_token).status_code == 503
    assert github_api(provider, "/user/emails", access_token).status_code == 503

    provider.reset()
    assert redeem(provider, flow, code).status_code == 200
    assert github_api(provider, "/user", access_token).status_code == 200
