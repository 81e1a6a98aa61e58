"""Provider pages: leaving for the provider, coming back, connecting, disconnecting and the "not me" link.

The round trip's secrets (state, nonce, PKCE verifier) stay in this browser's server-side session,
keyed by state, until the provider sends the browser back; the state is then used up. Leaving is a
POST with the CSRF token, so no other site can sign someone in to an account of its choosing.
"""

from __future__ import annotations

import time
from dataclasses import asdict
from typing import Any

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.debug import sensitive_post_parameters

from accounts.cookies import set_signup_proof_cookie
from accounts.exceptions import (
    AccountError,
    AccountInactive,
    EmailNotVerified,
    ReauthenticationRequired,
    SocialProviderUnavailable,
    SocialSignInFailed,
)
from accounts.flows.signin import SecondStepRequired, SignedIn
from accounts.flows.social import (
    CheckInbox,
    Intent,
    LinkRequired,
    SocialFlow,
    SocialNotMeLink,
    begin_social_flow,
    check_social_not_me_token,
    connect_identity,
    disconnect_identity,
    disconnect_social_not_me,
    finish_social_flow,
    is_waiting_for,
    reauthenticate_with_identity,
    sign_in_with_identity,
)
from accounts.flows.social_providers import ProviderIdentity, provider_named
from accounts.forms import SecureAccountForm
from accounts.pages import (
    Data,
    EmailedLinkView,
    SignedInRequest,
    account_page,
    form_page,
    reauthenticate_first,
    safe_next_url,
    with_next,
)
from accounts.rate_limits import SOCIAL_IP, hit, ip_key
from accounts.views import _client, _device_session_id, account_secured, first_factor_done

# This browser's round trips to providers, by state (a few at once: one per tab).
FLOWS_KEY = "_social_flows"
MAX_FLOWS = 5
# An identity the provider proved whose address has an account here: it is connected once this
# browser signs in to that account (or another of the person's choosing) and confirms.
PENDING_LINK_KEY = "_social_pending_link"


def _provider_or_404(name: str) -> Any:
    provider = provider_named(name)
    if provider is None:
        raise Http404("No such provider.")
    return provider


def _error_page(request: HttpRequest, error: AccountError, *, status: int = 400) -> HttpResponse:
    return render(request, "accounts/social_error.html", {"error": error}, status=status)


def _keep_flow(request: HttpRequest, flow: SocialFlow) -> None:
    now = time.time()
    flows = {
        state: data
        for state, data in request.session.get(FLOWS_KEY, {}).items()
        if isinstance(data, dict) and now - data.get("started_at", 0) <= settings.SOCIAL_FLOW_LIFETIME
    }
    flows[flow.state] = flow.as_data()
    # The newest few: an abandoned tab's flow must not make the session grow without end.
    request.session[FLOWS_KEY] = dict(sorted(flows.items(), key=lambda item: item[1]["started_at"])[-MAX_FLOWS:])


def _take_flow(request: HttpRequest, state: str) -> SocialFlow | None:
    flows = request.session.get(FLOWS_KEY)
    if not isinstance(flows, dict) or state not in flows:
        return None  # nothing to write: a visitor without a session gets none
    data = flows.pop(state)
    request.session[FLOWS_KEY] = flows
    return SocialFlow.from_data(data)


@account_page(methods=("POST",))
def social_login(request: HttpRequest, provider: str) -> HttpResponse:
    """Leave for the provider: to sign in (or up), to connect it, or to re-authenticate with it."""
    _provider_or_404(provider)
    try:
        intent = Intent(request.POST.get("intent") or Intent.SIGN_IN)
    except ValueError:
        intent = Intent.SIGN_IN
    next_url = safe_next_url(request) or ""
    user = request.user if request.user.is_authenticated else None
    if intent != Intent.SIGN_IN and user is None:
        return redirect(with_next(reverse("accounts:login"), reverse("accounts:security")))
    try:
        url, flow = begin_social_flow(
            provider=provider,
            intent=intent,
            client=_client(request),
            user=user if intent != Intent.SIGN_IN else None,
            session_id=_device_session_id(request),
            next_url=next_url,
        )
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=reverse("accounts:security"), error=error)
    except SocialProviderUnavailable as error:
        return _error_page(request, error, status=503)
    _keep_flow(request, flow)
    return redirect(url)


@account_page(methods=("GET",))
def social_callback(request: HttpRequest, provider: str) -> HttpResponse:
    """Back from the provider: the flow its state names, the identity it proves, and what it is for."""
    _provider_or_404(provider)
    params = {key: request.GET.get(key, "")[:2048] for key in ("state", "code", "error")}
    kept = _take_flow(request, params["state"]) if params["state"] else None
    if kept is None:
        # Answers nobody asked for are counted like sign-ins begun: they cannot flood the audit log.
        hit(SOCIAL_IP, ip_key(_client(request).ip_address), client=_client(request))
    try:
        flow, identity = finish_social_flow(provider=provider, flow=kept, params=params, client=_client(request))
    except SocialProviderUnavailable as error:
        return _error_page(request, error, status=503)
    except SocialSignInFailed as error:
        return _error_page(request, error)
    if flow.intent == Intent.SIGN_IN:
        return _signed_in_with(request, identity, flow)
    if not request.user.is_authenticated or request.user.pk != flow.user_id:
        return _error_page(request, ReauthenticationRequired("You signed out meanwhile. Please sign in again."))
    try:
        if flow.intent == Intent.CONNECT:
            connect_identity(
                user=request.user, identity=identity, session_id=_device_session_id(request), client=_client(request)
            )
            messages.success(request, f"{_provider_or_404(provider).display_name} is connected to your account.")
            return redirect("accounts:security")
        reauthenticate_with_identity(
            user=request.user,
            identity=identity,
            session_id=_device_session_id(request),
            flow=flow,
            client=_client(request),
        )
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=reverse("accounts:security"), error=error)
    except AccountError as error:
        return _error_page(request, error)
    return redirect(flow.next_url or reverse("accounts:security"))


def _signed_in_with(request: HttpRequest, identity: ProviderIdentity, flow: SocialFlow) -> HttpResponse:
    next_url = flow.next_url or None
    try:
        step = sign_in_with_identity(identity=identity, client=_client(request))
    except EmailNotVerified as error:
        return render(request, "accounts/social_error.html", {"error": error, "unverified": True}, status=403)
    except AccountInactive as error:
        return _error_page(request, error, status=403)
    except AccountError as error:  # a provider that failed, or a link a concurrent request made
        return _error_page(request, error)
    if isinstance(step, SignedIn | SecondStepRequired):
        return first_factor_done(request, step, next_url)
    if isinstance(step, CheckInbox):
        response = redirect("accounts:signup_done")
        set_signup_proof_cookie(response, step.proof)
        return response
    return _link_first(request, step)


def _link_first(request: HttpRequest, step: LinkRequired) -> HttpResponse:
    request.session[PENDING_LINK_KEY] = {"identity": asdict(step.identity), "started_at": time.time()}
    provider = _provider_or_404(step.identity.provider)
    messages.info(
        request,
        f"An account here already uses {step.email}. Sign in to it to connect {provider.display_name}; "
        "after that you can sign in with either.",
    )
    return redirect(with_next(reverse("accounts:login"), reverse("accounts:social_connect")))


def _pending_link(request: SignedInRequest) -> ProviderIdentity | None:
    data = request.session.get(PENDING_LINK_KEY)
    if not isinstance(data, dict) or time.time() - data.get("started_at", 0) > settings.SOCIAL_FLOW_LIFETIME:
        return None
    try:
        identity = ProviderIdentity(**data["identity"])
    except (KeyError, TypeError):
        return None
    return identity if is_waiting_for(user=request.user, identity=identity) else None


@account_page(signed_in=True)
def social_connect(request: SignedInRequest) -> HttpResponse:
    """Connect the identity a provider proved before this sign-in (its address had an account here)."""
    identity = _pending_link(request)
    if identity is None:
        request.session.pop(PENDING_LINK_KEY, None)
        messages.error(request, "There is no provider waiting to be connected. Please start again.")
        return redirect("accounts:security")
    provider = _provider_or_404(identity.provider)
    if request.method == "POST":
        try:
            connect_identity(
                user=request.user, identity=identity, session_id=_device_session_id(request), client=_client(request)
            )
        except ReauthenticationRequired as error:
            return reauthenticate_first(request, next_path=request.get_full_path(), error=error)
        except AccountError as error:
            request.session.pop(PENDING_LINK_KEY, None)
            return _error_page(request, error)
        request.session.pop(PENDING_LINK_KEY, None)
        messages.success(request, f"{provider.display_name} is connected to your account.")
        return redirect("accounts:security")
    return render(request, "accounts/social_connect.html", {"provider": provider, "identity": identity})


@account_page(signed_in=True, methods=("POST",))
def social_disconnect(request: SignedInRequest, identity_id: str) -> HttpResponse:
    try:
        disconnect_identity(
            user=request.user, identity_id=identity_id, session_id=_device_session_id(request), client=_client(request)
        )
    except ReauthenticationRequired as error:
        return reauthenticate_first(request, next_path=reverse("accounts:security"), error=error)
    except AccountError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, "The provider is disconnected.")
    return redirect("accounts:security")


@method_decorator(sensitive_post_parameters("password1", "password2"), name="dispatch")
class SocialNotMeView(EmailedLinkView):
    """Disconnecting a provider the owner did not connect, from the notice's link, and securing the account."""

    session_key = "_social_not_me_token"
    confirm_url_name = "accounts:social_not_me_confirm"
    invalid_template = "accounts/social_not_me_invalid.html"

    def check(self, token: str | None) -> SocialNotMeLink:
        return check_social_not_me_token(token=token)

    def confirm(self, request: HttpRequest, token: str, row: SocialNotMeLink) -> HttpResponse:
        def on_valid(data: Data) -> HttpResponse:
            user = disconnect_social_not_me(token=token, new_password=data["password1"], client=_client(request))
            self.used(request)
            return account_secured(request, user, done="the provider is disconnected")

        providers = [provider_named(identity.provider) for identity in row.removes]
        return form_page(
            request,
            form=SecureAccountForm(request.POST or None),
            template="accounts/social_not_me.html",
            on_valid=on_valid,
            context={
                "identities": row.removes,
                "provider_names": [p.display_name if p else "" for p in providers],
                "connected_at": row.row.created_at,
            },
        )
