"""HTML forms for the account pages: input validation only, no business logic."""

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError

from accounts.email_address import MAX_EMAIL_LENGTH, InvalidEmailAddress, normalize_email
from accounts.exceptions import AccountError, PasswordRejected
from accounts.flows.profile import NAME_MAX_LENGTH

# Accept far more than any address so the normaliser, not a browser-side
# maxlength, produces the error message.
_EMAIL_INPUT_LIMIT = MAX_EMAIL_LENGTH * 2
# Passwords longer than the policy allows are rejected by the policy with a
# clear message; this bound only keeps absurd input away from the hasher.
_PASSWORD_INPUT_LIMIT = 4096


def email_field() -> forms.CharField:
    return forms.CharField(
        label="Email address",
        max_length=_EMAIL_INPUT_LIMIT,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )


def password_field(label: str, autocomplete: str) -> forms.CharField:
    return forms.CharField(
        label=label,
        strip=False,
        max_length=_PASSWORD_INPUT_LIMIT,
        widget=forms.PasswordInput(attrs={"autocomplete": autocomplete}),
    )


class EmailCleaningMixin:
    def clean_email(self) -> str:
        try:
            return normalize_email(self.cleaned_data["email"])
        except InvalidEmailAddress as error:
            raise ValidationError(str(error), code="invalid_email") from None


class NewPasswordMixin:
    """Two password inputs that must match."""

    def clean(self):
        cleaned = super().clean()
        first, second = cleaned.get("password1"), cleaned.get("password2")
        if first and second and first != second:
            self.add_error("password2", ValidationError("The two passwords do not match.", code="mismatch"))
        return cleaned


class SignUpForm(EmailCleaningMixin, NewPasswordMixin, forms.Form):
    email = email_field()
    name = forms.CharField(
        label="Name", max_length=NAME_MAX_LENGTH, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )
    password1 = password_field("Password", "new-password")
    password2 = password_field("Password again", "new-password")

    field_for_flow_error = {"password": "password1"}


class SignInForm(EmailCleaningMixin, forms.Form):
    email = email_field()
    password = password_field("Password", "current-password")

    def clean_password(self) -> str:
        password = self.cleaned_data["password"]
        if len(password) > settings.ACCOUNTS_PASSWORD_MAX_LENGTH:
            # No password this long can exist here; say so without asking the database.
            raise ValidationError(
                f"Passwords are at most {settings.ACCOUNTS_PASSWORD_MAX_LENGTH} characters.",
                code="password_too_long",
            )
        return password


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
    name = forms.CharField(
        label="Name", max_length=NAME_MAX_LENGTH, widget=forms.TextInput(attrs={"autocomplete": "name"})
    )


class PasswordChangeForm(NewPasswordMixin, forms.Form):
    current_password = password_field("Current password", "current-password")
    password1 = password_field("New password", "new-password")
    password2 = password_field("New password again", "new-password")

    field_for_flow_error = {"new_password": "password1"}


class EmailChangeForm(forms.Form):
    new_email = forms.CharField(
        label="New email address",
        max_length=_EMAIL_INPUT_LIMIT,
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    password = password_field("Current password", "current-password")

    def clean_new_email(self) -> str:
        try:
            return normalize_email(self.cleaned_data["new_email"])
        except InvalidEmailAddress as error:
            raise ValidationError(str(error), code="invalid_email") from None


class PasswordConfirmForm(forms.Form):
    """Re-authentication: the current password, nothing else."""

    password = password_field("Password", "current-password")


class VerifyWithPasswordForm(forms.Form):
    """Verifying an address from another browser: the account's current password."""

    password = password_field("The account's password", "current-password")


class VerifyWithNewPasswordForm(SetPasswordForm):
    """Verifying an address from another browser: a new password that replaces the old one."""

    field_for_flow_error = {"new_password": "password1", "password": "password1"}


class CancelEmailChangeForm(SetPasswordForm):
    """ "Not me": the new password that secures the account."""

    field_for_flow_error = {"new_password": "password1", "password": "password1"}


class DeleteAccountForm(forms.Form):
    password = password_field("Current password", "current-password")
    confirm = forms.BooleanField(
        label="I understand that my account and all my todos will be deleted for good.", required=True
    )
