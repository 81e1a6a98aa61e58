// The signed-out view: sign in through the API, or go to the sign-in page.

import {
  passkeysSupported, requestEmailCode, signIn, signInWithEmailCode, signInWithPasskey, socialSignInForms,
  verifySecondFactor, verifyWithPasskey,
} from "./auth.js";
import { h, show } from "./dom.js";

export function renderSignIn() {
  const error = errorBox();
  const email = h("input", { type: "email", id: "signin-email", name: "email", autocomplete: "email", required: true });
  const password = h("input", {
    type: "password", id: "signin-password", name: "password", autocomplete: "current-password", required: true,
  });
  const submit = h("button", { type: "submit" }, "Sign in");

  const onSubmit = whileBusy(submit, error, async () => {
    const outcome = await signIn(email.value, password.value);
    password.value = "";
    if (outcome.mfaRequired) renderSecondStep(outcome.methods);
  }, (failure) => {
    showFailure(error, failure);
    if (failure.code === "email_not_verified") {
      error.append(h("p", {}, h("a", { href: "/accounts/verify-email/resend/" }, "Send a new verification link")));
    }
    password.value = "";
    password.focus();
  });

  const passkeyButton = passkeysSupported()
    ? h("button", { type: "button", class: "secondary" }, "Sign in with a passkey")
    : null;
  passkeyButton?.addEventListener("click", whileBusy(passkeyButton, error, async () => {
    const outcome = await signInWithPasskey();
    if (outcome.mfaRequired) renderSecondStep(outcome.methods);
  }));

  const providers = h("div", { class: "stack social-sign-in" });
  // Shown when they arrive; without them (or the network) the rest of the view works the same.
  socialSignInForms("secondary").then((forms) => providers.replaceChildren(...forms)).catch(() => {});

  show(
    h("h1", {}, "Sign in to your todos"),
    h("p", {}, "Signed in on this site already? ",
      h("a", { href: "/accounts/login/?next=/app/" }, "Use the sign-in page"), " and you will come straight back."),
    h("form", { class: "stack", onsubmit: onSubmit, novalidate: true },
      error,
      h("div", { class: "field" }, h("label", { for: "signin-email" }, "Email address"), email),
      h("div", { class: "field" }, h("label", { for: "signin-password" }, "Password"), password),
      submit,
    ),
    ...(passkeyButton ? [passkeyButton] : []),
    h("button", { type: "button", class: "secondary", onclick: () => renderEmailCode(email.value) },
      "Email me a sign-in code"),
    providers,
    h("p", {}, h("a", { href: "/accounts/password/reset/" }, "Forgot your password?")),
    h("p", {}, "New here? ", h("a", { href: "/accounts/signup/" }, "Create an account"), "."),
  );
}

/** Signing in with an emailed code: ask for it for an address, then enter it. */
function renderEmailCode(initialEmail = "") {
  const error = errorBox();
  const email = h("input", {
    type: "email", id: "email-code-email", name: "email", autocomplete: "email", required: true, value: initialEmail,
  });
  const send = h("button", { type: "submit" }, "Email me a code");

  const onSend = whileBusy(send, error, async () => {
    await requestEmailCode(email.value);
    renderEnterCode(email.value);
  }, (failure) => {
    showFailure(error, failure, "Enter your email address.");
    email.focus();
  });

  show(
    h("h1", {}, "Sign in with an emailed code"),
    h("p", {}, "We will email you a code to sign in with, no password needed."),
    h("form", { class: "stack", onsubmit: onSend, novalidate: true },
      error,
      h("div", { class: "field" }, h("label", { for: "email-code-email" }, "Email address"), email),
      send,
    ),
    h("p", {}, goTo("Sign in with your password instead", renderSignIn)),
  );
  email.focus();
}

function renderEnterCode(address) {
  const error = errorBox();
  const code = codeInput("email-code");
  const submit = h("button", { type: "submit" }, "Sign in");

  const onSubmit = whileBusy(submit, error, async () => {
    const outcome = await signInWithEmailCode(address, code.value);
    if (outcome.mfaRequired) renderSecondStep(outcome.methods);
  }, (failure) => {
    showFailure(error, failure, "Enter the code from the email.");
    clearAndFocus(code);
  });

  show(
    h("h1", {}, "Check your inbox"),
    h("p", {}, "We sent an email to ", h("strong", {}, address),
      ". If the address has an account, the email has an 8-character code: enter it here, or open its link."),
    h("form", { class: "stack", onsubmit: onSubmit, novalidate: true },
      error,
      h("div", { class: "field" }, h("label", { for: "email-code" }, "Sign-in code"), code),
      submit,
    ),
    h("p", {}, goTo("Send a new code or use another address", () => renderEmailCode(address))),
  );
  code.focus();
}

/** The second step of an account with two-factor authentication: a passkey, a code from the app or a recovery code. */
function renderSecondStep(methods = []) {
  const error = errorBox();
  const code = codeInput("signin-code");
  const submit = h("button", { type: "submit" }, "Verify");

  const onSubmit = whileBusy(submit, error, () => verifySecondFactor(code.value), (failure) => {
    if (failure.code === "sign_in_expired") {
      renderSignIn();
      const notice = document.querySelector(".form-errors");
      if (notice) showFailure(notice, failure);
      return;
    }
    showFailure(error, failure);
    clearAndFocus(code);
  });

  const withPasskey = methods.includes("passkey") && passkeysSupported();
  const passkeyButton = withPasskey ? h("button", { type: "button" }, "Use your passkey") : null;
  passkeyButton?.addEventListener("click", whileBusy(passkeyButton, error, verifyWithPasskey, (failure) => {
    if (failure.code === "sign_in_expired") renderSignIn();
    else showFailure(error, failure);
  }));

  show(
    h("h1", {}, "Two-factor authentication"),
    ...(passkeyButton ? [h("p", {}, "Confirm it is you with your passkey, or enter a code."), passkeyButton] : []),
    h("p", {}, "Enter the 6-digit code from your authenticator app, or one of your recovery codes."),
    h("form", { class: "stack", onsubmit: onSubmit, novalidate: true },
      error,
      h("div", { class: "field" }, h("label", { for: "signin-code" }, "Code"), code),
      submit,
    ),
    h("p", {}, goTo("Start again", renderSignIn)),
  );
  code.focus();
}

/**
 * A handler for a form's submit or a button's click: ``work`` runs with ``button`` disabled and
 * ``error`` hidden; a failure goes to ``failed`` (by default, shown in ``error``).
 */
function whileBusy(button, error, work, failed = (failure) => showFailure(error, failure)) {
  return async (event) => {
    event?.preventDefault();
    error.hidden = true;
    button.disabled = true;
    try {
      await work();
    } catch (failure) {
      failed(failure);
    } finally {
      button.disabled = false;
    }
  };
}

function errorBox() {
  return h("div", { class: "form-errors", role: "alert", hidden: true });
}

/** ``failure`` in ``box``; ``missingInput`` is the message for a field left empty or malformed. */
function showFailure(box, failure, missingInput) {
  const message = failure.code === "invalid_input" && missingInput ? missingInput : messageFor(failure);
  box.replaceChildren(h("p", {}, message));
  box.hidden = false;
}

function codeInput(id) {
  return h("input", {
    type: "text", id, name: "code", autocomplete: "one-time-code", autocapitalize: "characters",
    spellcheck: "false", required: true,
  });
}

function clearAndFocus(input) {
  input.value = "";
  input.focus();
}

/** A link that shows another view of the signed-out app. */
function goTo(text, render) {
  return h("a", { href: "/app/", onclick: (event) => { event.preventDefault(); render(); } }, text);
}

function messageFor(failure) {
  if (failure.code === "rate_limited") return "Too many attempts. Please wait a little and try again.";
  if (failure.code === "invalid_input") return "Fill in every field.";
  return failure.message;
}
