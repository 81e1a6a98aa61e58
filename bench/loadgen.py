"""Closed-loop HTTP load from this machine: one http.client connection per thread, every loop bounded."""

import functools
import http.client
import json
import statistics
import threading
import time

from djtool import PASSWORD, REFRESH_COOKIE, USER_AGENT
from harness import at_once

MAX_REQUESTS_PER_THREAD = 100_000
JSON = {"Content-Type": "application/json"}


class Http:
    """One client connection (reopened whenever the server closes it, as gunicorn's sync workers do).

    Every request carries the same browser User-Agent (djtool.USER_AGENT)."""

    def __init__(self, port: int):
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def call(self, method, path, body=b"", headers=None) -> tuple[int, dict, bytes]:
        """(status, cookies set: "" for a cleared one, body); status 0 on a connection error."""
        try:
            self.conn.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
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
        parsed = json.loads(data)
    except ValueError:
        return {}
    return parsed if isinstance(parsed, dict) else {}


# Each protocol: login(h, email, csrf) -> the client's state ({"access", "refresh", ...}) or None;
# refresh(h, state) -> (status, the refresh token the response gives the client to keep: None when it
# gives none, "" when it clears the cookie).


class Ours:
    """POST /api/auth/login/ (refresh cookie), POST /api/auth/refresh/ (cookie + CSRF), GET /api/todos/."""

    name = "ours"

    def login(self, h: Http, email: str, csrf: bool = True) -> dict | None:
        """With csrf, first GET /api/auth/csrf/ for the CSRF cookie a refresh needs (sign-in needs none)."""
        cookies = h.call("GET", "/api/auth/csrf/")[1] if csrf else {}
        status, set_cookies, data = h.call(
            "POST", "/api/auth/login/", json.dumps({"email": email, "password": PASSWORD}), JSON
        )
        if status != 200:
            return None
        return {
            "access": _json(data)["access"],
            "refresh": set_cookies.get(REFRESH_COOKIE),
            "csrf": set_cookies.get("csrftoken") or cookies.get("csrftoken"),
        }

    def refresh(self, h: Http, s: dict) -> tuple[int, str | None]:
        cookie = f"csrftoken={s['csrf']}" + (f"; {REFRESH_COOKIE}={s['refresh']}" if s.get("refresh") else "")
        status, cookies, _ = h.call("POST", "/api/auth/refresh/", b"", {"Cookie": cookie, "X-CSRFToken": s["csrf"]})
        return status, cookies.get(REFRESH_COOKIE)


class SimpleJWT:
    """POST /api/token/, POST /api/token/refresh/ (rotation + blacklist), GET /api/todos/."""

    name = "simplejwt"

    def login(self, h: Http, email: str, csrf: bool = True) -> dict | None:
        status, _, data = h.call("POST", "/api/token/", json.dumps({"username": email, "password": PASSWORD}), JSON)
        return _json(data) if status == 200 else None

    def refresh(self, h: Http, s: dict) -> tuple[int, str | None]:
        status, _, data = h.call("POST", "/api/token/refresh/", json.dumps({"refresh": s["refresh"]}), JSON)
        return status, _json(data).get("refresh") if status == 200 else None


class Allauth:
    """POST /_allauth/app/v1/auth/login, POST /_allauth/app/v1/tokens/refresh, GET /api/todos/."""

    name = "allauth"

    def login(self, h: Http, email: str, csrf: bool = True) -> dict | None:
        body = json.dumps({"email": email, "password": PASSWORD})
        status, _, data = h.call("POST", "/_allauth/app/v1/auth/login", body, JSON)
        meta = _json(data).get("meta", {})
        return {"access": meta["access_token"], "refresh": meta["refresh_token"]} if status == 200 else None

    def refresh(self, h: Http, s: dict) -> tuple[int, str | None]:
        body = json.dumps({"refresh_token": s["refresh"]})
        status, _, data = h.call("POST", "/_allauth/app/v1/tokens/refresh", body, JSON)
        return status, _json(data).get("data", {}).get("refresh_token") if status == 200 else None


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
        status, new = proto.refresh(h, session)
        if new:
            session["refresh"] = new
        return status == 200 and bool(new)

    return step


def login_step(proto, emails: list[str]):
    """Sign-in alone, users in rotation (no CSRF request first: a sign-in needs none)."""
    state = {"next": 0}

    def step(h: Http) -> bool:
        email = emails[state["next"] % len(emails)]
        state["next"] += 1
        return proto.login(h, email, csrf=False) is not None

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


def tabs(port: int, proto, email: str, rounds: int, tabs_count: int = 8, holds=None) -> tuple[dict, list]:
    """One session in `tabs_count` tabs of one browser, each with its own cookie jar; every round, all tabs
    send a refresh with the token their jar holds, released at the same instant.

    Each tab updates its own jar from its own response only: a new token replaces the one it held, a
    cleared cookie leaves it empty, a response without one leaves the jar as it was. After each round
    `holds(tokens)` (the server's view: {"live": n, "held": [bool per token]}) tells how many refresh
    tokens of the account are live and which jars hold one; a tab whose jar holds none is stale. A round
    after which no jar holds a live token signs in again (`relogins`) and every jar gets the new token.
    Without `holds`, only a round with no 200 at all signs in again.

    Returns the summary and the token each jar holds at the end.
    """
    h = Http(port)
    session = proto.login(h, email)
    h.close()
    if session is None:
        raise RuntimeError(f"{proto.name}: sign-in failed before (d)")
    jars = [dict(session) for _ in range(tabs_count)]
    latencies, errors, extra, relogins, stale, stale_rounds, live_max, elapsed = [], 0, 0, 0, 0, 0, 0, 0.0

    def fire(conn: Http, jar: dict) -> tuple:
        began = time.perf_counter()
        status, new = proto.refresh(conn, jar)
        ended = time.perf_counter()
        conn.close()
        return status, new, ended - began

    for index in range(rounds):
        round_began = time.perf_counter()
        connections = [Http(port) for _ in range(tabs_count)]
        for conn in connections:  # connected before the barrier: the race is the refresh alone
            conn.conn.connect()
        raced = at_once([functools.partial(fire, conn, jar) for conn, jar in zip(connections, jars, strict=True)])
        elapsed += time.perf_counter() - round_began
        minted, answered = set(), 0
        for jar, outcome in zip(jars, raced, strict=True):
            if outcome.error is not None:  # a failed call is an error, and leaves the jar alone
                errors += 1
                continue
            status, new, latency = outcome.value
            latencies.append(latency)
            errors += status != 200
            answered += status == 200
            if new is not None:
                jar["refresh"] = new or None
            if new:
                minted.add(new)
        extra += max(0, len(minted) - 1)
        state = holds([jar["refresh"] for jar in jars]) if holds else None
        if state is not None:
            missing = sum(not held for held in state["held"])
            stale += missing
            stale_rounds += missing > 0
            live_max = max(live_max, state["live"])
        broken = not any(state["held"]) if state is not None else not answered
        if broken and index < rounds - 1:
            relogins += 1
            h = Http(port)
            session = proto.login(h, email) or session
            h.close()
            jars = [dict(session) for _ in range(tabs_count)]
    result = summarize(latencies, errors, elapsed)
    result.update(
        {
            "rounds": rounds,
            "tabs": tabs_count,
            "extra_new_tokens": extra,
            "relogins": relogins,
            "stale_jars": stale,
            "rounds_with_stale_jars": stale_rounds,
            "live_max": live_max,
        }
    )
    return result, [jar["refresh"] for jar in jars]
