"""Test-control endpoints (JSON in and out, no CSRF: a test project only): clients, users, fault modes."""

import json

from django.contrib.auth.models import User
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from oauth2_provider.generators import generate_client_secret
from oauth2_provider.models import Application

from tests.oidc_provider import faults as fault_modes
from tests.oidc_provider.profiles.models import Profile


def _body(request: HttpRequest) -> dict:
    return json.loads(request.body or b"{}")


@csrf_exempt
@require_POST
def clients(request: HttpRequest) -> JsonResponse:
    """A confidential authorization-code client signing its ID tokens with RS256."""
    body = _body(request)
    secret = generate_client_secret()  # DOT stores a hash of it: the plaintext is only in this answer
    client = Application.objects.create(
        name="test client",
        client_type=Application.CLIENT_CONFIDENTIAL,
        authorization_grant_type=Application.GRANT_AUTHORIZATION_CODE,
        redirect_uris=" ".join(body["redirect_uris"]),
        skip_authorization=bool(body.get("skip_authorization", True)),
        algorithm=Application.RS256_ALGORITHM,
        client_secret=secret,
    )
    return JsonResponse({"client_id": client.client_id, "client_secret": secret}, status=201)


@csrf_exempt
@require_POST
def users(request: HttpRequest) -> JsonResponse:
    """A user signing in with the address as username; one that exists is updated (same ``sub``)."""
    body = _body(request)
    email = body["email"]
    user, _ = User.objects.get_or_create(username=email, defaults={"email": email})
    user.email = email
    user.set_password(body["password"])
    user.save()
    Profile.objects.update_or_create(
        user=user, defaults={"name": body.get("name", ""), "email_verified": bool(body.get("email_verified", True))}
    )
    return JsonResponse({"sub": str(user.pk)}, status=201)


@csrf_exempt
@require_POST
def faults(request: HttpRequest) -> JsonResponse:
    """Turn a fault mode on (``{"mode": "..."}``) or off (``{"mode": null}``) for the whole process."""
    mode = _body(request).get("mode")
    if mode is not None and mode not in fault_modes.MODES:
        return JsonResponse({"error": f"unknown fault mode {mode!r}", "modes": sorted(fault_modes.MODES)}, status=400)
    fault_modes.set_mode(mode)
    return JsonResponse({"mode": mode})


@csrf_exempt
@require_POST
def reset(request: HttpRequest) -> JsonResponse:
    """Fault mode off."""
    fault_modes.set_mode(None)
    return JsonResponse({"mode": None})
