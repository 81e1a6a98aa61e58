// The todo single-page app: start-up, routing between views, sign-out.

import { api } from "./api.js";
import { mayHaveSession, onAuthChange, refresh, signOut } from "./auth.js";
import { renderDevices } from "./devices.js";
import { show, h } from "./dom.js";
import { renderSignIn } from "./signin.js";
import { renderTodos } from "./todos.js";

const nav = document.getElementById("app-nav");
const mailBanner = document.getElementById("mail-banner");
let signedIn = false;

// The ESP sent the person's mail back (or they reported it as spam): ask them to check the address.
async function checkAddress() {
  try {
    const me = await api("/api/auth/me/");
    if (!signedIn) return; // signed out while asking: the banner is no one's now
    document.getElementById("mail-banner-address").textContent = me.email;
    document.getElementById("mail-banner-why").textContent =
      me.email_undeliverable === "complaint"
        ? "was reported as spam, so we send it only security notices and the emails you ask for."
        : "is not getting through: your provider sent it back.";
    mailBanner.hidden = !me.email_undeliverable;
  } catch {
    mailBanner.hidden = true; // signed out meanwhile, or offline: nothing to say
  }
}

// The app's links are for signed-in people only.
function showNav(visible) {
  nav.hidden = !visible;
}

const routes = {
  todos: () => renderTodos(),
  devices: () => renderDevices({ onSignedOut: signOut }),
};

function currentRoute() {
  const name = location.hash.replace(/^#\/?/, "");
  return routes[name] ? name : "todos";
}

async function render() {
  if (!signedIn) {
    showNav(false);
    // signIn() announces "signed-in" through onAuthChange below, which renders the todos exactly once.
    renderSignIn();
    return;
  }
  showNav(true);
  const route = currentRoute();
  for (const link of nav.querySelectorAll("[data-route]")) {
    if (link.dataset.route === route) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  await routes[route]();
}

onAuthChange((state) => {
  const now = state === "signed-in";
  if (now === signedIn) return;
  signedIn = now;
  if (!signedIn) {
    mailBanner.hidden = true;
    show(
      h("h1", {}, "You are signed out"),
      h("p", {}, "Your session has ended on this device."),
    );
    showNav(false);
    setTimeout(render, 0);
  } else {
    checkAddress();
    render();
  }
});

document.getElementById("sign-out").addEventListener("click", signOut);
window.addEventListener("hashchange", () => { if (signedIn) render(); });

// A browser that signed in on the HTML pages already holds the refresh cookie.
signedIn = mayHaveSession() && (await refresh());
if (signedIn) checkAddress();
await render();
