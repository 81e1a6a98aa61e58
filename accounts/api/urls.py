"""URLs of the accounts API, mounted at /api/auth/ (the paths are part of the contract)."""

from django.urls import path

from accounts.api import views

app_name = "auth-api"

urlpatterns = [
    path("register/", views.RegisterView.as_view(), name="register"),
    path("login/", views.LoginView.as_view(), name="login"),
    path("refresh/", views.RefreshView.as_view(), name="refresh"),
    path("logout/", views.LogoutView.as_view(), name="logout"),
    path("csrf/", views.CsrfView.as_view(), name="csrf"),
    path("sessions/", views.SessionListView.as_view(), name="sessions"),
    path("sessions/revoke-others/", views.RevokeOtherSessionsView.as_view(), name="sessions-revoke-others"),
    path("sessions/<str:session_id>/", views.SessionDetailView.as_view(), name="session-detail"),
    path("me/", views.MeView.as_view(), name="me"),
    path("events/", views.SecurityEventListView.as_view(), name="events"),
    path("reauthenticate/", views.ReauthenticateView.as_view(), name="reauthenticate"),
    path("password/change/", views.PasswordChangeView.as_view(), name="password-change"),
    path("email/change/", views.EmailChangeView.as_view(), name="email-change"),
    path("email/change/cancel/", views.EmailChangeCancelView.as_view(), name="email-change-cancel"),
    path("password/reset/", views.PasswordResetView.as_view(), name="password-reset"),
    path("password/reset/confirm/", views.PasswordResetConfirmView.as_view(), name="password-reset-confirm"),
    path("email/verify/", views.EmailVerifyView.as_view(), name="email-verify"),
    path("email/verify/resend/", views.EmailVerifyResendView.as_view(), name="email-verify-resend"),
]
