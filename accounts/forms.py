"""HTML forms for the account pages: input validation only, no business logic."""

from collections.abc import Callable
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from accounts.exceptions import AccountError, PasswordRejected
from accounts.flows.profile import NAME_MAX_LENGTH
from accounts.inputs import (
    EMAIL_INPUT_LIMIT,
    PASSWORD_INPUT_LIMIT,
    InputRejected,
    check_sign_in_password,
    clean_email_input,
)


def email_field(
    label: str = "Email address", *, autofocus: bool = True, autocomplete: str = "email"
) -> forms.CharField:
    attrs: dict[str, Any] = {"autocomplete": autocomplete}
    if autofocus:
        attrs["autofocus"] = True
    return forms.CharField(label=label, max_length=EMAIL_INPUT_LIMIT, widget=forms.EmailInput(attrs=attrs))


def password_field(label: str, autocomplete: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        max_length=PASSWORD_INPUT_LIMIT,
        widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}),
    )


def name_field() -> forms.CharField:
    return forms.CharField(
        label="Name", max_length=NAME_MAX_LENGTH, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )


def _shared_rule(rule: Callable[[str], str], value: str) -> str:
    try:
        return rule(value)
    except InputRejected as error:
        raise ValidationError(error.message, code=error.code) from None


class EmailCleaningMixin:
    cleaned_data: dict[str, Any]

    def clean_email(self) -> str:
        return _shared_rule(clean_email_input, self.cleaned_data["email"])


class NewPasswordMixin(forms.Form):
    """Two password inputs that must match."""

    def clean(self) -> dict[str, Any]:
        super().clean()
        cleaned = self.cleaned_data
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", ValidationError("The two passwords do not match.", code="mismatch"))
        return cleaned


class SignUpForm(EmailCleaningMixin, NewPasswordMixin, forms.Form):
    email = email_field()
    name = name_field()
    password1 = password_field("Password", "new-password")
    password2 = password_field("Password again", "new-password")

    field_for_flow_error = {"password": "password1"}


class SignInForm(EmailCleaningMixin, forms.Form):
    # "webauthn": the browser offers the site's passkeys in this field's autofill (conditional UI).
    email = email_field(autocomplete="username webauthn")
    password = password_field("Password", "current-password")

    def clean_password(self) -> str:
        return _shared_rule(check_sign_in_password, self.cleaned_data["password"])


class EmailOnlyForm(EmailCleaningMixin, forms.Form):
    """The resend-verification and forgot-password forms."""

    email = email_field()


class SetPasswordForm(NewPasswordMixin, forms.Form):
    password1 = password_field("New password", "new-password")
    password2 = password_field("New password again", "new-password")

    field_for_flow_error = {"password": "password1"}


def add_flow_error(form: forms.Form, error: AccountError) -> None:
    """Show a flow's error on the form field it concerns (or the whole form)."""
    field = getattr(form, "field_for_flow_error", {}).get(error.field, error.field)
    if field not in form.fields:
        field = None
    messages = error.messages if isinstance(error, PasswordRejected) else [error.message]
    form.add_error(field, [ValidationError(message, code=error.code) for message in messages])


class ProfileForm(forms.Form):
    name = name_field()


class PasswordChangeForm(NewPasswordMixin, forms.Form):
    current_password = password_field("Current password", "current-password")
    password1 = password_field("New password", "new-password")
    password2 = password_field("New password again", "new-password")

    field_for_flow_error = {"new_password": "password1"}


class EmailChangeForm(forms.Form):
    new_email = email_field("New email address", autofocus=False)
    password = password_field("Current password", "current-password")

    def clean_new_email(self) -> str:
        return _shared_rule(clean_email_input, self.cleaned_data["new_email"])


class PasswordConfirmForm(forms.Form):
    """Re-authentication: the current password, nothing else."""

    password = password_field("Password", "current-password")


class VerifyWithPasswordForm(forms.Form):
    """Verifying an address from another browser: the account's current password."""

    password = password_field("The account's password", "current-password")


class VerifyWithNewPasswordForm(SetPasswordForm):
    """Verifying an address from another browser: a new password that replaces the old one."""

    field_for_flow_error = {"new_password": "password1", "password": "password1"}


class SecureAccountForm(SetPasswordForm):
    """ "Not me" (an email change, a passkey): the new password that secures the account."""

    field_for_flow_error = {"new_password": "password1", "password": "password1"}


class DeleteAccountForm(forms.Form):
    password = password_field("Current password", "current-password")
    confirm = forms.BooleanField(
        label="I understand that my account and all my todos will be deleted for good.", required=True
    )


def code_field(label: str = "Code") -> forms.CharField:
    """A TOTP code or a recovery code: digits or letters, so a text input (not numeric)."""
    return forms.CharField(
        label=label,
        max_length=64,
        strip=True,
        widget=forms.TextInput(
            attrs={"autocomplete": "one-time-code", "autocapitalize": "characters", "spellcheck": "false"}
        ),
        help_text="The 6-digit code from your authenticator app, or one of your recovery codes.",
    )


class SecondFactorForm(forms.Form):
    """The second step of signing in, and re-authenticating with a code. ``with_app`` False: the
    account has no authenticator app (a passkey only), so the only code it has is a recovery code."""

    code = code_field()

    def __init__(self, *args: Any, with_app: bool = True, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not with_app:
            self.fields["code"].help_text = "One of your recovery codes."


class EmailCodeForm(forms.Form):
    """The code of a sign-in by email (the address is the one the page asked for)."""

    code = code_field("Sign-in code")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["code"].help_text = "The 8-character code in the email, e.g. ABCD-EFGH."


class PasskeyAnswerForm(forms.Form):
    """A passkey's answer, as the page's script puts it in the form (the credential's toJSON())."""

    credential = forms.CharField(widget=forms.HiddenInput, max_length=64 * 1024)


class PasskeyAddForm(forms.Form):
    name = forms.CharField(
        label="Name",
        max_length=256,
        initial="",
        help_text='So you can tell your passkeys apart, e.g. "Work laptop".',
        widget=forms.TextInput(attrs={"autocomplete": "off", "maxlength": 64}),
    )
    credential = forms.CharField(widget=forms.HiddenInput, max_length=64 * 1024, required=False)

    # A refused passkey is about the whole attempt, shown above the form.
    field_for_flow_error = {"credential": "__all__"}

    def clean_credential(self) -> str:
        credential: str = self.cleaned_data["credential"]
        if not credential:
            raise ValidationError("Create the passkey first: your browser asks when you press the button.")
        return credential


class PasskeyRenameForm(forms.Form):
    name = forms.CharField(label="New name", max_length=256, widget=forms.TextInput(attrs={"maxlength": 64}))


class TotpConfirmForm(forms.Form):
    """Turning the authenticator app on: a code from it proves it is set up."""

    code = forms.CharField(
        label="Code from the app",
        max_length=64,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )
