"""The provider's URLs: DOT under /o/ (the issuer's path), GitHub's, the sign-in page, and the test-control ones."""

from django.contrib.auth.views import LoginView
from django.urls import include, path
from oauth2_provider.views import AuthorizationView, TokenView

from tests.oidc_provider import github, views

urlpatterns = [
    path("o/", include("oauth2_provider.urls")),
    # GitHub's paths (GitHub Enterprise Server's: the API under /api/v3), without trailing slashes.
    path("login/oauth/authorize", AuthorizationView.as_view()),
    path("login/oauth/access_token", TokenView.as_view()),
    path("api/v3/user", github.UserView.as_view()),
    path("api/v3/user/emails", github.EmailsView.as_view()),
    path("accounts/login/", LoginView.as_view(), name="login"),
    path("testing/clients/", views.clients),
    path("testing/users/", views.users),
    path("testing/faults/", views.faults),
    path("testing/reset/", views.reset),
]
