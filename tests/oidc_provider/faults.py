"""Fault modes: a process-wide switch, and the middleware that breaks the provider's answers while it is on.

``unavailable`` answers 503 to every request but the test-control ones (``/testing/``). The others
change the ID token in the token endpoint's answer: re-signed with the provider's own key (same ``kid``,
so the published key verifies it), except ``tamper_id_token`` (payload changed, signature kept) and
``unsigned`` (``alg: none``, no signature). ``github_no_primary_email`` leaves only the noreply address,
not primary, in GitHub's ``/api/v3/user/emails`` (tests/oidc_provider/github.py reads ``mode()``).
``microsoft_issuer`` makes the provider pose as Microsoft's multi-tenant one: its discovery document
names ``https://login.microsoftonline.com/{tenantid}/v2.0`` and its ID tokens that tenant's issuer.
``huge_discovery`` pads the discovery document past any size a real one has.
"""

import json
import secrets
import time
from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from jwcrypto import jwt
from jwcrypto.common import base64url_decode, base64url_encode
from oauth2_provider.settings import oauth2_settings
from oauth2_provider.utils import jwk_from_pem

TOKEN_PATH = "/o/token/"
DISCOVERY_PATH = "/o/.well-known/openid-configuration"
MICROSOFT_TENANT = "9188040d-6c67-4c5b-b112-36a304b66dad"  # Microsoft's tenant of personal accounts
MICROSOFT_ISSUER = "https://login.microsoftonline.com/{tenantid}/v2.0"
CONTROL_PREFIX = "/testing/"

_mode: str | None = None


def mode() -> str | None:
    return _mode


def set_mode(mode: str | None) -> None:
    global _mode  # one switch for the whole process: runserver's threads all read it
    _mode = mode


def _split(token: str) -> tuple[dict, dict, str]:
    header, payload, signature = token.split(".")
    return json.loads(base64url_decode(header)), json.loads(base64url_decode(payload)), signature


def _encode(part: dict) -> str:
    return base64url_encode(json.dumps(part, separators=(",", ":")))


def _signed(header: dict, claims: dict) -> str:
    token = jwt.JWT(header=header, claims=claims)
    token.make_signed_token(jwk_from_pem(oauth2_settings.OIDC_RSA_PRIVATE_KEY))
    return token.serialize()


def _resigned(change: Callable[[dict], None]) -> Callable[[str], str]:
    def fault(token: str) -> str:
        header, claims, _ = _split(token)
        change(claims)
        return _signed(header, claims)

    return fault


def _tampered(token: str) -> str:
    header, claims, signature = _split(token)
    claims["sub"] = f"{claims['sub']}-tampered"
    return f"{_encode(header)}.{_encode(claims)}.{signature}"


def _unsigned(token: str) -> str:
    _, claims, _ = _split(token)
    return f"{_encode({'alg': 'none'})}.{_encode(claims)}."


def _expired(claims: dict) -> None:
    now = int(time.time())
    claims.update(iat=now - 3600 - 60, exp=now - 3600)


def _without_email(claims: dict) -> None:
    claims.pop("email", None)
    claims.pop("email_verified", None)


ID_TOKEN_FAULTS: dict[str, Callable[[str], str]] = {
    "tamper_id_token": _tampered,
    "expired_id_token": _resigned(_expired),
    "wrong_nonce": _resigned(lambda claims: claims.update(nonce=f"not-your-nonce-{secrets.token_urlsafe(8)}")),
    "wrong_audience": _resigned(lambda claims: claims.update(aud="someone-else")),
    "wrong_issuer": _resigned(lambda claims: claims.update(iss="http://evil.example")),
    "unsigned": _unsigned,
    "no_email": _resigned(_without_email),
    "microsoft_issuer": _resigned(
        lambda claims: claims.update(iss=MICROSOFT_ISSUER.replace("{tenantid}", MICROSOFT_TENANT), tid=MICROSOFT_TENANT)
    ),
}
DOCUMENT_FAULTS: dict[str, Callable[[dict], None]] = {
    "microsoft_issuer": lambda document: document.update(issuer=MICROSOFT_ISSUER),
    "huge_discovery": lambda document: document.update(padding="x" * (2 * 1024 * 1024)),
}
MODES = frozenset({*ID_TOKEN_FAULTS, *DOCUMENT_FAULTS, "unavailable", "github_no_primary_email"})


def _rewrite_json(response: HttpResponse, change: Callable[[dict], None]) -> None:
    body = json.loads(response.content)
    change(body)
    response.content = json.dumps(body).encode()
    if response.has_header("Content-Length"):
        response["Content-Length"] = str(len(response.content))


class FaultMiddleware:
    """The outermost middleware: applies the fault mode on at the time of the request."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]):
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        mode = _mode
        if mode == "unavailable" and not request.path.startswith(CONTROL_PREFIX):
            return HttpResponse("The provider is unavailable (test fault mode).", status=503, content_type="text/plain")
        response = self.get_response(request)
        if response.status_code != 200 or mode is None:
            return response
        if mode in ID_TOKEN_FAULTS and request.path == TOKEN_PATH:
            fault = ID_TOKEN_FAULTS[mode]

            def change_token(body: dict) -> None:
                if "id_token" in body:
                    body["id_token"] = fault(body["id_token"])

            _rewrite_json(response, change_token)
        if mode in DOCUMENT_FAULTS and request.path == DISCOVERY_PATH:
            _rewrite_json(response, DOCUMENT_FAULTS[mode])
        return response
