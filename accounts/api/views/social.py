"""Sign-in providers over the API: which ones there are, and my connected identities.

Signing in with a provider is a browser round trip through the pages (POST to the provider's login
URL): it ends with the refresh cookie set, from which the SPA continues, as after a page sign-in.
"""

from typing import Any

from django.urls import reverse
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.authentication import token_user
from accounts.api.serializers import SocialIdentitySerializer, SocialProviderSerializer
from accounts.api.views.common import (
    AUTH_TAG,
    ERROR,
    NOT_AUTHENTICATED,
    PublicView,
    SignedInView,
    account_of,
    client_of,
)
from accounts.flows.social import connected_identities, disconnect_identity
from accounts.flows.social_providers import configured_providers
from accounts.models import SocialIdentity


@extend_schema(tags=AUTH_TAG)
class SocialProviderListView(PublicView):
    @extend_schema(summary="Sign-in providers", responses={200: SocialProviderSerializer(many=True)})
    def get(self, request: Request) -> Response:
        return Response(
            [
                {
                    "name": provider.name,
                    "display_name": provider.display_name,
                    "login_url": reverse("accounts:social_login", kwargs={"provider": provider.name}),
                }
                for provider in configured_providers()
            ]
        )


def identity_body(identity: SocialIdentity, names: dict[str, str]) -> dict[str, Any]:
    return {
        "id": identity.pk,
        "provider": identity.provider,
        "display_name": names.get(identity.provider, identity.provider),
        "email": identity.email,
        "created_at": identity.created_at,
        "last_used_at": identity.last_used_at,
    }


@extend_schema(tags=AUTH_TAG)
class SocialIdentityListView(SignedInView):
    @extend_schema(
        summary="My connected providers", responses={200: SocialIdentitySerializer(many=True), 401: NOT_AUTHENTICATED}
    )
    def get(self, request: Request) -> Response:
        names = {provider.name: provider.display_name for provider in configured_providers()}
        identities = connected_identities(user=account_of(request))
        return Response(SocialIdentitySerializer([identity_body(i, names) for i in identities], many=True).data)


@extend_schema(tags=AUTH_TAG)
class SocialIdentityDetailView(SignedInView):
    @extend_schema(
        summary="Disconnect a provider",
        description="It signs in no more. Needs a recent authentication (a recent second factor when two-factor "
        "is on). Refused while it is the account's only way to sign in (no password, passkey or other provider).",
        request=None,
        responses={
            204: OpenApiResponse(description="Disconnected."),
            401: NOT_AUTHENTICATED,
            403: OpenApiResponse(
                ERROR, description="`reauthentication_required` or `second_factor_required`: re-authenticate first."
            ),
            404: OpenApiResponse(ERROR, description="`social_identity_not_found`: no such connection of mine."),
            409: OpenApiResponse(
                ERROR, description="`social_last_sign_in_method`: set a password or add a passkey first."
            ),
        },
    )
    def delete(self, request: Request, identity_id: str) -> Response:
        disconnect_identity(
            user=account_of(request),
            identity_id=identity_id,
            session_id=token_user(request).session_id,
            client=client_of(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)
