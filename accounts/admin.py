"""Admin for support staff: find users, end their sessions, resend mails, read the audit log.

Nothing here shows a password hash, a token or a token hash. Every action goes
through accounts.flows.support, which records it with the acting staff member.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, UserChangeForm
from django.core.exceptions import ValidationError
from django.db.models import QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.http import HttpRequest
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from accounts.client_info import ClientInfo
from accounts.email_address import InvalidEmailAddress, normalize_email
from accounts.exceptions import InvalidName
from accounts.flows.device_sessions import EndReason, end_device_session
from accounts.flows.profile import clean_display_name
from accounts.flows.support import (
    staff_deactivate,
    staff_delete_user,
    staff_end_sessions,
    staff_mark_email_verified,
    staff_reactivate,
    staff_resend_verification,
    staff_send_password_reset,
)
from accounts.models import DeviceSession, SecurityEvent, User
from accounts.user_agents import describe_user_agent

RECENT_EVENTS_SHOWN = 20
# Fields whose values are secrets or hashes of secrets. The admin shows none
# of them, and must not let anyone filter by them either: a changelist URL
# such as ?refresh_token_hash__startswith=ab answers "some row matches" and
# lets its user read a hash one character at a time.
SECRET_FIELDS = frozenset({"password", "refresh_token_hash", "token_hash"})


class NoSecretLookupsMixin:
    """Refuse changelist lookups on a secret field, directly or through a relation
    (the admin answers 400, the same for every value)."""

    def lookup_allowed(self, lookup, value, request=None) -> bool:
        if SECRET_FIELDS.intersection(lookup.split(LOOKUP_SEP)):
            return False
        return super().lookup_allowed(lookup, value, request)


class ReadOnlyAdminMixin:
    """Rows that only flows may write: visible to those allowed, editable by no one."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class EmailVerifiedFilter(admin.SimpleListFilter):
    title = "email verified"
    parameter_name = "verified"

    def lookups(self, request, model_admin):
        return [("yes", "Yes"), ("no", "No")]

    def queryset(self, request, queryset):
        if self.value() == "yes":
            return queryset.filter(email_verified_at__isnull=False)
        if self.value() == "no":
            return queryset.filter(email_verified_at__isnull=True)
        return queryset


class DeviceSessionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = DeviceSession
    fk_name = "user"
    extra = 0
    ordering = ["-last_used_at"]
    fields = ["device", "ip_address", "created_at", "last_used_at", "expires_at", "revoked_at", "revoked_reason"]
    readonly_fields = fields
    verbose_name_plural = "device sessions"

    @admin.display(description="device")
    def device(self, session: DeviceSession) -> str:
        return describe_user_agent(session.user_agent)


class DisplayNameCleaningMixin:
    """The admin's user forms take names by the product's one rule (one line of printable text)."""

    def clean_name(self) -> str:
        try:
            return clean_display_name(self.cleaned_data["name"])
        except InvalidName as error:
            raise ValidationError(error.message, code=error.code) from None


class UserCreationAdminForm(DisplayNameCleaningMixin, AdminUserCreationForm):
    class Meta(AdminUserCreationForm.Meta):
        model = User
        fields = ("email", "name")

    def clean_email(self) -> str:
        try:
            return normalize_email(self.cleaned_data["email"])
        except InvalidEmailAddress as error:
            raise ValidationError(str(error)) from None


class UserChangeAdminForm(DisplayNameCleaningMixin, UserChangeForm):
    class Meta(UserChangeForm.Meta):
        model = User
        fields = "__all__"


@admin.register(User)
class UserAdmin(NoSecretLookupsMixin, DjangoUserAdmin):
    form = UserChangeAdminForm
    add_form = UserCreationAdminForm
    ordering = ["-date_joined"]
    list_display = ["email", "name", "email_verified", "is_active", "is_staff", "date_joined", "last_login"]
    list_filter = [EmailVerifiedFilter, "is_active", "is_staff", "is_superuser", "date_joined"]
    search_fields = ["email", "name"]
    readonly_fields = ["password_status", "last_login", "date_joined", "recent_events"]
    fieldsets = [
        (None, {"fields": ["email", "password_status"]}),
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
    ]

    def get_urls(self):
        # Passwords are never set in the admin: people reset their own by email.
        return [url for url in super().get_urls() if getattr(url, "name", None) != "auth_user_password_change"]

    def get_readonly_fields(self, request, obj=None):
        fields = list(super().get_readonly_fields(request, obj))
        if not request.user.is_superuser:
            # Only superusers may grant staff status, superuser status or permissions.
            fields += ["is_staff", "is_superuser", "groups", "user_permissions"]
        return fields

    def get_inlines(self, request, obj):
        return self.inlines if obj is not None and request.user.has_perm("accounts.view_devicesession") else []

    @admin.display(boolean=True, description="verified", ordering="email_verified_at")
    def email_verified(self, user: User) -> bool:
        return user.email_verified

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

    def save_model(self, request, obj, form, change):
        was_active = not change or User.objects.filter(pk=obj.pk, is_active=True).exists()
        super().save_model(request, obj, form, change)
        if change and was_active and not obj.is_active:
            # Deactivation must end every device session at once, not at token expiry.
            staff_deactivate(staff=request.user, user=obj, client=ClientInfo.from_request(request))

    def get_deleted_objects(self, objs, request):
        deleted, model_count, perms_needed, protected = super().get_deleted_objects(objs, request)
        # Sessions, tokens and todos go with their user; no one may delete them on their own.
        perms_needed.discard(DeviceSession._meta.verbose_name)
        return deleted, model_count, perms_needed, protected

    def delete_model(self, request, obj):
        staff_delete_user(staff=request.user, user=obj, client=ClientInfo.from_request(request))

    def delete_queryset(self, request, queryset):
        client = ClientInfo.from_request(request)
        for user in queryset:
            staff_delete_user(staff=request.user, user=user, client=client)

    def _run(self, request: HttpRequest, queryset: QuerySet[User], action, done: str) -> None:
        if not request.user.is_superuser:
            # Support helps users; only superusers act on staff accounts.
            skipped = (
                queryset.filter(is_staff=True).count() + queryset.filter(is_staff=False, is_superuser=True).count()
            )
            queryset = queryset.filter(is_staff=False, is_superuser=False)
            if skipped:
                self.message_user(
                    request, f"Skipped {skipped} staff account(s): only superusers act on staff.", messages.WARNING
                )
        client = ClientInfo.from_request(request)
        count = sum(1 for user in queryset if action(staff=request.user, user=user, client=client) is not False)
        self.message_user(request, f"{done}: {count} user(s).", messages.SUCCESS)

    @admin.action(description="End all sessions", permissions=["end_sessions"])
    def end_all_sessions(self, request, queryset):
        self._run(request, queryset, staff_end_sessions, "Sessions ended")

    @admin.action(description="Send a password-reset email", permissions=["send_password_reset"])
    def send_password_reset(self, request, queryset):
        self._run(request, queryset, staff_send_password_reset, "Password-reset email sent")

    @admin.action(description="Resend the verification email", permissions=["resend_verification"])
    def resend_verification(self, request, queryset):
        self._run(request, queryset, staff_resend_verification, "Verification email sent (unverified, active users)")

    @admin.action(
        description="Mark email address verified (replaces the password: a link to choose one is emailed)",
        permissions=["mark_email_verified"],
    )
    def mark_email_verified(self, request, queryset):
        self._run(request, queryset, staff_mark_email_verified, "Marked verified and sent a link to choose a password")

    @admin.action(description="Deactivate (ends every session)", permissions=["change_user_active"])
    def deactivate(self, request, queryset):
        self._run(request, queryset.filter(is_active=True), staff_deactivate, "Deactivated")

    @admin.action(description="Reactivate", permissions=["change_user_active"])
    def reactivate(self, request, queryset):
        self._run(request, queryset.filter(is_active=False), staff_reactivate, "Reactivated")

    def has_end_sessions_permission(self, request) -> bool:
        return request.user.has_perm("accounts.end_user_sessions")

    def has_send_password_reset_permission(self, request) -> bool:
        return request.user.has_perm("accounts.send_password_reset")

    def has_resend_verification_permission(self, request) -> bool:
        return request.user.has_perm("accounts.resend_verification")

    def has_mark_email_verified_permission(self, request) -> bool:
        return request.user.has_perm("accounts.mark_email_verified")

    def has_change_user_active_permission(self, request) -> bool:
        return request.user.has_perm("accounts.change_user_active")


@admin.register(DeviceSession)
class DeviceSessionAdmin(NoSecretLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["user", "device", "ip_address", "created_at", "last_used_at", "expires_at", "revoked_at"]
    list_filter = ["revoked_reason", "created_at", "last_used_at"]
    search_fields = ["user__email", "ip_address"]
    list_select_related = ["user"]
    # The refresh-token hash is deliberately absent.
    fields = [
        "user",
        "device",
        "user_agent",
        "ip_address",
        "created_at",
        "last_used_at",
        "authenticated_at",
        "expires_at",
        "revoked_at",
        "revoked_reason",
    ]
    readonly_fields = fields
    actions = ["end_sessions"]

    @admin.display(description="device")
    def device(self, session: DeviceSession) -> str:
        return describe_user_agent(session.user_agent)

    @admin.action(description="End the selected sessions", permissions=["end_sessions"])
    def end_sessions(self, request, queryset):
        client = ClientInfo.from_request(request)
        ended = 0
        if not request.user.is_superuser:
            queryset = queryset.filter(user__is_staff=False, user__is_superuser=False)
        for session in queryset.filter(revoked_at__isnull=True):
            end_device_session(
                user=session.user_id,
                session_id=session.pk,
                reason=EndReason.ENDED_BY_STAFF,
                client=client,
                actor=request.user,
            )
            ended += 1
        self.message_user(request, f"Sessions ended: {ended}.", messages.SUCCESS)

    def has_end_sessions_permission(self, request) -> bool:
        return request.user.has_perm("accounts.end_user_sessions")


@admin.register(SecurityEvent)
class SecurityEventAdmin(NoSecretLookupsMixin, ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = ["created_at", "kind", "user", "actor", "ip_address", "device", "detail"]
    list_filter = ["kind", "created_at"]
    search_fields = ["user__email", "actor__email", "ip_address"]
    list_select_related = ["user", "actor"]
    date_hierarchy = "created_at"
    fields = ["created_at", "kind", "user", "actor", "email_hash", "ip_address", "user_agent", "detail"]
    readonly_fields = fields

    @admin.display(description="device")
    def device(self, event: SecurityEvent) -> str:
        return describe_user_agent(event.user_agent) if event.user_agent else "—"
