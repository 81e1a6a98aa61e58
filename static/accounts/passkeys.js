// Passkeys on the account pages (progressive enhancement: without this script, or without WebAuthn,
// the passkey forms stay hidden and the pages work with the password and codes).
//
// A form marked data-passkey="create" or "get" runs one WebAuthn ceremony when submitted: it asks
// data-options-url for the options (POST, with the form's CSRF token), lets the browser create or
// use a passkey, puts the credential's JSON in the form's "credential" field and submits the form
// as usual; the page's view does the rest. data-autofill on a "get" form also offers the site's
// passkeys in the browser's autofill of the sign-in form's email field (conditional mediation).

const supported =
  typeof window.PublicKeyCredential === "function" &&
  typeof PublicKeyCredential.parseCreationOptionsFromJSON === "function" &&
  typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function";

class PasskeyError extends Error {}

function csrfToken(form) {
  const field = form.querySelector("input[name=csrfmiddlewaretoken]");
  return field ? field.value : "";
}

function showStatus(form, message) {
  const status = form.querySelector("[data-passkey-status]");
  if (status) status.textContent = message;
}

async function fetchOptions(form) {
  let response;
  try {
    response = await fetch(form.dataset.optionsUrl, {
      method: "POST",
      headers: { "X-CSRFToken": csrfToken(form), Accept: "application/json" },
      credentials: "same-origin",
    });
  } catch {
    throw new PasskeyError("Could not reach the server. Check your connection and try again.");
  }
  const body = await response.json().catch(() => ({}));
  if (response.status === 403 && body.code === "reauthentication_required") {
    // The window for adding a passkey closed while the page was open: confirm it is you, then back here.
    window.location.reload();
    throw new PasskeyError(body.detail);
  }
  if (!response.ok) {
    throw new PasskeyError(body.detail || "Passkeys are not available right now. Try again in a few minutes.");
  }
  return body;
}

function submitCredential(form, credential) {
  form.querySelector("input[name=credential]").value = JSON.stringify(credential.toJSON());
  form.submit();
}

function describeFailure(error) {
  if (error instanceof PasskeyError) return error.message;
  if (error && error.name === "InvalidStateError") return "This passkey is already registered to your account.";
  if (error && error.name === "NotAllowedError") return "The passkey prompt was closed or timed out. Try again.";
  return "Your browser could not use a passkey here.";
}

async function runCeremony(form, signal) {
  const options = await fetchOptions(form);
  if (form.dataset.passkey === "create") {
    return navigator.credentials.create({ publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options) });
  }
  return navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options), signal });
}

// The autofill request waiting in the background; a click on the button ends it first (a page
// may have one WebAuthn request at a time).
let autofill = null;

function enhance(form) {
  form.hidden = false;
  for (const hint of document.querySelectorAll("[data-passkey-unsupported]")) hint.hidden = true;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button[type=submit]");
    if (autofill) autofill.abort();
    showStatus(form, "");
    if (button) button.disabled = true;
    try {
      const credential = await runCeremony(form);
      if (credential) submitCredential(form, credential);
    } catch (error) {
      showStatus(form, describeFailure(error));
    } finally {
      if (button) button.disabled = false;
    }
  });
}

async function offerInAutofill(form) {
  if (typeof PublicKeyCredential.isConditionalMediationAvailable !== "function") return;
  if (!(await PublicKeyCredential.isConditionalMediationAvailable())) return;
  autofill = new AbortController();
  try {
    const options = await fetchOptions(form);
    const credential = await navigator.credentials.get({
      mediation: "conditional",
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
      signal: autofill.signal,
    });
    if (credential) submitCredential(form, credential);
  } catch (error) {
    // Aborted for the button, or the person typed a password instead: nothing to say.
    if (error && error.name !== "AbortError" && error instanceof PasskeyError) showStatus(form, error.message);
  }
}

if (supported) {
  for (const form of document.querySelectorAll("form[data-passkey]")) {
    enhance(form);
    if (form.dataset.autofill !== undefined) offerInAutofill(form);
  }
}
