// The access token (in memory only), its refresh through the HttpOnly cookie,
// and coordination between tabs.
//
// The refresh token never reaches JavaScript: it lives in an HttpOnly cookie
// scoped to /api/auth/. Tabs take a Web Lock around every refresh so they do
// not race the rotation, and a BroadcastChannel tells every tab when one signs
// in or out.

const REFRESH_MARGIN_MS = 60_000; // refresh this long before the token expires
const channel = "BroadcastChannel" in window ? new BroadcastChannel("todo-auth") : null;
const listeners = new Set();

let accessToken = null;
let expiresAt = 0;
let refreshTimer = null;

export function onAuthChange(listener) {
  listeners.add(listener);
}

function notify(state) {
  for (const listener of listeners) listener(state);
}

function csrfToken() {
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

async function ensureCsrfCookie() {
  if (!csrfToken()) {
    // Read to the end, so the request is over (and a failure shows) before the token is used.
    const response = await fetch("/api/auth/csrf/", { credentials: "same-origin" });
    await response.text();
  }
  return csrfToken();
}

/**
 * The sign-in providers, each with a form that leaves for it (a browser round trip through the
 * pages, which comes back to /app/ with the refresh cookie set). The form carries the CSRF token,
 * so no other site can start a sign-in here.
 */
export async function socialSignInForms(buttonClass) {
  const response = await fetch("/api/auth/social/providers/", { credentials: "same-origin" });
  if (!response.ok) return [];
  const providers = await response.json();
  if (!providers.length) return [];
  const csrf = await ensureCsrfCookie();
  return providers.map((provider) => {
    const form = document.createElement("form");
    form.method = "post";
    form.action = provider.login_url;
    for (const [name, value] of [["csrfmiddlewaretoken", csrf], ["next", "/app/"]]) {
      const input = document.createElement("input");
      input.type = "hidden";
      input.name = name;
      input.value = value;
      form.append(input);
    }
    const button = document.createElement("button");
    button.type = "submit";
    button.className = buttonClass;
    button.textContent = `Sign in with ${provider.display_name}`;
    form.append(button);
    return form;
  });
}

/** The server sets a script-visible hint next to the HttpOnly refresh cookie. */
export function mayHaveSession() {
  return /(?:^|;\s*)todo_has_session=1(?:;|$)/.test(document.cookie);
}

function store({ access, access_expires_at }) {
  accessToken = access;
  expiresAt = Date.parse(access_expires_at);
  clearTimeout(refreshTimer);
  const delay = Math.max(5_000, expiresAt - Date.now() - REFRESH_MARGIN_MS);
  refreshTimer = setTimeout(() => { refresh(); }, delay);
}

function forget() {
  accessToken = null;
  expiresAt = 0;
  clearTimeout(refreshTimer);
}

async function withRefreshLock(task) {
  if (navigator.locks) {
    return navigator.locks.request("todo-auth-refresh", task);
  }
  return task();
}

/** Exchange the refresh cookie for a new access token. True if signed in. */
export async function refresh() {
  const tokenBefore = accessToken;
  return withRefreshLock(async () => {
    if (accessToken && accessToken !== tokenBefore) {
      return true; // refreshed by a call that held the lock before us
    }
    const csrf = await ensureCsrfCookie();
    let response;
    try {
      response = await fetch("/api/auth/refresh/", {
        method: "POST",
        credentials: "same-origin",
        headers: { "X-CSRFToken": csrf },
      });
    } catch {
      return accessToken !== null; // offline: keep what we have until it fails
    }
    if (response.ok) {
      store(await response.json());
      return true;
    }
    if (response.status === 429) {
      return accessToken !== null;
    }
    const wasSignedIn = accessToken !== null;
    forget();
    if (wasSignedIn) notify("signed-out");
    return false;
  });
}

/** A token that is valid for a while yet, refreshing first if needed. */
export async function freshToken() {
  if (accessToken && expiresAt - Date.now() > REFRESH_MARGIN_MS / 2) return accessToken;
  return (await refresh()) ? accessToken : null;
}

async function postSignIn(path, payload, headers = {}) {
  const response = await fetch(path, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", ...headers },
    body: JSON.stringify(payload),
  });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const error = new Error(body.detail || "Sign-in failed.");
    error.code = body.code;
    error.status = response.status;
    throw error;
  }
  return { status: response.status, body };
}

function signedIn(body) {
  store(body);
  channel?.postMessage({ type: "signed-in" });
  notify("signed-in");
}

/**
 * Sign in with email and password, or throw an Error carrying the API's error code.
 * Resolves to { mfaRequired: true, methods } when the account needs its second factor:
 * the server keeps the pending sign-in behind an HttpOnly cookie; finish with verifySecondFactor.
 */
export async function signIn(email, password) {
  const { status, body } = await postSignIn("/api/auth/login/", { email, password });
  if (status === 202 && body.status === "mfa_required") {
    return { mfaRequired: true, methods: body.methods || [] };
  }
  signedIn(body);
  return { mfaRequired: false };
}

/** Email a sign-in code to this address (the answer is the same whether or not it has an account). */
export async function requestEmailCode(email) {
  await postSignIn("/api/auth/login/email/", { email });
}

/** Sign in with the emailed code; resolves like signIn (the account may still need its second factor). */
export async function signInWithEmailCode(email, code) {
  const { status, body } = await postSignIn("/api/auth/login/email/verify/", { email, code });
  if (status === 202 && body.status === "mfa_required") {
    return { mfaRequired: true, methods: body.methods || [] };
  }
  signedIn(body);
  return { mfaRequired: false };
}

/** The second step: a TOTP code or a recovery code for the pending sign-in. */
export async function verifySecondFactor(code) {
  const csrf = await ensureCsrfCookie();
  const { body } = await postSignIn("/api/auth/mfa/verify/", { code }, { "X-CSRFToken": csrf });
  signedIn(body);
}

/** Whether this browser can use passkeys (WebAuthn with its JSON helpers). */
export function passkeysSupported() {
  return (
    typeof window.PublicKeyCredential === "function" &&
    typeof PublicKeyCredential.parseRequestOptionsFromJSON === "function"
  );
}

async function passkeyAnswer(optionsPath, headers = {}) {
  const { body: options } = await postSignIn(optionsPath, {}, headers);
  let credential;
  try {
    credential = await navigator.credentials.get({ publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options) });
  } catch (failure) {
    const error = new Error(
      failure && failure.name === "NotAllowedError"
        ? "The passkey prompt was closed or timed out. Try again."
        : "Your browser could not use a passkey here.",
    );
    error.code = "passkey_cancelled";
    throw error;
  }
  return credential.toJSON();
}

/**
 * Sign in with a passkey (both factors at once): the options name no account, the browser offers
 * this site's passkeys. Throws an Error carrying the API's code if the passkey is refused.
 */
export async function signInWithPasskey() {
  const credential = await passkeyAnswer("/api/auth/passkeys/sign-in/options/");
  const { status, body } = await postSignIn("/api/auth/passkeys/sign-in/", { credential });
  if (status === 202 && body.status === "mfa_required") {
    return { mfaRequired: true, methods: body.methods || [] };
  }
  signedIn(body);
  return { mfaRequired: false };
}

/** The second step with one of the account's passkeys, for the pending sign-in. */
export async function verifyWithPasskey() {
  const csrf = await ensureCsrfCookie();
  const credential = await passkeyAnswer("/api/auth/mfa/passkey/options/", { "X-CSRFToken": csrf });
  const { body } = await postSignIn("/api/auth/mfa/verify/", { credential }, { "X-CSRFToken": csrf });
  signedIn(body);
}

/** End this device session everywhere: server, this tab, and every other tab. */
export async function signOut() {
  const csrf = await ensureCsrfCookie();
  try {
    await fetch("/api/auth/logout/", {
      method: "POST",
      credentials: "same-origin",
      headers: { "X-CSRFToken": csrf },
    });
  } finally {
    forget();
    channel?.postMessage({ type: "signed-out" });
    notify("signed-out");
  }
}

/** This tab learned (from the API) that its session is gone. */
export function sessionEnded() {
  if (accessToken === null) return;
  forget();
  notify("signed-out");
}

channel?.addEventListener("message", async (event) => {
  if (event.data?.type === "signed-out") {
    forget();
    notify("signed-out");
  } else if (event.data?.type === "signed-in" && accessToken === null) {
    if (await refresh()) notify("signed-in");
  }
});
