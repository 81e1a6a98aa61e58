// The signed-out view: sign in through the API, or go to the sign-in page.

import {
  passkeysSupported, requestEmailCode, signIn, signInWithEmailCode, signInWithPasskey, socialSignInForms,
  verifySecondFactor, verifyWithPasskey,
} from "./auth.js";
import { h, show } from "./dom.js";

export function renderSignIn() {
  const error = h("div", { class: "form-errors", role: "alert", hidden: true });
  const email = h("input", { type: "email", id: "signin-email", name: "email", autocomplete: "email", required: true });
  const password = h("input", {
    type: "password", id: "signin-password", name: "password", autocomplete: "current-password", required: true,
  });
  const submit = h("button", { type: "submit" }, "Sign in");

  async function onSubmit(event) {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const outcome = await signIn(email.value, password.value);
      password.value = "";
      if (outcome.mfaRequired) renderSecondStep(outcome.methods);
    } catch (failure) {
      error.replaceChildren(h("p", {}, messageFor(failure)));
      if (failure.code === "email_not_verified") {
        error.append(h("p", {}, h("a", { href: "/accounts/verify-email/resend/" }, "Send a new verification link")));
      }
      error.hidden = false;
      password.value = "";
      password.focus();
    } finally {
      submit.disabled = false;
    }
  }

  const passkeyButton = passkeysSupported()
    ? h("button", { type: "button", class: "secondary", onclick: onPasskey }, "Sign in with a passkey")
    : null;

  async function onPasskey() {
    error.hidden = true;
    passkeyButton.disabled = true;
    try {
      const outcome = await signInWithPasskey();
      if (outcome.mfaRequired) renderSecondStep(outcome.methods);
    } catch (failure) {
      error.replaceChildren(h("p", {}, messageFor(failure)));
      error.hidden = false;
    } finally {
      passkeyButton.disabled = false;
    }
  }

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
  const error = h("div", { class: "form-errors", role: "alert", hidden: true });
  const email = h("input", {
    type: "email", id: "email-code-email", name: "email", autocomplete: "email", required: true, value: initialEmail,
  });
  const send = h("button", { type: "submit" }, "Email me a code");

  async function onSend(event) {
    event.preventDefault();
    error.hidden = true;
    send.disabled = true;
    try {
      await requestEmailCode(email.value);
      renderEnterCode(email.value);
    } catch (failure) {
      error.replaceChildren(h("p", {}, failure.code === "invalid_input" ? "Enter your email address." : messageFor(failure)));
      error.hidden = false;
      email.focus();
    } finally {
      send.disabled = false;
    }
  }

  show(
    h("h1", {}, "Sign in with an emailed code"),
    h("p", {}, "We will email you a code to sign in with, no password needed."),
    h("form", { class: "stack", onsubmit: onSend, novalidate: true },
      error,
      h("div", { class: "field" }, h("label", { for: "email-code-email" }, "Email address"), email),
      send,
    ),
    h("p", {}, h("a", { href: "/app/", onclick: (event) => { event.preventDefault(); renderSignIn(); } },
      "Sign in with your password instead")),
  );
  email.focus();
}

function renderEnterCode(address) {
  const error = h("div", { class: "form-errors", role: "alert", hidden: true });
  const code = h("input", {
    type: "text", id: "email-code", name: "code", autocomplete: "one-time-code", autocapitalize: "characters",
    spellcheck: "false", required: true,
  });
  const submit = h("button", { type: "submit" }, "Sign in");

  async function onSubmit(event) {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      const outcome = await signInWithEmailCode(address, code.value);
      if (outcome.mfaRequired) renderSecondStep(outcome.methods);
    } catch (failure) {
      error.replaceChildren(h("p", {}, failure.code === "invalid_input" ? "Enter the code from the email." : messageFor(failure)));
      error.hidden = false;
      code.value = "";
      code.focus();
    } finally {
      submit.disabled = false;
    }
  }

  show(
    h("h1", {}, "Check your inbox"),
    h("p", {}, "We sent an email to ", h("strong", {}, address),
      ". If the address has an account, the email has an 8-character code: enter it here, or open its link."),
    h("form", { class: "stack", onsubmit: onSubmit, novalidate: true },
      error,
      h("div", { class: "field" }, h("label", { for: "email-code" }, "Sign-in code"), code),
      submit,
    ),
    h("p", {}, h("a", { href: "/app/", onclick: (event) => { event.preventDefault(); renderEmailCode(address); } },
      "Send a new code or use another address")),
  );
  code.focus();
}

/** The second step of an account with two-factor authentication: a passkey, a code from the app or a recovery code. */
function renderSecondStep(methods = []) {
  const error = h("div", { class: "form-errors", role: "alert", hidden: true });
  const code = h("input", {
    type: "text", id: "signin-code", name: "code", autocomplete: "one-time-code", autocapitalize: "characters",
    spellcheck: "false", required: true,
  });
  const submit = h("button", { type: "submit" }, "Verify");

  async function onSubmit(event) {
    event.preventDefault();
    error.hidden = true;
    submit.disabled = true;
    try {
      await verifySecondFactor(code.value);
    } catch (failure) {
      if (failure.code === "sign_in_expired") {
        renderSignIn();
        const notice = document.querySelector(".form-errors");
        if (notice) {
          notice.replaceChildren(h("p", {}, failure.message));
          notice.hidden = false;
        }
        return;
      }
      error.replaceChildren(h("p", {}, messageFor(failure)));
      error.hidden = false;
      code.value = "";
      code.focus();
    } finally {
      submit.disabled = false;
    }
  }

  const withPasskey = methods.includes("passkey") && passkeysSupported();
  const passkeyButton = withPasskey ? h("button", { type: "button", onclick: onPasskey }, "Use your passkey") : null;

  async function onPasskey() {
    error.hidden = true;
    passkeyButton.disabled = true;
    try {
      await verifyWithPasskey();
    } catch (failure) {
      if (failure.code === "sign_in_expired") {
        renderSignIn();
        return;
      }
      error.replaceChildren(h("p", {}, messageFor(failure)));
      error.hidden = false;
    } finally {
      passkeyButton.disabled = false;
    }
  }

  show(
    h("h1", {}, "Two-factor authentication"),
    ...(passkeyButton ? [h("p", {}, "Confirm it is you with your passkey, or enter a code."), passkeyButton] : []),
    h("p", {}, "Enter the 6-digit code from your authenticator app, or one of your recovery codes."),
    h("form", { class: "stack", onsubmit: onSubmit, novalidate: true },
      error,
      h("div", { class: "field" }, h("label", { for: "signin-code" }, "Code"), code),
      submit,
    ),
    h("p", {}, h("a", { href: "/app/", onclick: (event) => { event.preventDefault(); renderSignIn(); } }, "Start again")),
  );
  code.focus();
}

function messageFor(failure) {
  if (failure.code === "rate_limited") return "Too many attempts. Please wait a little and try again.";
  if (failure.code === "invalid_input") return "Fill in every field.";
  return failure.message;
}
