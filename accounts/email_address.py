"""The one normalisation of email addresses used everywhere (forms, API, lookups, storage).

Syntax is Django's validate_email and the domain goes through Python's IDNA
codec; what is written here is this product's policy on top (NFKC, lower case,
an ASCII local part), which no library decides for us. email-validator would add
deliverability lookups (DNS on the request path) that sign-up must not depend on.
"""

import unicodedata

from django.core.exceptions import ValidationError
from django.core.validators import validate_email

MAX_EMAIL_LENGTH = 254
MAX_LOCAL_PART_LENGTH = 64  # RFC 5321


class InvalidEmailAddress(ValueError):
    """The input cannot be an email address we accept."""


def normalize_email(raw: str) -> str:
    """Return the canonical form of an address, or raise InvalidEmailAddress.

    The canonical form is NFKC-normalised (so full-width and other compatibility
    characters fold to ASCII), lower-cased, with an ASCII local part and an
    IDNA (punycode) domain. Restricting the result to ASCII makes Unicode
    look-alikes of an existing address impossible to register and keeps
    Python's and the database's idea of "lower case" identical.
    """
    if not isinstance(raw, str):  # checked at run time too: a JSON body or a form can bring anything
        raise InvalidEmailAddress("Enter an email address.")
    value = unicodedata.normalize("NFKC", raw).strip()
    if not value:
        raise InvalidEmailAddress("Enter an email address.")
    if len(value) > MAX_EMAIL_LENGTH * 2 or any(
        ch.isspace() or unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn"} for ch in value
    ):
        raise InvalidEmailAddress("Enter a valid email address.")
    local, at, domain = value.rpartition("@")
    if not at or not local or not domain:
        raise InvalidEmailAddress("Enter a valid email address.")
    if len(local) > MAX_LOCAL_PART_LENGTH:
        raise InvalidEmailAddress("Enter a valid email address.")
    if not local.isascii():
        raise InvalidEmailAddress("Use an address with only ASCII characters before the @.")
    domain = domain.rstrip(".").lower()
    try:
        ascii_domain = domain.encode("idna").decode("ascii")
    except UnicodeError:
        raise InvalidEmailAddress("Enter a valid email address.") from None
    address = f"{local}@{ascii_domain}".lower()
    if len(address) > MAX_EMAIL_LENGTH:
        raise InvalidEmailAddress(f"Email addresses are at most {MAX_EMAIL_LENGTH} characters.")
    try:
        validate_email(address)
    except ValidationError:
        raise InvalidEmailAddress("Enter a valid email address.") from None
    return address


def mask_email(address: str) -> str:
    """``alice@example.com`` -> ``a***@example.com``: recognisable, not readable."""
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}" if local else address
