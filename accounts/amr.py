"""How a person authenticated: RFC 8176 ``amr`` values and how they combine."""

from collections.abc import Iterable

PASSWORD = "pwd"  # noqa: S105 a method name
ONE_TIME_CODE = "otp"  # an authenticator app's code, a recovery code, later an emailed code
MULTI_FACTOR = "mfa"

# The kinds of factor: "mfa" means two of different kinds were used.
_FACTOR_KINDS = {PASSWORD: "knowledge", ONE_TIME_CODE: "possession"}


def combine(*groups: Iterable[str]) -> list[str]:
    """The methods of every group, each once and in order, with "mfa" added when two independent
    factors are among them."""
    methods: list[str] = []
    for group in groups:
        for method in group:
            if method != MULTI_FACTOR and method not in methods:
                methods.append(method)
    if len({_FACTOR_KINDS.get(method, method) for method in methods}) >= 2:
        methods.append(MULTI_FACTOR)
    return methods


def describe(amr: Iterable[str]) -> str:
    """The methods in words, for the devices page."""
    words = {PASSWORD: "password", ONE_TIME_CODE: "one-time code"}
    methods = [words.get(method, method) for method in amr if method != MULTI_FACTOR]
    if not methods:
        return "unknown"
    text = " + ".join(methods)
    return f"{text} (two-factor)" if MULTI_FACTOR in amr else text
