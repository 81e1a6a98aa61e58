"""The input rules the page forms and the API serializers share (accounts/inputs.py): same limits, same words."""

import pytest
from django.conf import settings

from accounts.api.serializers import EmailChangeSerializer, EmailVerifySerializer, LoginSerializer, RegisterSerializer
from accounts.forms import EmailChangeForm, SignInForm, SignUpForm
from accounts.inputs import EMAIL_INPUT_LIMIT, PASSWORD_INPUT_LIMIT, TOKEN_INPUT_LIMIT, InputRejected, clean_email_input


def _form_errors(form_class, data: dict, field: str) -> list[tuple[str, str]]:
    form = form_class(data)
    assert not form.is_valid()
    return [(error.code, message) for error in form.errors.as_data()[field] for message in error.messages]


def _api_errors(serializer_class, data: dict, field: str) -> list[tuple[str, str]]:
    serializer = serializer_class(data=data)
    assert not serializer.is_valid()
    return [(str(detail.code), str(detail)) for detail in serializer.errors[field]]


def test_a_sign_in_password_longer_than_any_password_gets_the_same_answer_on_the_page_and_in_the_api():
    too_long = "x" * (settings.ACCOUNTS_PASSWORD_MAX_LENGTH + 1)
    page = _form_errors(SignInForm, {"email": "alice@example.com", "password": too_long}, "password")
    api = _api_errors(LoginSerializer, {"email": "alice@example.com", "password": too_long}, "password")
    expected = [("password_too_long", f"Passwords are at most {settings.ACCOUNTS_PASSWORD_MAX_LENGTH} characters.")]
    assert page == api == expected


def test_a_sign_in_password_at_the_limit_passes_both():
    at_limit = "x" * settings.ACCOUNTS_PASSWORD_MAX_LENGTH
    assert SignInForm({"email": "alice@example.com", "password": at_limit}).is_valid()
    assert LoginSerializer(data={"email": "alice@example.com", "password": at_limit}).is_valid()


@pytest.mark.parametrize("address", ["not an address", "alice@", "a" * 65 + "@example.com", "ａlice@exa mple.com"])
def test_an_address_that_is_not_one_gets_the_same_answer_on_the_page_and_in_the_api(address):
    with pytest.raises(InputRejected) as rejected:
        clean_email_input(address)
    expected = [("invalid_email", rejected.value.message)]
    assert _form_errors(SignUpForm, {"email": address}, "email") == expected
    assert _api_errors(RegisterSerializer, {"email": address}, "email") == expected
    assert _form_errors(EmailChangeForm, {"new_email": address}, "new_email") == expected
    assert _api_errors(EmailChangeSerializer, {"new_email": address}, "new_email") == expected


def test_addresses_are_normalised_alike():
    raw = "  Ａlice@EXAMPLE.com "
    form = SignInForm({"email": raw, "password": "p"})
    serializer = LoginSerializer(data={"email": raw, "password": "p"})
    assert form.is_valid() and serializer.is_valid()
    assert form.cleaned_data["email"] == serializer.validated_data["email"] == "alice@example.com"


def test_input_far_over_any_address_is_refused_by_both():
    # The page's size check runs before the normaliser, the API's after it (DRF validates
    # after to_internal_value): the page says max_length, the API invalid_email.
    huge = "a" * EMAIL_INPUT_LIMIT + "@example.com"
    assert [code for code, _ in _form_errors(SignUpForm, {"email": huge}, "email")] == ["max_length"]
    assert [code for code, _ in _api_errors(RegisterSerializer, {"email": huge}, "email")] == ["invalid_email"]


def test_passwords_over_the_input_limit_are_refused_by_size_on_both():
    huge = "x" * (PASSWORD_INPUT_LIMIT + 1)
    assert "max_length" in [code for code, _ in _form_errors(SignInForm, {"password": huge}, "password")]
    assert "max_length" in [code for code, _ in _api_errors(LoginSerializer, {"password": huge}, "password")]


def test_tokens_over_the_input_limit_are_refused():
    assert [
        code for code, _ in _api_errors(EmailVerifySerializer, {"token": "t" * (TOKEN_INPUT_LIMIT + 1)}, "token")
    ] == ["max_length"]
    assert EmailVerifySerializer(data={"token": "t" * TOKEN_INPUT_LIMIT}).is_valid()
