"""Admin for support staff: find users, end their sessions, resend mails, read the audit log.

Nothing here shows a password hash, a token or a token hash. Every action goes
through accounts.flows.support, which records it with the acting staff member
and decides whom support may act on; the classes here only call it and report.

The admin classes are subclassed unparameterised (ModelAdmin[User] is typing-only:
subscripting at run time needs django_stubs_ext, a development dependency), so each
method names its model type instead.
"""

from collections.abc import Sequence
from typing import Any

from django.contrib import admin, messages
from django.contrib.admin.options import InlineModelAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Exists, Model, OuterRef, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.urls import URLPattern, reverse
from django.utils.html import format_html, format_html_join

from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.exceptions import InvalidName
from accounts.flows.mfa import mfa_status
from accounts.flows.profile import clean_display_name
from accounts.flows.support import (
    Outcome,
    StaffAction,
    may_act_on,
    staff_act_on_users,
    staff_clear_undeliverable,
    staff_deactivate,
    staff_delete_user,
    staff_end_device_sessions,
    staff_end_sessions,
    staff_mark_email_verified,
    staff_reactivate,
    staff_resend_verification,
    staff_reset_mfa,
    staff_save_user,
    staff_send_password_reset,
)
from accounts.models import (
    DeviceSession,
    OutboundEmail,
    Passkey,
    SecurityEvent,
    TotpAuthenticator,
    UndeliverableAddress,
    User,
)
from accounts.user_agents import describe_user_agent

RECENT_EVENTS_SHOWN = 20
# Fields whose values are secrets or hashes of secrets. The admin shows none
# of them, and must not let anyone filter by them either: a changelist URL
# such as ?refresh_token_hash__startswith=ab answers "some row matches" and
# lets its user read a hash one character at a time.
SECRET_FIELDS = frozenset(
    {
        "password",
        "refresh_token_hash",
        "token_hash",
        "secret_encrypted",
        "content_encrypted",
        "code_hash",
        "handle_hash",
        "last_used_step",
    }
)


def acting_staff(request: HttpRequest) -> User:
    """The staff member using the admin (the admin site lets no one else in)."""
    if not isinstance(request.user, User):
        raise PermissionDenied
    return request.user


def report_outcome(
    model_admin: admin.ModelAdmin, request: HttpRequest, outcome: Outcome, *, done: str, skipped: str
) -> None:
    """Say what an action did, and what it left alone (``skipped`` names what was counted)."""
    if outcome.skipped_staff:
        model_admin.message_user(
            request, f"Skipped {outcome.skipped_staff} {skipped}: only superusers act on staff.", messages.WARNING
        )
    model_admin.message_user(request, done, messages.SUCCESS)


class NoSecretLookupsMixin(admin.ModelAdmin):
    """Refuse changelist lookups on a secret field, directly or through a relation
    (the admin answers 400, the same for every value)."""

    def lookup_allowed(self, lookup: str, value: str, request: HttpRequest | None = None) -> bool:
        if SECRET_FIELDS.intersection(lookup.split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)


class ReadOnlyAdminMixin:
    """Rows that only flows may write: visible to those allowed, editable by no one."""

    def has_add_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        return False


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        if self.value() == "yes":
            return queryset.filter(email_verified_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(email_verified_at__isnull=True)
        return queryset


class MfaFilter(admin.SimpleListFilter):
    title = "two-factor authentication"
    parameter_name = "mfa"

    def lookups(self, request: HttpRequest, model_admin: admin.ModelAdmin) -> list[tuple[str, str]]:
        return [("yes", "On"), ("no", "Off")]

    def queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> QuerySet[User]:
        has_mfa = Exists(TotpAuthenticator.objects.filter(user=OuterRef("pk"), confirmed_at__isnull=False)) | Exists(
            Passkey.objects.filter(user=OuterRef("pk"))
        )
        if self.value() == "yes":
            return queryset.filter(has_mfa)
        if self.value() == "no":
            return queryset.exclude(has_mfa)
        return queryset


class DeviceSessionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeviceSession
    fk_name = "user"
    extra = 0
    ordering = ["-last_used_at"]
    fields = readonly_fields = (
        "device",
        "ip_address",
        "created_at",
        "last_used_at",
        "expires_at",
        "revoked_at",
        "revoked_reason",
    )
    verbose_name_plural = "device sessions"

    @admin.display(description="device")
    def device(self, session: DeviceSession) -> str:
        return describe_user_agent(session.user_agent)


class DisplayNameCleaningMixin:
    """The admin's user forms take names by the product's one rule (one line of printable text)."""

    cleaned_data: dict[str, Any]

    def clean_name(self) -> str:
        try:
            return clean_display_name(self.cleaned_data["name"])
        except InvalidName as error:
            raise ValidationError(error.message, code=error.code) from None


class UserCreationAdminForm(DisplayNameCleaningMixin, AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email", "name")

    def clean_email(self) -> str:
        try:
            return normalize_email(self.cleaned_data["email"])
        except InvalidEmailAddress as error:
            raise ValidationError(str(error)) from None


class UserChangeAdminForm(DisplayNameCleaningMixin, UserChangeForm):
    class Meta:
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(NoSecretLookupsMixin, DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    ordering = ["-date_joined"]
    list_display = ["email", "name", "email_verified", "mfa", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = [EmailVerifiedFilter, MfaFilter, "is_active", "is_staff", "is_superuser", "date_joined"]
    search_fields = ["email", "name"]
    readonly_fields = ["password_status", "two_factor", "last_login", "date_joined", "recent_events"]
    fieldsets = [
        (None, {"fields": ["email", "password_status", "two_factor"]}),
        ("Profile", {"fields": ["name", "email_verified_at"]}),
        ("Permissions", {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        ("Dates", {"fields": ["last_login", "date_joined"]}),
        ("Recent security events", {"fields": ["recent_events"]}),
    ]
    add_fieldsets = [
        (None, {"classes": ["wide"], "fields": ["email", "name", "password1", "password2"]}),
    ]
    inlines = [DeviceSessionInline]
    actions = [
        "end_all_sessions",
        "send_password_reset",
        "resend_verification",
        "mark_email_verified",
        "deactivate",
        "reactivate",
        "reset_mfa",
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[User]:
        # Whether each listed user has MFA, in the list's own query.
        return (
            super()
            .get_queryset(request)
            .annotate(
                has_mfa=Exists(TotpAuthenticator.objects.filter(user=OuterRef("pk"), confirmed_at__isnull=False))
                | Exists(Passkey.objects.filter(user=OuterRef("pk")))
            )
        )

    def get_urls(self) -> list[URLPattern]:
        # Passwords are never set in the admin: people reset their own by email.
        return [url for url in super().get_urls() if url.name != "auth_user_password_change"]

    def has_change_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        # The form and the delete page obey the rule every support action does (flows/support.py).
        allowed = super().has_change_permission(request, obj)
        return allowed and (not isinstance(obj, User) or may_act_on(acting_staff(request), obj))

    def has_delete_permission(self, request: HttpRequest, obj: Model | None = None) -> bool:
        allowed = super().has_delete_permission(request, obj)
        return allowed and (not isinstance(obj, User) or may_act_on(acting_staff(request), obj))

    def get_readonly_fields(self, request: HttpRequest, obj: User | None = None) -> list[str]:
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Only superusers may grant staff status, superuser status or permissions.
            fields += ["is_staff", "is_superuser", "groups", "user_permissions"]
        return fields

    def get_inlines(self, request: HttpRequest, obj: User | None) -> list[type[InlineModelAdmin]]:
        shows_sessions = obj is not None and request.user.has_perm("accounts.view_devicesession")
        return list(self.inlines) if shows_sessions else []

    @admin.display(boolean=True, description="verified", ordering="email_verified_at")
    def email_verified(self, user: User) -> bool:
        return user.email_verified

    @admin.display(boolean=True, description="2FA", ordering="has_mfa")
    def mfa(self, user: User) -> bool:
        return bool(getattr(user, "has_mfa", False))

    @admin.display(description="two-factor authentication")
    def two_factor(self, user: User) -> str:
        status = mfa_status(user=user)
        if not status.enabled:
            return "Off."
        factors = (["authenticator app"] if status.totp_enabled else []) + (
            [f"{len(status.passkeys)} passkey(s)"] if status.passkeys else []
        )
        return (
            f"On: {' and '.join(factors)}; {status.recovery_codes_remaining} of 10 recovery codes unused. "
            "Use the “Reset two-factor authentication” action for someone who lost them all."
        )

    @admin.display(description="password")
    def password_status(self, user: User) -> str:
        if not user.has_usable_password():
            return "Not set."
        return "Set. Use the “Send a password-reset email” action to help someone who lost it."

    @admin.display(description="recent security events")
    def recent_events(self, user: User) -> str:
        events = SecurityEvent.objects.filter(user=user).select_related("actor")[:RECENT_EVENTS_SHOWN]
        if not events:
            return "None."
        rows = format_html_join(
            "",
            "<li>{} — {}{}</li>",
            (
                (
                    f"{event.created_at:%Y-%m-%d %H:%M:%S} UTC",
                    event.get_kind_display(),
                    f" by {event.actor.email}" if event.actor else "",
                )
                for event in events
            ),
        )
        link = reverse("admin:accounts_securityevent_changelist") + f"?user__id__exact={user.pk}"
        return format_html('<ul class="recent-events">{}</ul><a href="{}">All events of this user</a>', rows, link)

    def save_model(self, request: HttpRequest, obj: User, form: Any, change: bool) -> None:
        if not change:
            super().save_model(request, obj, form, change)
            return
        # An edit that clears "active" must end every device session at once, not at token expiry.
        staff_save_user(staff=acting_staff(request), user=obj, client=ClientInfo.from_request(request))

    def get_deleted_objects(
        self, objs: Sequence[User] | QuerySet[User], request: HttpRequest
    ) -> tuple[list[str], dict[str, int], set[str], list[str]]:
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Sessions, tokens and todos go with their user; no one may delete them on their own.
        perms_needed.discard(str(DeviceSession._meta.verbose_name))
        # A selection that holds a staff account is refused whole for non-superusers (Django's
        # "you lack permission to delete" page), as deleting it one by one would be.
        staff = acting_staff(request)
        if any(isinstance(user, User) and not may_act_on(staff, user) for user in objs):
            perms_needed.add("staff accounts (only superusers act on them)")
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request: HttpRequest, obj: User) -> None:
        staff_delete_user(staff=acting_staff(request), user=obj, client=ClientInfo.from_request(request))

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        staff, client = acting_staff(request), ClientInfo.from_request(request)
        for user in queryset:
            staff_delete_user(staff=staff, user=user, client=client)

    def _run(self, request: HttpRequest, users: QuerySet[User], action: StaffAction, done: str) -> None:
        outcome = staff_act_on_users(
            staff=acting_staff(request), users=users, action=action, client=ClientInfo.from_request(request)
        )
        report_outcome(self, request, outcome, done=f"{done}: {outcome.done} user(s).", skipped="staff account(s)")

    @admin.action(description="End all sessions", permissions=["end_sessions"])
    def end_all_sessions(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._run(request, queryset, staff_end_sessions, "Sessions ended")

    @admin.action(description="Send a password-reset email", permissions=["send_password_reset"])
    def send_password_reset(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._run(request, queryset, staff_send_password_reset, "Password-reset email sent")

    @admin.action(description="Resend the verification email", permissions=["resend_verification"])
    def resend_verification(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._run(request, queryset, staff_resend_verification, "Verification email sent (unverified, active users)")

    @admin.action(
        description="Mark email address verified (replaces the password: a link to choose one is emailed)",
        permissions=["mark_email_verified"],
    )
    def mark_email_verified(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._run(request, queryset, staff_mark_email_verified, "Marked verified and sent a link to choose a password")

    @admin.action(description="Deactivate (ends every session)", permissions=["change_user_active"])
    def deactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._run(request, queryset.filter(is_active=True), staff_deactivate, "Deactivated")

    @admin.action(description="Reactivate", permissions=["change_user_active"])
    def reactivate(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._run(request, queryset.filter(is_active=False), staff_reactivate, "Reactivated")

    @admin.action(
        description="Reset two-factor authentication (turns it off; the user is emailed)",
        permissions=["reset_mfa"],
    )
    def reset_mfa(self, request: HttpRequest, queryset: QuerySet[User]) -> None:
        self._run(request, queryset, staff_reset_mfa, "Two-factor authentication reset (users who had it)")

    def has_reset_mfa_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.reset_user_mfa")

    def has_end_sessions_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.end_user_sessions")

    def has_send_password_reset_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.send_password_reset")

    def has_resend_verification_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.resend_verification")

    def has_mark_email_verified_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.mark_email_verified")

    def has_change_user_active_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.change_user_active")


@admin.register(DeviceSession)
class DeviceSessionAdmin(ReadOnlyAdminMixin, NoSecretLookupsMixin):
    list_display = ["user", "device", "ip_address", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_reason", "created_at", "last_used_at"]
    search_fields = ["user__email", "ip_address"]
    list_select_related = ["user"]
    # The refresh-token hash is deliberately absent.
    fields = readonly_fields = (
        "user",
        "device",
        "user_agent",
        "ip_address",
        "created_at",
        "last_used_at",
        "authenticated_at",
        "amr",
        "expires_at",
        "revoked_at",
        "revoked_reason",
    )
    actions = ["end_sessions"]

    @admin.display(description="device")
    def device(self, session: DeviceSession) -> str:
        return describe_user_agent(session.user_agent)

    @admin.action(description="End the selected sessions", permissions=["end_sessions"])
    def end_sessions(self, request: HttpRequest, queryset: QuerySet[DeviceSession]) -> None:
        outcome = staff_end_device_sessions(
            staff=acting_staff(request), sessions=queryset, client=ClientInfo.from_request(request)
        )
        report_outcome(
            self, request, outcome, done=f"Sessions ended: {outcome.done}.", skipped="session(s) of staff accounts"
        )

    def has_end_sessions_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.end_user_sessions")


@admin.register(SecurityEvent)
class SecurityEventAdmin(ReadOnlyAdminMixin, NoSecretLookupsMixin):
    list_display = ["created_at", "kind", "user", "actor", "ip_address", "device", "detail"]
    list_filter = ["kind", "created_at"]
    search_fields = ["user__email", "actor__email", "ip_address"]
    list_select_related = ["user", "actor"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "created_at",
        "kind",
        "user",
        "actor",
        "email_hash",
        "ip_address",
        "user_agent",
        "detail",
    )

    @admin.display(description="device")
    def device(self, event: SecurityEvent) -> str:
        return describe_user_agent(event.user_agent) if event.user_agent else "—"


@admin.register(OutboundEmail)
class OutboundEmailAdmin(ReadOnlyAdminMixin, NoSecretLookupsMixin):
    """The outbox: what was sent to whom and when, what waits, what failed for good (never the content)."""

    list_display = ["created_at", "template", "to", "status", "attempts", "sent_at", "last_error"]
    list_filter = ["status", "template", "created_at"]
    search_fields = ["to", "user__email"]
    list_select_related = ["user"]
    date_hierarchy = "created_at"
    fields = readonly_fields = (
        "created_at",
        "template",
        "to",
        "user",
        "status",
        "attempts",
        "next_attempt_at",
        "sent_at",
        "last_error",
        "provider_message_id",
    )


@admin.register(UndeliverableAddress)
class UndeliverableAddressAdmin(ReadOnlyAdminMixin, NoSecretLookupsMixin):
    """Addresses mail does not reach (from the ESP's bounce and complaint reports); letting mail go to them again."""

    list_display = ["address", "reason", "description", "marked_at"]
    list_filter = ["reason", "marked_at"]
    search_fields = ["address"]
    date_hierarchy = "marked_at"
    fields = readonly_fields = ("address", "reason", "description", "marked_at")
    actions = ["clear"]

    @admin.action(description="Send email to these addresses again", permissions=["clear"])
    def clear(self, request: HttpRequest, queryset: QuerySet[UndeliverableAddress]) -> None:
        outcome = staff_clear_undeliverable(
            staff=acting_staff(request), marks=queryset, client=ClientInfo.from_request(request)
        )
        report_outcome(self, request, outcome, done=f"Email goes to {outcome.done} address(es) again.", skipped="")

    def has_clear_permission(self, request: HttpRequest) -> bool:
        return request.user.has_perm("accounts.clear_undeliverable_address")
