"""The errors that account flows raise, each with a stable machine-readable code."""

from __future__ import annotations

from typing import TYPE_CHECKING

from django.core.exceptions import PermissionDenied

if TYPE_CHECKING:
    from accounts.models import User


class AccountError(Exception):
    """Base of every expected failure of an account flow.

    ``code`` is stable and machine-readable (the API returns it); ``message`` is
    safe to show to the person; ``field`` names the input it is about, if any.
    """

    code = "account_error"
    message = "Something went wrong."
    field: str | None = None

    def __init__(self, message: str | None = None, *, field: str | None = None):
        if message is not None:
            self.message = message
        if field is not None:
            self.field = field
        super().__init__(self.message)


class InvalidCredentials(AccountError):
    code = "invalid_credentials"
    message = "The email address or password is not correct."


class EmailNotVerified(AccountError):
    code = "email_not_verified"
    message = "Please verify your email address before signing in."

    def __init__(self, user: User):
        super().__init__()
        self.user = user


class InvalidEmail(AccountError):
    code = "invalid_email"
    message = "Enter a valid email address."
    field = "email"


class InvalidName(AccountError):
    code = "invalid_name"
    message = "Enter your name on one line, without control characters."
    field = "name"


class PasswordRejected(AccountError):
    """The new password breaks the password policy; ``messages`` says how."""

    code = "password_rejected"
    message = "This password cannot be used."
    field = "password"

    def __init__(self, messages: list[str], *, field: str | None = None):
        super().__init__(" ".join(messages), field=field)
        self.messages = messages


class TokenInvalid(AccountError):
    code = "token_invalid"
    message = "This link is not valid. It may have been mistyped or replaced by a newer one."
    field = "token"


class TokenExpired(TokenInvalid):
    code = "token_expired"
    message = "This link has expired."


class TokenUsed(TokenInvalid):
    code = "token_used"
    message = "This link has already been used."


class RefreshTokenInvalid(AccountError):
    """Missing, unknown, expired or revoked refresh token."""

    code = "refresh_token_invalid"
    message = "Your session has ended. Please sign in again."


class RefreshTokenReused(RefreshTokenInvalid):
    """A refresh token that was already exchanged came back: the session is ended."""

    code = "refresh_token_reused"


class SessionNotFound(AccountError):
    code = "not_found"
    message = "No such session."


class InvalidPassword(AccountError):
    """The current password, asked for again to confirm a sensitive action, is wrong."""

    code = "invalid_password"
    message = "The password is not correct."
    field = "password"


class ReauthenticationRequired(AccountError):
    """Sensitive actions need a sign-in or password entry within the last few minutes."""

    code = "reauthentication_required"
    message = "For your security, please enter your password again."


class PasswordProofRequired(AccountError):
    """Verifying an address from a browser other than the one that signed up
    needs the account's password, or a new one that replaces it; confirming a
    new address needs the password unless signed in as the account."""

    code = "password_required"
    message = "To use this link here, enter the account's password (or, to verify a new account, choose a new one)."
    field = "password"


class StaffAccountProtected(AccountError, PermissionDenied):
    """Only superusers act on staff accounts (a 403 wherever Django answers PermissionDenied)."""

    code = "staff_account_protected"
    message = "Only superusers can act on staff accounts."


class EmailUnchanged(AccountError):
    code = "email_unchanged"
    message = "This is already your email address."
    field = "new_email"


class SecondFactorRequired(ReauthenticationRequired):
    """Managing the second factors of an account that has them needs one of them, recently."""

    message = (
        "For your security, confirm it is you with your second factor first: your passkey, "
        "a code from your authenticator app, or a recovery code."
    )


class InvalidCode(AccountError):
    """A second-factor code (TOTP or recovery code) that is wrong, used already, or of no factor."""

    code = "invalid_code"
    message = "That code is not correct. Try the newest code from your app, or a recovery code."
    field = "code"


class SignInCodeInvalid(AccountError):
    """An emailed sign-in code that is wrong, expired, used, out of attempts, or for another address.

    One answer for all of them, and for an address without an account: which of them it was
    would tell whether the address has one."""

    code = "invalid_code"
    message = "That code is not right, or it has expired. Check it, or ask for a new one."
    field = "code"


class PendingSignInInvalid(AccountError):
    """No sign-in waits for a second factor here: it expired, ran out of attempts, finished or never began."""

    code = "sign_in_expired"
    message = "This sign-in has expired. Please sign in again."


class SignInInterrupted(PendingSignInInvalid):
    """The account changed while its sign-in was under way (a reset, a takeover of an unproven
    account, a deactivation): what the first factor proved no longer holds."""

    message = "Your account changed while you were signing in. Please sign in again."


class TotpAlreadyEnabled(AccountError):
    code = "totp_already_enabled"
    message = "An authenticator app is already set up. Turn it off first to set up another."


class TotpSetupRequired(AccountError):
    code = "totp_setup_required"
    message = "Start the authenticator app setup first."


class MfaNotEnabled(AccountError):
    code = "mfa_not_enabled"
    message = "Two-factor authentication is not turned on."


class PasskeyRefused(AccountError):
    """A passkey's answer that proves nothing: a bad signature, the wrong origin or relying party, no
    user verification where it is required, or an answer that is not a WebAuthn credential at all."""

    code = "passkey_refused"
    message = "That passkey could not be verified. Try again, or sign in another way."
    field = "credential"
    # For the audit log: whose passkey it was, when known, and what py_webauthn said.
    account: User | None = None
    why: str = ""


class PasskeyUnknown(PasskeyRefused):
    """The credential is not (or no longer) a passkey of any account here, or not of this one."""

    code = "passkey_unknown"
    message = "That passkey is not registered here. It may have been removed; sign in another way."


class PasskeyChallengeInvalid(PasskeyRefused):
    """The challenge the answer signs was never issued, expired, or was used already (a replay)."""

    code = "passkey_challenge_invalid"
    message = "That passkey prompt has expired. Please try again."


class PasskeyCloned(PasskeyRefused):
    """A device-bound passkey whose signature counter did not rise: a copy of its key is in use."""

    code = "passkey_cloned"
    message = "This passkey was refused: it looks like a copy of your security key. Use another way to sign in."


class PasskeyAlreadyRegistered(AccountError):
    code = "passkey_already_registered"
    message = "This passkey is already registered."
    field = "credential"


class PasskeyLimitReached(AccountError):
    code = "passkey_limit_reached"
    message = "This account has as many passkeys as it may hold. Remove one first."


class PasskeyNotFound(AccountError):
    code = "not_found"
    message = "No such passkey."


class InvalidPasskeyName(AccountError):
    code = "invalid_passkey_name"
    message = "Name the passkey in 1 to 64 characters, on one line."
    field = "name"


class NoPasskey(AccountError):
    code = "no_passkey"
    message = "This account has no passkey."


class SocialSignInFailed(AccountError):
    """A sign-in with a provider did not come back with an identity we can trust; ``code`` says why."""

    code = "social_failed"
    message = "Signing in with the provider did not work. Please try again."


class SocialDenied(SocialSignInFailed):
    code = "social_denied"
    message = "You did not allow the sign-in at the provider, so nothing was changed."


class SocialStateInvalid(SocialSignInFailed):
    code = "social_state_invalid"
    message = "This sign-in was not started in this browser, or it expired or was already used. Please start again."


class SocialProviderUnavailable(SocialSignInFailed):
    code = "social_provider_unavailable"
    message = "The provider could not be reached. Please try again in a few minutes, or sign in another way."


class SocialTokenRefused(SocialSignInFailed):
    """The provider refused the code, or what it sent back is not a valid ID token for this sign-in."""

    code = "social_token_invalid"
    message = "The provider's answer could not be verified, so nobody was signed in. Please start again."


class SocialEmailMissing(SocialSignInFailed):
    code = "social_email_missing"
    message = (
        "The provider did not share an email address, which an account here needs. Allow access to your "
        "address at the provider, or sign up with a password."
    )


class SocialIdentityTaken(AccountError):
    code = "social_identity_taken"
    message = "This provider account is already connected to another account here."


class SocialIdentityMismatch(AccountError):
    code = "social_identity_mismatch"
    message = "You signed in at the provider with an account that is not connected to this one."


class SocialIdentityNotFound(AccountError):
    code = "social_identity_not_found"
    message = "This connection does not exist."


class SocialLastSignInMethod(AccountError):
    code = "social_last_sign_in_method"
    message = (
        "This is the only way to sign in to your account. Set a password or add a passkey before disconnecting it."
    )


class AccountInactive(AccountError):
    code = "account_inactive"
    message = "This account cannot sign in. Please contact support."
