"""How a person authenticated: RFC 8176 ``amr`` values and how they combine."""

from collections.abc import Iterable

PASSWORD = "pwd"  # noqa: S105 a method name
ONE_TIME_CODE = "otp"  # an authenticator app's code, a recovery code, an emailed sign-in code
MULTI_FACTOR = "mfa"
# A sign-in at an identity provider (OpenID Connect, OAuth 2). Not in RFC 8176's registry, which
# names how a person authenticated, not where: the provider's own methods are not known here.
FEDERATED = "fed"
# A passkey: device-bound ("hardware-secured key") or synced between devices ("software-secured key"),
# and "user" when the authenticator verified its user (a PIN, a fingerprint, a face).
HARDWARE_KEY = "hwk"
SOFTWARE_KEY = "swk"
USER_VERIFIED = "user"

# The kinds of factor: "mfa" means two of different kinds were used. A passkey with user verification
# is two on its own: the device (possession), unlocked by its user (knowledge or inherence).
_FACTOR_KINDS = {
    PASSWORD: "knowledge",
    ONE_TIME_CODE: "possession",
    HARDWARE_KEY: "possession",
    SOFTWARE_KEY: "possession",
    USER_VERIFIED: "user verification",
}
# What a second factor proves: something the person has.
_SECOND_FACTORS = frozenset({ONE_TIME_CODE, HARDWARE_KEY, SOFTWARE_KEY})


def proves_second_factor(amr: Iterable[str]) -> bool:
    """Whether these methods include something the person has (a code, a passkey)."""
    return any(method in _SECOND_FACTORS for method in amr)


def combine(*groups: Iterable[str]) -> list[str]:
    """The methods of every group, each once and in order, with "mfa" added when two independent
    factors are among them."""
    methods: list[str] = []
    for group in groups:
        for method in group:
            if method != MULTI_FACTOR and method not in methods:
                methods.append(method)
    # A provider's sign-in is a first factor of a kind not known here (it may have been the same
    # password): with a password it is not two, with something the person has it is.
    kinds = {_FACTOR_KINDS.get(method, method) for method in methods if method != FEDERATED}
    if len(kinds) >= 2 or (FEDERATED in methods and proves_second_factor(methods)):
        methods.append(MULTI_FACTOR)
    return methods


def describe(amr: Iterable[str]) -> str:
    """The methods in words, for the devices page."""
    words = {
        PASSWORD: "password",
        ONE_TIME_CODE: "one-time code",
        HARDWARE_KEY: "passkey",
        SOFTWARE_KEY: "passkey",
        FEDERATED: "provider",
    }
    methods = [words.get(method, method) for method in amr if method not in (MULTI_FACTOR, USER_VERIFIED)]
    if not methods:
        return "unknown"
    text = " + ".join(methods)
    return f"{text} (two-factor)" if MULTI_FACTOR in amr else text
