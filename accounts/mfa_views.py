"""Second-factor pages: the second step of signing in, and the security page that manages the factors."""

from __future__ import annotations

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse

from accounts.exceptions import (
    EmailNotVerified,
    MfaNotEnabled,
    PasskeyRefused,
    PendingSignInInvalid,
    ReauthenticationRequired,
    TotpAlreadyEnabled,
    TotpSetupRequired,
)
from accounts.flows.device_sessions import live_sessions
from accounts.flows.mfa import (
    begin_totp_setup,
    confirm_totp,
    disable_totp,
    mfa_status,
    pending_totp_setup,
    regenerate_recovery_codes,
)
from accounts.flows.second_factor import Method
from accounts.flows.signin import complete_second_step, second_step_methods, second_step_passkey_options
from accounts.flows.social import connected_identities
from accounts.flows.social_providers import configured_providers
from accounts.forms import PasskeyAnswerForm, SecondFactorForm, TotpConfirmForm
from accounts.pages import (
    Data,
    SignedInRequest,
    account_page,
    form_page,
    options_response,
    reauthenticate_first,
    safe_next_url,
    with_next,
)
from accounts.views import PENDING_SIGN_IN_KEY, _client, _device_session_id, signed_in


@account_page(secrets=("code", "credential"))
def login_mfa(request: HttpRequest) -> HttpResponse:
    """The second step: a passkey, a code from the authenticator app, or a recovery code."""
    next_url = safe_next_url(request)
    handle = request.session.get(PENDING_SIGN_IN_KEY)

    def start_again() -> HttpResponse:
        request.session.pop(PENDING_SIGN_IN_KEY, None)
        messages.error(request, PendingSignInInvalid.message)
        return redirect(with_next(reverse("accounts:login"), next_url))

    try:
        offered = second_step_methods(handle=handle)
    except PendingSignInInvalid:
        return start_again()

    def on_valid(data: Data) -> HttpResponse:
        try:
            sign_in = complete_second_step(
                handle=handle, code=data.get("code"), credential=data.get("credential"), client=_client(request)
            )
        except PendingSignInInvalid:
            return start_again()
        request.session.pop(PENDING_SIGN_IN_KEY, None)
        return signed_in(request, sign_in, next_url)

    with_passkey = request.method == "POST" and "credential" in request.POST
    with_app = Method.TOTP.value in offered
    form = (
        PasskeyAnswerForm(request.POST) if with_passkey else SecondFactorForm(request.POST or None, with_app=with_app)
    )
    if with_passkey and request.method == "POST" and form.is_valid():
        try:
            return on_valid(form.cleaned_data)
        except PasskeyRefused as error:
            messages.error(request, error.message)
            return redirect(with_next(reverse("accounts:login_mfa"), next_url))
    return form_page(
        request,
        form=SecondFactorForm(with_app=with_app) if with_passkey else form,
        template="accounts/login_mfa.html",
        on_valid=on_valid,
        context={"next": next_url or "", "methods": offered},
    )


@account_page(methods=("POST",))
def login_mfa_passkey_options(request: HttpRequest) -> JsonResponse:
    handle = request.session.get(PENDING_SIGN_IN_KEY)
    return options_response(lambda: second_step_passkey_options(handle=handle, client=_client(request)))


@account_page(signed_in=True, methods=("GET",))
def security(request: SignedInRequest) -> HttpResponse:
    identities = connected_identities(user=request.user)
    providers = configured_providers()
    names = {provider.name: provider.display_name for provider in providers}
    connected = {identity.provider for identity in identities}
    return render(
        request,
        "accounts/security.html",
        {
            "status": mfa_status(user=request.user),
            "identities": [(identity, names.get(identity.provider, identity.provider)) for identity in identities],
            "connectable": [provider for provider in providers if provider.name not in connected],
        },
    )


@account_page(signed_in=True, secrets=("code",))
def totp_setup(request: SignedInRequest) -> HttpResponse:
    """Setting up the authenticator app: the QR code and the key, then a code to confirm.

    POST ``start`` begins (a new secret); GET shows the setup begun; POST with ``code`` confirms it
    and shows the recovery codes, once."""
    here = reverse("accounts:totp_setup")
    session_id = _device_session_id(request)
    try:
        if request.method == "POST" and "start" in request.POST:
            begin_totp_setup(user=request.user, session_id=session_id)
            return redirect(here)
        setup = pending_totp_setup(user=request.user, session_id=session_id)
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=here, error=error)
    except (TotpSetupRequired, TotpAlreadyEnabled):
        return redirect("accounts:security")
    except EmailNotVerified:
        messages.error(request, "Verify your email address first: two-factor authentication is set up on a proven one.")
        return redirect("accounts:security")

    def on_valid(data: Data) -> HttpResponse:
        codes = confirm_totp(user=request.user, code=data["code"], session_id=session_id, client=_client(request))
        messages.success(request, "Two-factor authentication is on.")
        return show_recovery_codes(request, codes, just_enabled=True)

    form = TotpConfirmForm(request.POST or None)
    return form_page(
        request, form=form, template="accounts/totp_setup.html", on_valid=on_valid, context={"setup": setup}
    )


@account_page(signed_in=True, methods=("POST",))
def totp_disable(request: SignedInRequest) -> HttpResponse:
    try:
        disable_totp(user=request.user, session_id=_device_session_id(request), client=_client(request))
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=reverse("accounts:security"), error=error)
    except MfaNotEnabled as error:  # turned off meanwhile (another tab, support)
        messages.error(request, error.message)
        return redirect("accounts:security")
    messages.success(request, "Two-factor authentication is off.")
    return redirect("accounts:security")


@account_page(signed_in=True, methods=("POST",))
def recovery_codes_regenerate(request: SignedInRequest) -> HttpResponse:
    try:
        codes = regenerate_recovery_codes(
            user=request.user, session_id=_device_session_id(request), client=_client(request)
        )
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=reverse("accounts:security"), error=error)
    except MfaNotEnabled as error:
        messages.error(request, error.message)
        return redirect("accounts:security")
    messages.success(request, "New recovery codes are ready. The earlier ones no longer work.")
    return show_recovery_codes(request, codes)


def show_recovery_codes(request: SignedInRequest, codes: list[str], *, just_enabled: bool = False) -> HttpResponse:
    """The codes, this once (never stored in clear, so never shown again), with a text file to save.

    Just after turning two-factor on, the page also offers to sign out the other devices: they signed
    in with the password alone (perhaps someone who knew it), and stay signed in otherwise."""
    text = "\n".join(codes) + "\n"
    others = 0
    current = _device_session_id(request)
    if just_enabled and current:
        others = live_sessions(user=request.user).exclude(pk=current).count()
    return render(request, "accounts/recovery_codes.html", {"codes": codes, "download": text, "other_devices": others})
