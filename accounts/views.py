"""Server-rendered account pages: validate the form, call the flow, show its outcome."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.conf import settings
from django.contrib import messages
from django.contrib.auth import update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render, resolve_url
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from accounts import amr as methods
from accounts.audit import recent_events_of
from accounts.client_info import ClientInfo
from accounts.cookies import (
    clear_signup_proof_cookie,
    read_signup_proof,
    set_refresh_cookie,
    set_signup_proof_cookie,
)
from accounts.exceptions import (
    AccountError,
    EmailNotVerified,
    PasskeyRefused,
    PasswordProofRequired,
    ReauthenticationRequired,
    SessionNotFound,
    SignInInterrupted,
    TokenInvalid,
)
from accounts.flows.account_deletion import delete_account
from accounts.flows.device_sessions import live_sessions
from accounts.flows.email_change import cancel_email_change, check_email_change_cancel_token, request_email_change
from accounts.flows.email_sign_in import (
    authenticate_email_code,
    authenticate_email_link,
    check_email_sign_in_link,
    request_email_sign_in,
)
from accounts.flows.own_sessions import SessionsEnded, end_other_sessions, end_own_session
from accounts.flows.passkeys import reauthenticate_with_passkey
from accounts.flows.password_change import change_password
from accounts.flows.password_reset import check_password_reset_token, request_password_reset, reset_password
from accounts.flows.profile import update_profile
from accounts.flows.reauthentication import reauthenticate
from accounts.flows.second_factor import has_mfa, has_passkey, has_totp
from accounts.flows.signin import (
    DEVICE_SESSION_KEY,
    SecondStepRequired,
    SignedIn,
    authenticate_user,
    end_browser_session,
    finish_first_factor,
    start_browser_session,
)
from accounts.flows.signup import sign_up
from accounts.flows.social import connected_providers
from accounts.flows.verification import (
    Verifier,
    can_replace_password,
    check_verification_token,
    resend_verification_email,
    verification_needs_password,
    verify_email,
)
from accounts.forms import (
    DeleteAccountForm,
    EmailChangeForm,
    EmailCodeForm,
    EmailOnlyForm,
    PasskeyAnswerForm,
    PasswordChangeForm,
    PasswordConfirmForm,
    ProfileForm,
    SecondFactorForm,
    SecureAccountForm,
    SetPasswordForm,
    SignInForm,
    SignUpForm,
    VerifyWithNewPasswordForm,
    VerifyWithPasswordForm,
    add_flow_error,
)
from accounts.models import EmailSignInCode, EmailVerificationToken, PasswordResetToken, User
from accounts.pages import (
    Data,
    EmailedLinkView,
    SignedInRequest,
    account_page,
    form_page,
    reauthenticate_first,
    safe_next_url,
    signed_out,
    with_next,
)
from accounts.user_agents import describe_user_agent

# The handle of this browser's pending sign-in (accounts.flows.pending), while it waits for its code.
PENDING_SIGN_IN_KEY = "_pending_sign_in"
# The address a sign-in by email was asked for, while the page waits for its code.
EMAIL_SIGN_IN_ADDRESS_KEY = "_email_sign_in_address"


def _client(request: HttpRequest) -> ClientInfo:
    return ClientInfo.from_request(request)


def _device_session_id(request: HttpRequest) -> str | None:
    session_id: str | None = request.session.get(DEVICE_SESSION_KEY)
    return session_id


def _check_inbox(reason: str, *, signed_in: bool = False) -> Callable[..., HttpResponse]:
    """The "check your inbox" page shown after asking for an emailed link."""

    def view(request: HttpRequest) -> HttpResponse:
        return render(request, "accounts/check_inbox.html", {"reason": reason})

    return never_cache(login_required(view) if signed_in else view)


signup_done = _check_inbox("signup")
resend_verification_done = _check_inbox("verification")
password_reset_done = _check_inbox("password_reset")
email_change_sent = _check_inbox("email_change", signed_in=True)


# --- Sign up, sign in, sign out ---------------------------------------------------


@account_page(secrets=("password1", "password2"))
def signup(request: HttpRequest) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        proof = sign_up(email=data["email"], password=data["password1"], name=data["name"], client=_client(request))
        response = redirect("accounts:signup_done")
        set_signup_proof_cookie(response, proof)
        return response

    return form_page(request, form=SignUpForm(request.POST or None), template="accounts/signup.html", on_valid=on_valid)


@account_page(secrets=("password",))
def login_view(request: HttpRequest) -> HttpResponse:
    next_url = safe_next_url(request)
    context: Data = {"next": next_url or ""}

    def on_valid(data: Data) -> HttpResponse:
        try:
            user = authenticate_user(request=request, email=data["email"], password=data["password"])
        except EmailNotVerified:
            context["unverified_email"] = data["email"]
            return render(request, "accounts/login.html", {"form": form, **context})
        return first_factor_done(request, finish_first_factor(user=user, amr=[methods.PASSWORD]), next_url)

    form = SignInForm(request.POST or None)
    return form_page(request, form=form, template="accounts/login.html", on_valid=on_valid, context=context)


def first_factor_done(request: HttpRequest, step: SignedIn | SecondStepRequired, next_url: str | None) -> HttpResponse:
    """Signed in, or on to the second step when the account has one."""
    if isinstance(step, SecondStepRequired):
        request.session[PENDING_SIGN_IN_KEY] = step.handle
        return redirect(with_next(reverse("accounts:login_mfa"), next_url))
    return signed_in(request, step, next_url)


def signed_in(request: HttpRequest, sign_in: SignedIn, next_url: str | None) -> HttpResponse:
    """Start this browser's session and go where the person was heading (or, if the account
    changed meanwhile, back to signing in)."""
    try:
        issued = start_browser_session(request=request, sign_in=sign_in)
    except SignInInterrupted as error:
        messages.error(request, error.message)
        return redirect(with_next(reverse("accounts:login"), next_url))
    request.session.pop(PENDING_SIGN_IN_KEY, None)  # one begun for another account, abandoned
    response = redirect(next_url or resolve_url(settings.LOGIN_REDIRECT_URL))
    # An SPA served by this site continues from here with /api/auth/refresh/.
    set_refresh_cookie(response, issued.refresh_token)
    return response


@account_page()
def email_login(request: HttpRequest) -> HttpResponse:
    """Asking for a sign-in code by email: the same answer for every address."""
    next_url = safe_next_url(request)

    def on_valid(data: Data) -> HttpResponse:
        request_email_sign_in(email=data["email"], client=_client(request))
        request.session[EMAIL_SIGN_IN_ADDRESS_KEY] = data["email"]
        return redirect(with_next(reverse("accounts:login_email_code"), next_url))

    form = EmailOnlyForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    context = {"next": next_url or ""}
    return form_page(request, form=form, template="accounts/email_login.html", on_valid=on_valid, context=context)


@account_page(secrets=("code",))
def email_login_code(request: HttpRequest) -> HttpResponse:
    """Entering the emailed code (for the address this browser asked for)."""
    next_url = safe_next_url(request)
    email = request.session.get(EMAIL_SIGN_IN_ADDRESS_KEY)
    if not isinstance(email, str):
        return redirect(with_next(reverse("accounts:login_email"), next_url))

    def on_valid(data: Data) -> HttpResponse:
        step = authenticate_email_code(
            email=email, code=data["code"], client=_client(request), signup_proof=read_signup_proof(request)
        )
        request.session.pop(EMAIL_SIGN_IN_ADDRESS_KEY, None)
        return first_factor_done(request, step, next_url)

    return form_page(
        request,
        form=EmailCodeForm(request.POST or None),
        template="accounts/email_login_code.html",
        on_valid=on_valid,
        context={
            "next": next_url or "",
            "email": email,
            "valid_minutes": settings.ACCOUNTS_EMAIL_SIGN_IN_TIMEOUT // 60,
        },
    )


class EmailSignInLinkView(EmailedLinkView):
    """The emailed sign-in link: its page shows a button, whose POST signs in (scanners only GET)."""

    session_key = "_email_sign_in_token"
    confirm_url_name = "accounts:login_email_confirm"
    invalid_template = "accounts/email_login_invalid.html"

    def check(self, token: str | None) -> EmailSignInCode:
        return check_email_sign_in_link(token=token)

    def confirm(self, request: HttpRequest, token: str, row: EmailSignInCode) -> HttpResponse:
        if request.method == "GET":
            # The whole address, and who this browser is signed in as: someone who sends their own
            # link to a victim must not get them signed in to the sender's account unawares.
            signed_in_as = request.user.email if request.user.is_authenticated else None
            context = {"address": row.user.email if row.user else "", "signed_in_as": signed_in_as}
            return render(request, "accounts/email_login_confirm.html", context)
        step = authenticate_email_link(token=token, client=_client(request), signup_proof=read_signup_proof(request))
        self.used(request)
        return first_factor_done(request, step, None)


@account_page(methods=("POST",))
def logout_view(request: HttpRequest) -> HttpResponse:
    end_browser_session(request=request)
    return signed_out(request, to=settings.LOGOUT_REDIRECT_URL, message="You are signed out.", level=messages.INFO)


@account_page(signed_in=True, methods=("GET",))
def account_home(request: SignedInRequest) -> HttpResponse:
    return render(request, "accounts/home.html", {"events": recent_events_of(user=request.user)})


# --- Self-service -----------------------------------------------------------------


@account_page(signed_in=True)
def profile(request: SignedInRequest) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        update_profile(user=request.user, name=data["name"])
        messages.success(request, "Your name has been saved.")
        return redirect("accounts:home")

    form = ProfileForm(request.POST or None, initial={"name": request.user.name})
    return form_page(request, form=form, template="accounts/profile.html", on_valid=on_valid)


@account_page(signed_in=True, secrets=("current_password", "password1", "password2"))
def password_change(request: SignedInRequest) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        ended = change_password(
            user=request.user,
            current_password=data["current_password"],
            new_password=data["password1"],
            session_id=_device_session_id(request),
            client=_client(request),
        )
        # The new password changes the session hash; keep this browser signed in.
        update_session_auth_hash(request, request.user)
        messages.success(request, f"Your password has been changed. Other devices signed out: {ended}.")
        return redirect("accounts:home")

    form = PasswordChangeForm(request.POST or None)
    return form_page(request, form=form, template="accounts/password_change.html", on_valid=on_valid)


@account_page(signed_in=True, secrets=("password",))
def email_change(request: SignedInRequest) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        request_email_change(
            user=request.user,
            password=data["password"],
            new_email=data["new_email"],
            session_id=_device_session_id(request),
            client=_client(request),
        )
        return redirect("accounts:email_change_sent")

    form = EmailChangeForm(request.POST or None)
    return form_page(request, form=form, template="accounts/email_change.html", on_valid=on_valid)


@account_page(signed_in=True, methods=("GET",))
def sessions(request: SignedInRequest) -> HttpResponse:
    current = _device_session_id(request)
    rows = [
        {
            "session": session,
            "device": describe_user_agent(session.user_agent),
            "current": str(session.pk) == current,
            "signed_in_with": methods.describe(session.amr),
        }
        for session in live_sessions(user=request.user)
    ]
    return render(request, "accounts/sessions.html", {"rows": rows})


def _after_ending(
    request: HttpRequest, ending: Callable[[], SessionsEnded], done: Callable[[int], str]
) -> HttpResponse:
    """Run a flow that ends sessions; sign this browser out if its own session was one of them."""
    try:
        ended = ending()
    except ReauthenticationRequired:
        return reauthenticate_first(request, next_path=reverse("accounts:sessions"))
    except SessionNotFound:
        messages.error(request, "That session does not exist or has already ended.")
        return redirect("accounts:sessions")
    if ended.includes_current:
        return signed_out(request, to=settings.LOGOUT_REDIRECT_URL, message="You are signed out.", level=messages.INFO)
    messages.success(request, done(ended.count))
    return redirect("accounts:sessions")


@account_page(signed_in=True, methods=("POST",))
def session_end(request: SignedInRequest, session_id: str) -> HttpResponse:
    return _after_ending(
        request,
        lambda: end_own_session(
            user=request.user,
            session_id=session_id,
            current_session_id=_device_session_id(request),
            client=_client(request),
        ),
        lambda count: "The session has been ended.",
    )


@account_page(signed_in=True, methods=("POST",))
def sessions_end_others(request: SignedInRequest) -> HttpResponse:
    return _after_ending(
        request,
        lambda: end_other_sessions(
            user=request.user, current_session_id=_device_session_id(request), client=_client(request)
        ),
        lambda count: f"Other sessions ended: {count}. Links we had emailed you and not yet used no longer work.",
    )


@account_page(signed_in=True, secrets=("password", "code"))
def reauthenticate_view(request: SignedInRequest) -> HttpResponse:
    """The password, or a code of the second factor; the page asks for the code first when the
    action needs a second factor (``?factor=code``) and the account has one."""
    next_url = safe_next_url(request)
    has_code = has_mfa(request.user)
    with_code = has_code and (request.POST.get("proof") == "code" or request.GET.get("factor") == "code")
    if request.method == "POST" and request.POST.get("proof") == "passkey":
        answer = PasskeyAnswerForm(request.POST)
        try:
            if not answer.is_valid():
                raise PasskeyRefused
            reauthenticate_with_passkey(
                user=request.user,
                session_id=_device_session_id(request),
                credential=answer.cleaned_data["credential"],
                client=_client(request),
            )
        except PasskeyRefused as error:
            messages.error(request, error.message)
            return redirect(request.get_full_path())
        return redirect(next_url or "accounts:home")

    def on_valid(data: Data) -> HttpResponse:
        reauthenticate(
            user=request.user,
            session_id=_device_session_id(request),
            password=data.get("password"),
            code=data.get("code"),
            client=_client(request),
        )
        return redirect(next_url or "accounts:home")

    with_app = has_totp(request.user)
    form: forms.Form = (
        SecondFactorForm(request.POST or None, with_app=with_app)
        if with_code
        else PasswordConfirmForm(request.POST or None)
    )
    return form_page(
        request,
        form=form,
        template="accounts/reauthenticate.html",
        on_valid=on_valid,
        context={
            "next": next_url or "",
            "with_code": with_code,
            "has_code": has_code,
            "has_passkey": has_passkey(request.user),
            "has_totp": with_app,
            # A provider proves the person again as a first factor: not where a second one is asked for.
            "reauthenticate_providers": [] if with_code else connected_providers(user=request.user),
        },
    )


@account_page(signed_in=True, secrets=("password",))
def delete_account_view(request: SignedInRequest) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        delete_account(
            user=request.user,
            password=data["password"],
            session_id=_device_session_id(request),
            client=_client(request),
        )
        return signed_out(request, to="home", message="Your account has been deleted.")

    form = DeleteAccountForm(request.POST or None)
    return form_page(request, form=form, template="accounts/delete_account.html", on_valid=on_valid)


# --- Asking for an emailed link ---------------------------------------------------


@account_page()
def resend_verification(request: HttpRequest) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        resend_verification_email(email=data["email"], client=_client(request))
        return redirect("accounts:resend_verification_done")

    form = EmailOnlyForm(request.POST or None, initial={"email": request.GET.get("email", "")})
    return form_page(request, form=form, template="accounts/resend_verification.html", on_valid=on_valid)


@account_page()
def password_reset(request: HttpRequest) -> HttpResponse:
    def on_valid(data: Data) -> HttpResponse:
        request_password_reset(email=data["email"], client=_client(request))
        return redirect("accounts:password_reset_done")

    form = EmailOnlyForm(request.POST or None)
    return form_page(request, form=form, template="accounts/password_reset.html", on_valid=on_valid)


# --- Following an emailed link ----------------------------------------------------


# The two forms are prefixed ("current-", "new-"): those are the names the POST carries.
@method_decorator(sensitive_post_parameters("current-password", "new-password1", "new-password2"), name="dispatch")
class VerifyEmailView(EmailedLinkView):
    """Verifying an address. From a browser other than the one that signed up (and
    not signed in as the account) the page asks for the account's password or a new one."""

    session_key = "_email_verification_token"
    confirm_url_name = "accounts:verify_email_confirm"
    invalid_template = "accounts/verify_email_invalid.html"

    def invalid_context(self) -> Data:
        return {"form": EmailOnlyForm()}  # to ask for a new link

    def check(self, token: str | None) -> EmailVerificationToken:
        return check_verification_token(token=token)

    def confirm(self, request: HttpRequest, token: str, row: EmailVerificationToken) -> HttpResponse:
        choice = request.POST.get("proof") if request.method == "POST" else None
        password_form = VerifyWithPasswordForm(request.POST if choice == "password" else None, prefix="current")
        new_password_form = VerifyWithNewPasswordForm(request.POST if choice == "new_password" else None, prefix="new")
        context = {
            "needs_password": verification_needs_password(row=row, verifier=self._verifier(request)),
            "change": row.purpose == row.Purpose.CHANGE,
            "can_replace_password": can_replace_password(row),
            "password_form": password_form,
            "new_password_form": new_password_form,
        }
        if request.method == "GET":
            return render(request, "accounts/verify_email_confirm.html", context)
        form: forms.Form | None
        if choice == "password":
            form, verifier = password_form, self._verifier(request, password=_cleaned(password_form, "password"))
        elif choice == "new_password" and context["can_replace_password"]:
            form = new_password_form
            verifier = self._verifier(request, new_password=_cleaned(new_password_form, "password1"))
        else:
            form, verifier = None, self._verifier(request)
        if form is not None and not form.is_valid():
            return render(request, "accounts/verify_email_confirm.html", context, status=400)
        try:
            verify_email(token=token, verifier=verifier, client=_client(request))
        except PasswordProofRequired as error:
            messages.error(request, error.message)
            return render(request, "accounts/verify_email_confirm.html", context, status=400)
        except TokenInvalid:
            raise
        except AccountError as error:
            add_flow_error(form or password_form, error)
            return render(request, "accounts/verify_email_confirm.html", context, status=400)
        self.used(request)
        if verifier.new_password:  # only ever set where it replaces the password (can_replace_password)
            messages.success(request, "Your email address is verified and your new password is set. Sign in with it.")
            response = redirect("accounts:login")
        else:
            messages.success(request, "Your email address is verified.")
            response = redirect("accounts:home" if request.user.is_authenticated else "accounts:login")
        clear_signup_proof_cookie(response)
        return response

    @staticmethod
    def _verifier(request: HttpRequest, *, password: str | None = None, new_password: str | None = None) -> Verifier:
        return Verifier(
            signup_proof=read_signup_proof(request),
            signed_in_user_id=request.user.pk if request.user.is_authenticated else None,
            password=password,
            new_password=new_password,
        )


def _cleaned(form: forms.Form, field: str) -> str | None:
    return form.cleaned_data.get(field) if form.is_valid() else None


@method_decorator(sensitive_post_parameters("password1", "password2"), name="dispatch")
class PasswordResetView(EmailedLinkView):
    """Choosing a new password from the emailed reset link."""

    session_key = "_password_reset_token"
    confirm_url_name = "accounts:password_reset_set"
    invalid_template = "accounts/password_reset_invalid.html"

    def check(self, token: str | None) -> PasswordResetToken:
        return check_password_reset_token(token=token)

    def confirm(self, request: HttpRequest, token: str, row: PasswordResetToken) -> HttpResponse:
        def on_valid(data: Data) -> HttpResponse:
            reset_password(token=token, password=data["password1"], client=_client(request))
            self.used(request)
            messages.success(request, "Your password has been changed. Sign in with the new password.")
            return redirect("accounts:login")

        form = SetPasswordForm(request.POST or None)
        return form_page(request, form=form, template="accounts/password_reset_set.html", on_valid=on_valid)


def account_secured(request: HttpRequest, user: User, *, done: str) -> HttpResponse:
    """After a "not me" link: every session ended (this browser's too), a new password set, and
    ``done``; how to go on from here."""
    if not user.is_active:
        then = "The account is deactivated: contact support to use it."
    elif has_mfa(user):
        then = (
            "Two-factor authentication is still on: sign in with it and a passkey, your authenticator app "
            "or a recovery code. If a passkey or an app on the account is not yours, use the link in the "
            "email about it, or contact support."
        )
    else:
        then = "Sign in with it."
    return signed_out(
        request,
        to="accounts:login",
        message=f"Your account is secured: {done}, every device was signed out and your new password is set. {then}",
    )


@method_decorator(sensitive_post_parameters("password1", "password2"), name="dispatch")
class EmailChangeCancelView(EmailedLinkView):
    """Cancelling or undoing an email change ("not me") from the notice sent to the current address."""

    session_key = "_email_change_cancel_token"
    confirm_url_name = "accounts:email_change_cancel_confirm"
    invalid_template = "accounts/email_change_cancel_invalid.html"

    def check(self, token: str | None) -> EmailVerificationToken:
        return check_email_change_cancel_token(token=token)

    def confirm(self, request: HttpRequest, token: str, row: EmailVerificationToken) -> HttpResponse:
        def on_valid(data: Data) -> HttpResponse:
            user = cancel_email_change(token=token, new_password=data["password1"], client=_client(request))
            self.used(request)
            return account_secured(request, user, done="it keeps this email address")

        form = SecureAccountForm(request.POST or None)
        return form_page(
            request,
            form=form,
            template="accounts/email_change_cancel.html",
            on_valid=on_valid,
            context={"address": row.email},
        )
