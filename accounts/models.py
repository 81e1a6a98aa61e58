"""Account data: the custom user, email-link tokens, device sessions, refresh tokens and second factors."""

import uuid
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.base_user import AbstractBaseUser
from django.contrib.auth.models import PermissionsMixin
from django.db import models
from django.db.models.functions import Lower
from django.utils import timezone

from accounts.managers import UserManager

USER_AGENT_MAX_LENGTH = 512


class User(AbstractBaseUser, PermissionsMixin):
    """A person who signs in with an email address and a password."""

    # Stored in the canonical form of accounts.email_address.normalize_email.
    email = models.EmailField(
        "email address",
        max_length=254,
        unique=True,
        error_messages={"unique": "A user with this email address already exists."},
    )
    name = models.CharField("display name", max_length=150, blank=True)
    email_verified_at = models.DateTimeField("email verified at", null=True, blank=True)
    is_active = models.BooleanField(
        "active",
        default=True,
        help_text="Inactive users cannot sign in.",
    )
    is_staff = models.BooleanField(
        "staff status",
        default=False,
        help_text="Designates whether the user can sign in to the admin site.",
    )
    date_joined = models.DateTimeField("date joined", default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS = ["name"]

    class Meta:
        verbose_name = "user"
        verbose_name_plural = "users"
        permissions = [
            ("end_user_sessions", "Can end all device sessions of a user"),
            ("send_password_reset", "Can send a password-reset email to a user"),
            ("resend_verification", "Can resend the verification email to a user"),
            ("mark_email_verified", "Can mark a user's email address verified"),
            ("change_user_active", "Can deactivate and reactivate users"),
            ("reset_user_mfa", "Can reset a user's two-factor authentication"),
        ]
        constraints = [
            # Addresses differing only in case are one account, whatever code
            # path writes the row.
            models.UniqueConstraint(Lower("email"), name="accounts_user_email_ci_unique"),
        ]

    def __str__(self) -> str:
        return self.email

    @property
    def email_verified(self) -> bool:
        return self.email_verified_at is not None

    def mark_email_verified(self, *, save: bool = True) -> None:
        """The address counts as proven from now on; ``save=False`` when the caller
        saves it with other fields (and ``email_verified_at`` among them)."""
        self.email_verified_at = timezone.now()
        if save:
            self.save(update_fields=["email_verified_at"])

    def get_full_name(self) -> str:
        return self.name or self.email

    def get_short_name(self) -> str:
        return self.name or self.email


class EmailLinkToken(models.Model):
    """A single-use secret sent by email; only its SHA-256 hash is stored."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    token_hash = models.CharField(max_length=64, unique=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        abstract = True

    def __str__(self) -> str:
        return f"{type(self).__name__} for user {self.user_id}"


class PasswordResetToken(EmailLinkToken):
    class Meta:
        db_table = "password_reset_tokens"
        indexes = [models.Index(fields=["user", "used_at"], name="reset_token_user_idx")]


class EmailVerificationToken(EmailLinkToken):
    class Purpose(models.TextChoices):
        VERIFY = "verify", "Verify the account's address"
        CHANGE = "change", "Confirm a new address"
        CANCEL_CHANGE = "cancel_change", "Cancel or undo an address change"
        REMOVE_PASSKEY = "remove_passkey", "Remove a passkey the owner did not add"
        REMOVE_SOCIAL = "remove_social", "Disconnect a provider the owner did not connect"

    # The address this token proves control of. For VERIFY it is the user's
    # address when sent (a later change makes the token useless); for CHANGE
    # it is the new address, which replaces the old one on confirmation; for
    # CANCEL_CHANGE it is the address the change was requested away from
    # (where the notice went), which stays or comes back.
    email = models.EmailField(max_length=254)
    purpose = models.CharField(max_length=16, choices=Purpose.choices, default=Purpose.VERIFY)
    # CHANGE only: the device session that asked. The change can be confirmed
    # only while that session is live, so ending it (a reset, sign-out
    # everywhere, support) also ends the request.
    session = models.ForeignKey(
        "DeviceSession", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    # CANCEL_CHANGE: whether the link may also move back a change that was
    # already confirmed. Only when the address it went to was proven when the
    # change was asked for; else its holder (a typo's owner) could take over.
    # REMOVE_PASSKEY: whether the link may leave the account without a second
    # factor: only when its passkey turned two-factor on.
    undo_allowed = models.BooleanField(default=False, editable=False)
    # REMOVE_PASSKEY only: the passkey the notice is about ("not me" removes it). The link goes
    # with the passkey; its ``email`` is the account's address when sent (a later change ends it).
    passkey = models.ForeignKey(
        "Passkey", null=True, blank=True, on_delete=models.CASCADE, related_name="+", editable=False
    )
    # REMOVE_SOCIAL only: the provider identity the notice is about (as ``passkey`` above).
    social_identity = models.ForeignKey(
        "SocialIdentity", null=True, blank=True, on_delete=models.CASCADE, related_name="+", editable=False
    )

    class Meta:
        db_table = "email_verification_tokens"
        indexes = [models.Index(fields=["user", "used_at"], name="verify_token_user_idx")]


class DeviceSessionQuerySet(models.QuerySet["DeviceSession"]):
    def live(self, now: datetime | None = None) -> "DeviceSessionQuerySet":
        """Sessions that can still be used: not ended, within both lifetimes, of an active user.

        The one definition of "live"; DeviceSession.is_live says the same of one row.
        """
        now = now or timezone.now()
        idle_cutoff = now - timedelta(seconds=settings.ACCOUNTS_REFRESH_IDLE_LIFETIME)
        return self.filter(
            revoked_at__isnull=True, expires_at__gt=now, last_used_at__gt=idle_cutoff, user__is_active=True
        )


class DeviceSession(models.Model):
    """One signed-in device: a browser or app holding a rotating refresh token.

    The seed design calls this table ``sessions``. Only the SHA-256 hash of the
    current refresh token is stored; access tokens name the session in ``sid``.
    """

    class EndReason(models.TextChoices):
        LOGOUT = "logout", "Signed out"
        ENDED_BY_USER = "ended_by_user", "Ended by the user"
        REFRESH_REUSE = "refresh_reuse", "Refresh token reuse detected"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        PASSWORD_RESET = "password_reset", "Password reset"
        USER_DEACTIVATED = "user_deactivated", "User deactivated"
        ENDED_BY_STAFF = "ended_by_staff", "Ended by support staff"
        ACCOUNT_SECURED = "account_secured", "Account secured after an unwanted change"
        PASSKEY_REMOVED = "passkey_removed", "The passkey it signed in with was removed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="device_sessions")
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(default=timezone.now)
    # The absolute end; the idle end is last_used_at + the idle lifetime.
    expires_at = models.DateTimeField()
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True)
    refresh_token_hash = models.CharField(max_length=64, unique=True, editable=False)
    rotated_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The rotation (its rotated_at) whose token last came back within the grace window from
    # another network than the rotation's: allowed once an hour (a phone changing networks).
    split_replay_at = models.DateTimeField(null=True, blank=True, editable=False)
    # The last time the person proved who they are on this device (sign-in or
    # password entry); sensitive actions need it to be recent. Access tokens carry it as auth_time.
    authenticated_at = models.DateTimeField(default=timezone.now)
    # How: RFC 8176 methods ("pwd", "otp", "mfa"), gathered at sign-in and by re-authentication.
    # A database default too, for processes of the previous release during a rolling deploy.
    amr = models.JSONField(default=list, db_default=models.Value([], output_field=models.JSONField()))
    # The last time a second factor was proven on this device: managing the factors needs it recent.
    second_factor_at = models.DateTimeField(null=True, blank=True)
    # The passkey it signed in with (first or second step): removing the passkey ends the session,
    # since a passkey, unlike a code, is a whole credential that an intruder may have added.
    passkey = models.ForeignKey(
        "Passkey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    revoked_at = models.DateTimeField(null=True, blank=True)
    revoked_reason = models.CharField(max_length=32, choices=EndReason.choices, blank=True)

    objects = DeviceSessionQuerySet.as_manager()

    class Meta:
        db_table = "sessions"
        verbose_name = "device session"
        indexes = [models.Index(fields=["user", "revoked_at"], name="session_user_revoked_idx")]

    def __str__(self) -> str:
        return f"Device session {self.pk} of user {self.user_id}"

    @property
    def idle_expires_at(self) -> datetime:
        return self.last_used_at + timedelta(seconds=settings.ACCOUNTS_REFRESH_IDLE_LIFETIME)

    @property
    def ends_at(self) -> datetime:
        """When the session ends unless it is used again (or ended) first."""
        return min(self.expires_at, self.idle_expires_at)

    def is_live(self, now: datetime | None = None) -> bool:
        """The same rule as DeviceSessionQuerySet.live, for a loaded row."""
        now = now or timezone.now()
        return self.revoked_at is None and now < self.ends_at and self.user.is_active


class RotatedRefreshToken(models.Model):
    """A refresh token that has been exchanged: seeing it again means it was copied."""

    token_hash = models.CharField(max_length=64, primary_key=True)
    # Its successor, sealed with a pad only the token itself unlocks (tokens.seal_successor),
    # so that a retry within the grace window gets the same successor back.
    # A database default too: during a rolling deploy, processes still on the previous release
    # insert rows without it.
    successor_sealed = models.CharField(max_length=64, blank=True, editable=False, db_default="")
    session = models.ForeignKey(DeviceSession, on_delete=models.CASCADE, related_name="+")
    rotated_at = models.DateTimeField()

    class Meta:
        db_table = "rotated_refresh_tokens"
        indexes = [
            # Each rotation clears the session's previous sealed successor: this finds that one row
            # without reading the session's whole history.
            models.Index(
                fields=["session"], condition=~models.Q(successor_sealed=""), name="rotated_sealed_session_idx"
            ),
        ]

    def __str__(self) -> str:
        return f"Rotated refresh token of session {self.session_id}"


class TotpAuthenticator(models.Model):
    """An account's authenticator app (RFC 6238). One row per account, kept when TOTP is turned off,
    so that the last accepted time step is never forgotten: a code is accepted once, ever."""

    user = models.OneToOneField(User, on_delete=models.CASCADE, related_name="totp", primary_key=True)
    # Fernet ciphertext of the base32 secret, and the id of the key that made it (accounts.encryption).
    secret_encrypted = models.TextField(blank=True, editable=False)
    secret_key_id = models.CharField(max_length=16, blank=True, editable=False)
    # Set when a code confirmed the secret: only then does TOTP protect the account.
    confirmed_at = models.DateTimeField(null=True, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    # The newest time step (Unix time // 30) accepted; only a later one is accepted next.
    last_used_step = models.BigIntegerField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "mfa_totp"
        verbose_name = "authenticator app"

    def __str__(self) -> str:
        return f"Authenticator app of user {self.user_id}"


class RecoveryCode(models.Model):
    """One single-use recovery code; only its keyed hash is stored (accounts.flows.mfa)."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    code_hash = models.CharField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "mfa_recovery_codes"
        indexes = [models.Index(fields=["user", "code_hash"], name="recovery_code_user_hash_idx")]

    def __str__(self) -> str:
        return f"Recovery code of user {self.user_id}"


class PendingSignIn(models.Model):
    """A sign-in whose first factor is proven and whose second is awaited: no session yet.

    Its handle (in the page's session, or an HttpOnly cookie for the API) is stored only as a
    hash. Each code spends one attempt (a conditional UPDATE), and completing it is single use.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    handle_hash = models.CharField(max_length=64, unique=True, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+")
    # The RFC 8176 methods proven so far ("pwd").
    amr = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    attempts_left = models.PositiveSmallIntegerField()
    completed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "pending_sign_ins"
        indexes = [models.Index(fields=["expires_at"], name="pending_sign_in_expires_idx")]

    def __str__(self) -> str:
        return f"Pending sign-in of user {self.user_id}"


class EmailSignInCode(EmailLinkToken):
    """An emailed sign-in code and link, for one address; only their hashes are stored.

    The link is an emailed token like the others (its SHA-256 in ``token_hash``); the code, which
    has only about 39 bits, is stored as an HMAC under SECRET_KEY, so a copy of the table does not
    give the codes away. A request for an address without an active account makes a row too, with
    no user and a code nobody was sent: trying a code then does the same work for every address.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # None for a code asked for an address without an account (the abstract base's is required).
    user = models.ForeignKey(  # type: ignore[assignment]
        User, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # accounts.audit.email_fingerprint of the address it was sent to (or asked for).
    address_key = models.CharField(max_length=64, editable=False)
    code_hash = models.CharField(max_length=64, editable=False)
    attempts_left = models.PositiveSmallIntegerField(editable=False)

    class Meta:
        db_table = "email_sign_in_codes"
        indexes = [
            models.Index(fields=["address_key", "-created_at"], name="sign_in_code_address_idx"),
            models.Index(fields=["expires_at"], name="sign_in_code_expires_idx"),
            models.Index(fields=["user"], name="sign_in_code_user_idx"),
        ]

    def __str__(self) -> str:
        return (
            f"Sign-in code for user {self.user_id}"
            if self.user_id
            else "Sign-in code for an address without an account"
        )


class Passkey(models.Model):
    """A WebAuthn credential (a passkey) of an account: only what verifying its assertions needs.

    No private key ever reaches the server; the public key is not a secret. The signature counter
    of a device-bound credential must rise with every use: one that does not is a cloned key.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="passkeys")
    name = models.CharField(max_length=64)
    credential_id = models.BinaryField(max_length=1023, unique=True, editable=False)
    # The COSE_Key of the credential, as the authenticator gave it.
    public_key = models.BinaryField(max_length=1023, editable=False)
    sign_count = models.BigIntegerField(default=0, editable=False)
    aaguid = models.CharField(max_length=36, blank=True, editable=False)
    transports = models.JSONField(default=list, blank=True, editable=False)
    # Backup eligible: a synced passkey (a password manager, a platform's keychain); backed up: synced now.
    backup_eligible = models.BooleanField(default=False, editable=False)
    backed_up = models.BooleanField(default=False, editable=False)
    # The WebAuthn user handle (random, the same for every passkey of the account): what a
    # discoverable credential hands back to say whose it is.
    user_handle = models.BinaryField(max_length=64, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "passkeys"
        ordering = ["created_at"]
        indexes = [models.Index(fields=["user", "created_at"], name="passkey_user_created_idx")]

    def __str__(self) -> str:
        return f"Passkey {self.name!r} of user {self.user_id}"


class SocialIdentity(models.Model):
    """An account at an identity provider (Google, GitHub, a company's OpenID provider) that signs in to a user.

    Found by (issuer, subject) alone, never by email address: an address can move between accounts
    at a provider, a subject never does.
    """

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="social_identities")
    # The configured provider's name (SOCIAL_PROVIDERS), for display and to sign in with it again.
    provider = models.CharField(max_length=32, editable=False)
    issuer = models.CharField(max_length=255, editable=False)
    subject = models.CharField(max_length=255, editable=False)
    # The address the provider gave when the identity was connected, to show the owner which one it is.
    email = models.EmailField(max_length=254, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "social_identities"
        ordering = ["created_at"]
        constraints = [models.UniqueConstraint(fields=["issuer", "subject"], name="social_identity_unique")]

    def __str__(self) -> str:
        return f"{self.provider} identity of user {self.user_id}"


class WebAuthnChallenge(models.Model):
    """A challenge handed to a browser for one WebAuthn ceremony: server-side, single use, short-lived.

    Only its hash is stored. The ceremony's answer carries the challenge back (in clientDataJSON),
    which finds the row; using it is one conditional UPDATE, so an assertion cannot be replayed.
    """

    class Purpose(models.TextChoices):
        REGISTER = "register", "Register a passkey"
        SIGN_IN = "sign_in", "Sign in with a passkey"
        SECOND_STEP = "second_step", "Second step of a sign-in"
        REAUTHENTICATE = "reauthenticate", "Re-authenticate"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    challenge_hash = models.CharField(max_length=64, unique=True, editable=False)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    # Whose ceremony it is (none for a passwordless sign-in, which names nobody).
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    pending_sign_in = models.ForeignKey(
        PendingSignIn, null=True, blank=True, on_delete=models.CASCADE, related_name="+"
    )
    # For a registration: the user handle the options gave the authenticator.
    user_handle = models.BinaryField(max_length=64, blank=True, default=b"", editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        db_table = "webauthn_challenges"
        indexes = [models.Index(fields=["expires_at"], name="webauthn_challenge_expires_idx")]

    def __str__(self) -> str:
        return f"WebAuthn challenge ({self.purpose})"


class SecurityEvent(models.Model):
    """The audit log: one security-relevant event. Never holds a password or token (or its hash)."""

    class Kind(models.TextChoices):
        SIGN_UP = "sign_up", "Account created"
        SIGN_UP_EXISTING = "sign_up_existing", "Sign-up attempted with this address"
        SIGN_IN_SUCCEEDED = "sign_in_succeeded", "Signed in"
        SIGN_IN_FAILED = "sign_in_failed", "Sign-in failed"
        SIGN_OUT = "sign_out", "Signed out"
        REFRESH_REUSE_DETECTED = "refresh_reuse_detected", "Refresh token reuse detected"
        SESSION_ENDED = "session_ended", "Session ended"
        PASSWORD_RESET_REQUESTED = "password_reset_requested", "Password reset requested"
        PASSWORD_RESET_COMPLETED = "password_reset_completed", "Password reset completed"
        PASSWORD_CHANGED = "password_changed", "Password changed"
        EMAIL_CHANGE_REQUESTED = "email_change_requested", "Email change requested"
        EMAIL_CHANGE_CONFIRMED = "email_change_confirmed", "Email change confirmed"
        EMAIL_CHANGE_CANCELLED = "email_change_cancelled", "Email change cancelled or undone"
        EMAIL_VERIFIED = "email_verified", "Email address verified"
        ACCOUNT_DELETED = "account_deleted", "Account deleted"
        RATE_LIMITED = "rate_limited", "Rate limited"
        STAFF_ACTION = "staff_action", "Staff action"
        MFA_ENABLED = "mfa_enabled", "Two-factor authentication turned on"
        MFA_DISABLED = "mfa_disabled", "Two-factor authentication turned off"
        MFA_FAILED = "mfa_failed", "Wrong two-factor code"
        RECOVERY_CODES_REGENERATED = "recovery_codes_regenerated", "New recovery codes made"
        RECOVERY_CODE_USED = "recovery_code_used", "Recovery code used"
        PASSKEY_ADDED = "passkey_added", "Passkey added"
        PASSKEY_REMOVED = "passkey_removed", "Passkey removed"
        PASSKEY_RENAMED = "passkey_renamed", "Passkey renamed"
        PASSKEY_REFUSED = "passkey_refused", "Passkey refused"
        SOCIAL_CONNECTED = "social_connected", "Provider connected"
        SOCIAL_DISCONNECTED = "social_disconnected", "Provider disconnected"
        SOCIAL_FAILED = "social_failed", "Provider sign-in failed"
        EMAIL_UNDELIVERABLE = "email_undeliverable", "Email to the address bounced or was reported as spam"
        EMAIL_DELIVERABLE_AGAIN = "email_deliverable_again", "Email to the address allowed again"
        SIGN_IN_CODE_REQUESTED = "sign_in_code_requested", "Sign-in code requested"

    kind = models.CharField(max_length=32, choices=Kind.choices)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="security_events")
    # The staff member who acted, for staff actions.
    actor = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    # A keyed hash of the address when no account is known (failed sign-ins for
    # unknown addresses, deleted accounts): correlatable, not reversible.
    email_hash = models.CharField(max_length=64, blank=True)
    ip_address = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True)
    created_at = models.DateTimeField(default=timezone.now, db_index=True)
    detail = models.JSONField(default=dict, blank=True)

    class Meta:
        db_table = "security_events"
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["user", "-created_at"], name="event_user_created_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} at {self.created_at:%Y-%m-%d %H:%M:%S}"


class OutboundEmail(models.Model):
    """One account email in the outbox, from the transaction of the change that caused it until sent.

    Its rendered content (which may hold a live link) is encrypted at rest (accounts.encryption)
    and dropped as soon as the email is sent or has failed for good; what stays is what support
    needs: to whom, which email, when, how many attempts and the last error (accounts.outbox)."""

    class Status(models.TextChoices):
        QUEUED = "queued", "Waiting to be sent"
        SENDING = "sending", "Being sent"
        SENT = "sent", "Sent"
        FAILED = "failed", "Failed for good"
        SUPPRESSED = "suppressed", "Not sent: the address is undeliverable"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)  # also its Message-ID
    template = models.CharField(max_length=64, editable=False)
    to = models.EmailField(max_length=254, editable=False)
    user = models.ForeignKey(User, null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False)
    # Sent only once this one is, and never if it fails for good (an address change's confirmation
    # waits for the notice to the current address).
    send_after = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="+", editable=False
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, editable=False)
    attempts = models.PositiveSmallIntegerField(default=0, editable=False)
    next_attempt_at = models.DateTimeField(default=timezone.now, editable=False)
    # While SENDING: until when the attempt may take; past it, the worker is taken to have stopped.
    lease_until = models.DateTimeField(null=True, blank=True, editable=False)
    content_encrypted = models.TextField(blank=True, editable=False)
    content_key_id = models.CharField(max_length=16, blank=True, editable=False)
    last_error = models.CharField(max_length=500, blank=True, editable=False)
    provider_message_id = models.CharField(max_length=255, blank=True, editable=False)
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        db_table = "outbound_emails"
        ordering = ["-created_at"]
        indexes = [
            models.Index(fields=["status", "next_attempt_at"], name="outbound_email_due_idx"),
            models.Index(fields=["to", "-created_at"], name="outbound_email_to_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.template} to {self.to} ({self.status})"


class UndeliverableAddress(models.Model):
    """An address mail does not reach, from the ESP's reports (accounts.flows.deliverability).

    While it is here only the emails a person asks for (a reset, a verification) are sent to it."""

    class Reason(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Bounced: the mailbox does not exist"
        SOFT_BOUNCES = "soft_bounces", "Bounced again and again (full or unavailable)"
        REJECTED = "rejected", "Refused by the email provider"
        COMPLAINT = "complaint", "Reported as spam by its owner"

    address = models.EmailField(max_length=254, unique=True, editable=False)
    reason = models.CharField(max_length=16, choices=Reason.choices, editable=False)
    description = models.CharField(max_length=200, blank=True, editable=False)  # the ESP's words
    marked_at = models.DateTimeField(default=timezone.now, editable=False)  # when the ESP saw what marked it

    class Meta:
        db_table = "undeliverable_addresses"
        ordering = ["-marked_at"]
        permissions = [("clear_undeliverable_address", "Can let email go to an undeliverable address again")]

    def __str__(self) -> str:
        return f"{self.address} ({self.get_reason_display()})"


class DeliveryEvent(models.Model):
    """A bounce, complaint or delivery an ESP reported, kept once per (ESP, event id, address)."""

    class Kind(models.TextChoices):
        HARD_BOUNCE = "hard_bounce", "Hard bounce"
        SOFT_BOUNCE = "soft_bounce", "Soft bounce"
        REJECTED = "rejected", "Rejected"
        COMPLAINT = "complaint", "Spam complaint"
        DELIVERED = "delivered", "Delivered"
        OTHER = "other", "Other"

    esp = models.CharField(max_length=32, editable=False)
    event_id = models.CharField(max_length=255, editable=False)
    address = models.EmailField(max_length=254, editable=False)
    message_id = models.CharField(max_length=255, blank=True, editable=False)  # the ESP's id of the email
    kind = models.CharField(max_length=16, choices=Kind.choices, editable=False)
    description = models.CharField(max_length=200, blank=True, editable=False)
    occurred_at = models.DateTimeField(editable=False)
    received_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "delivery_events"
        ordering = ["-occurred_at"]
        constraints = [
            models.UniqueConstraint(fields=["esp", "event_id", "address"], name="delivery_event_once"),
        ]
        indexes = [models.Index(fields=["address", "kind", "occurred_at"], name="delivery_event_address_idx")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} of {self.address} ({self.esp})"


class KnownDevice(models.Model):
    """A browser or device an account has signed in on, known by the random id in its device cookie
    (accounts.flows.known_devices): only the id's SHA-256 is stored. A sign-in from one not listed
    here tells the owner by email."""

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="+", editable=False)
    device_hash = models.CharField(max_length=64, editable=False)
    user_agent = models.CharField(max_length=USER_AGENT_MAX_LENGTH, blank=True, editable=False)
    first_seen_at = models.DateTimeField(default=timezone.now, editable=False)
    last_seen_at = models.DateTimeField(default=timezone.now, editable=False)

    class Meta:
        db_table = "known_devices"
        constraints = [models.UniqueConstraint(fields=["user", "device_hash"], name="known_device_once")]
        indexes = [
            models.Index(fields=["last_seen_at"], name="known_device_seen_idx"),
            # Whether any account has seen an id (a cookie nobody has seen gets a fresh one).
            models.Index(fields=["device_hash"], name="known_device_hash_idx"),
        ]

    def __str__(self) -> str:
        return f"device of {self.user_id} since {self.first_seen_at:%Y-%m-%d}"
