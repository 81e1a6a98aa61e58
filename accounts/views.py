"""Server-rendered account pages: validate the form, call the flow, show its outcome."""

from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts.cookies import clear_refresh_cookie, set_refresh_cookie
from accounts.exceptions import AccountError, EmailNotVerified, InvalidCredentials, TokenInvalid
from accounts.flows.password_reset import check_password_reset_token, request_password_reset, reset_password
from accounts.flows.signin import authenticate_user, end_browser_session, start_browser_session
from accounts.flows.signup import sign_up
from accounts.flows.verification import check_verification_token, resend_verification_email, verify_email
from accounts.forms import EmailOnlyForm, SetPasswordForm, SignInForm, SignUpForm, add_flow_error

# Emailed tokens are moved from the URL into the session before any form is
# shown, so they do not linger in history, Referer headers or access logs.
RESET_TOKEN_SESSION_KEY = "_password_reset_token"
VERIFY_TOKEN_SESSION_KEY = "_email_verification_token"


def no_referrer(view):
    """Pages whose URL held a token must not leak it through the Referer header."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = "no-referrer"
        return response

    return wrapped


def safe_next_url(request: HttpRequest) -> str | None:
    """The ``next`` target if it stays on this site, else None."""
    candidate = request.POST.get("next") or request.GET.get("next")
    if candidate and url_has_allowed_host_and_scheme(
        candidate, allowed_hosts={request.get_host()}, require_https=request.is_secure()
    ):
        return candidate
    return None


# --- Sign up ------------------------------------------------------------------


@never_cache
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def signup(request: HttpRequest) -> HttpResponse:
    form = SignUpForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            sign_up(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                name=form.cleaned_data["name"],
            )
        except AccountError as error:
            add_flow_error(form, error)
        else:
            return redirect("accounts:signup_done")
    return render(request, "accounts/signup.html", {"form": form})


@never_cache
def signup_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/check_inbox.html", {"reason": "signup"})


# --- Sign in and out ------------------------------------------------------------


@never_cache
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def login_view(request: HttpRequest) -> HttpResponse:
    form = SignInForm(request.POST or None)
    next_url = safe_next_url(request)
    context = {"form": form, "next": next_url or ""}
    if request.method == "POST" and form.is_valid():
        try:
            user = authenticate_user(
                request=request,
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password"],
            )
        except EmailNotVerified:
            context["unverified_email"] = form.cleaned_data["email"]
        except InvalidCredentials as error:
            add_flow_error(form, error)
        else:
            issued = start_browser_session(request=request, user=user)
            response = redirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
            # An SPA served by this site continues from here with /api/auth/refresh/.
            set_refresh_cookie(response, issued.refresh_token)
            return response
    return render(request, "accounts/login.html", context)


@never_cache
@require_POST
def logout_view(request: HttpRequest) -> HttpResponse:
    end_browser_session(request=request)
    messages.info(request, "You are signed out.")
    response = redirect(settings.LOGOUT_REDIRECT_URL)
    clear_refresh_cookie(response)
    return response


@never_cache
@login_required
def account_home(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/home.html")


# --- Email verification ---------------------------------------------------------


def _verification_failed(request: HttpRequest, error: AccountError) -> HttpResponse:
    request.session.pop(VERIFY_TOKEN_SESSION_KEY, None)
    return render(
        request,
        "accounts/verify_email_invalid.html",
        {"error": error, "form": EmailOnlyForm()},
        status=400,
    )


@never_cache
@no_referrer
@require_http_methods(["GET"])
def verify_email_link(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: check the token without using it, then hide it in the session."""
    try:
        check_verification_token(token=token)
    except TokenInvalid as error:
        return _verification_failed(request, error)
    request.session[VERIFY_TOKEN_SESSION_KEY] = token
    return redirect("accounts:verify_email_confirm")


@never_cache
@no_referrer
@require_http_methods(["GET", "POST"])
def verify_email_confirm(request: HttpRequest) -> HttpResponse:
    """Shows a button; only the POST verifies, so link scanners cannot use the token."""
    token = request.session.get(VERIFY_TOKEN_SESSION_KEY)
    try:
        if request.method == "POST":
            verify_email(token=token)
        else:
            check_verification_token(token=token)
    except TokenInvalid as error:
        return _verification_failed(request, error)
    if request.method == "GET":
        return render(request, "accounts/verify_email_confirm.html")
    del request.session[VERIFY_TOKEN_SESSION_KEY]
    messages.success(request, "Your email address is verified.")
    if request.user.is_authenticated:
        return redirect("accounts:home")
    return redirect("accounts:login")


@never_cache
@require_http_methods(["GET", "POST"])
def resend_verification(request: HttpRequest) -> HttpResponse:
    form = EmailOnlyForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    if request.method == "POST" and form.is_valid():
        resend_verification_email(email=form.cleaned_data["email"])
        return redirect("accounts:resend_verification_done")
    return render(request, "accounts/resend_verification.html", {"form": form})


@never_cache
def resend_verification_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/check_inbox.html", {"reason": "verification"})


# --- Password reset -------------------------------------------------------------


@never_cache
@require_http_methods(["GET", "POST"])
def password_reset(request: HttpRequest) -> HttpResponse:
    form = EmailOnlyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        request_password_reset(email=form.cleaned_data["email"])
        return redirect("accounts:password_reset_done")
    return render(request, "accounts/password_reset.html", {"form": form})


@never_cache
def password_reset_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/check_inbox.html", {"reason": "password_reset"})


def _reset_failed(request: HttpRequest, error: AccountError) -> HttpResponse:
    request.session.pop(RESET_TOKEN_SESSION_KEY, None)
    return render(request, "accounts/password_reset_invalid.html", {"error": error}, status=400)


@never_cache
@no_referrer
@require_http_methods(["GET"])
def password_reset_link(request: HttpRequest, token: str) -> HttpResponse:
    """The emailed link: check the token without using it, then hide it in the session."""
    try:
        check_password_reset_token(token=token)
    except TokenInvalid as error:
        return _reset_failed(request, error)
    request.session[RESET_TOKEN_SESSION_KEY] = token
    return redirect("accounts:password_reset_set")


@never_cache
@no_referrer
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def password_reset_set(request: HttpRequest) -> HttpResponse:
    token = request.session.get(RESET_TOKEN_SESSION_KEY)
    try:
        check_password_reset_token(token=token)
    except TokenInvalid as error:
        return _reset_failed(request, error)
    form = SetPasswordForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            reset_password(token=token, password=form.cleaned_data["password1"])
        except TokenInvalid as error:
            return _reset_failed(request, error)
        except AccountError as error:
            add_flow_error(form, error)
        else:
            request.session.pop(RESET_TOKEN_SESSION_KEY, None)
            messages.success(request, "Your password has been changed. Sign in with the new password.")
            return redirect("accounts:login")
    return render(request, "accounts/password_reset_set.html", {"form": form})
