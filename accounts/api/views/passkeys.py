"""Passkeys over the API: registering and managing mine, and signing in with one."""

from typing import Any

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.api.authentication import token_user
from accounts.api.serializers import (
    LoginResponseSerializer,
    MfaRequiredSerializer,
    PasskeyAddedSerializer,
    PasskeyCredentialSerializer,
    PasskeyRegisterSerializer,
    PasskeyRenameSerializer,
    PasskeySerializer,
)
from accounts.api.views.common import (
    AUTH_TAG,
    ERROR,
    NOT_AUTHENTICATED,
    SECOND_FACTOR_REQUIRED,
    PublicView,
    SignedInView,
    account_of,
    client_of,
    validated,
)
from accounts.api.views.signin import first_factor_response
from accounts.flows.passkeys import (
    passkeys_of,
    reauthentication_options,
    register_passkey,
    registration_options,
    remove_passkey,
    rename_passkey,
)
from accounts.flows.signin import authenticate_passkey, sign_in_passkey_options
from accounts.models import Passkey

PASSKEY_REFUSED = OpenApiResponse(
    ERROR,
    description=(
        "`passkey_refused` (bad signature, wrong origin or relying party, no user verification, not a credential), "
        "`passkey_unknown` (not registered here, or removed) or `passkey_cloned` (a device-bound passkey's "
        "signature counter did not rise)."
    ),
)
CHALLENGE_INVALID = OpenApiResponse(
    ERROR,
    description="`passkey_challenge_invalid` (expired, used already, or never issued: ask for new options), "
    "or `invalid_input`.",
)


def passkey_body(passkey: Passkey) -> dict[str, Any]:
    data: dict[str, Any] = PasskeySerializer(passkey).data
    return data


@extend_schema(tags=AUTH_TAG)
class PasskeyListView(SignedInView):
    @extend_schema(
        summary="My passkeys",
        responses={200: PasskeySerializer(many=True), 401: NOT_AUTHENTICATED},
    )
    def get(self, request: Request) -> Response:
        return Response([passkey_body(passkey) for passkey in passkeys_of(user=account_of(request))])


@extend_schema(tags=AUTH_TAG)
class PasskeyRegisterOptionsView(SignedInView):
    @extend_schema(
        summary="Begin registering a passkey",
        description=(
            "WebAuthn creation options (Level 3 JSON: pass them to PublicKeyCredential.parseCreationOptionsFromJSON). "
            "A discoverable credential with user verification; the challenge lasts 5 minutes and is used once. "
            "Needs a recent second factor if two-factor is on, else a recent sign-in."
        ),
        request=None,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="PublicKeyCredentialCreationOptionsJSON."),
            400: OpenApiResponse(ERROR, description="`passkey_limit_reached`."),
            401: NOT_AUTHENTICATED,
            403: OpenApiResponse(
                ERROR,
                description="`reauthentication_required` (see POST /api/auth/reauthenticate/) or `email_not_verified`.",
            ),
        },
    )
    def post(self, request: Request) -> Response:
        return Response(registration_options(user=account_of(request), session_id=token_user(request).session_id))


@extend_schema(tags=AUTH_TAG)
class PasskeyRegisterView(SignedInView):
    @extend_schema(
        summary="Register a passkey",
        description=(
            "The credential navigator.credentials.create() gave for the options, and a name. The account's first "
            "second factor turns two-factor on: the answer then carries the first recovery codes, shown this once."
        ),
        request=PasskeyRegisterSerializer,
        responses={
            201: PasskeyAddedSerializer,
            400: OpenApiResponse(
                ERROR,
                description="`invalid_input`, `invalid_passkey_name`, `passkey_challenge_invalid`, "
                "`passkey_already_registered` or `passkey_limit_reached`.",
            ),
            401: PASSKEY_REFUSED,
            403: SECOND_FACTOR_REQUIRED,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(PasskeyRegisterSerializer, request)
        added = register_passkey(
            user=account_of(request),
            session_id=token_user(request).session_id,
            credential=data["credential"],
            name=data["name"],
            client=client_of(request),
        )
        body = passkey_body(added.passkey)
        if added.recovery_codes is not None:
            body["recovery_codes"] = added.recovery_codes
        return Response(body, status=status.HTTP_201_CREATED)


@extend_schema(tags=AUTH_TAG)
class PasskeyDetailView(SignedInView):
    @extend_schema(
        summary="Rename a passkey",
        request=PasskeyRenameSerializer,
        responses={
            200: PasskeySerializer,
            400: OpenApiResponse(ERROR, description="`invalid_input` or `invalid_passkey_name`."),
            401: NOT_AUTHENTICATED,
            404: OpenApiResponse(ERROR, description="`not_found`: no such passkey of mine."),
        },
    )
    def patch(self, request: Request, passkey_id: str) -> Response:
        data = validated(PasskeyRenameSerializer, request)
        passkey = rename_passkey(
            user=account_of(request), passkey_id=passkey_id, name=data["name"], client=client_of(request)
        )
        return Response(passkey_body(passkey))

    @extend_schema(
        summary="Remove a passkey",
        description="It signs in no more. Needs a recent second factor. With the last second factor gone, "
        "two-factor is off.",
        request=None,
        responses={
            204: OpenApiResponse(description="Removed."),
            401: NOT_AUTHENTICATED,
            403: SECOND_FACTOR_REQUIRED,
            404: OpenApiResponse(ERROR, description="`not_found`: no such passkey of mine."),
        },
    )
    def delete(self, request: Request, passkey_id: str) -> Response:
        remove_passkey(
            user=account_of(request),
            passkey_id=passkey_id,
            session_id=token_user(request).session_id,
            client=client_of(request),
        )
        return Response(status=status.HTTP_204_NO_CONTENT)


@extend_schema(tags=AUTH_TAG)
class PasskeySignInOptionsView(PublicView):
    @extend_schema(
        summary="Begin signing in with a passkey",
        description=(
            "WebAuthn request options (Level 3 JSON: PublicKeyCredential.parseRequestOptionsFromJSON). They name "
            "no credential, so they reveal nothing about who has an account; user verification is required. "
            "The challenge lasts 5 minutes and is used once."
        ),
        request=None,
        responses={200: OpenApiResponse(OpenApiTypes.OBJECT, description="PublicKeyCredentialRequestOptionsJSON.")},
    )
    def post(self, request: Request) -> Response:
        return Response(sign_in_passkey_options(client=client_of(request)))


@extend_schema(tags=AUTH_TAG)
class PasskeySignInView(PublicView):
    @extend_schema(
        summary="Sign in with a passkey",
        description=(
            "The credential navigator.credentials.get() gave for the options. Like a completed POST "
            "/api/auth/login/: an access token, and the refresh cookie. A passkey with user verification is both "
            "factors at once (`amr` has `mfa`)."
        ),
        request=PasskeyCredentialSerializer,
        responses={
            200: LoginResponseSerializer,
            202: MfaRequiredSerializer,
            400: CHALLENGE_INVALID,
            401: PASSKEY_REFUSED,
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(PasskeyCredentialSerializer, request)
        return first_factor_response(
            request, authenticate_passkey(credential=data["credential"], client=client_of(request))
        )


@extend_schema(tags=AUTH_TAG)
class ReauthenticatePasskeyOptionsView(SignedInView):
    @extend_schema(
        summary="Begin confirming it is me with a passkey",
        description="Request options naming my passkeys; answer with POST /api/auth/reauthenticate/ `{credential}`.",
        request=None,
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="PublicKeyCredentialRequestOptionsJSON."),
            400: OpenApiResponse(ERROR, description="`no_passkey`: the account has none."),
            401: NOT_AUTHENTICATED,
        },
    )
    def post(self, request: Request) -> Response:
        return Response(reauthentication_options(user=account_of(request), client=client_of(request)))
