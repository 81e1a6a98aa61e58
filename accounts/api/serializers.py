"""Input validation and output shapes of the accounts API (no business logic here)."""

from collections.abc import Callable
from typing import Any

from rest_framework import serializers

from accounts.flows.profile import NAME_MAX_LENGTH
from accounts.inputs import (
    EMAIL_INPUT_LIMIT,
    PASSWORD_INPUT_LIMIT,
    TOKEN_INPUT_LIMIT,
    InputRejected,
    check_sign_in_password,
    clean_email_input,
)
from accounts.models import DeviceSession, UndeliverableAddress
from accounts.user_agents import describe_user_agent


def _shared_rule(rule: Callable[[str], str], value: str) -> str:
    try:
        return rule(value)
    except InputRejected as error:
        raise serializers.ValidationError(error.message, code=error.code) from None


class StrictCharField(serializers.CharField):
    """A string field that refuses numbers, booleans and objects instead of converting them."""

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    """JSON true or false, nothing else."""

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid", input=data)
        return data


class EmailAddressField(StrictCharField):
    """An email address, normalised the one way the whole product uses."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", EMAIL_INPUT_LIMIT)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        return _shared_rule(clean_email_input, super().to_internal_value(data))


def password_field(**kwargs: Any) -> StrictCharField:
    return StrictCharField(
        trim_whitespace=False,
        max_length=PASSWORD_INPUT_LIMIT,
        write_only=True,
        style={"input_type": "password"},
        **kwargs,
    )


def token_field() -> StrictCharField:
    return StrictCharField(max_length=TOKEN_INPUT_LIMIT, help_text="The token from the emailed link.")


class RegisterSerializer(serializers.Serializer):
    email = EmailAddressField()
    password = password_field()
    name = StrictCharField(max_length=NAME_MAX_LENGTH)


class LoginSerializer(serializers.Serializer):
    email = EmailAddressField()
    password = password_field()

    def validate_password(self, value: str) -> str:
        return _shared_rule(check_sign_in_password, value)


class EmailSerializer(serializers.Serializer):
    email = EmailAddressField()


class EmailCodeSignInSerializer(serializers.Serializer):
    email = EmailAddressField()
    code = StrictCharField(max_length=64, help_text="The 8-character code from the email (hyphen and case optional).")


_PROOF_HELP = (
    "Only when verifying from another client than the one that signed up (`password_required`): "
    "the account's current password (`password`), or a new one that replaces it (`new_password`)."
)


class EmailVerifySerializer(serializers.Serializer):
    token = token_field()
    password = password_field(required=False, help_text=_PROOF_HELP)
    new_password = password_field(required=False, help_text=_PROOF_HELP)


class EmailChangeCancelSerializer(serializers.Serializer):
    token = StrictCharField(
        max_length=TOKEN_INPUT_LIMIT, help_text="The token from the link sent to the current address."
    )
    new_password = password_field()


class PasswordResetConfirmSerializer(serializers.Serializer):
    token = token_field()
    password = password_field()


class ProfileSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    email = serializers.EmailField(read_only=True)
    name = serializers.CharField(read_only=True)
    email_verified = serializers.BooleanField(read_only=True)
    email_undeliverable = serializers.ChoiceField(
        choices=UndeliverableAddress.Reason.choices,
        allow_null=True,
        read_only=True,
        help_text="Why email does not reach this address (show the person a banner asking them to check it), "
        "or null when it does. Emails the person asks for (a reset, a verification) are still sent.",
    )


class ProfileUpdateSerializer(serializers.Serializer):
    name = StrictCharField(max_length=NAME_MAX_LENGTH)


class AccessTokenSerializer(serializers.Serializer):
    access = serializers.CharField(help_text="JWT access token; send it as `Authorization: Bearer <access>`.")
    access_expires_at = serializers.DateTimeField()


class LoginResponseSerializer(AccessTokenSerializer):
    user = ProfileSerializer()


class DeviceSessionSerializer(serializers.ModelSerializer):
    current = serializers.SerializerMethodField(help_text="True for the session making this request.")
    device = serializers.SerializerMethodField(
        help_text='Browser and OS read from the user agent, e.g. "Firefox 132 on Linux".'
    )

    class Meta:
        model = DeviceSession
        fields = [
            "id",
            "created_at",
            "last_used_at",
            "ip_address",
            "user_agent",
            "device",
            "current",
            "amr",
            "authenticated_at",
        ]
        extra_kwargs = {
            "amr": {"help_text": 'How this device signed in (RFC 8176): "pwd", "otp", and "mfa" for two factors.'},
            "authenticated_at": {"help_text": "The last sign-in or re-authentication on this device (auth_time)."},
        }

    def get_current(self, session: DeviceSession) -> bool:
        return str(session.pk) == self.context.get("current_session_id")

    def get_device(self, session: DeviceSession) -> str:
        return describe_user_agent(session.user_agent)


class MessageSerializer(serializers.Serializer):
    detail = serializers.CharField()


class PasswordChangeSerializer(serializers.Serializer):
    current_password = password_field()
    new_password = password_field()


class EmailChangeSerializer(serializers.Serializer):
    new_email = EmailAddressField()
    password = password_field()


class PasswordSerializer(serializers.Serializer):
    password = password_field()


class CodeSerializer(serializers.Serializer):
    code = StrictCharField(max_length=64, help_text="A 6-digit TOTP code, or a recovery code (hyphens optional).")


def credential_field(**kwargs: Any) -> serializers.DictField:
    return serializers.DictField(
        help_text="The browser's PublicKeyCredential, as its toJSON() gives it (WebAuthn Level 3 JSON).", **kwargs
    )


def _exactly_one(attrs: dict[str, Any], names: list[str]) -> dict[str, Any]:
    given = [name for name in names if name in attrs]
    if not given:
        others = " or ".join(f"`{name}`" for name in names[1:])
        raise serializers.ValidationError({names[0]: [f"This field is required (or send {others})."]})
    if len(given) > 1:
        raise serializers.ValidationError({given[1]: [f"Send only one of {', '.join(names)}."]})
    return attrs


class SecondStepSerializer(serializers.Serializer):
    code = StrictCharField(
        max_length=64, required=False, help_text="A 6-digit TOTP code, or a recovery code (hyphens optional)."
    )
    credential = credential_field(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return _exactly_one(attrs, ["code", "credential"])


class ReauthenticateSerializer(serializers.Serializer):
    password = password_field(required=False)
    code = StrictCharField(max_length=64, required=False, help_text="A TOTP code or a recovery code.")
    credential = credential_field(required=False)

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        return _exactly_one(attrs, ["password", "code", "credential"])


class PasskeyCredentialSerializer(serializers.Serializer):
    credential = credential_field()


class PasskeyRegisterSerializer(serializers.Serializer):
    credential = credential_field()
    name = StrictCharField(max_length=256, help_text='What to call it, e.g. "Work laptop" (1 to 64 characters).')


class PasskeyRenameSerializer(serializers.Serializer):
    name = StrictCharField(max_length=256, help_text="1 to 64 characters.")


class PasskeySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    name = serializers.CharField()
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)
    synced = serializers.BooleanField(
        source="backup_eligible", help_text="A passkey that syncs between devices (a password manager, a keychain)."
    )
    backed_up = serializers.BooleanField(help_text="Synced now (for a synced passkey).")


class SocialProviderSerializer(serializers.Serializer):
    name = serializers.CharField()
    display_name = serializers.CharField()
    login_url = serializers.CharField(
        help_text="POST a form here (with the CSRF token as csrfmiddlewaretoken, and next=/app/) to sign in: "
        "the browser goes to the provider and comes back signed in, with the refresh cookie set."
    )


class SocialIdentitySerializer(serializers.Serializer):
    id = serializers.UUIDField()
    provider = serializers.CharField()
    display_name = serializers.CharField()
    email = serializers.CharField(help_text="The address the provider gave when it was connected.")
    created_at = serializers.DateTimeField()
    last_used_at = serializers.DateTimeField(allow_null=True)


class PasskeyAddedSerializer(PasskeySerializer):
    recovery_codes = serializers.ListField(
        child=serializers.CharField(),
        required=False,
        help_text="Only when this passkey turned two-factor on: the first recovery codes, shown this once.",
    )


class MfaRequiredSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=["mfa_required"])
    methods = serializers.ListField(
        child=serializers.ChoiceField(choices=["passkey", "totp", "recovery_code"]),
        help_text="The second factors this account can use.",
    )


class MfaStatusSerializer(serializers.Serializer):
    enabled = serializers.BooleanField(help_text="Whether signing in with the password needs a second step.")
    totp_enabled = serializers.BooleanField()
    passkeys = serializers.IntegerField(help_text="How many passkeys the account has.")
    recovery_codes_remaining = serializers.IntegerField()


class TotpSetupSerializer(serializers.Serializer):
    secret = serializers.CharField(help_text="The base32 key, for typing into an app by hand.")
    otpauth_uri = serializers.CharField(help_text="The otpauth:// URI the QR code holds.")
    qr_svg = serializers.CharField(help_text="The QR code as an inline SVG document.")


class RecoveryCodesSerializer(serializers.Serializer):
    recovery_codes = serializers.ListField(child=serializers.CharField(), help_text="Shown this once; save them.")


class SecurityEventSerializer(serializers.Serializer):
    kind = serializers.CharField()
    description = serializers.CharField(source="get_kind_display")
    created_at = serializers.DateTimeField()
    ip_address = serializers.IPAddressField(allow_null=True)
    user_agent = serializers.CharField()
