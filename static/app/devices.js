// The devices view: the account's device sessions, ending one or all others.

import { ApiError, api } from "./api.js";
import { announce, formatDate, h, show } from "./dom.js";

export async function renderDevices({ onSignedOut }) {
  const status = h("div", { class: "form-errors", role: "alert", hidden: true });
  const list = h("ul", { class: "sessions", "aria-label": "Signed-in devices" });
  const othersButton = h("button", { type: "button", hidden: true, onclick: () => act(endOthers) },
    "Sign out all other devices");
  const confirmArea = h("div");

  function showError(error) {
    status.replaceChildren(h("p", {}, error instanceof ApiError ? error.message : "Something went wrong."));
    status.hidden = false;
  }

  async function load() {
    try {
      const sessions = await api("/api/auth/sessions/");
      status.hidden = true;
      list.replaceChildren(...sessions.map(renderSession));
      othersButton.hidden = sessions.length < 2;
    } catch (error) {
      if (error.status !== 401) showError(error);
    }
  }

  function renderSession(session) {
    return h("li", { class: `session${session.current ? " current" : ""}` },
      h("p", { class: "device" }, h("strong", {}, session.device),
        session.current ? h("span", { class: "badge ok" }, " this device") : null),
      h("dl", { class: "details" },
        h("dt", {}, "IP address"), h("dd", {}, session.ip_address || "unknown"),
        h("dt", {}, "Signed in"), h("dd", {}, formatDate(session.created_at)),
        h("dt", {}, "Signed in with"), h("dd", { class: "amr" }, describeMethods(session.amr || [])),
        h("dt", {}, "Last used"), h("dd", {}, formatDate(session.last_used_at)),
      ),
      h("button", {
        type: "button",
        class: "secondary",
        "aria-label": session.current ? "Sign out of this device" : `End this session on ${session.device}`,
        onclick: () => (session.current ? onSignedOut() : act(() => endOne(session))),
      }, session.current ? "Sign out" : "End this session"),
    );
  }

  async function endOne(session) {
    await api(`/api/auth/sessions/${session.id}/`, { method: "DELETE" });
    announce(`Ended the session on ${session.device}.`);
  }

  async function endOthers() {
    await api("/api/auth/sessions/revoke-others/", { method: "POST" });
    announce("All other devices are signed out.");
  }

  // Ending other sessions may need the password again (older than 5 minutes).
  async function act(action) {
    try {
      await action();
      await load();
    } catch (error) {
      if (error.code === "reauthentication_required") {
        askPassword(action);
      } else if (error.status !== 401) {
        showError(error);
      }
    }
  }

  function askPassword(action) {
    const errors = h("div", { class: "form-errors", role: "alert", hidden: true });
    const password = h("input", { type: "password", id: "reauth-password", autocomplete: "current-password" });
    confirmArea.replaceChildren(h("form", {
      class: "stack notice-box",
      onsubmit: async (event) => {
        event.preventDefault();
        try {
          await api("/api/auth/reauthenticate/", { method: "POST", body: { password: password.value } });
          confirmArea.replaceChildren();
          await act(action);
        } catch (error) {
          errors.replaceChildren(h("p", {}, error.code === "invalid_password"
            ? "That password is not correct." : error.message));
          errors.hidden = false;
          password.value = "";
          password.focus();
        }
      },
    },
    h("p", {}, "For your security, enter your password again to continue."),
    errors,
    h("div", { class: "field" }, h("label", { for: "reauth-password" }, "Password"), password),
    h("div", { class: "todo-actions" },
      h("button", { type: "submit" }, "Continue"),
      h("button", { type: "button", class: "secondary", onclick: () => confirmArea.replaceChildren() }, "Cancel"),
    )));
    password.focus();
  }

  show(
    h("h1", {}, "Your devices"),
    h("p", {}, "These devices are signed in to your account. End any you do not recognise."),
    status, confirmArea, list, othersButton,
  );
  await load();
}

// How a session signed in (RFC 8176 amr), in words; the devices page says the same (accounts/amr.py).
function describeMethods(amr) {
  const words = { pwd: "password", otp: "one-time code", hwk: "passkey", swk: "passkey" };
  const methods = amr
    .filter((method) => method !== "mfa" && method !== "user")
    .map((method) => words[method] || method);
  if (methods.length === 0) return "unknown";
  return methods.join(" + ") + (amr.includes("mfa") ? " (two-factor)" : "");
}
