"""What the browser tests (tests/browser) share: chromium's options, the page instrumentation, and the checks
and steps: a clean console and CSP, axe-core's verdict, screenshots at two widths, sideways scrolling,
signing in on the page or in the app, finding a heading and reading the newest email about something."""

import json
import re
import shutil
from pathlib import Path
from urllib.parse import urlsplit

BROWSER_TESTS = Path(__file__).resolve().parent.parent / "browser"
REPO = BROWSER_TESTS.parent.parent
AXE_JS = BROWSER_TESTS / "node_modules" / "axe-core" / "axe.min.js"
SCREENSHOTS = REPO / "artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 800}
NARROW = {"width": 320, "height": 800}
# A same-origin path the tests serve axe-core from (through Playwright routing,
# never the live server), so injecting it obeys the site's script-src 'self'.
AXE_URL_PATH = "/__browser-tests__/axe.min.js"


CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Runs before any script of every page: record Content Security Policy violations.
CSP_RECORDER = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation", (event) => {
  window.__cspViolations.push({
    directive: event.violatedDirective,
    blocked: event.blockedURI,
    source: event.sourceFile,
    line: event.lineNumber,
    sample: event.sample,
  });
});
"""


def missing_requirement() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if shutil.which("chromium") is None or not Path("/usr/bin/chromium").exists():
        return "Debian's chromium is not installed (/usr/bin/chromium); apt-get install chromium"
    if not AXE_JS.exists():
        return f"axe-core is not installed ({AXE_JS}); run npm ci --prefix tests/browser"
    return None


def instrument(page) -> None:
    """Collect what a clean page must not produce, and the requests it has not had answered yet."""
    page.console_errors = []
    page.page_errors = []
    page.requests_in_flight = set()
    page.on("console", lambda message: page.console_errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: page.page_errors.append(str(error)))
    page.on("request", lambda request: page.requests_in_flight.add(request))
    page.on("requestfinished", lambda request: page.requests_in_flight.discard(request))
    page.on("requestfailed", lambda request: page.requests_in_flight.discard(request))


# --- Checks ---------------------------------------------------------------------

_FAILED_LOAD = re.compile(r"Failed to load resource: the server responded with a status of (\d{3})")


def assert_clean(page, *, allow_statuses=()) -> None:
    """No console error or uncaught exception since the last check, and no CSP violation in this document.

    ``allow_statuses``: HTTP statuses the person is meant to meet here (a 400
    page for a bad link, the 401 of a refresh after the session ended), which
    chromium reports as console errors.
    """
    allowed = {str(status) for status in allow_statuses}
    errors = [
        text for text in page.console_errors if not ((match := _FAILED_LOAD.search(text)) and match.group(1) in allowed)
    ]
    violations = page.evaluate("window.__cspViolations || []")
    page_errors = list(page.page_errors)
    forget_console(page)
    problems = []
    if errors:
        problems.append("console errors:\n  " + "\n  ".join(errors))
    if page_errors:
        problems.append("page errors:\n  " + "\n  ".join(page_errors))
    if violations:
        problems.append("CSP violations:\n  " + "\n  ".join(json.dumps(v) for v in violations))
    assert not problems, f"{page.url}\n" + "\n".join(problems)


QUIET_MS = 150


def wait_for_quiet_network(page, timeout_ms: int = 10_000) -> None:
    """The page has loaded and no request has been in flight for QUIET_MS: what Playwright's
    "networkidle" waits for, with a shorter quiet period than its fixed half second, still long
    enough that a request started in answer to another (the app's refresh, then its todos) counts."""
    page.wait_for_load_state("load")
    quiet_for = 0
    for _ in range(timeout_ms // 10):
        quiet_for = quiet_for + 10 if not page.requests_in_flight else 0
        if quiet_for >= QUIET_MS:
            return
        page.wait_for_timeout(10)  # lets Playwright deliver the answers' events
    raise AssertionError(f"requests still unanswered after {timeout_ms} ms: {page.requests_in_flight}")


def forget_console(page) -> None:
    """Start counting console and page errors afresh (after an expected failure)."""
    page.console_errors.clear()
    page.page_errors.clear()


def assert_accessible(page) -> None:
    """axe-core finds no serious or critical violation on the page as it is now."""
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(page.url))

    def serve_axe(route):
        route.fulfill(path=str(AXE_JS), content_type="text/javascript; charset=utf-8")

    page.route(origin + AXE_URL_PATH, serve_axe)
    try:
        page.add_script_tag(url=origin + AXE_URL_PATH)
    finally:
        page.unroute(origin + AXE_URL_PATH, serve_axe)
    violations = page.evaluate(
        """async () => {
          const results = await axe.run(document, { resultTypes: ["violations"] });
          return results.violations
            .filter((v) => v.impact === "serious" || v.impact === "critical")
            .map((v) => ({
              id: v.id, impact: v.impact, help: v.help,
              nodes: v.nodes.map((n) => `${n.target.join(" ")}: ${n.failureSummary.replace(/\\n/g, " ")}`),
            }));
        }"""
    )
    report = "\n".join(
        f"- [{v['impact']}] {v['id']}: {v['help']}\n" + "\n".join(f"    {node}" for node in v["nodes"][:10])
        for v in violations
    )
    assert not violations, f"axe violations on {page.url}:\n{report}"


def screenshot(page, name: str) -> None:
    """artifacts/screenshots/<name>-desktop.png (1280 wide) and <name>-320.png, full page."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    before = page.viewport_size
    try:
        page.set_viewport_size(DESKTOP)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-desktop.png"), full_page=True)
        page.set_viewport_size(NARROW)
        page.screenshot(path=str(SCREENSHOTS / f"{name}-320.png"), full_page=True)
    finally:
        page.set_viewport_size(before)


def horizontal_overflow(page) -> int:
    """How many CSS pixels the page is wider than its viewport (0: no horizontal scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def path_of(link: str) -> str:
    """The path (and query) of an emailed link, to open on the live server."""
    parts = urlsplit(link)
    return parts.path + (f"?{parts.query}" if parts.query else "")


# --- What a person does often -----------------------------------------------------


def sign_in_on_page(page, email: str, password: str, *, next_path: str | None = None) -> None:
    """Sign in on /accounts/login/ and wait until the site has moved on."""
    from playwright.sync_api import expect

    page.goto("/accounts/login/" + (f"?next={next_path}" if next_path else ""))
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).not_to_have_url(re.compile(r"/accounts/login/"))


def sign_in_in_app(page, email: str, password: str) -> None:
    """Sign in with the SPA's own form on /app/ and wait for the todos."""
    from playwright.sync_api import expect

    expect(page.get_by_role("heading", name="Sign in to your todos", exact=True)).to_be_visible()
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page.get_by_role("heading", name="Your todos", exact=True)).to_be_visible()


def heading(page, name):
    """The heading with exactly this text."""
    return page.get_by_role("heading", name=name, exact=True)


def email_to(address: str, subject: str):
    """The newest email to ``address`` whose subject contains ``subject`` (the live server runs in this process)."""
    from tests.support.mail import delivered

    found = [message for message in delivered() if address in message.to and subject in message.subject]
    assert found, f"no email to {address} about {subject!r}; outbox: {[(m.to, m.subject) for m in delivered()]}"
    return found[-1]
