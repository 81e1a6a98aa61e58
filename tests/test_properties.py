"""Property-based tests (hypothesis) of the one-time tokens and the email address normalisation."""

import re
import string

import pytest
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from accounts.email_address import MAX_EMAIL_LENGTH, InvalidEmailAddress, normalize_email
from accounts.tokens import generate_token, hash_token, is_well_formed, token_matches

PROPERTIES = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

TOKEN_ALPHABET = string.ascii_letters + string.digits + "-_"
TOKEN_SHAPE = re.compile(r"[A-Za-z0-9_-]{43}")
HEX64 = re.compile(r"[0-9a-f]{64}")

well_formed_tokens = st.text(alphabet=TOKEN_ALPHABET, min_size=43, max_size=43)


def fits_the_token_shape(text: str) -> bool:
    return len(text) == 43 and all(ch in TOKEN_ALPHABET for ch in text)


@st.composite
def near_miss_tokens(draw) -> str:
    """Strings that look almost like tokens: one character off, one too many or too few."""
    token = draw(well_formed_tokens)
    mutation = draw(st.sampled_from(["replace", "insert", "delete", "append_newline", "prepend_space", "pad"]))
    position = draw(st.integers(min_value=0, max_value=42))
    if mutation == "replace":
        intruder = draw(st.characters().filter(lambda ch: ch not in TOKEN_ALPHABET))
        return token[:position] + intruder + token[position + 1 :]
    if mutation == "insert":
        return token[:position] + draw(st.characters()) + token[position:]
    if mutation == "delete":
        return token[:position] + token[position + 1 :]
    if mutation == "append_newline":
        return token + "\n"
    if mutation == "prepend_space":
        return " " + token
    return token + "=" * draw(st.integers(min_value=1, max_value=2))


# --- Tokens ---------------------------------------------------------------------------------------


@PROPERTIES
@given(st.integers(min_value=0, max_value=10))
def test_generated_tokens_are_always_well_formed(_round):
    for _ in range(5):
        token = generate_token()
        assert len(token) == 43
        assert TOKEN_SHAPE.fullmatch(token)
        assert is_well_formed(token)


@PROPERTIES
@given(well_formed_tokens)
def test_hash_token_is_deterministic_lowercase_hex(token):
    digest = hash_token(token)
    assert HEX64.fullmatch(digest)
    assert hash_token(token) == digest
    assert token not in digest


@PROPERTIES
@given(well_formed_tokens)
def test_a_token_matches_its_own_hash(token):
    assert token_matches(token, hash_token(token))


@PROPERTIES
@given(well_formed_tokens, well_formed_tokens)
def test_a_token_does_not_match_the_hash_of_another(token, other):
    assume(token != other)
    assert not token_matches(token, hash_token(other))
    assert hash_token(token) != hash_token(other)


@PROPERTIES
@given(st.integers(min_value=0, max_value=10))
def test_generated_tokens_match_only_their_own_hash(_round):
    token, other = generate_token(), generate_token()
    assert token != other
    assert token_matches(token, hash_token(token))
    assert not token_matches(token, hash_token(other))
    assert not token_matches(other, hash_token(token))


@PROPERTIES
@given(well_formed_tokens)
def test_a_token_does_not_match_a_corrupted_hash(token):
    digest = hash_token(token)
    flipped = ("0" if digest[0] != "0" else "1") + digest[1:]
    assert not token_matches(token, flipped)
    assert not token_matches(token, digest.upper()) or digest == digest.upper()
    assert not token_matches(token, "")


@PROPERTIES
@given(well_formed_tokens)
def test_every_well_formed_text_is_accepted(token):
    assert is_well_formed(token)


@PROPERTIES
@given(st.one_of(st.text(), near_miss_tokens()))
@example("")
@example("A" * 42)
@example("A" * 44)
@example("A" * 43 + "\n")
@example("A" * 42 + "=")
@example("A" * 42 + "+")
@example("A" * 42 + "/")
@example("A" * 42 + "\u0663")  # ARABIC-INDIC DIGIT THREE: a digit, but not [0-9]
@example("A" * 42 + "\u00e9")
@example("A" * 42 + "\uff21")  # full-width A
def test_is_well_formed_is_exactly_the_token_shape(text):
    assert is_well_formed(text) is fits_the_token_shape(text)


@PROPERTIES
@given(near_miss_tokens())
def test_near_miss_tokens_are_refused(text):
    assume(not fits_the_token_shape(text))
    assert is_well_formed(text) is False


@PROPERTIES
@given(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True),
        st.binary(),
        well_formed_tokens.map(str.encode),
        well_formed_tokens.map(lambda token: bytearray(token, "ascii")),
        st.lists(well_formed_tokens, max_size=3),
        st.tuples(well_formed_tokens),
        st.dictionaries(well_formed_tokens, well_formed_tokens, max_size=2),
    )
)
def test_is_well_formed_refuses_every_non_string(value):
    assert is_well_formed(value) is False


# --- Email normalisation ----------------------------------------------------------------------------


def normalize_or_none(raw):
    try:
        return normalize_email(raw)
    except InvalidEmailAddress:
        return None


def assert_canonical(address: str) -> None:
    assert isinstance(address, str)
    assert address.isascii(), address
    assert address == address.lower(), address
    assert 0 < len(address) <= MAX_EMAIL_LENGTH
    assert address == address.strip()
    try:
        validate_email(address)
    except ValidationError:  # pragma: no cover - reported by the assertion below
        pytest.fail(f"{address!r} does not pass Django's validate_email")
    assert normalize_email(address) == address, "not a fixed point"


@PROPERTIES
@given(st.text())
@example("")
@example("@")
@example("alice@")
@example("@example.com")
@example("ALICE@EXAMPLE.COM")
@example("\uff41\uff4c\uff49\uff43\uff45@example.com")
@example("\u0430lice@example.com")
@example("alice@b\u00fccher.example")
@example("alice@example.com.")
@example("alice@ex\u200bample.com")
@example("a" * 64 + "@" + "b" * 63 + ".com")
@example("a" * 65 + "@example.com")
@example("a@" + ".".join(["b" * 63] * 4))
@example("a@\ud800.com")
@example("a@xn--.com")
@example("a@xn--zz.com")
@example("a@-example.com")
@example("a@\u3002example.com")
@example("a@example\uff0ecom")
def test_normalize_email_returns_a_canonical_address_or_refuses(raw):
    try:
        address = normalize_email(raw)
    except InvalidEmailAddress as error:
        assert str(error)
        return
    assert_canonical(address)


@PROPERTIES
@given(st.text(alphabet=st.characters(codec="utf-8"), min_size=1).map(lambda local: f"{local}@example.com"))
def test_address_shaped_text_is_canonical_or_refused(raw):
    address = normalize_or_none(raw)
    if address is not None:
        assert_canonical(address)
        assert address.endswith("@example.com")


@PROPERTIES
@given(st.one_of(st.none(), st.integers(), st.binary(), st.lists(st.text()), st.booleans()))
def test_non_strings_are_refused(value):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(value)


def swap_ascii_case(text: str) -> str:
    return "".join(ch.swapcase() if ch.isascii() else ch for ch in text)


WHITESPACE = st.text(alphabet=" \t\n\r\u00a0\u3000\u2003", max_size=4)


@PROPERTIES
@given(st.emails())
def test_valid_addresses_are_case_insensitive(raw):
    address = normalize_or_none(raw)
    assume(address is not None)
    assert_canonical(address)
    assert normalize_email(swap_ascii_case(raw)) == address
    assert normalize_email(raw.upper()) == address
    assert normalize_email(raw.lower()) == address


@PROPERTIES
@given(st.emails(), WHITESPACE, WHITESPACE)
def test_valid_addresses_ignore_surrounding_whitespace(raw, before, after):
    address = normalize_or_none(raw)
    assume(address is not None)
    assert normalize_email(before + raw + after) == address


@PROPERTIES
@given(st.emails())
def test_most_generated_addresses_are_accepted(raw):
    """st.emails() produces RFC-valid ASCII addresses; refusing one needs a reason we can name."""
    address = normalize_or_none(raw)
    if address is None:
        local, _, _domain = raw.rpartition("@")
        too_long = len(raw) > MAX_EMAIL_LENGTH or len(local) > 64
        django_refuses = False
        try:
            validate_email(raw.lower())
        except ValidationError:
            django_refuses = True
        assert too_long or django_refuses, f"{raw!r} refused without a reason"
    else:
        assert address == raw.lower().rstrip(".") or address == raw.lower()
