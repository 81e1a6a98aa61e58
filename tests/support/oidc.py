"""A real OpenID Connect provider for the tests (tests/oidc_provider, django-oauth-toolkit) in its own process.

``start_provider()`` starts it on a free port with a SQLite database in a temporary directory, and
stops it; the ``oidc_provider`` (session) and ``provider`` (fault mode off) fixtures wrap it. The
``Provider`` it yields registers clients and users, turns fault modes on and off, and signs a user in
on its pages like a browser (``authorize``). Everything speaks real HTTP to the provider.

It is GitHub too (tests/oidc_provider/github.py): ``github_url`` and ``github_api_url`` are what
``SOCIAL_GITHUB_URL`` and ``SOCIAL_GITHUB_API_URL`` name (GitHub Enterprise Server's layout), with the same
clients, users and sign-in pages; ``/api/v3/user``'s ``id`` is the OIDC ``sub`` as an int.

Fault modes (``Provider.fault``): ``tamper_id_token``, ``expired_id_token``, ``wrong_nonce``,
``wrong_audience``, ``wrong_issuer``, ``unsigned``, ``no_email`` change the ID token of the token
endpoint's answer; ``unavailable`` answers 503 to every request (discovery, keys, token, authorize,
GitHub's endpoints); ``github_no_primary_email`` leaves no primary address in ``/api/v3/user/emails``;
``microsoft_issuer`` poses as Microsoft's multi-tenant issuer (discovery and ID tokens);
``huge_discovery`` pads the discovery document past 2 MB.
"""

import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import requests

from bench.harness import Server, free_port
from tests.support.html import parse_page, text_of
from tests.support.processes import clean_env

NETWORK_TIMEOUT = 10
STARTUP_TIMEOUT = 20
PROVIDER_PASSWORD = "provider-pass-1"
LOGIN_PATH = "/accounts/login/"
AUTHORIZE_PATH = "/o/authorize/"
GITHUB_AUTHORIZE_PATH = "/login/oauth/authorize"
_REDIRECTS = {301, 302, 303, 307, 308}

__all__ = ["PROVIDER_PASSWORD", "Provider", "start_provider"]


@dataclass
class Provider:
    base_url: str  # http://127.0.0.1:PORT
    issuer: str  # http://127.0.0.1:PORT/o

    @property
    def discovery_url(self) -> str:
        return f"{self.issuer}/.well-known/openid-configuration"

    @property
    def github_url(self) -> str:
        """GitHub's base (``/login/oauth/authorize``, ``/login/oauth/access_token``): SOCIAL_GITHUB_URL."""
        return self.base_url

    @property
    def github_api_url(self) -> str:
        """GitHub's API (``/user``, ``/user/emails``): SOCIAL_GITHUB_API_URL."""
        return f"{self.base_url}/api/v3"

    def _control(self, path: str, body: dict) -> dict:
        response = requests.post(f"{self.base_url}/testing/{path}/", json=body, timeout=NETWORK_TIMEOUT)
        assert response.ok, f"the provider refused POST /testing/{path}/ ({response.status_code}): {response.text}"
        return response.json()

    def register_client(self, *, redirect_uris: list[str], skip_authorization: bool = True) -> tuple[str, str]:
        """A confidential authorization-code client (RS256 ID tokens): ``(client_id, client_secret)``.
        ``skip_authorization=False`` shows the consent page on every sign-in."""
        client = self._control("clients", {"redirect_uris": redirect_uris, "skip_authorization": skip_authorization})
        return client["client_id"], client["client_secret"]

    def add_user(
        self, *, email: str, email_verified: bool = True, password: str = PROVIDER_PASSWORD, name: str = ""
    ) -> str:
        """A user who signs in with ``email`` (updated if the address exists, keeping its sub); its ``sub``.
        ``name`` empty: the ID token has no ``name`` claim."""
        body = {"email": email, "password": password, "name": name, "email_verified": email_verified}
        return self._control("users", body)["sub"]

    def fault(self, mode: str | None) -> None:
        """Turn a fault mode on for every request from now on (None: off)."""
        self._control("faults", {"mode": mode})

    def reset(self) -> None:
        """Fault mode off."""
        self._control("reset", {})

    def authorize(
        self, authorize_url: str, *, email: str, password: str = PROVIDER_PASSWORD, consent: bool = True
    ) -> str:
        """Go through the provider like a browser with no session yet: open ``authorize_url`` (the OIDC
        authorization endpoint's or GitHub's ``/login/oauth/authorize``), sign in as ``email``, answer the
        consent page if there is one (Authorize, or Cancel when ``consent`` is False). The URL the provider
        finally redirects to (the client's callback with ``code`` and ``state``, or with ``error``), not
        followed. AssertionError, with the page's text, anywhere else."""
        provider_host = urlsplit(self.base_url).netloc
        signed_in = answered = False
        with requests.Session() as browser:
            response = browser.get(authorize_url, allow_redirects=False, timeout=NETWORK_TIMEOUT)
            for _ in range(10):
                if response.status_code in _REDIRECTS:
                    location = urljoin(response.url, response.headers["Location"])
                    if urlsplit(location).netloc != provider_host:
                        return location
                    response = browser.get(location, allow_redirects=False, timeout=NETWORK_TIMEOUT)
                    continue
                page = parse_page(response.text)
                path = urlsplit(response.url).path
                if response.status_code == 200 and path == LOGIN_PATH and not signed_in:
                    form = page.form("login-form")
                    data = {**form.data(), "username": email, "password": password}
                    signed_in = True
                elif response.status_code == 200 and path in (AUTHORIZE_PATH, GITHUB_AUTHORIZE_PATH) and not answered:
                    form = page.form("authorizationForm")
                    data = {**form.data(), **({"allow": "Authorize"} if consent else {})}
                    answered = True
                else:
                    raise AssertionError(
                        f"the provider answered {response.status_code} at {response.url}: {text_of(response.text)}"
                    )
                action = urljoin(response.url, form.attrs.get("action") or response.url)
                response = browser.post(action, data=data, allow_redirects=False, timeout=NETWORK_TIMEOUT)
        raise AssertionError(f"the provider kept redirecting; last at {response.url}")


@contextmanager
def start_provider() -> Iterator[Provider]:
    """The provider in a process of its own on a free port, ready once its discovery document answers."""
    directory = Path(tempfile.mkdtemp(prefix="oidc-provider-"))
    port = free_port()
    env = clean_env(
        DJANGO_SETTINGS_MODULE="tests.oidc_provider.settings",
        OIDC_PROVIDER_PORT=str(port),
        OIDC_PROVIDER_DATABASE=str(directory / "provider.sqlite3"),
        PYTHONUNBUFFERED="1",
    )
    server = None
    try:
        server = Server(
            [sys.executable, "-m", "tests.oidc_provider"],
            env=env,
            port=port,
            name="oidc-provider",
            log_path=directory / "provider.log",
        )
        provider = Provider(base_url=server.base, issuer=f"{server.base}/o")
        # Raises RuntimeError with the end of the log if the process exits or does not answer in time.
        server.wait_until_ready(urlsplit(provider.discovery_url).path, timeout=STARTUP_TIMEOUT)
        yield provider
    finally:
        if server is not None:
            server.stop(timeout=10)
        shutil.rmtree(directory, ignore_errors=True)
