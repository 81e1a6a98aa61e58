"""What every account page shares: the page decorator, the form-page shape, signing out, and emailed-link handling."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from django import forms
from django.contrib import messages
from django.contrib.auth import logout
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseNotAllowed, JsonResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods

from accounts.cookies import CLEAR_SITE_DATA, clear_refresh_cookie
from accounts.exceptions import (
    AccountError,
    EmailNotVerified,
    PendingSignInInvalid,
    ReauthenticationRequired,
    SecondFactorRequired,
    TokenInvalid,
)
from accounts.forms import add_flow_error
from accounts.models import User
from accounts.rate_limits import RateLimited

# Never a path (which held the token) in a Referer, yet still an Origin on form
# posts: with "no-referrer" browsers send "Origin: null", which CSRF refuses.
TOKEN_PAGE_REFERRER_POLICY = "strict-origin"  # noqa: S105 a header value

Data = dict[str, Any]


class SignedInRequest(HttpRequest):
    """A request to a page behind ``login_required``."""

    user: User


def account_page(
    *, signed_in: bool = False, methods: tuple[str, ...] = ("GET", "POST"), secrets: tuple[str, ...] = ()
) -> Callable[[Callable[..., HttpResponse]], Callable[..., HttpResponse]]:
    """What every account page is: never cached, limited to ``methods``, its password
    fields (``secrets``) kept out of error reports, and maybe only for the signed in."""

    def decorate(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
        view = require_http_methods(list(methods))(view)
        if secrets:
            view = sensitive_post_parameters(*secrets)(view)
        if signed_in:
            view = login_required(view)
        return never_cache(view)

    return decorate


def form_page(
    request: HttpRequest,
    *,
    form: forms.Form,
    template: str,
    on_valid: Callable[[Data], HttpResponse],
    context: Data | None = None,
) -> HttpResponse:
    """The shape of every form page: show the form; on a valid POST run the flow
    through ``on_valid``. A flow's AccountError shows on the form (on the field it
    names); a missing re-authentication sends the person to enter the password and
    back; an emailed link that stopped working meanwhile (TokenInvalid) is no form
    error: it goes on to EmailedLinkView, which answers with the link's own page."""
    if request.method == "POST" and form.is_valid():
        try:
            return on_valid(form.cleaned_data)
        except TokenInvalid:
            raise
        except ReauthenticationRequired as error:
            return reauthenticate_first(request, next_path=request.get_full_path(), error=error)
        except AccountError as error:
            add_flow_error(form, error)
    return render(request, template, {"form": form, **(context or {})})


def reauthenticate_first(
    request: HttpRequest, *, next_path: str, error: ReauthenticationRequired | None = None
) -> HttpResponse:
    """To the page that asks for the password (or, when ``error`` needs one, a second-factor code) and back."""
    error = error or ReauthenticationRequired()
    messages.info(request, error.message)
    query = {"next": next_path}
    if isinstance(error, SecondFactorRequired):
        query["factor"] = "code"
    return redirect(f"{reverse('accounts:reauthenticate')}?{urlencode(query)}")


# The page scripts' JSON endpoints answer a flow's error with the API's status for it.
STATUS_OF_OPTIONS_ERROR: dict[type[AccountError], int] = {
    ReauthenticationRequired: 403,
    EmailNotVerified: 403,
    PendingSignInInvalid: 401,
}


def options_response(make_options: Callable[[], dict[str, Any]]) -> JsonResponse:
    """A ceremony's options as JSON for the page's script, or the flow's error as {"code", "detail"}."""
    try:
        return JsonResponse(make_options())
    except AccountError as error:
        status = next((code for cls, code in STATUS_OF_OPTIONS_ERROR.items() if isinstance(error, cls)), 400)
        return JsonResponse({"code": error.code, "detail": error.message}, status=status)
    except RateLimited as limited:
        # JSON like the other answers (the script reads its detail), not the middleware's HTML page.
        response = JsonResponse({"code": limited.code, "detail": limited.message}, status=429)
        response["Retry-After"] = str(limited.retry_after)
        return response


def with_next(path: str, next_url: str | None) -> str:
    """``path`` with ``?next=`` when there is somewhere to go on to."""
    return f"{path}?{urlencode({'next': next_url})}" if next_url else path


def signed_out(request: HttpRequest, *, to: str, message: str, level: int = messages.SUCCESS) -> HttpResponse:
    """This browser is signed out (its device session already ended): start clean."""
    logout(request)
    messages.add_message(request, level, message)
    response = redirect(to)
    clear_refresh_cookie(response)
    response["Clear-Site-Data"] = CLEAR_SITE_DATA
    return response


def safe_next_url(request: HttpRequest) -> str | None:
    """The ``next`` target if it stays on this site, else None."""
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return None


@method_decorator(never_cache, name="dispatch")
class EmailedLinkView(View):
    """An emailed link, in two steps as in Django's PasswordResetConfirmView.

    The link (with ``token`` in the URL) checks its token without using it up,
    moves it into the session and sends the browser on to the same view without
    it, so the token leaves the address bar, history, Referer headers and access
    logs. That step shows the page with the button; only its POST uses the token,
    so link scanners cannot. Both steps answer an invalid token alike.
    """

    http_method_names = ["get", "post"]
    session_key: ClassVar[str]
    confirm_url_name: ClassVar[str]
    invalid_template: ClassVar[str]

    def check(self, token: str | None) -> Any:
        """The token's row if it can still be used; TokenInvalid otherwise."""
        raise NotImplementedError

    def confirm(self, request: HttpRequest, token: str, row: Any) -> HttpResponse:
        """The page behind the link, GET and POST; a TokenInvalid it raises ends the link."""
        raise NotImplementedError

    def dispatch(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        response = super().dispatch(request, *args, **kwargs)
        response["Referrer-Policy"] = TOKEN_PAGE_REFERRER_POLICY
        return response

    def get(self, request: HttpRequest, token: str | None = None) -> HttpResponse:
        if token is None:
            return self._confirm(request)
        try:
            self.check(token)
        except TokenInvalid as error:
            return self.failed(request, error)
        # A new session key first: a session someone planted in this browser (or watched) must not
        # be the one that holds the token.
        request.session.cycle_key()
        request.session[self.session_key] = token
        return redirect(self.confirm_url_name)

    def post(self, request: HttpRequest, token: str | None = None) -> HttpResponse:
        if token is not None:
            return HttpResponseNotAllowed(["GET"])
        return self._confirm(request)

    def _confirm(self, request: HttpRequest) -> HttpResponse:
        token = request.session.get(self.session_key)
        try:
            row = self.check(token)
            return self.confirm(request, str(token), row)  # a well-formed string, once checked
        except TokenInvalid as error:
            return self.failed(request, error)

    def used(self, request: HttpRequest) -> None:
        request.session.pop(self.session_key, None)

    def failed(self, request: HttpRequest, error: AccountError) -> HttpResponse:
        self.used(request)
        return render(request, self.invalid_template, {"error": error, **self.invalid_context()}, status=400)

    def invalid_context(self) -> Data:
        return {}
