"""Signing up, in and out, and keeping an access token fresh with the refresh cookie."""

from django.http import Http404, HttpRequest, JsonResponse
from django.middleware.csrf import get_token
from django.utils.decorators import method_decorator
from django.views.decorators.csrf import ensure_csrf_cookie
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.request import Request
from rest_framework.response import Response

from accounts import amr as methods
from accounts.access_tokens import key_ring
from accounts.api.authentication import enforce_csrf
from accounts.api.errors import error_body, rate_limited_response
from accounts.api.schema import (
    REFRESH_COOKIE_AUTH,
    csrf_header_parameter,
    pending_sign_in_cookie_parameter,
    refresh_cookie_parameter,
)
from accounts.api.serializers import (
    AccessTokenSerializer,
    EmailCodeSignInSerializer,
    EmailSerializer,
    LoginResponseSerializer,
    LoginSerializer,
    MessageSerializer,
    MfaRequiredSerializer,
    RegisterSerializer,
    SecondStepSerializer,
)
from accounts.api.views.common import (
    AUTH_TAG,
    ERROR,
    INVALID_INPUT,
    PublicView,
    client_of,
    profile_body,
    signed_out,
    token_body,
    validated,
)
from accounts.cookies import (
    clear_pending_sign_in_cookie,
    clear_refresh_cookie,
    read_pending_sign_in_cookie,
    read_refresh_cookie,
    read_signup_proof,
    set_pending_sign_in_cookie,
    set_refresh_cookie,
    set_signup_proof_cookie,
)
from accounts.exceptions import PendingSignInInvalid, RefreshTokenInvalid
from accounts.flows.device_sessions import (
    EndReason,
    RefreshRateLimited,
    end_session_by_refresh_token,
    rotate_refresh_token,
)
from accounts.flows.email_sign_in import authenticate_email_code, request_email_sign_in
from accounts.flows.signin import (
    SecondStepRequired,
    SignedIn,
    authenticate_user,
    complete_second_step,
    finish_first_factor,
    second_step_passkey_options,
    start_api_session,
)
from accounts.flows.signup import sign_up


@extend_schema(tags=AUTH_TAG)
class RegisterView(PublicView):
    @extend_schema(
        summary="Create an account",
        description=(
            "Always 202, for new and existing addresses alike; the mailbox owner learns the rest. Sets the "
            "HttpOnly sign-up proof cookie: verifying from this client then needs only the emailed token."
        ),
        request=RegisterSerializer,
        responses={202: MessageSerializer, 400: INVALID_INPUT},
    )
    def post(self, request: Request) -> Response:
        proof = sign_up(**validated(RegisterSerializer, request), client=client_of(request))
        response = Response(
            {"detail": "Check your inbox to verify your email address."}, status=status.HTTP_202_ACCEPTED
        )
        # Verifying from this client then needs only the emailed token.
        set_signup_proof_cookie(response, proof)
        return response


@extend_schema(tags=AUTH_TAG)
class LoginView(PublicView):
    @extend_schema(
        summary="Sign in",
        description=(
            "Returns a short-lived access token and sets the refresh cookie "
            "(HttpOnly, Secure, SameSite=Strict, Path=/api/auth/). The refresh token never appears in a body. "
            "For an account with two-factor authentication the answer is 202 `mfa_required` instead, with an "
            "HttpOnly pending sign-in cookie: finish with POST /api/auth/mfa/verify/."
        ),
        request=LoginSerializer,
        responses={
            200: LoginResponseSerializer,
            202: MfaRequiredSerializer,
            400: INVALID_INPUT,
            401: OpenApiResponse(ERROR, description="`invalid_credentials`, the same for every wrong combination."),
            403: OpenApiResponse(ERROR, description="`email_not_verified` (right password, address not verified)."),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(LoginSerializer, request)
        user = authenticate_user(request=request._request, email=data["email"], password=data["password"])
        return first_factor_response(request, finish_first_factor(user=user, amr=[methods.PASSWORD]))


@extend_schema(tags=AUTH_TAG)
class EmailLoginView(PublicView):
    @extend_schema(
        summary="Email a sign-in code and link",
        description=(
            "Always 202, whether or not the address has an account. Its owner gets an 8-character code "
            "(finish with POST /api/auth/login/email/verify/) and a link that signs in on the pages; an address "
            "without an account gets a short email saying so. They work once, for 10 minutes, and only the "
            "newest of an address works."
        ),
        request=EmailSerializer,
        responses={
            202: MessageSerializer,
            400: INVALID_INPUT,
            429: OpenApiResponse(ERROR, description="`rate_limited`: too many codes for the address or client."),
        },
    )
    def post(self, request: Request) -> Response:
        request_email_sign_in(email=validated(EmailSerializer, request)["email"], client=client_of(request))
        return Response(
            {"detail": "Check your inbox: the email has a code to sign in with."}, status=status.HTTP_202_ACCEPTED
        )


@extend_schema(tags=AUTH_TAG)
class EmailLoginVerifyView(PublicView):
    @extend_schema(
        summary="Sign in with an emailed code",
        description=(
            "Answers like POST /api/auth/login/: an access token and the refresh cookie, or 202 `mfa_required` "
            "for an account with two-factor authentication. A code takes 5 tries."
        ),
        request=EmailCodeSignInSerializer,
        responses={
            200: LoginResponseSerializer,
            202: MfaRequiredSerializer,
            400: OpenApiResponse(
                ERROR,
                description="`invalid_input`, or `invalid_code`: wrong, expired, used, replaced or out of tries, "
                "and for an address without an account, alike.",
            ),
            429: OpenApiResponse(ERROR, description="`rate_limited`: too many wrong codes from this client."),
        },
    )
    def post(self, request: Request) -> Response:
        data = validated(EmailCodeSignInSerializer, request)
        step = authenticate_email_code(
            email=data["email"],
            code=data["code"],
            client=client_of(request),
            signup_proof=read_signup_proof(request._request),
        )
        return first_factor_response(request, step)


def first_factor_response(request: Request, step: SignedIn | SecondStepRequired) -> Response:
    """The answer to a first factor: signed in, or 202 and the pending sign-in when a second step waits."""
    if isinstance(step, SecondStepRequired):
        return mfa_required_response(step)
    return signed_in_response(request, step)


def mfa_required_response(step: SecondStepRequired) -> Response:
    """The answer to a first factor whose account has a second: 202, and the pending sign-in's cookie."""
    response = Response({"status": "mfa_required", "methods": step.methods}, status=status.HTTP_202_ACCEPTED)
    set_pending_sign_in_cookie(response, step.handle)
    return response


def signed_in_response(request: Request, sign_in: SignedIn) -> Response:
    """The answer to a finished sign-in: the access token and the user, the refresh cookie set."""
    issued = start_api_session(request=request._request, sign_in=sign_in)
    response = Response({**token_body(issued), "user": profile_body(sign_in.user)})
    set_refresh_cookie(response, issued.refresh_token)
    clear_pending_sign_in_cookie(response)
    return response


@extend_schema(tags=AUTH_TAG)
class MfaVerifyView(PublicView):
    @extend_schema(
        summary="Finish signing in with a second factor",
        description=(
            "After a first factor answered 202 `mfa_required`: a TOTP code or a recovery code (`code`), or a "
            "passkey's answer to POST /api/auth/mfa/passkey/options/ (`credential`), with the HttpOnly pending "
            "sign-in cookie. A pending sign-in lasts 10 minutes and takes 5 attempts."
        ),
        request=SecondStepSerializer,
        parameters=[pending_sign_in_cookie_parameter(), csrf_header_parameter()],
        responses={
            200: LoginResponseSerializer,
            400: OpenApiResponse(
                ERROR,
                description="`invalid_input`, `invalid_code` or `passkey_challenge_invalid` (the attempt is spent).",
            ),
            401: OpenApiResponse(
                ERROR,
                description="`sign_in_expired` (expired, out of attempts, or finished), or a refused passkey "
                "(`passkey_refused`, `passkey_unknown`, `passkey_cloned`; the attempt is spent).",
            ),
            403: OpenApiResponse(ERROR, description="`csrf_failed`."),
        },
    )
    def post(self, request: Request) -> Response:
        enforce_csrf(request)
        data = validated(SecondStepSerializer, request)
        try:
            sign_in = complete_second_step(
                handle=read_pending_sign_in_cookie(request._request),
                code=data.get("code"),
                credential=data.get("credential"),
                client=client_of(request),
            )
        except PendingSignInInvalid as error:
            return sign_in_expired(error)
        return signed_in_response(request, sign_in)


def sign_in_expired(error: PendingSignInInvalid) -> Response:
    response = Response(error_body(error.code, error.message), status=status.HTTP_401_UNAUTHORIZED)
    clear_pending_sign_in_cookie(response)
    return response


@extend_schema(tags=AUTH_TAG)
class MfaPasskeyOptionsView(PublicView):
    @extend_schema(
        summary="Begin the second step with a passkey",
        description=(
            "Request options naming the passkeys of the account signing in (user verification preferred), for "
            "the pending sign-in of the cookie. Answer with POST /api/auth/mfa/verify/ `{credential}`."
        ),
        request=None,
        parameters=[pending_sign_in_cookie_parameter(), csrf_header_parameter()],
        responses={
            200: OpenApiResponse(OpenApiTypes.OBJECT, description="PublicKeyCredentialRequestOptionsJSON."),
            400: OpenApiResponse(ERROR, description="`no_passkey`: the account has none."),
            401: OpenApiResponse(ERROR, description="`sign_in_expired`."),
            403: OpenApiResponse(ERROR, description="`csrf_failed`."),
        },
    )
    def post(self, request: Request) -> Response:
        enforce_csrf(request)
        try:
            options = second_step_passkey_options(
                handle=read_pending_sign_in_cookie(request._request), client=client_of(request)
            )
        except PendingSignInInvalid as error:
            return sign_in_expired(error)
        return Response(options)


@extend_schema(tags=AUTH_TAG)
class RefreshView(PublicView):
    @extend_schema(
        summary="Exchange the refresh cookie for a new access token",
        description=(
            "Rotates the refresh cookie on every use. The token just replaced, presented again within a few "
            "seconds by the same client (a retry after a lost answer, a concurrent tab), gets the same new "
            "cookie again. Any other already rotated token ends the device session (`refresh_token_reused`). "
            "Over the session's refresh limit the answer is 429 with no access token, and the cookie is still "
            "the session's live token."
        ),
        request=None,
        parameters=[refresh_cookie_parameter(), csrf_header_parameter()],
        auth=REFRESH_COOKIE_AUTH,
        responses={
            200: AccessTokenSerializer,
            401: OpenApiResponse(
                ERROR,
                description="`refresh_token_invalid` (missing, unknown, expired, ended) or `refresh_token_reused`.",
            ),
            403: OpenApiResponse(ERROR, description="`csrf_failed`: the X-CSRFToken header is missing or wrong."),
            429: OpenApiResponse(ERROR, description="`rate_limited`: the cookie is set to the live token."),
        },
    )
    def post(self, request: Request) -> Response:
        enforce_csrf(request)
        try:
            refresh_token = read_refresh_cookie(request)
            if refresh_token is None:
                raise RefreshTokenInvalid
            client = client_of(request)
            issued = rotate_refresh_token(
                refresh_token=refresh_token, ip_address=client.ip_address, user_agent=client.user_agent
            )
        except RefreshTokenInvalid as error:
            response = Response(error_body(error.code, error.message), status=status.HTTP_401_UNAUTHORIZED)
            clear_refresh_cookie(response)
            return response
        except RefreshRateLimited as limited:
            response = rate_limited_response(limited)
            set_refresh_cookie(response, limited.refresh_token)
            return response
        response = Response(token_body(issued))
        set_refresh_cookie(response, issued.refresh_token)
        return response


@extend_schema(tags=AUTH_TAG)
class LogoutView(PublicView):
    @extend_schema(
        summary="Sign out this device",
        description="Ends the device session of the refresh cookie and clears the cookie. Idempotent.",
        request=None,
        parameters=[refresh_cookie_parameter(), csrf_header_parameter()],
        auth=REFRESH_COOKIE_AUTH,
        responses={
            204: OpenApiResponse(description="Signed out."),
            403: OpenApiResponse(ERROR, description="`csrf_failed`."),
        },
    )
    def post(self, request: Request) -> Response:
        enforce_csrf(request)
        refresh_token = read_refresh_cookie(request)
        if refresh_token is not None:
            end_session_by_refresh_token(
                refresh_token=refresh_token, reason=EndReason.LOGOUT, client=client_of(request)
            )
        return signed_out(Response(status=status.HTTP_204_NO_CONTENT))


@extend_schema(tags=AUTH_TAG)
class CsrfView(PublicView):
    @extend_schema(
        summary="Set the CSRF cookie",
        description="Sets Django's `csrftoken` cookie; send its value as `X-CSRFToken` on refresh and logout.",
        responses={200: MessageSerializer},
    )
    @method_decorator(ensure_csrf_cookie)
    def get(self, request: Request) -> Response:
        get_token(request._request)
        return Response({"detail": "CSRF cookie set."})


def jwks(request: HttpRequest) -> JsonResponse:
    """The public keys that verify access tokens (asymmetric algorithms only)."""
    keys = key_ring().public_jwks
    if not keys:
        raise Http404
    return JsonResponse({"keys": keys})
