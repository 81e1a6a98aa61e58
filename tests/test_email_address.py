"""accounts.email_address.normalize_email: the one canonical form of an address, and what it refuses."""

import pytest

from accounts.email_address import MAX_EMAIL_LENGTH, InvalidEmailAddress, normalize_email

# --- What it produces -----------------------------------------------------------

CANONICAL_FORMS = [
    ("alice@example.com", "alice@example.com"),
    ("Alice@Example.com", "alice@example.com"),
    ("ALICE@EXAMPLE.COM", "alice@example.com"),
    ("  alice@example.com  ", "alice@example.com"),
    ("\talice@example.com\n", "alice@example.com"),
    ("ＡＬＩＣＥ＠example.com", "alice@example.com"),  # full-width letters and at sign (NFKC)
    ("alice@ｅｘａｍｐｌｅ.com", "alice@example.com"),  # full-width domain
    ("user@bücher.de", "user@xn--bcher-kva.de"),  # IDN domain to punycode
    ("user@BÜCHER.de", "user@xn--bcher-kva.de"),
    ("user@xn--bcher-kva.de", "user@xn--bcher-kva.de"),  # already punycode: unchanged
    ("alice@example.com.", "alice@example.com"),  # trailing dot of a fully-qualified domain
    ("Alice+Todo@Example.com", "alice+todo@example.com"),  # sub-addressing kept
    ("first.last@sub.example.co.uk", "first.last@sub.example.co.uk"),
]


@pytest.mark.parametrize(("raw", "expected"), CANONICAL_FORMS)
def test_normalize_email_produces_the_canonical_form(raw, expected):
    assert normalize_email(raw) == expected


def test_result_is_always_ascii_and_lower_case():
    result = normalize_email("Ｂob@Bücher.DE")
    assert result.isascii()
    assert result == result.lower()


def test_local_part_of_exactly_64_characters_is_accepted():
    local = "a" * 64
    assert normalize_email(f"{local}@example.com") == f"{local}@example.com"


def test_address_of_exactly_254_characters_is_accepted():
    # 1 + 1 + (63 + 1 + 63 + 1 + 63 + 1 + 60) = 254
    domain = ".".join(["b" * 63, "c" * 63, "d" * 63, "e" * 60])
    address = f"a@{domain}"
    assert len(address) == MAX_EMAIL_LENGTH
    assert normalize_email(address) == address


# Varied valid inputs for the idempotence property (hypothesis is not installed).
VALID_INPUTS = [
    "alice@example.com",
    "Alice@Example.com",
    "  BOB@EXAMPLE.ORG ",
    "ＡＬＩＣＥ＠example.com",
    "ｃａｒｏｌ@ｅｘａｍｐｌｅ.net",
    "user@bücher.de",
    "user@MÜNCHEN.example",
    "a@ДОМЕН.рф",
    "x@例え.jp",
    "dave@example.com.",
    "erin+filter@example.com",
    "frank.o'neil@example.ie",
    "grace_hopper@navy.example.mil",
    "h-i@sub-domain.example.com",
    "12345@numbers.example",
    "trailing@space.example\n",
    "a" * 64 + "@example.com",
    "x@" + ".".join(["b" * 63, "c" * 63, "d" * 63, "e" * 60]),
    "MiXeD.CaSe@MiXeD.CaSe.Example",
    "user@xn--bcher-kva.de",
]


@pytest.mark.parametrize("raw", VALID_INPUTS)
def test_normalize_email_is_idempotent(raw):
    once = normalize_email(raw)
    assert normalize_email(once) == once


@pytest.mark.parametrize("raw", VALID_INPUTS)
def test_normalized_address_fits_the_storage_limit_and_has_one_at_sign_split(raw):
    result = normalize_email(raw)
    assert len(result) <= MAX_EMAIL_LENGTH
    local, _, domain = result.rpartition("@")
    assert local and domain
    assert result.isascii()
    assert result == result.strip().lower()


# --- What it refuses ------------------------------------------------------------


@pytest.mark.parametrize("raw", [None, 5, 5.0, b"alice@example.com", ["alice@example.com"], {"email": "a@b.c"}])
def test_non_strings_are_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


@pytest.mark.parametrize("raw", ["", " ", "\t\n", "\u3000"])
def test_empty_and_blank_input_is_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "alice",
        "alice.example.com",
        "@example.com",
        "alice@",
        "@",
        "alice@@example.com",
    ],
)
def test_missing_at_sign_or_empty_local_or_domain_is_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "ali ce@example.com",
        "alice@exa mple.com",
        "alice@example.com\nbcc@evil.example",  # header injection attempt
        "alice\t@example.com",
        "alice\u00a0@example.com",  # no-break space
    ],
)
def test_whitespace_inside_the_address_is_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "alice\x00@example.com",  # null byte
        "alice@example.com\x00",
        "al\x07ice@example.com",  # control character (bell)
        "al\u200bice@example.com",  # zero-width space (format)
        "alice@exa\u200dmple.com",  # zero-width joiner in the domain
        "alice\u202e@example.com",  # right-to-left override
        "alice@ex\u00adample.com",  # soft hyphen
        "\ufeffalice@example.com",  # byte-order mark
    ],
)
def test_control_and_invisible_format_characters_are_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw",
    [
        "\u0430lice@example.com",  # Cyrillic 'а' looks like Latin 'a'
        "ālice@example.com",
        "böb@example.com",
        "用户@example.com",
    ],
)
def test_non_ascii_local_part_is_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


def test_cyrillic_look_alike_cannot_normalise_to_the_latin_address():
    look_alike = "\u0430lice@example.com"
    assert look_alike != "alice@example.com"
    with pytest.raises(InvalidEmailAddress):
        normalize_email(look_alike)


def test_local_part_longer_than_64_characters_is_rejected():
    # RFC 5321 section 4.5.3.1.1: a local part is at most 64 octets.
    with pytest.raises(InvalidEmailAddress):
        normalize_email("a" * 65 + "@example.com")


def test_address_longer_than_254_characters_is_rejected():
    domain = ".".join(["b" * 63, "c" * 63, "d" * 63, "e" * 61])
    address = f"a@{domain}"
    assert len(address) == MAX_EMAIL_LENGTH + 1
    with pytest.raises(InvalidEmailAddress):
        normalize_email(address)


def test_absurdly_long_input_is_rejected():
    with pytest.raises(InvalidEmailAddress):
        normalize_email("a" * 10_000 + "@example.com")


@pytest.mark.parametrize(
    "raw",
    [
        "alice@-example.com",
        "alice@example-.com",
        "alice@example..com",
        "alice@.example.com",
        "alice@exa_mple.com",
        "alice@example.c0m!",
        "alice@" + "b" * 64 + ".com",  # DNS label longer than 63
        "alice@1.2.3.4",  # bare IP without brackets
    ],
)
def test_invalid_domains_are_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


@pytest.mark.parametrize(
    "raw", ['"ali ce"@example.com', "ali..ce@example.com", ".alice@example.com", "alice.@example.com"]
)
def test_invalid_local_parts_are_rejected(raw):
    with pytest.raises(InvalidEmailAddress):
        normalize_email(raw)


def test_invalid_email_address_is_a_value_error_with_a_message():
    with pytest.raises(ValueError, match=r"."):  # any message, as long as there is one
        normalize_email("not an address")
