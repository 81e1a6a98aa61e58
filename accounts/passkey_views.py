"""Passkey pages: signing in with one, the second step and re-authentication with one, and managing them.

WebAuthn needs a script (static/accounts/passkeys.js): it asks one of the JSON endpoints here for
the ceremony's options, lets the browser create or use the passkey, and submits the answer in an
ordinary form, which the views below handle like any other. Without the script the pages still
work for everything else (the password, codes).
"""

from __future__ import annotations

from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from accounts.exceptions import (
    EmailNotVerified,
    PasskeyLimitReached,
    PasskeyNotFound,
    PasskeyRefused,
    ReauthenticationRequired,
)
from accounts.flows.passkeys import (
    NotMeLink,
    check_may_add_passkey,
    check_passkey_not_me_token,
    passkeys_of,
    reauthentication_options,
    register_passkey,
    registration_options,
    remove_passkey,
    remove_passkey_not_me,
    rename_passkey,
)
from accounts.flows.signin import authenticate_passkey, sign_in_passkey_options
from accounts.forms import PasskeyAddForm, PasskeyAnswerForm, PasskeyRenameForm, SecureAccountForm
from accounts.mfa_views import show_recovery_codes
from accounts.pages import (
    Data,
    EmailedLinkView,
    SignedInRequest,
    account_page,
    form_page,
    options_response,
    reauthenticate_first,
    safe_next_url,
    with_next,
)
from accounts.views import _client, _device_session_id, account_secured, first_factor_done

# --- Signing in -------------------------------------------------------------------------------------


@account_page(methods=("POST",))
def login_passkey_options(request: HttpRequest) -> JsonResponse:
    return options_response(lambda: sign_in_passkey_options(client=_client(request)))


@account_page(methods=("POST",), secrets=("credential",))
def login_passkey(request: HttpRequest) -> HttpResponse:
    """The passkey's answer to the sign-in options: signed in (both factors at once), or back to the
    sign-in page with why not."""
    next_url = safe_next_url(request)
    form = PasskeyAnswerForm(request.POST)
    try:
        if not form.is_valid():
            raise PasskeyRefused
        step = authenticate_passkey(credential=form.cleaned_data["credential"], client=_client(request))
        # PasskeyUnknown if it was removed a moment ago; the second step only for a passkey without
        # user verification (not for sign-in today).
        return first_factor_done(request, step, next_url)
    except PasskeyRefused as error:
        messages.error(request, error.message)
        return redirect(with_next(reverse("accounts:login"), next_url))


# --- Managing the account's passkeys ------------------------------------------------------------------


@account_page(signed_in=True, methods=("POST",))
def passkey_options(request: SignedInRequest) -> JsonResponse:
    return options_response(lambda: registration_options(user=request.user, session_id=_device_session_id(request)))


@account_page(signed_in=True, secrets=("credential",))
def passkey_add(request: SignedInRequest) -> HttpResponse:
    """Naming and creating a new passkey (the script runs the browser's part between the two)."""
    here = reverse("accounts:passkey_add")
    session_id = _device_session_id(request)
    try:
        check_may_add_passkey(user=request.user, session_id=session_id)
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=here, error=error)
    except EmailNotVerified:
        messages.error(request, "Verify your email address first: passkeys are added to a proven one.")
        return redirect("accounts:security")
    except PasskeyLimitReached as error:
        messages.error(request, error.message)
        return redirect("accounts:security")

    def on_valid(data: Data) -> HttpResponse:
        added = register_passkey(
            user=request.user,
            session_id=session_id,
            credential=data["credential"],
            name=data["name"],
            client=_client(request),
        )
        messages.success(request, f"Passkey “{added.passkey.name}” added.")
        if added.recovery_codes is not None:
            return show_recovery_codes(request, added.recovery_codes, just_enabled=True)
        return redirect("accounts:security")

    form = PasskeyAddForm(request.POST or None)
    return form_page(request, form=form, template="accounts/passkey_add.html", on_valid=on_valid)


@account_page(signed_in=True)
def passkey_rename(request: SignedInRequest, passkey_id: str) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        rename_passkey(user=request.user, passkey_id=passkey_id, name=data["name"], client=_client(request))
        messages.success(request, "Passkey renamed.")
        return redirect("accounts:security")

    passkey = next((key for key in passkeys_of(user=request.user) if str(key.pk) == passkey_id), None)
    if passkey is None:
        raise Http404
    form = PasskeyRenameForm(request.POST or None, initial={"name": passkey.name})
    return form_page(
        request, form=form, template="accounts/passkey_rename.html", on_valid=on_valid, context={"passkey": passkey}
    )


@account_page(signed_in=True, methods=("POST",))
def passkey_remove(request: SignedInRequest, passkey_id: str) -> HttpResponse:
    try:
        remove_passkey(
            user=request.user, passkey_id=passkey_id, session_id=_device_session_id(request), client=_client(request)
        )
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=reverse("accounts:security"), error=error)
    except PasskeyNotFound as error:  # removed meanwhile (another tab, support)
        messages.error(request, error.message)
        return redirect("accounts:security")
    messages.success(request, "Passkey removed. It no longer signs in to your account.")
    return redirect("accounts:security")


# --- Re-authenticating --------------------------------------------------------------------------------


@account_page(signed_in=True, methods=("POST",))
def reauthenticate_passkey_options(request: SignedInRequest) -> JsonResponse:
    return options_response(lambda: reauthentication_options(user=request.user, client=_client(request)))


# --- "Not me", from the notice of a new passkey ---------------------------------------------------------


@method_decorator(sensitive_post_parameters("password1", "password2"), name="dispatch")
class PasskeyNotMeView(EmailedLinkView):
    """Removing a passkey the owner did not add, from the notice's link, and securing the account."""

    session_key = "_passkey_not_me_token"
    confirm_url_name = "accounts:passkey_not_me_confirm"
    invalid_template = "accounts/passkey_not_me_invalid.html"

    def check(self, token: str | None) -> NotMeLink:
        return check_passkey_not_me_token(token=token)

    def confirm(self, request: HttpRequest, token: str, row: NotMeLink) -> HttpResponse:
        def on_valid(data: Data) -> HttpResponse:
            user = remove_passkey_not_me(token=token, new_password=data["password1"], client=_client(request))
            self.used(request)
            return account_secured(request, user, done="the passkey is removed")

        form = SecureAccountForm(request.POST or None)
        return form_page(
            request,
            form=form,
            template="accounts/passkey_not_me.html",
            on_valid=on_valid,
            context={
                "passkey_name": row.passkey.name,
                "added_at": row.row.created_at,
                "later": row.later,
                "turns_mfa_off": row.turns_mfa_off(),
            },
        )
