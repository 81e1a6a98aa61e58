"""URLs of the account pages (the paths are part of the product's contract)."""

from django.urls import path

from accounts import mfa_views, passkey_views, social_views, views

app_name = "accounts"

urlpatterns = [
    path("", views.account_home, name="home"),
    path("signup/", views.signup, name="signup"),
    path("signup/done/", views.signup_done, name="signup_done"),
    path("login/", views.login_view, name="login"),
    path("login/mfa/", mfa_views.login_mfa, name="login_mfa"),
    path("login/mfa/passkey/options/", mfa_views.login_mfa_passkey_options, name="login_mfa_passkey_options"),
    path("login/passkey/", passkey_views.login_passkey, name="login_passkey"),
    path("login/passkey/options/", passkey_views.login_passkey_options, name="login_passkey_options"),
    path("login/email/", views.email_login, name="login_email"),
    path("login/email/code/", views.email_login_code, name="login_email_code"),
    path("login/email/confirm/", views.EmailSignInLinkView.as_view(), name="login_email_confirm"),
    path("login/email/<str:token>/", views.EmailSignInLinkView.as_view(), name="login_email_link"),
    path("logout/", views.logout_view, name="logout"),
    path("social/connect/", social_views.social_connect, name="social_connect"),
    path("social/not-me/", social_views.SocialNotMeView.as_view(), name="social_not_me_confirm"),
    path("social/not-me/<str:token>/", social_views.SocialNotMeView.as_view(), name="social_not_me"),
    path("social/<str:provider>/login/", social_views.social_login, name="social_login"),
    path("social/<str:provider>/callback/", social_views.social_callback, name="social_callback"),
    path("security/social/<str:identity_id>/disconnect/", social_views.social_disconnect, name="social_disconnect"),
    # Fixed paths before the <token> ones that would otherwise swallow them.
    path("verify-email/resend/", views.resend_verification, name="resend_verification"),
    path("verify-email/sent/", views.resend_verification_done, name="resend_verification_done"),
    path("verify-email/confirm/", views.VerifyEmailView.as_view(), name="verify_email_confirm"),
    path("verify-email/<str:token>/", views.VerifyEmailView.as_view(), name="verify_email"),
    path("password/reset/", views.password_reset, name="password_reset"),
    path("password/reset/sent/", views.password_reset_done, name="password_reset_done"),
    path("password/reset/set-password/", views.PasswordResetView.as_view(), name="password_reset_set"),
    path("password/reset/<str:token>/", views.PasswordResetView.as_view(), name="password_reset_confirm"),
    path("profile/", views.profile, name="profile"),
    path("password/change/", views.password_change, name="password_change"),
    path("email/change/", views.email_change, name="email_change"),
    path("email/change/sent/", views.email_change_sent, name="email_change_sent"),
    path("email/change/cancel/", views.EmailChangeCancelView.as_view(), name="email_change_cancel_confirm"),
    path("email/change/cancel/<str:token>/", views.EmailChangeCancelView.as_view(), name="email_change_cancel"),
    path("sessions/", views.sessions, name="sessions"),
    path("sessions/end-others/", views.sessions_end_others, name="sessions_end_others"),
    path("sessions/<str:session_id>/end/", views.session_end, name="session_end"),
    path("reauthenticate/", views.reauthenticate_view, name="reauthenticate"),
    path(
        "reauthenticate/passkey/options/",
        passkey_views.reauthenticate_passkey_options,
        name="reauthenticate_passkey_options",
    ),
    path("security/", mfa_views.security, name="security"),
    path("security/totp/", mfa_views.totp_setup, name="totp_setup"),
    path("security/totp/disable/", mfa_views.totp_disable, name="totp_disable"),
    path("security/recovery-codes/", mfa_views.recovery_codes_regenerate, name="recovery_codes"),
    path("security/passkeys/not-me/", passkey_views.PasskeyNotMeView.as_view(), name="passkey_not_me_confirm"),
    path("security/passkeys/not-me/<str:token>/", passkey_views.PasskeyNotMeView.as_view(), name="passkey_not_me"),
    path("security/passkeys/add/", passkey_views.passkey_add, name="passkey_add"),
    path("security/passkeys/options/", passkey_views.passkey_options, name="passkey_options"),
    path("security/passkeys/<str:passkey_id>/rename/", passkey_views.passkey_rename, name="passkey_rename"),
    path("security/passkeys/<str:passkey_id>/remove/", passkey_views.passkey_remove, name="passkey_remove"),
    path("delete/", views.delete_account_view, name="delete_account"),
]
