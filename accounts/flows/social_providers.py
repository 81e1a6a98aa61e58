"""Talking to identity providers: authorization URLs with PKCE, state and nonce, the code exchange, ID tokens.

authlib builds the authorization request and exchanges the code (PKCE S256, client authentication);
joserfc verifies the ID token against the provider's published keys, every time: signature, ``iss``,
``aud`` (and ``azp``), ``exp``, ``iat`` and the ``nonce`` this sign-in sent. GitHub speaks plain
OAuth 2: who the person is comes from its user and verified-emails endpoints. Nothing here touches
accounts; accounts/flows/social.py decides what an identity means.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from dataclasses import dataclass
from typing import Any

import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from django.conf import settings
from django.core.cache import cache
from joserfc import jwt
from joserfc.errors import InvalidKeyIdError, JoseError
from joserfc.jwk import KeySet

from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.exceptions import SocialProviderUnavailable, SocialTokenRefused

# Signatures only a key the provider publishes can make: never "none", never a shared secret.
ID_TOKEN_ALGORITHMS = ["RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"]
# Clocks differ between here and the provider by this much at most.
CLOCK_LEEWAY_SECONDS = 60
# Microsoft's multi-tenant discovery document names its issuer with this placeholder for the tenant.
TENANT_PLACEHOLDER = "{tenantid}"
MICROSOFT_LOGIN = "https://login.microsoftonline.com/"
# A Microsoft tenant id: a GUID (the placeholder is filled with nothing else).
TENANT_ID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
# Issuers and subjects are kept in 255-character columns; a longer one is no identity of ours.
MAX_IDENTIFIER_LENGTH = 255
# No provider document (discovery, keys, user info) is anywhere near this; a bigger one is refused.
MAX_RESPONSE_BYTES = 1024 * 1024
GITHUB_ACCEPT = "application/vnd.github+json"


@dataclass(frozen=True)
class ProviderConfig:
    """One configured provider (SOCIAL_PROVIDERS)."""

    name: str
    kind: str  # "oidc" or "github"
    display_name: str
    client_id: str
    client_secret: str
    scopes: list[str]
    trust_email: bool
    issuer: str
    api_url: str = ""

    @property
    def is_oidc(self) -> bool:
        return self.kind == "oidc"


@dataclass(frozen=True)
class ProviderIdentity:
    """Who the provider says signed in: (issuer, subject) is the identity; the rest is what it told us."""

    provider: str
    issuer: str
    subject: str
    email: str | None
    email_verified: bool
    name: str


def configured_providers() -> list[ProviderConfig]:
    """Every provider in SOCIAL_PROVIDERS, in the order configured."""
    return [ProviderConfig(**provider) for provider in settings.SOCIAL_PROVIDERS.values()]


def provider_named(name: str) -> ProviderConfig | None:
    provider = settings.SOCIAL_PROVIDERS.get(name)
    return ProviderConfig(**provider) if provider else None


def _cache_key(kind: str, url: str) -> str:
    return f"social:{kind}:" + hashlib.sha256(url.encode()).hexdigest()


def _get_json(url: str, *, headers: dict[str, str] | None = None) -> Any:
    try:
        # Never redirected elsewhere: the endpoints are the ones configured or discovered.
        with requests.get(
            url, headers=headers, timeout=settings.SOCIAL_HTTP_TIMEOUT, allow_redirects=False, stream=True
        ) as response:
            if headers and response.status_code in (401, 403):
                raise SocialTokenRefused  # the provider does not accept the access token it just gave
            response.raise_for_status()
            body = response.raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
        if len(body) > MAX_RESPONSE_BYTES:
            raise SocialProviderUnavailable  # never held in memory whole, whatever a provider sends
        return json.loads(body)
    except (requests.RequestException, ValueError, OSError):
        raise SocialProviderUnavailable from None


@dataclass(frozen=True)
class Endpoints:
    issuer: str  # as the provider names itself (Microsoft's may hold TENANT_PLACEHOLDER)
    authorization: str
    token: str
    jwks: str = ""
    userinfo: str = ""


def endpoints(provider: ProviderConfig) -> Endpoints:
    """Where the provider's endpoints are: its discovery document (cached), or GitHub's fixed paths."""
    if not provider.is_oidc:
        return Endpoints(
            issuer=provider.issuer,
            authorization=f"{provider.issuer}/login/oauth/authorize",
            token=f"{provider.issuer}/login/oauth/access_token",
        )
    url = f"{provider.issuer}/.well-known/openid-configuration"
    key = _cache_key("metadata", url)
    document = cache.get(key)
    if document is None:
        document = _get_json(url)
        if not isinstance(document, dict) or not all(
            isinstance(document.get(field), str) for field in ("issuer", "authorization_endpoint", "token_endpoint")
        ):
            raise SocialProviderUnavailable
        # A document for another issuer would let its keys sign for this one (RFC 8414, section 3.3).
        if document["issuer"].rstrip("/") != provider.issuer and not _microsoft_multi_tenant(provider, document):
            raise SocialProviderUnavailable
        cache.set(key, document, settings.SOCIAL_METADATA_CACHE_SECONDS)
    return Endpoints(
        issuer=document["issuer"],
        authorization=document["authorization_endpoint"],
        token=document["token_endpoint"],
        jwks=str(document.get("jwks_uri") or ""),
        userinfo=str(document.get("userinfo_endpoint") or ""),
    )


def _microsoft_multi_tenant(provider: ProviderConfig, document: dict[str, Any]) -> bool:
    """Microsoft's documents for several tenants name their issuer with a placeholder (checked per
    token). Only a provider configured at Microsoft may use it: another's document could otherwise
    name Microsoft's issuers and sign in as any Microsoft identity linked here."""
    issuer = document["issuer"]
    return (
        provider.issuer.startswith(MICROSOFT_LOGIN)
        and issuer.startswith(MICROSOFT_LOGIN)
        and issuer.count(TENANT_PLACEHOLDER) == 1
    )


def _session(provider: ProviderConfig, redirect_uri: str) -> OAuth2Session:
    return OAuth2Session(
        client_id=provider.client_id,
        client_secret=provider.client_secret,
        scope=" ".join(provider.scopes),
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",  # noqa: S106 a method name
    )


@dataclass(frozen=True)
class AuthorizationRequest:
    url: str
    state: str
    nonce: str
    code_verifier: str


def authorization_request(provider: ProviderConfig, *, redirect_uri: str) -> AuthorizationRequest:
    """Where to send the browser: the provider's authorization endpoint, with a fresh state, nonce and
    PKCE S256 challenge (the verifier stays here)."""
    state, nonce, verifier = secrets.token_urlsafe(32), secrets.token_urlsafe(32), secrets.token_urlsafe(48)
    extra = {"nonce": nonce} if provider.is_oidc else {}
    url, _ = _session(provider, redirect_uri).create_authorization_url(
        endpoints(provider).authorization, state=state, code_verifier=verifier, **extra
    )
    return AuthorizationRequest(url=url, state=state, nonce=nonce, code_verifier=verifier)


def identity_from_code(
    provider: ProviderConfig, *, code: str, code_verifier: str, nonce: str, redirect_uri: str
) -> ProviderIdentity:
    """Exchange ``code`` for tokens and say who signed in: SocialTokenRefused if the provider refuses
    the code or its ID token does not verify, SocialProviderUnavailable if it cannot be reached."""
    where = endpoints(provider)
    session = _session(provider, redirect_uri)
    try:
        token = session.fetch_token(
            where.token,
            code=code,
            code_verifier=code_verifier,
            timeout=settings.SOCIAL_HTTP_TIMEOUT,
            allow_redirects=False,  # the token endpoint is the one configured or discovered
            headers={"Accept": "application/json"},  # GitHub answers a form otherwise
        )
    except OAuthError:
        raise SocialTokenRefused from None  # a used, expired or stolen code, or a wrong verifier
    except requests.RequestException:
        raise SocialProviderUnavailable from None
    except (ValueError, TypeError, KeyError, AttributeError):
        raise SocialTokenRefused from None  # an answer that is not a token response
    if not isinstance(token, dict):
        raise SocialTokenRefused
    access_token = token.get("access_token")
    if not isinstance(access_token, str) or not access_token:
        raise SocialTokenRefused
    if provider.is_oidc:
        return _oidc_identity(provider, where, token, nonce=nonce)
    return _github_identity(provider, access_token)


def _key_set(jwks_uri: str, *, refresh: bool = False) -> KeySet:
    key = _cache_key("jwks", jwks_uri)
    document = None if refresh else cache.get(key)
    if document is None:
        document = _get_json(jwks_uri)
        try:
            key_set = KeySet.import_key_set(document)
        except (JoseError, ValueError, TypeError, KeyError):
            raise SocialProviderUnavailable from None
        cache.set(key, document, settings.SOCIAL_METADATA_CACHE_SECONDS)
        return key_set
    return KeySet.import_key_set(document)


def token_issuer(where: Endpoints, claims: dict[str, Any]) -> str:
    """The issuer an ID token must name: the discovery document's, with Microsoft's tenant filled in."""
    if TENANT_PLACEHOLDER in where.issuer:
        tenant = claims.get("tid")
        if not isinstance(tenant, str) or not TENANT_ID.fullmatch(tenant):
            raise SocialTokenRefused
        return where.issuer.replace(TENANT_PLACEHOLDER, tenant)
    return where.issuer


def _verified_id_token(provider: ProviderConfig, where: Endpoints, id_token: str, *, nonce: str) -> dict[str, Any]:
    if not where.jwks:
        raise SocialProviderUnavailable
    try:
        decoded = jwt.decode(id_token, _key_set(where.jwks), algorithms=ID_TOKEN_ALGORITHMS)
    except InvalidKeyIdError:
        # A key id the cached set lacks: the provider may have rotated its keys. Fetched again at
        # most once a minute per provider, so forged key ids cannot make us hammer it.
        if not cache.add(_cache_key("jwks-refresh", where.jwks), 1, 60):
            raise SocialTokenRefused from None
        try:
            decoded = jwt.decode(id_token, _key_set(where.jwks, refresh=True), algorithms=ID_TOKEN_ALGORITHMS)
        except (JoseError, ValueError, TypeError):
            raise SocialTokenRefused from None
    except (JoseError, ValueError, TypeError):
        raise SocialTokenRefused from None
    claims = decoded.claims
    issuer = token_issuer(where, claims)
    if len(issuer) > MAX_IDENTIFIER_LENGTH:
        raise SocialTokenRefused
    registry = jwt.JWTClaimsRegistry(
        leeway=CLOCK_LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        aud={"essential": True, "value": provider.client_id},
        exp={"essential": True},
        iat={"essential": True},
        nonce={"essential": True, "value": nonce},
    )
    try:
        registry.validate(claims)
    except (JoseError, ValueError, TypeError):
        raise SocialTokenRefused from None
    audience = claims["aud"]
    # With more than one audience the token must say it was issued to us, and if it names whom it
    # was issued to, that must be us (OpenID Connect Core 3.1.3.7).
    several = isinstance(audience, list) and len(audience) > 1
    if (several or "azp" in claims) and claims.get("azp") != provider.client_id:
        raise SocialTokenRefused
    if not isinstance(claims["sub"], str) or not claims["sub"] or len(claims["sub"]) > MAX_IDENTIFIER_LENGTH:
        raise SocialTokenRefused
    return claims


def _oidc_identity(
    provider: ProviderConfig, where: Endpoints, token: dict[str, Any], *, nonce: str
) -> ProviderIdentity:
    id_token = token.get("id_token")
    if not isinstance(id_token, str):
        raise SocialTokenRefused  # "openid" was asked for: without an ID token, nobody is proven
    claims = _verified_id_token(provider, where, id_token, nonce=nonce)
    profile = claims
    if "email" not in claims and where.userinfo:
        # Some providers keep the profile out of the ID token; their user info endpoint has it, and
        # its subject must be the token's (OpenID Connect Core 5.3.2).
        info = _get_json(where.userinfo, headers={"Authorization": f"Bearer {token['access_token']}"})
        if isinstance(info, dict) and info.get("sub") == claims["sub"]:
            profile = info
    email, verified, name = profile.get("email"), profile.get("email_verified"), profile.get("name")
    return ProviderIdentity(
        provider=provider.name,
        # The token's own issuer: Microsoft's names the tenant, so that narrowing to one keeps the links.
        issuer=claims["iss"] if TENANT_PLACEHOLDER in where.issuer else provider.issuer,
        subject=claims["sub"],
        email=canonical_email(email),
        # Some providers send the flag as a string.
        email_verified=verified is True or verified == "true",
        name=name if isinstance(name, str) else "",
    )


def _github_identity(provider: ProviderConfig, access_token: str) -> ProviderIdentity:
    headers = {"Authorization": f"Bearer {access_token}", "Accept": GITHUB_ACCEPT}
    user = _get_json(f"{provider.api_url}/user", headers=headers)
    if not isinstance(user, dict) or not isinstance(user.get("id"), int):
        raise SocialTokenRefused
    emails = _get_json(f"{provider.api_url}/user/emails", headers=headers)
    addresses = [item for item in emails if isinstance(item, dict)] if isinstance(emails, list) else []
    primary = next((item for item in addresses if item.get("primary") is True), None)
    email = primary.get("email") if primary else None
    name, login = user.get("name"), user.get("login")
    return ProviderIdentity(
        provider=provider.name,
        issuer=provider.issuer,
        subject=str(user["id"]),
        email=canonical_email(email),
        email_verified=bool(primary and primary.get("verified") is True),
        name=name if isinstance(name, str) and name else login if isinstance(login, str) else "",
    )


def canonical_email(email: object) -> str | None:
    """The provider's address in this site's canonical form, or None if it is none we could send to
    (too long, control characters, not an address): it appears in pages and emails."""
    if not isinstance(email, str) or not email:
        return None
    try:
        return normalize_email(email)
    except InvalidEmailAddress:
        return None
