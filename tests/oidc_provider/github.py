"""GitHub's OAuth 2 app API, GitHub Enterprise Server's layout: ``/login/oauth/...`` and ``/api/v3/user[/emails]``.

The authorize and token endpoints are DOT's own views (the same sign-in and consent pages as ``/o/``); the
API answers a DOT access token (``Authorization: Bearer``, any scope) with GitHub's shapes, and 401
``{"message": "Bad credentials"}`` without one. ``id`` is the user's pk, as an int (the OIDC ``sub`` is
the same pk as a string); ``login`` is the part of the address before the ``@``.
"""

from django.contrib.auth.models import User
from django.http import HttpRequest, JsonResponse
from oauth2_provider.views import ProtectedResourceView

from tests.oidc_provider import faults
from tests.oidc_provider.profiles.models import Profile

NOREPLY_DOMAIN = "users.noreply.example"


def _profile(user: User) -> Profile:
    return Profile.objects.filter(user=user).first() or Profile()


class GitHubResourceView(ProtectedResourceView):
    """A GET answered for the access token's user (``request.resource_owner``), 401 JSON otherwise."""

    http_method_names = ["get", "options"]

    def unauthenticated_response(self, request, oauthlib_request=None):
        return JsonResponse({"message": "Bad credentials"}, status=401)


class UserView(GitHubResourceView):
    def get(self, request: HttpRequest) -> JsonResponse:
        user = request.resource_owner
        return JsonResponse(
            {
                "login": user.email.partition("@")[0],
                "id": user.pk,
                "name": _profile(user).name or None,
                "email": None,  # the public address: GitHub's default is to keep it private
            }
        )


class EmailsView(GitHubResourceView):
    def get(self, request: HttpRequest) -> JsonResponse:
        user = request.resource_owner
        noreply = {
            "email": f"noreply-{user.pk}@{NOREPLY_DOMAIN}",
            "primary": False,
            "verified": True,
            "visibility": None,
        }
        primary = {
            "email": user.email,
            "primary": True,
            "verified": _profile(user).email_verified,
            "visibility": "private",
        }
        emails = [noreply] if faults.mode() == "github_no_primary_email" else [primary, noreply]
        return JsonResponse(emails, safe=False)
