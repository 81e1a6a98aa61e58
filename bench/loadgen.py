"""Closed-loop HTTP load from this machine: one http.client connection per thread, every loop bounded."""

import functools
import http.client
import json
import statistics
import threading
import time

from djtool import PASSWORD
from harness import at_once

MAX_REQUESTS_PER_THREAD = 100_000
JSON = {"Content-Type": "application/json"}


class Http:
    """One client connection (reopened whenever the server closes it, as gunicorn's sync workers do)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=b"", headers=None) -> tuple[int, dict, bytes]:
        """(status, cookies set, body); status 0 on a connection error."""
        try:
            self.conn.request(method, path, body=body, headers=headers or {})
            response = self.conn.getresponse()
            data = response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            return 0, {}, b""
        cookies = {}
        for name, value in response.getheaders():
            if name.lower() == "set-cookie":
                key, _, rest = value.partition("=")
                cookies[key.strip()] = rest.split(";", 1)[0].strip('"')
        return response.status, cookies, data

    def close(self):
        self.conn.close()


def _json(data: bytes) -> dict:
    try:
        return json.loads(data)
    except ValueError:
        return {}


class Ours:
    """POST /api/auth/login/ (refresh cookie), POST /api/auth/refresh/ (cookie + CSRF), GET /api/todos/."""

    name = "ours"

    def login(self, h: Http, email: str) -> dict | None:
        _, cookies, _ = h.call("GET", "/api/auth/csrf/")
        status, set_cookies, data = h.call(
            "POST", "/api/auth/login/", json.dumps({"email": email, "password": PASSWORD}), JSON
        )
        if status != 200:
            return None
        return {
            "access": _json(data)["access"],
            "refresh": set_cookies.get("todo_refresh"),
            "csrf": cookies.get("csrftoken"),
        }

    def refresh(self, h: Http, s: dict) -> tuple[bool, str | None]:
        headers = {"Cookie": f"csrftoken={s['csrf']}; todo_refresh={s['refresh']}", "X-CSRFToken": s["csrf"]}
        status, cookies, _ = h.call("POST", "/api/auth/refresh/", b"", headers)
        return status == 200, (cookies.get("todo_refresh") or None) if status == 200 else None


class SimpleJWT:
    """POST /api/token/, POST /api/token/refresh/ (rotation + blacklist), GET /api/todos/."""

    name = "simplejwt"

    def login(self, h: Http, email: str) -> dict | None:
        status, _, data = h.call("POST", "/api/token/", json.dumps({"username": email, "password": PASSWORD}), JSON)
        return _json(data) if status == 200 else None

    def refresh(self, h: Http, s: dict) -> tuple[bool, str | None]:
        status, _, data = h.call("POST", "/api/token/refresh/", json.dumps({"refresh": s["refresh"]}), JSON)
        return status == 200, _json(data).get("refresh") if status == 200 else None


class Allauth:
    """POST /_allauth/app/v1/auth/login, POST /_allauth/app/v1/tokens/refresh, GET /api/todos/."""

    name = "allauth"

    def login(self, h: Http, email: str) -> dict | None:
        body = json.dumps({"email": email, "password": PASSWORD})
        status, _, data = h.call("POST", "/_allauth/app/v1/auth/login", body, JSON)
        meta = _json(data).get("meta", {})
        return {"access": meta["access_token"], "refresh": meta["refresh_token"]} if status == 200 else None

    def refresh(self, h: Http, s: dict) -> tuple[bool, str | None]:
        body = json.dumps({"refresh_token": s["refresh"]})
        status, _, data = h.call("POST", "/_allauth/app/v1/tokens/refresh", body, JSON)
        return status == 200, _json(data).get("data", {}).get("refresh_token") if status == 200 else None


PROTOCOLS = {p.name: p for p in (Ours(), SimpleJWT(), Allauth())}


def list_step(path: str, access: str | None):
    headers = {"Authorization": f"Bearer {access}"} if access else {}

    def step(h: Http) -> bool:
        status, _, _ = h.call("GET", path, b"", headers)
        return status == 200

    return step


def refresh_chain_step(proto, session: dict):
    """Each call presents the token the previous call returned (one client's chain)."""

    def step(h: Http) -> bool:
        ok, new = proto.refresh(h, session)
        if ok and new:
            session["refresh"] = new
        return ok and bool(new)

    return step


def login_step(proto, emails: list[str]):
    state = {"next": 0}

    def step(h: Http) -> bool:
        email = emails[state["next"] % len(emails)]
        state["next"] += 1
        return proto.login(h, email) is not None

    return step


def summarize(latencies: list[float], errors: int, elapsed: float) -> dict:
    ordered = sorted(latencies)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000 if ordered else float("nan")  # noqa: E731
    return {
        "requests": len(ordered),
        "errors": errors,
        "seconds": round(elapsed, 2),
        "rps": round(len(ordered) / elapsed, 1) if elapsed else 0.0,
        "p50_ms": round(pick(0.50), 2),
        "p99_ms": round(pick(0.99), 2),
        "mean_ms": round(statistics.fmean(ordered) * 1000, 2) if ordered else float("nan"),
    }


def closed_loop(port: int, steps: list, duration: float) -> tuple[list[float], int, float]:
    """Run one thread per step for `duration` seconds, each sending its next request when the last is answered.

    Returns (latencies in seconds, errors, elapsed seconds)."""
    results = [([], 0) for _ in steps]
    start = threading.Barrier(len(steps) + 1, timeout=30)
    deadline = [0.0]

    def worker(index: int, step) -> None:
        h, latencies, errors = Http(port), [], 0
        start.wait()
        for _ in range(MAX_REQUESTS_PER_THREAD):
            began = time.perf_counter()
            if began >= deadline[0]:
                break
            ok = step(h)
            latencies.append(time.perf_counter() - began)
            errors += not ok
        h.close()
        results[index] = (latencies, errors)

    threads = [threading.Thread(target=worker, args=(i, s), daemon=True) for i, s in enumerate(steps)]
    for thread in threads:
        thread.start()
    began = time.perf_counter()
    deadline[0] = began + duration
    start.wait()
    for thread in threads:
        thread.join(timeout=duration + 60)
    return [x for lat, _ in results for x in lat], sum(e for _, e in results), time.perf_counter() - began


def tabs(port: int, proto, email: str, rounds: int, tabs_count: int = 8) -> tuple[dict, str]:
    """One session; each round, `tabs_count` threads refresh with the same token at the same instant.

    The next round uses the token of the response that arrived last among those that
    returned a new one (what a cookie jar or localStorage keeps). A round with no new
    token signs in again (`relogins`).
    """
    h = Http(port)
    session = proto.login(h, email)
    h.close()
    latencies, errors, forks, relogins, elapsed = [], 0, 0, 0, 0.0

    def fire(conn: Http, tokens: dict) -> tuple:
        began = time.perf_counter()
        ok, new = proto.refresh(conn, tokens)
        ended = time.perf_counter()
        conn.close()
        return ok, new, ended - began, ended

    for _ in range(rounds):
        round_began = time.perf_counter()
        connections = [Http(port) for _ in range(tabs_count)]
        for conn in connections:  # connected before the barrier: the race is the refresh alone
            conn.conn.connect()
        raced = at_once([functools.partial(fire, conn, dict(session)) for conn in connections])
        elapsed += time.perf_counter() - round_began
        done = [outcome.value for outcome in raced if outcome.error is None]  # a failed call is an error
        errors += tabs_count - sum(1 for ok, *_ in done if ok)
        latencies += [o[2] for o in done]
        fresh = sorted((o for o in done if o[0] and o[1]), key=lambda o: o[3])
        forks += max(0, len(fresh) - 1)
        if fresh:
            session["refresh"] = fresh[-1][1]
        else:
            relogins += 1
            h = Http(port)
            session = proto.login(h, email) or session
            h.close()
    result = summarize(latencies, errors, elapsed)
    result.update({"rounds": rounds, "extra_new_tokens": forks, "relogins": relogins})
    return result, session["refresh"]
