"""JWT access tokens: their shape, every way a forged or stale token is refused, key rotation,
asymmetric keys and the JWKS document, the switch from EdDSA to Ed25519 (RFC 9864), misconfigured
keys, and immediate revocation of the device session a token names (answered from the cache,
falling back to the database)."""

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
import time_machine
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured
from django.test import Client, RequestFactory

from accounts import access_tokens
from accounts.access_tokens import key_ring
from accounts.api.authentication import AccessTokenAuthentication
from accounts.flows.account_status import deactivate_user
from accounts.flows.device_sessions import end_user_sessions, start_device_session
from accounts.flows.email_tokens import issue_token
from accounts.flows.password_reset import reset_password
from accounts.models import DeviceSession, PasswordResetToken
from accounts.revocation import is_session_live
from tests.support.accounts import force_page_login
from tests.support.api import LOGOUT_URL, ME_URL, api_client, fetch_csrf_token, get_me, login
from tests.support.html import parse_page
from tests.support.mail import link_in, token_from_link

pytestmark = pytest.mark.django_db

SESSIONS_URL = "/api/auth/sessions/"
JWKS_URL = "/.well-known/jwks.json"
NEW_PASSWORD = "a completely different passphrase"
START = datetime(2031, 3, 1, 12, 0, 0, tzinfo=UTC)


# --- Helpers ----------------------------------------------------------------------------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_json(value: dict) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hmac_token(header: dict, claims: dict, secret: bytes) -> str:
    """A compact HS256 JWS built by hand (PyJWT refuses PEM keys as HMAC secrets)."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def okp_token(header: dict, claims: dict, private_key) -> str:
    """A compact JWS signed with an Ed25519 (or Ed448) key, whatever ``alg`` the header names."""
    signing_input = f"{b64url_json(header)}.{b64url_json(claims)}"
    return f"{signing_input}.{b64url(private_key.sign(signing_input.encode()))}"


def open_session(user, **kwargs):
    return start_device_session(user=user, ip_address="127.0.0.1", user_agent="pytest", **kwargs)


def valid_claims(issued) -> dict:
    """Claims that the server itself would put in a token for this session."""
    from django.conf import settings

    now = int(time.time())
    return {
        "sub": str(issued.session.user_id),
        "sid": str(issued.session.pk),
        "jti": uuid.uuid4().hex,
        "iat": now,
        "exp": now + 300,
        "iss": settings.JWT_ISSUER,
        "aud": settings.JWT_AUDIENCE,
        "email_verified": True,
    }


def valid_header() -> dict:
    return {"alg": "HS256", "typ": "at+jwt", "kid": key_ring().signing_kid}


def forge(claims: dict, header: dict | None = None, secret: bytes | None = None) -> str:
    """An HS256 token; with the defaults it is exactly what the server accepts."""
    from django.conf import settings

    return hmac_token(header or valid_header(), claims, secret or settings.JWT_SIGNING_KEY.encode())


def assert_refused(response, code: str = "access_token_invalid") -> None:
    assert response.status_code == 401, response.content
    assert response.json()["code"] == code


def pem_private(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def pem_public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def new_key(algorithm: str):
    if algorithm in {"EdDSA", "Ed25519"}:
        return ed25519.Ed25519PrivateKey.generate()
    return ec.generate_private_key(ec.SECP256R1())


def use_keys(settings, algorithm: str, signing_key, fallbacks=()) -> None:
    settings.JWT_ALGORITHM = algorithm
    settings.JWT_SIGNING_KEY = pem_private(signing_key) if algorithm != "HS256" else signing_key
    settings.JWT_VERIFYING_KEY_FALLBACKS = list(fallbacks)


@pytest.fixture
def issued(user):
    return open_session(user)


# --- What an issued token looks like -----------------------------------------------------


def test_issued_token_header_names_hs256_the_access_token_type_and_the_signing_key(issued):
    header = jwt.get_unverified_header(issued.access_token)
    assert header["alg"] == "HS256"
    assert header["typ"] == "at+jwt"
    assert header["kid"] == key_ring().signing_kid
    assert len(header["kid"]) == 16


def test_issued_token_carries_every_required_claim(settings, user, issued):
    claims = jwt.decode(
        issued.access_token,
        settings.JWT_SIGNING_KEY,
        algorithms=["HS256"],
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
    )
    assert claims["sub"] == str(user.pk)
    assert claims["sid"] == str(issued.session.pk)
    assert claims["iss"] == settings.JWT_ISSUER
    assert claims["aud"] == settings.JWT_AUDIENCE
    assert re.fullmatch(r"[0-9a-f]{32}", claims["jti"])
    assert isinstance(claims["iat"], int)
    assert "token_type" not in claims


def test_every_token_has_its_own_jti(user):
    first = jwt.decode(open_session(user).access_token, options={"verify_signature": False})
    second = jwt.decode(open_session(user).access_token, options={"verify_signature": False})
    assert first["jti"] != second["jti"]
    assert first["sid"] != second["sid"]


def test_access_tokens_live_five_minutes_by_default(issued):
    claims = jwt.decode(issued.access_token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 300
    assert issued.access_expires_at == datetime.fromtimestamp(claims["exp"], tz=UTC)


def test_access_token_lifetime_follows_the_setting(settings, user):
    settings.JWT_ACCESS_TOKEN_LIFETIME = 60
    with time_machine.travel(START, tick=False) as traveller:
        token = open_session(user).access_token
        claims = jwt.decode(token, options={"verify_signature": False})
        assert claims["exp"] - claims["iat"] == 60
        traveller.shift(timedelta(seconds=59))
        assert get_me(token).status_code == 200
        traveller.shift(timedelta(seconds=1))
        assert_refused(get_me(token))


def test_issued_token_opens_the_api(user, issued):
    response = get_me(issued.access_token)
    assert response.status_code == 200
    assert response.json()["id"] == user.pk


def test_request_without_token_is_not_authenticated(user):
    response = api_client().get(ME_URL)
    assert response.status_code == 401
    assert response.json()["code"] == "not_authenticated"


def test_hand_forged_token_with_the_real_key_is_accepted(issued):
    """The control for every attack below: only the one changed detail makes them fail."""
    assert get_me(forge(valid_claims(issued))).status_code == 200


def test_signing_key_is_not_secret_key(settings, issued):
    assert settings.JWT_SIGNING_KEY != settings.SECRET_KEY
    token = forge(valid_claims(issued), secret=settings.SECRET_KEY.encode())
    assert_refused(get_me(token))


def test_pyjwt_token_signed_with_secret_key_is_refused(settings, issued):
    token = jwt.encode(valid_claims(issued), settings.SECRET_KEY, algorithm="HS256", headers=valid_header())
    assert_refused(get_me(token))


# --- Attacks: each is refused with access_token_invalid ----------------------------------------


def test_alg_none_is_refused(issued):
    header = {"alg": "none", "typ": "at+jwt", "kid": key_ring().signing_kid}
    token = f"{b64url_json(header)}.{b64url_json(valid_claims(issued))}."
    assert_refused(get_me(token))


@pytest.mark.parametrize("alg", ["None", "NONE", "nOnE"])
def test_alg_none_in_other_spellings_is_refused(issued, alg):
    header = {"alg": alg, "typ": "at+jwt", "kid": key_ring().signing_kid}
    token = f"{b64url_json(header)}.{b64url_json(valid_claims(issued))}."
    assert_refused(get_me(token))


def test_alg_none_with_the_real_signature_attached_is_refused(issued):
    genuine = forge(valid_claims(issued))
    _, payload, signature = genuine.split(".")
    header = {"alg": "none", "typ": "at+jwt", "kid": key_ring().signing_kid}
    assert_refused(get_me(f"{b64url_json(header)}.{payload}.{signature}"))


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "Ed25519"])
def test_hs256_token_keyed_with_the_public_key_is_refused(settings, user, algorithm):
    private_key = new_key(algorithm)
    use_keys(settings, algorithm, private_key)
    issued = open_session(user)
    assert get_me(issued.access_token).status_code == 200  # the asymmetric setup works
    public_pem = pem_public(private_key).encode()
    for secret in (public_pem, public_pem.strip()):
        header = {"alg": "HS256", "typ": "at+jwt", "kid": key_ring().signing_kid}
        assert_refused(get_me(hmac_token(header, valid_claims(issued), secret)))


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_token_carrying_its_own_jwk_is_refused(settings, user, algorithm):
    use_keys(settings, algorithm, new_key(algorithm))
    issued = open_session(user)
    attacker_key = new_key(algorithm)
    attacker_jwk = jwt.algorithms.get_default_algorithms()[algorithm].to_jwk(attacker_key.public_key(), as_dict=True)
    header = {"typ": "at+jwt", "kid": key_ring().signing_kid, "jwk": attacker_jwk}
    token = jwt.encode(valid_claims(issued), attacker_key, algorithm=algorithm, headers=header)
    assert_refused(get_me(token))


def test_rs256_token_is_refused(issued):
    rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    header = {"typ": "at+jwt", "kid": key_ring().signing_kid}
    token = jwt.encode(valid_claims(issued), rsa_key, algorithm="RS256", headers=header)
    assert jwt.get_unverified_header(token)["alg"] == "RS256"
    assert_refused(get_me(token))


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
def test_hs512_token_with_the_right_key_is_refused(settings, issued):
    header = {"typ": "at+jwt", "kid": key_ring().signing_kid}
    token = jwt.encode(valid_claims(issued), settings.JWT_SIGNING_KEY, algorithm="HS512", headers=header)
    assert_refused(get_me(token))


@pytest.mark.parametrize("typ", ["JWT", "jwt", "at+jwt+x", "", None])
def test_wrong_or_missing_typ_is_refused(issued, typ):
    header = valid_header()
    if typ is None:
        del header["typ"]
    else:
        header["typ"] = typ
    assert_refused(get_me(forge(valid_claims(issued), header=header)))


def test_media_type_spelling_of_typ_is_accepted(issued):
    header = {**valid_header(), "typ": "application/at+jwt"}
    assert get_me(forge(valid_claims(issued), header=header)).status_code == 200


@pytest.mark.parametrize(
    ("claim", "value"),
    [
        ("iss", "https://evil.example"),
        ("iss", ""),
        ("aud", "https://evil.example/api"),
        ("aud", ["https://evil.example/api"]),
    ],
)
def test_wrong_issuer_or_audience_is_refused(issued, claim, value):
    claims = {**valid_claims(issued), claim: value}
    assert_refused(get_me(forge(claims)))


@pytest.mark.parametrize("claim", ["sid", "sub", "jti", "exp", "iat", "iss", "aud"])
def test_missing_required_claim_is_refused(issued, claim):
    claims = valid_claims(issued)
    del claims[claim]
    assert_refused(get_me(forge(claims)))


def test_sid_of_an_unknown_session_is_refused(issued):
    claims = {**valid_claims(issued), "sid": str(uuid.uuid4())}
    assert_refused(get_me(forge(claims)), code="session_ended")


def test_sid_that_is_not_a_uuid_is_refused(issued):
    claims = {**valid_claims(issued), "sid": "not-a-session"}
    assert_refused(get_me(forge(claims)), code="session_ended")


def test_expired_token_is_refused(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        assert get_me(issued.access_token).status_code == 200
        traveller.shift(timedelta(seconds=301))
        assert_refused(get_me(issued.access_token))


def test_token_expiring_now_is_refused(user):
    with time_machine.travel(START, tick=False) as traveller:
        issued = open_session(user)
        traveller.shift(timedelta(seconds=299))
        assert get_me(issued.access_token).status_code == 200
        traveller.shift(timedelta(seconds=1))
        assert_refused(get_me(issued.access_token))


def test_tampered_payload_naming_another_user_is_refused(make_user, issued):
    mallory = make_user(email="mallory@example.com")
    header, payload, signature = issued.access_token.split(".")
    claims = json.loads(unb64url(payload))
    claims["sub"] = str(mallory.pk)
    tampered = f"{header}.{b64url_json(claims)}.{signature}"
    assert_refused(get_me(tampered))


def test_tampered_expiry_is_refused(issued):
    header, payload, signature = issued.access_token.split(".")
    claims = json.loads(unb64url(payload))
    claims["exp"] += 3600
    assert_refused(get_me(f"{header}.{b64url_json(claims)}.{signature}"))


def test_tampered_signature_is_refused(issued):
    header, payload, signature = issued.access_token.split(".")
    raw = bytearray(unb64url(signature))
    raw[0] ^= 0x01
    assert_refused(get_me(f"{header}.{payload}.{b64url(bytes(raw))}"))


# --- Each process verifies a token once, then only checks its expiry ------------------------------


def count_signature_checks(monkeypatch) -> list:
    calls = []
    original = access_tokens._PYJWT.decode

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    monkeypatch.setattr(access_tokens._PYJWT, "decode", counting)
    return calls


def test_a_token_is_verified_once_per_process(monkeypatch, issued):
    checks = count_signature_checks(monkeypatch)
    for _ in range(3):
        assert get_me(issued.access_token).status_code == 200
    assert len(checks) == 1


def test_tokens_that_fail_verification_are_never_remembered(monkeypatch, issued):
    header, payload, _signature = issued.access_token.split(".")
    forged = f"{header}.{payload}.{b64url(b'not the signature')}"
    checks = count_signature_checks(monkeypatch)
    assert_refused(get_me(forged))
    assert_refused(get_me(forged))
    assert len(checks) == 2  # verified (and refused) each time


def test_tampering_with_a_remembered_token_is_refused(issued):
    assert get_me(issued.access_token).status_code == 200
    header, payload, signature = issued.access_token.split(".")
    claims = json.loads(unb64url(payload))
    assert_refused(get_me(f"{header}.{b64url_json({**claims, 'exp': claims['exp'] + 3600})}.{signature}"))
    raw = bytearray(unb64url(signature))
    raw[-1] ^= 0x01
    assert_refused(get_me(f"{header}.{payload}.{b64url(bytes(raw))}"))
    assert get_me(issued.access_token).status_code == 200


def test_a_remembered_token_of_an_ended_session_is_refused_at_once(issued):
    assert get_me(issued.access_token).status_code == 200
    end_user_sessions(user=issued.session.user, reason="logout")
    assert_refused(get_me(issued.access_token), code="session_ended")


def test_the_process_remembers_a_bounded_number_of_tokens(user):
    from accounts.access_tokens import VERIFIED_TOKENS_PER_PROCESS, AccessToken, _verify_once, verified_access_token

    _verify_once.cache_clear()
    session_id = uuid.uuid4()
    for _ in range(VERIFIED_TOKENS_PER_PROCESS + 10):
        token = AccessToken.for_session(user_id=user.pk, session_id=session_id, email_verified=True)
        verified_access_token(str(token))
    assert _verify_once.cache_info().currsize == VERIFIED_TOKENS_PER_PROCESS


def test_truncated_signature_is_refused(issued):
    header, payload, signature = issued.access_token.split(".")
    assert_refused(get_me(f"{header}.{payload}.{signature[:-4]}"))


@pytest.mark.parametrize("kid", ["0123456789abcdef", "", None, 12345])
def test_unknown_or_missing_kid_is_refused(issued, kid):
    header = valid_header()
    if kid is None:
        del header["kid"]
    else:
        header["kid"] = kid
    assert_refused(get_me(forge(valid_claims(issued), header=header)))


@pytest.mark.parametrize(
    "garbage",
    [
        "garbage",
        "a.b.c",
        "a.b",
        "...",
        "eyJhbGciOiJIUzI1NiJ9",
        "eyJhbGciOiJIUzI1NiJ9.e30",
        "x" * 5000,
        "%00%00",
        "null",
        # headers that decode but are not a JSON object, or do not decode at all
        b64url(b"[1, 2]") + ".e30.c2ln",
        b64url(b'"at+jwt"') + ".e30.c2ln",
        b64url(b"\xff\xfe{}") + ".e30.c2ln",
        "eyJ!!.e30.c2ln",
        "\u00e9\u00e9.e30.c2ln",
        "e" * 600 + ".e30.c2ln",
    ],
)
def test_garbage_is_refused(user, garbage):
    assert_refused(get_me(garbage))


def test_header_that_is_not_json_is_refused(issued):
    _, payload, signature = forge(valid_claims(issued)).split(".")
    assert_refused(get_me(f"{b64url(b'not json')}.{payload}.{signature}"))


def test_bearer_with_two_tokens_is_refused(issued):
    response = api_client().get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {issued.access_token} {issued.access_token}")
    assert_refused(response)


def test_bearer_with_two_garbage_words_is_refused(user):
    response = api_client().get(ME_URL, HTTP_AUTHORIZATION="Bearer a b")
    assert_refused(response)


def test_token_of_another_issuer_config_signed_with_the_same_key_is_refused(settings, user):
    original_issuer = settings.JWT_ISSUER
    settings.JWT_ISSUER = "https://staging.todo.example"
    foreign = open_session(user)
    assert get_me(foreign.access_token).status_code == 200  # fine where it was issued
    settings.JWT_ISSUER = original_issuer
    assert_refused(get_me(foreign.access_token))


def test_token_for_another_audience_signed_with_the_same_key_is_refused(settings, user):
    original_audience = settings.JWT_AUDIENCE
    settings.JWT_AUDIENCE = "https://other-service.example/api"
    foreign = open_session(user)
    settings.JWT_AUDIENCE = original_audience
    assert_refused(get_me(foreign.access_token))


# --- Key rotation -------------------------------------------------------------------------

K1 = "first-signing-key-for-rotation-tests-0001"
K2 = "second-signing-key-for-rotation-tests-0002"


def test_hs256_rotation_keeps_old_tokens_valid_while_the_old_key_is_a_fallback(settings, user):
    use_keys(settings, "HS256", K1)
    old = open_session(user).access_token
    old_kid = jwt.get_unverified_header(old)["kid"]

    use_keys(settings, "HS256", K2, fallbacks=[K1])
    assert get_me(old).status_code == 200
    new = open_session(user).access_token
    new_kid = jwt.get_unverified_header(new)["kid"]
    assert new_kid == key_ring().signing_kid
    assert new_kid != old_kid
    jwt.decode(new, K2, algorithms=["HS256"], audience=settings.JWT_AUDIENCE)  # signed with K2
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(new, K1, algorithms=["HS256"], audience=settings.JWT_AUDIENCE)
    assert get_me(new).status_code == 200

    settings.JWT_VERIFYING_KEY_FALLBACKS = []
    assert_refused(get_me(old))
    assert get_me(new).status_code == 200


def test_token_of_a_key_never_configured_is_refused_after_rotation(settings, user):
    use_keys(settings, "HS256", K1)
    stranger = open_session(user).access_token
    use_keys(settings, "HS256", K2, fallbacks=["yet-another-key-that-is-long-enough-000"])
    assert_refused(get_me(stranger))


def test_kid_does_not_reveal_the_hmac_secret(settings):
    use_keys(settings, "HS256", K1)
    kid = key_ring().signing_kid
    assert kid not in (hashlib.sha256(K1.encode()).hexdigest()[:16], K1[:16])


def test_token_claiming_the_fallback_kid_but_signed_with_another_key_is_refused(settings, user):
    use_keys(settings, "HS256", K1)
    fallback_kid = key_ring().signing_kid
    use_keys(settings, "HS256", K2, fallbacks=[K1])
    issued = open_session(user)
    header = {**valid_header(), "kid": fallback_kid}  # K1's kid, K2's signature
    assert_refused(get_me(forge(valid_claims(issued), header=header, secret=K2.encode())))


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA", "Ed25519"])
def test_asymmetric_rotation_with_a_public_key_fallback(settings, user, algorithm):
    old_key, new_key_ = new_key(algorithm), new_key(algorithm)
    use_keys(settings, algorithm, old_key)
    old = open_session(user).access_token

    use_keys(settings, algorithm, new_key_, fallbacks=[pem_public(old_key)])
    assert get_me(old).status_code == 200
    new = open_session(user).access_token
    assert jwt.get_unverified_header(new)["kid"] != jwt.get_unverified_header(old)["kid"]
    assert get_me(new).status_code == 200

    settings.JWT_VERIFYING_KEY_FALLBACKS = []
    assert_refused(get_me(old))
    assert get_me(new).status_code == 200


# --- Asymmetric keys and the JWKS document ---------------------------------------------------


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_asymmetric_tokens_verify_with_the_public_key(settings, user, algorithm):
    private_key = new_key(algorithm)
    use_keys(settings, algorithm, private_key)
    token = open_session(user).access_token
    assert jwt.get_unverified_header(token)["alg"] == algorithm
    claims = jwt.decode(
        token,
        pem_public(private_key),
        algorithms=[algorithm],
        audience=settings.JWT_AUDIENCE,
        issuer=settings.JWT_ISSUER,
    )
    assert claims["sub"] == str(user.pk)
    assert get_me(token).status_code == 200


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_asymmetric_token_signed_by_another_key_pair_is_refused(settings, user, algorithm):
    use_keys(settings, algorithm, new_key(algorithm))
    issued = open_session(user)
    header = {"typ": "at+jwt", "kid": key_ring().signing_kid}
    token = jwt.encode(valid_claims(issued), new_key(algorithm), algorithm=algorithm, headers=header)
    assert_refused(get_me(token))


def test_jwks_lists_ed25519_keys_without_private_parts(settings, user):
    current, previous = new_key("EdDSA"), new_key("EdDSA")
    use_keys(settings, "EdDSA", current, fallbacks=[pem_public(previous)])
    response = Client().get(JWKS_URL)
    assert response.status_code == 200
    keys = response.json()["keys"]
    assert len(keys) == 2
    for jwk in keys:
        assert jwk["kty"] == "OKP"
        assert jwk["crv"] == "Ed25519"
        assert jwk["alg"] == "EdDSA"
        assert jwk["use"] == "sig"
        assert len(unb64url(jwk["x"])) == 32
        assert "d" not in jwk
    raw_current = current.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    assert keys[0]["kid"] == key_ring().signing_kid
    assert unb64url(keys[0]["x"]) == raw_current
    assert keys[1]["kid"] != keys[0]["kid"]
    assert b64url(current.private_bytes_raw()) not in response.content.decode()


def test_jwks_lists_p256_keys_without_private_parts(settings):
    current, previous = new_key("ES256"), new_key("ES256")
    use_keys(settings, "ES256", current, fallbacks=[pem_public(previous)])
    keys = Client().get(JWKS_URL).json()["keys"]
    assert len(keys) == 2
    for jwk, key in zip(keys, (current, previous), strict=True):
        assert jwk["kty"] == "EC"
        assert jwk["crv"] == "P-256"
        assert jwk["alg"] == "ES256"
        assert jwk["use"] == "sig"
        assert "d" not in jwk
        numbers = key.public_key().public_numbers()
        assert int.from_bytes(unb64url(jwk["x"]), "big") == numbers.x
        assert int.from_bytes(unb64url(jwk["y"]), "big") == numbers.y
        assert len(unb64url(jwk["x"])) == len(unb64url(jwk["y"])) == 32


@pytest.mark.parametrize("algorithm", ["ES256", "EdDSA"])
def test_a_client_can_verify_tokens_with_the_published_jwks(settings, user, algorithm):
    use_keys(settings, algorithm, new_key(algorithm))
    token = open_session(user).access_token
    keys = {jwk["kid"]: jwk for jwk in Client().get(JWKS_URL).json()["keys"]}
    jwk = keys[jwt.get_unverified_header(token)["kid"]]
    claims = jwt.decode(token, jwt.PyJWK(jwk).key, algorithms=[algorithm], audience=settings.JWT_AUDIENCE)
    assert claims["sid"]


def test_jwks_is_not_found_with_hs256(settings):
    settings.JWT_ALGORITHM = "HS256"
    response = Client().get(JWKS_URL)
    assert response.status_code == 404
    assert settings.JWT_SIGNING_KEY not in response.content.decode()


# --- Ed25519 (RFC 9864) and the deprecated EdDSA -------------------------------------------------
# RFC 9864 deprecates the polymorphic "EdDSA" for the fully specified "Ed25519": the same Ed25519
# key and signature under another name. Either setting accepts both names and nothing else.


def test_ed25519_tokens_name_the_fully_specified_algorithm(settings, user):
    private_key = new_key("Ed25519")
    use_keys(settings, "Ed25519", private_key)
    token = open_session(user).access_token
    header = jwt.get_unverified_header(token)
    assert header == {"alg": "Ed25519", "typ": "at+jwt", "kid": key_ring().signing_kid}
    signing_input, _, signature = token.rpartition(".")
    private_key.public_key().verify(unb64url(signature), signing_input.encode())  # an Ed25519 signature
    assert get_me(token).status_code == 200


def test_jwks_publishes_ed25519_for_the_same_key_and_kid(settings):
    private_key = new_key("Ed25519")
    use_keys(settings, "EdDSA", private_key)
    [before] = Client().get(JWKS_URL).json()["keys"]
    use_keys(settings, "Ed25519", private_key)
    [after] = Client().get(JWKS_URL).json()["keys"]
    assert before["alg"] == "EdDSA"
    assert after == {**before, "alg": "Ed25519"}  # only the name changes: same kty, crv, x and kid
    assert after["kty"] == "OKP"
    assert after["crv"] == "Ed25519"
    assert "d" not in after


def test_eddsa_token_of_the_same_key_verifies_after_the_switch(settings, user):
    private_key = new_key("Ed25519")
    use_keys(settings, "EdDSA", private_key)
    old = open_session(user).access_token
    assert jwt.get_unverified_header(old)["alg"] == "EdDSA"

    use_keys(settings, "Ed25519", private_key)
    assert get_me(old).status_code == 200
    new = open_session(user).access_token
    assert jwt.get_unverified_header(new)["alg"] == "Ed25519"
    assert jwt.get_unverified_header(new)["kid"] == jwt.get_unverified_header(old)["kid"]
    assert get_me(new).status_code == 200


def test_eddsa_token_of_a_fallback_key_verifies_until_the_fallback_is_removed(settings, user):
    old_key, new_key_ = new_key("EdDSA"), new_key("Ed25519")
    use_keys(settings, "EdDSA", old_key)
    old = open_session(user).access_token

    use_keys(settings, "Ed25519", new_key_, fallbacks=[pem_public(old_key)])
    assert get_me(old).status_code == 200
    assert {jwk["alg"] for jwk in Client().get(JWKS_URL).json()["keys"]} == {"Ed25519"}

    settings.JWT_VERIFYING_KEY_FALLBACKS = []
    assert_refused(get_me(old))


def test_ed25519_token_still_verifies_after_a_rollback_to_eddsa(settings, user):
    private_key = new_key("Ed25519")
    use_keys(settings, "Ed25519", private_key)
    token = open_session(user).access_token
    use_keys(settings, "EdDSA", private_key)
    assert get_me(token).status_code == 200


@pytest.mark.parametrize("configured", ["Ed25519", "EdDSA"])
@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_hand_signed_token_under_either_name_is_accepted(settings, user, configured, alg):
    """The control for the refusals below: a token signed by hand, as the server signs it."""
    private_key = new_key(configured)
    use_keys(settings, configured, private_key)
    issued = open_session(user)
    header = {"alg": alg, "typ": "at+jwt", "kid": key_ring().signing_kid}
    assert get_me(okp_token(header, valid_claims(issued), private_key)).status_code == 200


@pytest.mark.parametrize(
    "alg",
    ["Ed448", "ed25519", "ED25519", "eddsa", "EDDSA", "Ed25519 ", "OKP", "ES256K", "", None, ["Ed25519"], 25519],
    ids=repr,
)
def test_other_alg_over_a_genuine_ed25519_signature_is_refused(settings, user, alg):
    private_key = new_key("Ed25519")
    use_keys(settings, "Ed25519", private_key)
    issued = open_session(user)
    header = {"typ": "at+jwt", "kid": key_ring().signing_kid}
    if alg is not None:
        header["alg"] = alg
    assert_refused(get_me(okp_token(header, valid_claims(issued), private_key)))


@pytest.mark.parametrize("alg", ["none", "None", "NONE"])
def test_alg_none_is_refused_by_an_ed25519_ring(settings, user, alg):
    use_keys(settings, "Ed25519", new_key("Ed25519"))
    issued = open_session(user)
    header = {"alg": alg, "typ": "at+jwt", "kid": key_ring().signing_kid}
    assert_refused(get_me(f"{b64url_json(header)}.{b64url_json(valid_claims(issued))}."))


def test_hs256_token_keyed_with_the_raw_ed25519_public_key_is_refused(settings, user):
    private_key = new_key("Ed25519")
    use_keys(settings, "Ed25519", private_key)
    issued = open_session(user)
    raw = private_key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    jwk_x = Client().get(JWKS_URL).json()["keys"][0]["x"]
    header = {"alg": "HS256", "typ": "at+jwt", "kid": key_ring().signing_kid}
    for secret in (raw, jwk_x.encode()):
        assert_refused(get_me(hmac_token(header, valid_claims(issued), secret)))


def test_es256_token_is_refused_by_an_ed25519_ring(settings, user):
    use_keys(settings, "Ed25519", new_key("Ed25519"))
    issued = open_session(user)
    header = {"typ": "at+jwt", "kid": key_ring().signing_kid}
    token = jwt.encode(valid_claims(issued), new_key("ES256"), algorithm="ES256", headers=header)
    assert_refused(get_me(token))


@pytest.mark.parametrize("ring", ["ES256", "Ed25519"])
@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_ed25519_token_of_a_key_not_in_the_ring_is_refused(settings, user, ring, alg):
    """Under an ES256 ring (algorithm confusion) or an Ed25519 ring (another key pair)."""
    use_keys(settings, ring, new_key(ring))
    issued = open_session(user)
    header = {"alg": alg, "typ": "at+jwt", "kid": key_ring().signing_kid}
    assert_refused(get_me(okp_token(header, valid_claims(issued), new_key("Ed25519"))))


@pytest.mark.parametrize("alg", ["Ed25519", "EdDSA"])
def test_ed448_signature_is_refused(settings, user, alg):
    use_keys(settings, "Ed25519", new_key("Ed25519"))
    issued = open_session(user)
    header = {"alg": alg, "typ": "at+jwt", "kid": key_ring().signing_kid}
    assert_refused(get_me(okp_token(header, valid_claims(issued), ed448.Ed448PrivateKey.generate())))


def test_the_ed25519_algorithm_takes_ed25519_keys_only():
    with pytest.raises(jwt.InvalidKeyError):
        access_tokens._PYJWT.encode({"sub": "1"}, ed448.Ed448PrivateKey.generate(), algorithm="Ed25519")


def test_ed25519_is_registered_on_a_private_pyjwt_only():
    # Other users of PyJWT (simplejwt, the bench peers) see PyJWT's own algorithms, unchanged.
    assert set(jwt.api_jws._jws_global_obj.get_algorithms()) == set(jwt.algorithms.get_default_algorithms())
    assert "Ed25519" in access_tokens._PYJWT._jws.get_algorithms()


def test_the_api_accepts_both_names_end_to_end(settings, user):
    private_key = new_key("Ed25519")
    use_keys(settings, "EdDSA", private_key)
    client = api_client()
    eddsa_access = login(client)
    assert jwt.get_unverified_header(eddsa_access)["alg"] == "EdDSA"

    use_keys(settings, "Ed25519", private_key)
    response = client.post("/api/auth/refresh/", HTTP_X_CSRFTOKEN=fetch_csrf_token(client))
    assert response.status_code == 200, response.content
    ed25519_access = response.json()["access"]
    assert jwt.get_unverified_header(ed25519_access)["alg"] == "Ed25519"
    for access in (eddsa_access, ed25519_access):
        assert get_me(access, client).status_code == 200
        assert api_client().get("/api/todos/", HTTP_AUTHORIZATION=f"Bearer {access}").status_code == 200


def test_a_pyjwt_client_verifies_ed25519_tokens_as_the_readme_says(settings, user):
    # PyJWT knows only "EdDSA": the client registers "Ed25519" (here on an instance of its own)
    # and builds the key from the JWK as an EdDSA key.
    use_keys(settings, "Ed25519", new_key("Ed25519"))
    token = open_session(user).access_token
    [published] = Client().get(JWKS_URL).json()["keys"]
    client_jwt = jwt.PyJWT()
    client_jwt._jws.register_algorithm("Ed25519", jwt.algorithms.OKPAlgorithm())
    key = jwt.PyJWK(published, algorithm="EdDSA").key
    claims = client_jwt.decode(token, key, algorithms=["Ed25519"], audience=settings.JWT_AUDIENCE)
    assert claims["sub"] == str(user.pk)


def _verify_with_joserfc(token: str, jwks: dict, algorithm: str):
    """Verify as an independent JOSE library does, from the published JWKS alone."""
    from joserfc import jwt as joserfc_jwt
    from joserfc.jwk import KeySet

    return joserfc_jwt.decode(token, KeySet.import_key_set(jwks), algorithms=[algorithm])


def test_an_independent_jose_library_verifies_ed25519_tokens_through_the_jwks_without_warnings(settings, user):
    import warnings

    use_keys(settings, "Ed25519", new_key("Ed25519"))
    issued = open_session(user)
    jwks = Client().get(JWKS_URL).json()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # joserfc warns (SecurityWarning) about deprecated algorithms
        verified = _verify_with_joserfc(issued.access_token, jwks, "Ed25519")
    assert verified.header["alg"] == "Ed25519"
    assert verified.claims["sid"] == str(issued.session.pk)


def test_the_same_library_warns_about_eddsa_tokens(settings, user):
    """Why the switch: what clients of an EdDSA deployment see today."""
    from joserfc.errors import SecurityWarning

    use_keys(settings, "EdDSA", new_key("EdDSA"))
    issued = open_session(user)
    jwks = Client().get(JWKS_URL).json()
    with pytest.warns(SecurityWarning, match="RFC 9864"):
        verified = _verify_with_joserfc(issued.access_token, jwks, "EdDSA")
    assert verified.claims["sid"] == str(issued.session.pk)


# --- Misconfigured keys are refused at load ---------------------------------------------------


def test_hs256_key_of_32_bytes_is_accepted(settings):
    use_keys(settings, "HS256", "k" * 32)
    assert key_ring().algorithm == "HS256"


@pytest.mark.parametrize("secret", ["k" * 31, "short", ""])
def test_hs256_key_shorter_than_32_bytes_is_refused(settings, secret):
    use_keys(settings, "HS256", secret)
    with pytest.raises(ImproperlyConfigured):
        key_ring()


def test_hs256_key_equal_to_secret_key_is_refused(settings):
    use_keys(settings, "HS256", settings.SECRET_KEY)
    with pytest.raises(ImproperlyConfigured):
        key_ring()


def test_changing_secret_key_to_the_jwt_key_is_noticed(settings):
    key_ring()  # cached while the configuration is fine
    settings.SECRET_KEY = settings.JWT_SIGNING_KEY
    with pytest.raises(ImproperlyConfigured):
        key_ring()


@pytest.mark.parametrize("fallback", ["k" * 31, "SECRET_KEY"])
def test_bad_hs256_fallback_is_refused(settings, fallback):
    use_keys(settings, "HS256", K1, fallbacks=[settings.SECRET_KEY if fallback == "SECRET_KEY" else fallback])
    with pytest.raises(ImproperlyConfigured):
        key_ring()


@pytest.mark.parametrize("algorithm", ["RS256", "HS512", "none", ""])
def test_unsupported_algorithm_is_refused(settings, algorithm):
    settings.JWT_ALGORITHM = algorithm
    with pytest.raises(ImproperlyConfigured):
        key_ring()


def _rsa_pem() -> str:
    return pem_private(rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.mark.parametrize(
    ("algorithm", "make_pem"),
    [
        ("ES256", lambda: pem_private(ed25519.Ed25519PrivateKey.generate())),
        ("EdDSA", lambda: pem_private(ec.generate_private_key(ec.SECP256R1()))),
        ("ES256", lambda: pem_private(ec.generate_private_key(ec.SECP384R1()))),
        ("ES256", _rsa_pem),
        ("EdDSA", _rsa_pem),
        ("EdDSA", lambda: "not a pem at all"),
        ("ES256", lambda: pem_public(ec.generate_private_key(ec.SECP256R1()))),
        ("EdDSA", lambda: "a-long-enough-hmac-secret-is-no-pem-key-0000"),
        ("Ed25519", lambda: pem_private(ec.generate_private_key(ec.SECP256R1()))),
        ("Ed25519", lambda: pem_private(ed448.Ed448PrivateKey.generate())),
        ("Ed25519", lambda: pem_public(ed25519.Ed25519PrivateKey.generate())),
    ],
    ids=[
        "ES256-ed25519",
        "EdDSA-p256",
        "ES256-p384",
        "ES256-rsa",
        "EdDSA-rsa",
        "garbage",
        "public-as-signing",
        "hmac",
        "Ed25519-p256",
        "Ed25519-ed448",
        "Ed25519-public-as-signing",
    ],
)
def test_pem_of_the_wrong_kind_is_refused(settings, algorithm, make_pem):
    settings.JWT_ALGORITHM = algorithm
    settings.JWT_SIGNING_KEY = make_pem()
    settings.JWT_VERIFYING_KEY_FALLBACKS = []
    with pytest.raises(ImproperlyConfigured):
        key_ring()


@pytest.mark.parametrize("algorithm", ["EdDSA", "Ed25519"])
def test_fallback_of_the_wrong_key_type_is_refused(settings, algorithm):
    use_keys(settings, algorithm, new_key(algorithm), fallbacks=[pem_public(new_key("ES256"))])
    with pytest.raises(ImproperlyConfigured):
        key_ring()


# --- Immediate revocation ---------------------------------------------------------------------


def test_logout_endpoint_refuses_the_access_token_at_once(user):
    client = api_client()
    access = login(client)
    assert get_me(access).status_code == 200  # the cache now says "live"
    response = client.post(LOGOUT_URL, HTTP_X_CSRFTOKEN=fetch_csrf_token(client))
    assert response.status_code == 204
    assert_refused(get_me(access), code="session_ended")


def test_logout_without_csrf_header_leaves_the_session_live(user):
    client = api_client()
    access = login(client)
    fetch_csrf_token(client)
    response = client.post(LOGOUT_URL)
    assert response.status_code == 403
    assert response.json()["code"] == "csrf_failed"
    assert get_me(access).status_code == 200


def test_deleting_a_session_through_the_api_refuses_its_token_at_once(user):
    laptop, phone = open_session(user), open_session(user)
    assert get_me(laptop.access_token).status_code == 200
    response = api_client().delete(
        f"{SESSIONS_URL}{laptop.session.pk}/", HTTP_AUTHORIZATION=f"Bearer {phone.access_token}"
    )
    assert response.status_code == 204
    assert_refused(get_me(laptop.access_token), code="session_ended")
    assert get_me(phone.access_token).status_code == 200


def test_deleting_ones_own_session_refuses_the_token_that_asked(user):
    issued = open_session(user)
    response = api_client().delete(
        f"{SESSIONS_URL}{issued.session.pk}/", HTTP_AUTHORIZATION=f"Bearer {issued.access_token}"
    )
    assert response.status_code == 204
    assert_refused(get_me(issued.access_token), code="session_ended")


def test_deleting_another_users_session_is_not_found_and_changes_nothing(make_user, user):
    victim = open_session(make_user(email="bob@example.com"))
    attacker = open_session(user)
    response = api_client().delete(
        f"{SESSIONS_URL}{victim.session.pk}/", HTTP_AUTHORIZATION=f"Bearer {attacker.access_token}"
    )
    assert response.status_code == 404
    assert response.json()["code"] == "not_found"
    assert get_me(victim.access_token).status_code == 200


def test_revoke_others_refuses_every_other_token_at_once(user):
    keep, other1, other2 = open_session(user), open_session(user), open_session(user)
    for issued in (keep, other1, other2):
        assert get_me(issued.access_token).status_code == 200
    response = api_client().post(f"{SESSIONS_URL}revoke-others/", HTTP_AUTHORIZATION=f"Bearer {keep.access_token}")
    assert response.status_code == 204
    assert get_me(keep.access_token).status_code == 200
    assert_refused(get_me(other1.access_token), code="session_ended")
    assert_refused(get_me(other2.access_token), code="session_ended")


def test_end_user_sessions_refuses_every_token_at_once(make_user, user):
    first, second = open_session(user), open_session(user)
    bystander = open_session(make_user(email="bob@example.com"))
    for issued in (first, second, bystander):
        assert get_me(issued.access_token).status_code == 200
    assert end_user_sessions(user=user, reason="ended_by_staff") == 2
    assert_refused(get_me(first.access_token), code="session_ended")
    assert_refused(get_me(second.access_token), code="session_ended")
    assert get_me(bystander.access_token).status_code == 200


def test_password_reset_through_the_api_refuses_the_token_at_once(user, mailoutbox):
    issued = open_session(user)
    assert get_me(issued.access_token).status_code == 200
    client = api_client()
    response = client.post("/api/auth/password/reset/", {"email": user.email}, content_type="application/json")
    assert response.status_code == 202
    link = link_in(mailoutbox[-1], "/password/reset/")
    response = client.post(
        "/api/auth/password/reset/confirm/",
        {"token": token_from_link(link), "password": NEW_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 204
    assert_refused(get_me(issued.access_token), code="session_ended")


def test_failed_password_reset_leaves_the_token_working(user):
    issued = open_session(user)
    response = api_client().post(
        "/api/auth/password/reset/confirm/",
        {"token": "A" * 43, "password": NEW_PASSWORD},
        content_type="application/json",
    )
    assert response.status_code == 400
    assert get_me(issued.access_token).status_code == 200


def test_password_reset_flow_refuses_the_token_at_once(user, settings):
    issued = open_session(user)
    assert get_me(issued.access_token).status_code == 200
    raw = issue_token(model=PasswordResetToken, user=user, lifetime_seconds=settings.ACCOUNTS_PASSWORD_RESET_TIMEOUT)
    reset_password(token=raw, password=NEW_PASSWORD)
    assert_refused(get_me(issued.access_token), code="session_ended")


def test_deactivate_user_refuses_the_token_at_once(user):
    issued = open_session(user)
    assert get_me(issued.access_token).status_code == 200
    assert deactivate_user(user=user) == 1
    assert_refused(get_me(issued.access_token), code="session_ended")


def admin_change_form(client: Client, user) -> dict:
    page = client.get(f"/admin/accounts/user/{user.pk}/change/")
    assert page.status_code == 200
    data = parse_page(page).form("user_form").data()
    assert "csrfmiddlewaretoken" in data and "email" in data
    return data


@pytest.fixture
def staff_client(admin_user):
    client = api_client()
    force_page_login(client, admin_user)
    return client


def test_deactivating_in_the_admin_refuses_the_token_at_once(staff_client, user):
    issued = open_session(user)
    assert get_me(issued.access_token).status_code == 200
    data = admin_change_form(staff_client, user)
    assert data.pop("is_active") == ["on"]  # uncheck "active"
    response = staff_client.post(f"/admin/accounts/user/{user.pk}/change/", {**data, "_save": "Save"})
    assert response.status_code == 302, response.content.decode()[:2000]
    user.refresh_from_db()
    assert user.is_active is False
    session = DeviceSession.objects.get(pk=issued.session.pk)
    assert session.revoked_at is not None
    assert session.revoked_reason == "user_deactivated"
    assert_refused(get_me(issued.access_token), code="session_ended")


def test_other_admin_edits_leave_the_sessions_live(staff_client, user):
    issued = open_session(user)
    data = admin_change_form(staff_client, user)
    data["name"] = ["Alice Renamed"]
    response = staff_client.post(f"/admin/accounts/user/{user.pk}/change/", {**data, "_save": "Save"})
    assert response.status_code == 302
    user.refresh_from_db()
    assert user.name == "Alice Renamed"
    assert user.is_active is True
    assert DeviceSession.objects.get(pk=issued.session.pk).revoked_at is None
    assert get_me(issued.access_token).status_code == 200


def test_deleting_the_user_in_the_admin_refuses_the_token_at_once(staff_client, user):
    issued = open_session(user)
    assert get_me(issued.access_token).status_code == 200  # the cache now says "live"
    page = staff_client.get(f"/admin/accounts/user/{user.pk}/delete/")
    assert page.status_code == 200
    response = staff_client.post(
        f"/admin/accounts/user/{user.pk}/delete/",
        {"post": "yes"},
        HTTP_X_CSRFTOKEN=staff_client.cookies["csrftoken"].value,
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert not DeviceSession.objects.filter(pk=issued.session.pk).exists()
    assert_refused(get_me(issued.access_token), code="session_ended")


# --- Revocation state: cache first, database when the cache cannot answer ---------------------------


def test_warm_cache_answers_without_a_query(issued, django_assert_num_queries):
    session_id = str(issued.session.pk)
    with django_assert_num_queries(1):
        assert is_session_live(session_id) is True
    with django_assert_num_queries(0):
        assert is_session_live(session_id) is True


def test_ended_entry_is_confirmed_by_the_database_and_never_overwritten(user, issued, django_assert_num_queries):
    # "ended" may have been written by a transaction that later rolled back, so
    # the database confirms it (one query, only for tokens of ended sessions).
    assert is_session_live(issued.session.pk) is True
    end_user_sessions(user=user, reason="logout")
    with django_assert_num_queries(1):
        assert is_session_live(issued.session.pk) is False
    assert cache.get(f"auth:session-state:{issued.session.pk}") == "ended"


def test_authenticating_a_request_costs_no_query_when_the_cache_is_warm(user, issued, django_assert_num_queries):
    request = RequestFactory().get(ME_URL, HTTP_AUTHORIZATION=f"Bearer {issued.access_token}")
    authentication = AccessTokenAuthentication()
    authentication.authenticate(request)  # warms the cache
    with django_assert_num_queries(0):
        authenticated_user, token = authentication.authenticate(request)
    assert authenticated_user.id == user.pk
    assert authenticated_user.session_id == str(issued.session.pk)
    assert token["sid"] == str(issued.session.pk)


def test_empty_cache_after_revocation_lets_the_database_refuse(user, issued):
    assert get_me(issued.access_token).status_code == 200
    end_user_sessions(user=user, reason="logout")
    cache.clear()
    assert_refused(get_me(issued.access_token), code="session_ended")
    assert is_session_live(issued.session.pk) is False


def test_revocation_written_while_the_cache_was_empty_is_seen(user, issued):
    cache.clear()
    end_user_sessions(user=user, reason="logout")
    cache.clear()
    assert is_session_live(issued.session.pk) is False
    assert is_session_live(issued.session.pk) is False  # and the cached answer agrees


def test_inactive_user_with_cold_cache_is_refused_even_if_the_session_row_is_live(user, issued):
    type(user).objects.filter(pk=user.pk).update(is_active=False)
    assert_refused(get_me(issued.access_token), code="session_ended")


def _raise_connection_error(*args, **kwargs):
    raise ConnectionError("cache unreachable")


@pytest.fixture
def broken_cache(monkeypatch):
    from django.core.cache import caches

    backend = caches["default"]
    for method in ("get", "add", "set", "set_many", "get_many"):
        monkeypatch.setattr(backend, method, _raise_connection_error)
    return backend


def test_cache_down_falls_back_to_the_database_for_a_live_session(
    user, issued, broken_cache, django_assert_num_queries
):
    with django_assert_num_queries(1):
        assert is_session_live(issued.session.pk) is True
    assert get_me(issued.access_token).status_code == 200


def test_cache_down_falls_back_to_the_database_for_an_ended_session(user, issued, broken_cache):
    end_user_sessions(user=user, reason="logout")  # cannot publish to the cache either
    assert DeviceSession.objects.get(pk=issued.session.pk).revoked_at is not None
    assert is_session_live(issued.session.pk) is False
    assert_refused(get_me(issued.access_token), code="session_ended")


def test_cache_down_never_answers_live_for_unknown_sessions(user, broken_cache):
    assert is_session_live(uuid.uuid4()) is False
    assert is_session_live("not-a-uuid") is False


def test_cache_that_only_fails_to_store_still_answers_correctly(user, issued, monkeypatch):
    from django.core.cache import caches

    monkeypatch.setattr(caches["default"], "add", _raise_connection_error)
    assert is_session_live(issued.session.pk) is True
    end_user_sessions(user=user, reason="logout")
    assert is_session_live(issued.session.pk) is False
