"""Server-rendered account pages: validate the form, call the flow, show its outcome."""

from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import logout, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme, urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts.audit import recent_events_of
from accounts.client_info import ClientInfo
from accounts.cookies import (
    CLEAR_SITE_DATA_KEEP_COOKIES,
    clear_refresh_cookie,
    clear_signup_proof_cookie,
    read_signup_proof,
    set_refresh_cookie,
    set_signup_proof_cookie,
)
from accounts.exceptions import (
    AccountError,
    EmailNotVerified,
    InvalidCredentials,
    PasswordProofRequired,
    ReauthenticationRequired,
    SessionNotFound,
    TokenInvalid,
)
from accounts.flows.account_deletion import delete_account
from accounts.flows.device_sessions import (
    EndReason,
    end_device_session,
    live_sessions,
    reauthenticate,
    require_recent_authentication,
)
from accounts.flows.email_change import cancel_email_change, check_email_change_cancel_token, request_email_change
from accounts.flows.password_change import change_password
from accounts.flows.password_reset import check_password_reset_token, request_password_reset, reset_password
from accounts.flows.profile import update_profile
from accounts.flows.security_reset import security_reset
from accounts.flows.signin import DEVICE_SESSION_KEY, authenticate_user, end_browser_session, start_browser_session
from accounts.flows.signup import sign_up
from accounts.flows.verification import (
    Verifier,
    can_replace_password,
    check_verification_token,
    resend_verification_email,
    verification_needs_password,
    verify_email,
)
from accounts.forms import (
    CancelEmailChangeForm,
    DeleteAccountForm,
    EmailChangeForm,
    EmailOnlyForm,
    PasswordChangeForm,
    PasswordConfirmForm,
    ProfileForm,
    SetPasswordForm,
    SignInForm,
    SignUpForm,
    VerifyWithNewPasswordForm,
    VerifyWithPasswordForm,
    add_flow_error,
)
from accounts.user_agents import describe_user_agent

# Emailed tokens are moved from the URL into the session before any form is
# shown, so they do not linger in history, Referer headers or access logs.
RESET_TOKEN_SESSION_KEY = "_password_reset_token"  # noqa: S105 a session key name
VERIFY_TOKEN_SESSION_KEY = "_email_verification_token"  # noqa: S105 a session key name
CANCEL_CHANGE_TOKEN_SESSION_KEY = "_email_change_cancel_token"  # noqa: S105 a session key name


# Never a path (which held the token) in a Referer, yet still an Origin on form
# posts: with "no-referrer" browsers send "Origin: null", which CSRF refuses.
TOKEN_PAGE_REFERRER_POLICY = "strict-origin"  # noqa: S105 a header value


def token_page_referrer_policy(view):
    """Pages whose URL held a token must not leak it through the Referer header."""

    @wraps(view)
    def wrapped(request, *args, **kwargs):
        response = view(request, *args, **kwargs)
        response["Referrer-Policy"] = TOKEN_PAGE_REFERRER_POLICY
        return response

    return wrapped


def _hide_emailed_token(
    request: HttpRequest,
    token: str,
    *,
    check: Callable[..., object],
    session_key: str,
    next_view: str,
    failed: Callable[[HttpRequest, AccountError], HttpResponse],
) -> HttpResponse:
    """An emailed link: check its token without using it up, then move it into the
    session and on to the page with the button, so it leaves the address bar."""
    try:
        check(token=token)
    except TokenInvalid as error:
        return failed(request, error)
    request.session[session_key] = token
    return redirect(next_view)


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
            proof = sign_up(
                email=form.cleaned_data["email"],
                password=form.cleaned_data["password1"],
                name=form.cleaned_data["name"],
                client=ClientInfo.from_request(request),
            )
        except AccountError as error:
            add_flow_error(form, error)
        else:
            response = redirect("accounts:signup_done")
            set_signup_proof_cookie(response, proof)
            return response
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
    response["Clear-Site-Data"] = CLEAR_SITE_DATA_KEEP_COOKIES
    return response


@never_cache
@login_required
def account_home(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/home.html", {"events": recent_events_of(user=request.user)})


# --- Self-service ---------------------------------------------------------------


def _device_session_id(request: HttpRequest) -> str | None:
    return request.session.get(DEVICE_SESSION_KEY)


def _reauthenticate_redirect(request: HttpRequest, next_path: str) -> HttpResponse:
    messages.info(request, ReauthenticationRequired.message)
    return redirect(f"{reverse('accounts:reauthenticate')}?{urlencode({'next': next_path})}")


@never_cache
@login_required
@require_http_methods(["GET", "POST"])
def profile(request: HttpRequest) -> HttpResponse:
    form = ProfileForm(request.POST or None, initial={"name": request.user.name})
    if request.method == "POST" and form.is_valid():
        try:
            update_profile(user=request.user, name=form.cleaned_data["name"])
        except AccountError as error:
            add_flow_error(form, error)
        else:
            messages.success(request, "Your name has been saved.")
            return redirect("accounts:home")
    return render(request, "accounts/profile.html", {"form": form})


@never_cache
@login_required
@sensitive_post_parameters("current_password", "password1", "password2")
@require_http_methods(["GET", "POST"])
def password_change(request: HttpRequest) -> HttpResponse:
    form = PasswordChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            ended = change_password(
                user=request.user,
                current_password=form.cleaned_data["current_password"],
                new_password=form.cleaned_data["password1"],
                session_id=_device_session_id(request),
                client=ClientInfo.from_request(request),
            )
        except AccountError as error:
            add_flow_error(form, error)
        else:
            # The new password changes the session hash; keep this browser signed in.
            update_session_auth_hash(request, request.user)
            messages.success(request, f"Your password has been changed. Other devices signed out: {ended}.")
            return redirect("accounts:home")
    return render(request, "accounts/password_change.html", {"form": form})


@never_cache
@login_required
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def email_change(request: HttpRequest) -> HttpResponse:
    form = EmailChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            request_email_change(
                user=request.user,
                password=form.cleaned_data["password"],
                new_email=form.cleaned_data["new_email"],
                session_id=_device_session_id(request),
                client=ClientInfo.from_request(request),
            )
        except AccountError as error:
            add_flow_error(form, error)
        else:
            return redirect("accounts:email_change_sent")
    return render(request, "accounts/email_change.html", {"form": form})


@never_cache
@login_required
def email_change_sent(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/check_inbox.html", {"reason": "email_change"})


@never_cache
@login_required
def sessions(request: HttpRequest) -> HttpResponse:
    current = _device_session_id(request)
    rows = [
        {"session": session, "device": describe_user_agent(session.user_agent), "current": str(session.pk) == current}
        for session in live_sessions(user=request.user)
    ]
    return render(request, "accounts/sessions.html", {"rows": rows})


@never_cache
@login_required
@require_POST
def session_end(request: HttpRequest, session_id: str) -> HttpResponse:
    client = ClientInfo.from_request(request)
    if session_id == _device_session_id(request):
        return logout_view(request)
    try:
        require_recent_authentication(session_id=_device_session_id(request))
    except ReauthenticationRequired:
        return _reauthenticate_redirect(request, reverse("accounts:sessions"))
    try:
        end_device_session(user=request.user, session_id=session_id, reason=EndReason.ENDED_BY_USER, client=client)
    except SessionNotFound:
        messages.error(request, "That session does not exist or has already ended.")
    else:
        messages.success(request, "The session has been ended.")
    return redirect("accounts:sessions")


@never_cache
@login_required
@require_POST
def sessions_end_others(request: HttpRequest) -> HttpResponse:
    current = _device_session_id(request)
    try:
        require_recent_authentication(session_id=current)
    except ReauthenticationRequired:
        return _reauthenticate_redirect(request, reverse("accounts:sessions"))
    ended = security_reset(
        user=request.user,
        reason=EndReason.ENDED_BY_USER,
        keep_session_id=current,
        client=ClientInfo.from_request(request),
    )
    messages.success(
        request, f"Other sessions ended: {ended}. Links we had emailed you and not yet used no longer work."
    )
    return redirect("accounts:sessions")


@never_cache
@login_required
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def reauthenticate_view(request: HttpRequest) -> HttpResponse:
    form = PasswordConfirmForm(request.POST or None)
    next_url = safe_next_url(request)
    if request.method == "POST" and form.is_valid():
        try:
            reauthenticate(
                user=request.user,
                session_id=_device_session_id(request),
                password=form.cleaned_data["password"],
                client=ClientInfo.from_request(request),
            )
        except AccountError as error:
            add_flow_error(form, error)
        else:
            return redirect(next_url or "accounts:home")
    return render(request, "accounts/reauthenticate.html", {"form": form, "next": next_url or ""})


@never_cache
@login_required
@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def delete_account_view(request: HttpRequest) -> HttpResponse:
    form = DeleteAccountForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            delete_account(
                user=request.user, password=form.cleaned_data["password"], client=ClientInfo.from_request(request)
            )
        except AccountError as error:
            add_flow_error(form, error)
        else:
            logout(request)
            messages.success(request, "Your account has been deleted.")
            response = redirect("home")
            clear_refresh_cookie(response)
            response["Clear-Site-Data"] = CLEAR_SITE_DATA_KEEP_COOKIES
            return response
    return render(request, "accounts/delete_account.html", {"form": form})


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
@token_page_referrer_policy
@require_http_methods(["GET"])
def verify_email_link(request: HttpRequest, token: str) -> HttpResponse:
    return _hide_emailed_token(
        request,
        token,
        check=check_verification_token,
        session_key=VERIFY_TOKEN_SESSION_KEY,
        next_view="accounts:verify_email_confirm",
        failed=_verification_failed,
    )


def _verifier(request: HttpRequest, *, password: str | None = None, new_password: str | None = None) -> Verifier:
    return Verifier(
        signup_proof=read_signup_proof(request),
        signed_in_user_id=request.user.pk if request.user.is_authenticated else None,
        password=password,
        new_password=new_password,
    )


@never_cache
@token_page_referrer_policy
@sensitive_post_parameters("password", "password1", "password2")
@require_http_methods(["GET", "POST"])
def verify_email_confirm(request: HttpRequest) -> HttpResponse:
    """Shows a button; only the POST verifies, so link scanners cannot use the token.

    From a browser other than the one that signed up (and not signed in as
    the account) the page asks for the account's password or a new one.
    """
    token = request.session.get(VERIFY_TOKEN_SESSION_KEY)
    try:
        row = check_verification_token(token=token)
    except TokenInvalid as error:
        return _verification_failed(request, error)
    choice = request.POST.get("proof") if request.method == "POST" else None
    password_form = VerifyWithPasswordForm(request.POST if choice == "password" else None, prefix="current")
    new_password_form = VerifyWithNewPasswordForm(request.POST if choice == "new_password" else None, prefix="new")
    context = {
        "needs_password": verification_needs_password(row=row, verifier=_verifier(request)),
        "change": row.purpose == row.Purpose.CHANGE,
        "can_replace_password": can_replace_password(row),
        "password_form": password_form,
        "new_password_form": new_password_form,
    }
    if request.method == "GET":
        return render(request, "accounts/verify_email_confirm.html", context)
    if choice == "password":
        form, verifier = password_form, _verifier(request, password=_cleaned(password_form, "password"))
    elif choice == "new_password" and context["can_replace_password"]:
        form, verifier = new_password_form, _verifier(request, new_password=_cleaned(new_password_form, "password1"))
    else:
        form, verifier = None, _verifier(request)
    if form is not None and not form.is_valid():
        return render(request, "accounts/verify_email_confirm.html", context, status=400)
    try:
        verify_email(token=token, verifier=verifier, client=ClientInfo.from_request(request))
    except TokenInvalid as error:
        return _verification_failed(request, error)
    except PasswordProofRequired as error:
        messages.error(request, error.message)
        return render(request, "accounts/verify_email_confirm.html", context, status=400)
    except AccountError as error:
        add_flow_error(form or password_form, error)
        return render(request, "accounts/verify_email_confirm.html", context, status=400)
    del request.session[VERIFY_TOKEN_SESSION_KEY]
    if verifier.new_password:  # only ever set where it replaces the password (can_replace_password)
        messages.success(request, "Your email address is verified and your new password is set. Sign in with it.")
        response = redirect("accounts:login")
    else:
        messages.success(request, "Your email address is verified.")
        response = redirect("accounts:home" if request.user.is_authenticated else "accounts:login")
    clear_signup_proof_cookie(response)
    return response


def _cleaned(form, field: str) -> str | None:
    return form.cleaned_data.get(field) if form.is_valid() else None


@never_cache
@require_http_methods(["GET", "POST"])
def resend_verification(request: HttpRequest) -> HttpResponse:
    form = EmailOnlyForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    if request.method == "POST" and form.is_valid():
        resend_verification_email(email=form.cleaned_data["email"], client=ClientInfo.from_request(request))
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
        request_password_reset(email=form.cleaned_data["email"], client=ClientInfo.from_request(request))
        return redirect("accounts:password_reset_done")
    return render(request, "accounts/password_reset.html", {"form": form})


@never_cache
def password_reset_done(request: HttpRequest) -> HttpResponse:
    return render(request, "accounts/check_inbox.html", {"reason": "password_reset"})


def _reset_failed(request: HttpRequest, error: AccountError) -> HttpResponse:
    request.session.pop(RESET_TOKEN_SESSION_KEY, None)
    return render(request, "accounts/password_reset_invalid.html", {"error": error}, status=400)


@never_cache
@token_page_referrer_policy
@require_http_methods(["GET"])
def password_reset_link(request: HttpRequest, token: str) -> HttpResponse:
    return _hide_emailed_token(
        request,
        token,
        check=check_password_reset_token,
        session_key=RESET_TOKEN_SESSION_KEY,
        next_view="accounts:password_reset_set",
        failed=_reset_failed,
    )


@never_cache
@token_page_referrer_policy
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
            reset_password(
                token=token, password=form.cleaned_data["password1"], client=ClientInfo.from_request(request)
            )
        except TokenInvalid as error:
            return _reset_failed(request, error)
        except AccountError as error:
            add_flow_error(form, error)
        else:
            request.session.pop(RESET_TOKEN_SESSION_KEY, None)
            messages.success(request, "Your password has been changed. Sign in with the new password.")
            return redirect("accounts:login")
    return render(request, "accounts/password_reset_set.html", {"form": form})


# --- "Not me": cancelling or undoing an email change -----------------------------


def _cancel_failed(request: HttpRequest, error: AccountError) -> HttpResponse:
    request.session.pop(CANCEL_CHANGE_TOKEN_SESSION_KEY, None)
    return render(request, "accounts/email_change_cancel_invalid.html", {"error": error}, status=400)


@never_cache
@token_page_referrer_policy
@require_http_methods(["GET"])
def email_change_cancel_link(request: HttpRequest, token: str) -> HttpResponse:
    return _hide_emailed_token(
        request,
        token,
        check=check_email_change_cancel_token,
        session_key=CANCEL_CHANGE_TOKEN_SESSION_KEY,
        next_view="accounts:email_change_cancel_confirm",
        failed=_cancel_failed,
    )


@never_cache
@token_page_referrer_policy
@sensitive_post_parameters("password1", "password2")
@require_http_methods(["GET", "POST"])
def email_change_cancel_confirm(request: HttpRequest) -> HttpResponse:
    token = request.session.get(CANCEL_CHANGE_TOKEN_SESSION_KEY)
    try:
        row = check_email_change_cancel_token(token=token)
    except TokenInvalid as error:
        return _cancel_failed(request, error)
    form = CancelEmailChangeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            user = cancel_email_change(
                token=token, new_password=form.cleaned_data["password1"], client=ClientInfo.from_request(request)
            )
        except TokenInvalid as error:
            return _cancel_failed(request, error)
        except AccountError as error:
            add_flow_error(form, error)
        else:
            # Every session ended, this browser's too: start clean.
            logout(request)
            messages.success(
                request,
                "Your account is secured: it keeps this email address, every device was signed out "
                "and your new password is set. "
                + ("Sign in with it." if user.is_active else "The account is deactivated: contact support to use it."),
            )
            response = redirect("accounts:login")
            clear_refresh_cookie(response)
            return response
    return render(request, "accounts/email_change_cancel.html", {"form": form, "address": row.email})
