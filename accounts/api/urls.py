"""URLs of the accounts API, mounted at /api/auth/ (the paths are part of the contract)."""

from django.urls import path

from accounts.api.views import account, links, mfa, passkeys, sessions, signin, social

app_name = "auth-api"

urlpatterns = [
    path("register/", signin.RegisterView.as_view(), name="register"),
    path("login/", signin.LoginView.as_view(), name="login"),
    path("login/email/", signin.EmailLoginView.as_view(), name="login-email"),
    path("login/email/verify/", signin.EmailLoginVerifyView.as_view(), name="login-email-verify"),
    path("refresh/", signin.RefreshView.as_view(), name="refresh"),
    path("mfa/", mfa.MfaStatusView.as_view(), name="mfa"),
    path("mfa/verify/", signin.MfaVerifyView.as_view(), name="mfa-verify"),
    path("mfa/passkey/options/", signin.MfaPasskeyOptionsView.as_view(), name="mfa-passkey-options"),
    path("mfa/totp/", mfa.TotpView.as_view(), name="mfa-totp"),
    path("mfa/totp/setup/", mfa.TotpSetupView.as_view(), name="mfa-totp-setup"),
    path("mfa/totp/confirm/", mfa.TotpConfirmView.as_view(), name="mfa-totp-confirm"),
    path("mfa/recovery-codes/", mfa.RecoveryCodesView.as_view(), name="mfa-recovery-codes"),
    path("passkeys/", passkeys.PasskeyListView.as_view(), name="passkeys"),
    path("passkeys/register/options/", passkeys.PasskeyRegisterOptionsView.as_view(), name="passkey-register-options"),
    path("passkeys/register/", passkeys.PasskeyRegisterView.as_view(), name="passkey-register"),
    path("passkeys/sign-in/options/", passkeys.PasskeySignInOptionsView.as_view(), name="passkey-sign-in-options"),
    path("passkeys/sign-in/", passkeys.PasskeySignInView.as_view(), name="passkey-sign-in"),
    path("passkeys/<str:passkey_id>/", passkeys.PasskeyDetailView.as_view(), name="passkey-detail"),
    path("social/providers/", social.SocialProviderListView.as_view(), name="social-providers"),
    path("social/identities/", social.SocialIdentityListView.as_view(), name="social-identities"),
    path(
        "social/identities/<str:identity_id>/", social.SocialIdentityDetailView.as_view(), name="social-identity-detail"
    ),
    path("logout/", signin.LogoutView.as_view(), name="logout"),
    path("csrf/", signin.CsrfView.as_view(), name="csrf"),
    path("sessions/", sessions.SessionListView.as_view(), name="sessions"),
    path("sessions/revoke-others/", sessions.RevokeOtherSessionsView.as_view(), name="sessions-revoke-others"),
    path("sessions/<str:session_id>/", sessions.SessionDetailView.as_view(), name="session-detail"),
    path("me/", account.MeView.as_view(), name="me"),
    path("events/", account.SecurityEventListView.as_view(), name="events"),
    path("reauthenticate/", sessions.ReauthenticateView.as_view(), name="reauthenticate"),
    path(
        "reauthenticate/passkey/options/",
        passkeys.ReauthenticatePasskeyOptionsView.as_view(),
        name="reauthenticate-passkey-options",
    ),
    path("password/change/", account.PasswordChangeView.as_view(), name="password-change"),
    path("email/change/", account.EmailChangeView.as_view(), name="email-change"),
    path("email/change/cancel/", links.EmailChangeCancelView.as_view(), name="email-change-cancel"),
    path("password/reset/", links.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/confirm/", links.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("email/verify/", links.EmailVerifyView.as_view(), name="email-verify"),
    path("email/verify/resend/", links.EmailVerifyResendView.as_view(), name="email-verify-resend"),
]
