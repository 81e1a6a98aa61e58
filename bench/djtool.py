"""In-process helper, run with each server's own Python: seed its database, count SQL, profile by layer, check tokens.

    python bench/djtool.py setup KIND
    python bench/djtool.py queries KIND OWNER_ID
    python bench/djtool.py profile KIND OWNER_ID [CPU_SECONDS]   (without: slices asked on stdin)
    python bench/djtool.py live KIND EMAIL      (the tokens to look for: a JSON list in BENCH_TOKENS)
    python bench/djtool.py watch KIND EMAIL     (the same for every JSON list read from stdin, one line each)

KIND is ours, simplejwt, allauth or floor; the environment is the one the server gets
(DJANGO_SETTINGS_MODULE, database, keys). Prints one JSON object (watch: one per line read).

Requests go straight through Django's WSGI handler, as gunicorn calls it (so the CSRF checks, the
request signals and the connection health checks all happen), with the headers bench/loadgen.py
sends; only the HTTP server is missing.
"""

import base64
import io
import json
import os
import re
import signal
import sys
import sysconfig
import tempfile
import time
from collections import defaultdict
from http.cookies import SimpleCookie
from pathlib import Path
from typing import NamedTuple

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
USERS = int(os.environ.get("BENCH_USERS", "20"))
TODOS_PER_USER = 10
PASSWORD = "bench passphrase 42 horse"
TABS_EMAIL = "tabs@bench.example"
# Every request of the benchmark (loadgen and here) comes from one browser: the app ties the grace rule
# of refresh-token rotation to the user agent, and the 8 tabs of workload (d) are tabs of one browser.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"
REFRESH_COOKIE = "todo_refresh"
KEEP_TABLES = {"django_content_type", "auth_permission", "auth_group", "auth_group_permissions", "django_site"}


def email_of(index: int) -> str:
    return f"user{index}@bench.example"


def _django(kind: str) -> None:
    sys.path.insert(0, str(ROOT if kind == "ours" else BENCH / "peers"))
    import django

    django.setup()


def setup(kind: str) -> dict:
    """Migrate, empty every data table, and seed USERS users (+ the tabs user) with 10 todos each."""
    from django.contrib.auth import get_user_model
    from django.contrib.auth.hashers import make_password
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0, interactive=False)
    tables = [t for t in connection.introspection.django_table_names(only_existing=True) if t not in KEEP_TABLES]
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(connection.ops.quote_name(t) for t in tables)} RESTART IDENTITY CASCADE")
    Todo = _todo_model(kind)
    User = get_user_model()
    encoded = make_password(PASSWORD)  # one Argon2 hash (random salt) shared by the seeded accounts
    ids = []
    for email in [email_of(i) for i in range(USERS)] + [TABS_EMAIL]:
        if kind == "ours":
            user = User.objects.create(email=email, password=encoded, email_verified_at=timezone.now())
        else:
            user = User.objects.create(username=email, email=email, password=encoded)
        if kind == "allauth":
            from allauth.account.models import EmailAddress

            EmailAddress.objects.create(user=user, email=email, verified=True, primary=True)
        Todo.objects.bulk_create(
            Todo(owner=user, title=f"Todo {n} of {email}", notes="Some notes " * 3, completed=n % 3 == 0)
            for n in range(TODOS_PER_USER)
        )
        ids.append(user.pk)
    return {"owner_id": ids[0], "users": len(ids)}


def _todo_model(kind: str):
    from django.apps import apps

    return apps.get_model("todos" if kind == "ours" else "peer_todos", "Todo")


# --- Requests through the WSGI handler ------------------------------------------------------------------


class Answer(NamedTuple):
    status: int
    cookies: dict  # the cookies this response sets, by name ("": cleared)
    body: bytes

    def json(self) -> dict:
        try:
            data = json.loads(self.body)
        except ValueError:
            return {}
        return data if isinstance(data, dict) else {}


class Wsgi:
    """Calls Django's WSGI handler with a request like the load generator's (no cookie jar of its own)."""

    def __init__(self):
        from django.core.handlers.wsgi import WSGIHandler

        self.handler = WSGIHandler()

    def call(self, method: str, path: str, data=None, *, cookies=None, headers=None) -> Answer:
        body = json.dumps(data).encode() if data is not None else b""
        environ = {
            "REQUEST_METHOD": method,
            "SCRIPT_NAME": "",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "127.0.0.1",
            "SERVER_PORT": "8600",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "REMOTE_ADDR": "127.0.0.1",
            "REMOTE_PORT": "50000",
            "HTTP_HOST": "127.0.0.1:8600",
            "HTTP_USER_AGENT": USER_AGENT,
            "HTTP_ACCEPT_ENCODING": "identity",
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.input": io.BytesIO(body),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
        }
        if data is not None:
            environ["CONTENT_TYPE"] = "application/json"
        if cookies:
            environ["HTTP_COOKIE"] = "; ".join(f"{name}={value}" for name, value in cookies.items())
        for name, value in (headers or {}).items():
            environ["HTTP_" + name.upper().replace("-", "_")] = value
        started = []
        result = self.handler(environ, lambda status, response_headers, exc_info=None: started.append(response_headers))
        try:
            content = b"".join(result)
        finally:
            result.close()  # request_finished: what gunicorn triggers after each response
        set_cookies = {}
        for name, value in started[0]:
            if name.lower() == "set-cookie":
                jar: SimpleCookie = SimpleCookie()
                jar.load(value)
                set_cookies.update({key: morsel.value for key, morsel in jar.items()})
        return Answer(result.status_code, set_cookies, content)


class Protocol:
    """Sign-in, refresh and the todo list of one KIND, as bench/loadgen.py sends them."""

    def __init__(self, kind: str):
        self.kind = kind
        self.wsgi = Wsgi()
        self.csrf = ""

    def login(self, email: str) -> tuple[Answer, str | None, str | None]:
        """(answer, access token, refresh token)."""
        credentials = {"email": email, "password": PASSWORD}
        if self.kind == "ours":
            answer = self.wsgi.call("POST", "/api/auth/login/", credentials)
            return answer, answer.json().get("access"), answer.cookies.get(REFRESH_COOKIE)
        if self.kind == "simplejwt":
            answer = self.wsgi.call("POST", "/api/token/", {"username": email, "password": PASSWORD})
            return answer, answer.json().get("access"), answer.json().get("refresh")
        answer = self.wsgi.call("POST", "/_allauth/app/v1/auth/login", credentials)
        meta = answer.json().get("meta", {})
        return answer, meta.get("access_token"), meta.get("refresh_token")

    def refresh(self, token: str | None) -> tuple[Answer, str | None]:
        """(answer, the new refresh token it carries, if any)."""
        if self.kind == "ours":
            if not self.csrf:
                self.csrf = self.wsgi.call("GET", "/api/auth/csrf/").cookies["csrftoken"]
            cookies = {"csrftoken": self.csrf, **({REFRESH_COOKIE: token} if token else {})}
            answer = self.wsgi.call("POST", "/api/auth/refresh/", cookies=cookies, headers={"X-CSRFToken": self.csrf})
            return answer, answer.cookies.get(REFRESH_COOKIE) or None
        if self.kind == "simplejwt":
            answer = self.wsgi.call("POST", "/api/token/refresh/", {"refresh": token})
            return answer, answer.json().get("refresh")
        answer = self.wsgi.call("POST", "/_allauth/app/v1/tokens/refresh", {"refresh_token": token})
        return answer, answer.json().get("data", {}).get("refresh_token")

    def list(self, access: str | None, path: str = "/api/todos/") -> Answer:
        return self.wsgi.call("GET", path, headers={"Authorization": f"Bearer {access}"} if access else None)


def list_path(kind: str, owner_id: int) -> str:
    return f"/api/bench-floor/{owner_id}/todos/" if kind == "floor" else "/api/todos/"


# --- SQL statements and database round trips --------------------------------------------------------------


class _Recorder:
    """Every statement with the outermost atomic block it ran in (None: autocommit)."""

    def __init__(self):
        self.statements = []

    def __call__(self, execute, sql, params, many, context):
        from django.db import connection

        block = connection.atomic_blocks[0] if connection.atomic_blocks else None
        self.statements.append((sql, block))
        return execute(sql, params, many, context)


class _Trace:
    """libpq's protocol trace of the connection: every round trip ends with the server's ReadyForQuery.

    Counts them (None if the trace is unavailable or the connection was replaced meanwhile), and the
    connection health checks among them (CONN_HEALTH_CHECKS: a bare "SELECT 1" before a request's first
    statement)."""

    def __init__(self):
        self.round_trips: int | None = None
        self.health_checks = 0

    def __enter__(self):
        from django.db import connection

        connection.ensure_connection()
        self.raw = connection.connection
        self.file = tempfile.TemporaryFile()
        try:
            from psycopg import pq

            self.raw.pgconn.trace(self.file.fileno())
            self.raw.pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        except Exception:  # psycopg 2, or a libpq without tracing: fall back to the statement count
            self.raw = None
        return self

    def __exit__(self, *exc_info):
        from django.db import connection

        if self.raw is not None:
            self.raw.pgconn.untrace()  # flushes libpq's buffer
            if connection.connection is self.raw:
                self.file.seek(0)
                lines = self.file.read().decode(errors="replace").splitlines()
                self.round_trips = sum(1 for line in lines if line.startswith("B\t") and "\tReadyForQuery\t" in line)
                self.health_checks = sum(
                    1 for line in lines if line.startswith("F\t") and line.endswith('\t "SELECT 1"')
                )
        self.file.close()


class Measured(NamedTuple):
    statements: list  # (sql, outermost atomic block or None)
    traced: int | None  # round trips in libpq's trace, health checks included
    health_checks: int

    @property
    def transactions(self) -> int:
        blocks = []
        for _sql, block in self.statements:
            if block is not None and not any(block is seen for seen in blocks):
                blocks.append(block)
        return len(blocks)

    @property
    def round_trips(self) -> int:
        """The request's own round trips: every statement (savepoints included), plus BEGIN and
        COMMIT/ROLLBACK of each transaction; the connection health check not counted. From the trace
        when there is one, else counted from the statements."""
        if self.traced is not None:
            return self.traced - self.health_checks
        return len(self.statements) + 2 * self.transactions

    def summary(self) -> dict:
        return {
            "sql": len(self.statements),
            "round_trips": self.round_trips,
            "transactions": self.transactions,
            "health_checks": self.health_checks,
            "traced": self.traced is not None,
            "counted": len(self.statements) + 2 * self.transactions,
        }

    def described(self) -> list[str]:
        """'BEGIN', 'SELECT device_sessions FOR UPDATE', ..., 'COMMIT' (the end of a block is not seen:
        it is a COMMIT unless the request failed)."""
        out, current = [], None
        for sql, block in self.statements:
            if block is not current:
                if current is not None:
                    out.append("COMMIT")
                if block is not None:
                    out.append("BEGIN")
                current = block
            out.append(_describe(sql))
        if current is not None:
            out.append("COMMIT")
        return out


def _measure(call) -> tuple[object, Measured]:
    from django.db import connection

    recorder = _Recorder()
    with connection.execute_wrapper(recorder), _Trace() as trace:
        result = call()
    return result, Measured(recorder.statements, trace.round_trips, trace.health_checks)


def _describe(sql: str) -> str:
    """'SELECT sessions FOR UPDATE', 'UPDATE sessions', 'WITH UPDATE sessions, INSERT rotated_refresh_tokens, users'."""
    ctes = set(re.findall(r'(?:\bWITH|,)\s+"?(\w+)"?\s+AS\s*\(', sql, flags=re.IGNORECASE))
    locking = r'\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b(?:\s+OF\s+"?\w+"?(?:\s*,\s*"?\w+"?)*)?'
    lock = " FOR UPDATE" if re.search(locking, sql, flags=re.IGNORECASE) else ""
    tables = []
    body = re.sub(locking, "", sql, flags=re.IGNORECASE)
    for verb, table in re.findall(r'\b(FROM|JOIN|UPDATE|INTO)\s+"?(\w+)"?', body, flags=re.IGNORECASE):
        name = {"UPDATE": "UPDATE ", "INTO": "INSERT "}.get(verb.upper(), "") + table
        if table not in ctes and name not in tables:
            tables.append(name)
    written = {name.split()[-1] for name in tables if " " in name}
    tables = [name for name in tables if " " in name or name not in written]
    head = sql.split()[0].upper()
    if tables and tables[0].startswith(f"{head} "):
        tables[0] = tables[0].removeprefix(f"{head} ")
    return f"{head} {', '.join(tables)}{lock}".strip()


def _shape(sql: str) -> str:
    """A statement with the table prefix (app label) and literal values taken out, to compare apps' SQL."""
    sql = re.sub(r'"(todos|peer_todos)_todo"', '"todo"', sql)
    return re.sub(r"%s|\b\d+\b|'[^']*'", "?", sql)


def queries(kind: str, owner_id: int) -> dict:
    """SQL statements and round trips per request of each workload, warm (one warm-up request each), and
    how the server answers a replayed refresh token."""
    proto = Protocol(kind)
    path = list_path(kind, owner_id)
    result: dict = {}
    access = None
    if kind != "floor":
        email = email_of(1)
        proto.login(email)  # warm-up: imports, first connection
        (answer, access, refresh), login = _measure(lambda: proto.login(email))
        assert answer.status == 200 and access and refresh, answer.body
        result["c"] = login.summary()
    answer = proto.list(access, path)  # warm-up, fills the session-state cache
    assert answer.status == 200 and answer.json()["count"] == TODOS_PER_USER, answer.body
    answer, listed = _measure(lambda: proto.list(access, path))
    assert answer.status == 200 and answer.json()["count"] == TODOS_PER_USER, answer.body
    result["a"] = listed.summary()
    result["list_sql"] = [_shape(sql) for sql, _ in listed.statements]
    if kind == "floor":
        return result
    _, token = proto.refresh(refresh)  # warm-up
    (answer, rotated), refreshed = _measure(lambda: proto.refresh(token))
    assert answer.status == 200 and rotated, answer.body
    # (d): one of 8 tabs rotates, the other 7 present the just-rotated token again (the same browser).
    (replay, successor), replayed = _measure(lambda: proto.refresh(token))
    result["b"] = refreshed.summary()
    result["d"] = {
        key: round((refreshed.summary()[key] + 7 * replayed.summary()[key]) / 8, 2)
        for key in ("sql", "round_trips", "health_checks")
    }
    result["refresh_statements"] = refreshed.described()
    result["replay_statements"] = replayed.described()
    # The rules: the just-rotated token again, at once, from the same browser (the grace rule), then,
    # after a second rotation, the first token again (reuse), and whether that ended the session.
    _, newest = proto.refresh(successor or rotated)
    stale, _ = proto.refresh(token)
    after, _ = proto.refresh(newest)
    result["rules"] = {
        "grace_status": replay.status,
        "grace_same_successor": bool(successor) and successor == rotated,
        "reuse_status": stale.status,
        "reuse_ends_session": after.status != 200,
    }
    return result


# --- CPU time per request by layer, from a profile ------------------------------------------------------

LAYERS = ("middleware", "auth", "hash", "view", "serializer", "database", "cache", "other")
# A sample's CPU time goes to the layer of the innermost frame on the stack whose file matches a rule
# (paths relative to site-packages, to the project, or to bench/peers), walking outwards past the
# "inherit" ones: the standard library and Django's generic helpers work for whoever calls them (C
# functions have no frame: their time lands on their caller). A file no rule matches is "other" (URL
# resolving, django.http, templates, ...). "driver" is this script (the client side), left out.
_RULES = (
    ("driver", ("bench/djtool.py",)),
    ("hash", ("argon2/", "_argon2_cffi_bindings/")),
    ("database", ("psycopg/", "psycopg_binary/", "psycopg_pool/", "django/db/")),
    ("cache", ("redis/", "django_redis/", "django/core/cache/", "django_ratelimit/")),
    (
        "middleware",
        ("django/middleware/", "django/core/handlers/", "corsheaders/", "whitenoise/", "*/middleware.py"),
    ),
    (
        "serializer",
        (
            "rest_framework/serializers.py",
            "rest_framework/fields.py",
            "rest_framework/relations.py",
            "rest_framework/renderers.py",
            "rest_framework/parsers.py",
            "rest_framework/utils/",
            "accounts/api/serializers.py",
            "accounts/api/parsers.py",
        ),
    ),
    ("view", ("accounts/api/views/", "accounts/views.py", "accounts/api/errors.py")),
    (
        "auth",
        (
            "rest_framework_simplejwt/",
            "allauth/",
            "jwt/",
            "cryptography/",
            "django/contrib/auth/",
            "django/contrib/sessions/",
            "rest_framework/authentication.py",
            "rest_framework/permissions.py",
            "accounts/",
        ),
    ),
    ("view", ("rest_framework/", "todos/", "peer_todos/", "floor_peer/")),
    ("inherit", ("django/utils/", "django/conf/", "django/dispatch/", "asgiref/", "typing_extensions.py")),
)
_STDLIB = tuple({sysconfig.get_paths()[key] + "/" for key in ("stdlib", "platstdlib")})


def _relative(filename: str) -> str | None:
    """The path a rule matches, or None for the standard library and generated code."""
    if filename.startswith("<"):
        return None
    if "/site-packages/" in filename:
        return filename.split("/site-packages/", 1)[1]
    if filename.startswith(_STDLIB):
        return None
    path = filename.removeprefix(str(ROOT) + "/")
    return path.removeprefix("bench/peers/")


def layer_of(filename: str) -> str | None:
    """The layer of a function's file; None: it works for its caller's layer."""
    path = _relative(filename)
    if path is None:
        return None
    for layer, prefixes in _RULES:
        for prefix in prefixes:
            if path.startswith(prefix) or (prefix.startswith("*/") and path.endswith(prefix[1:])):
                return None if layer == "inherit" else layer
    return "other"


class Sampler:
    """A statistical profile on the CPU clock: SIGPROF after every `interval` of the process's CPU time
    (in practice at every kernel tick that finds it running, 4 ms at HZ=250). Each sample weighs the main
    thread's CPU time since the previous one (time.thread_time: background threads, such as the app's
    Redis subscription, not counted), so a long C call (Argon2) that delays the signal still counts in
    full; the handler's own time is left out (and summed in `overhead`). While the process waits for
    PostgreSQL or Redis it uses no CPU and is not sampled."""

    def __init__(self, interval: float = 0.001):
        self.interval = interval
        self.seconds: dict[str, float] = defaultdict(float)
        self.sites: dict[tuple, float] = defaultdict(float)
        self.samples = 0
        self.overhead = 0.0
        self._layers: dict = {}

    def _layer(self, code) -> str | None:
        if code not in self._layers:
            self._layers[code] = layer_of(code.co_filename)
        return self._layers[code]

    def _sample(self, _signum, frame) -> None:
        began = time.thread_time()
        weight = began - self.last
        innermost, layer = frame, "other"
        for _ in range(500):  # walk outwards to the first frame with a layer of its own
            if frame is None:
                break
            found = self._layer(frame.f_code)
            if found is not None:
                layer = found
                break
            frame = frame.f_back
        self.seconds[layer] += weight
        if innermost is not None and layer != "driver":
            code = innermost.f_code
            self.sites[(code.co_filename, code.co_firstlineno, code.co_name, layer)] += weight
        self.samples += 1
        self.last = time.thread_time()
        self.overhead += self.last - began

    def __enter__(self):
        self.previous = signal.signal(signal.SIGPROF, self._sample)
        signal.siginterrupt(signal.SIGPROF, False)  # restart interrupted system calls (socket reads)
        self.last = time.thread_time()
        signal.setitimer(signal.ITIMER_PROF, self.interval, self.interval)
        return self

    def __exit__(self, *exc_info):
        signal.setitimer(signal.ITIMER_PROF, 0, 0)
        signal.signal(signal.SIGPROF, self.previous)


def _steps(kind: str, owner_id: int) -> dict:
    """One request of each workload as a function returning whether it succeeded: (a) the list, (b) the
    next refresh of one chain, (c) a sign-in, users in rotation. The floor has (a) only."""
    path = list_path(kind, owner_id)
    lister = Protocol(kind)
    access = None if kind == "floor" else lister.login(email_of(2))[1]
    steps = {"a": lambda: lister.list(access, path).status == 200}
    if kind == "floor":
        return steps
    chain = Protocol(kind)
    state = {"token": chain.login(email_of(3))[2], "next": 0}

    def refresh() -> bool:
        answer, new = chain.refresh(state["token"])
        state["token"] = new or state["token"]
        return answer.status == 200 and bool(new)

    signer = Protocol(kind)

    def sign_in() -> bool:
        state["next"] += 1
        return signer.login(email_of(state["next"] % USERS))[0].status == 200

    return {**steps, "b": refresh, "c": sign_in}


class Profile:
    """The layer profile of one server's workloads, taken in slices (run.py alternates the servers' slices, so
    that whatever else the machine does meanwhile hits them all alike)."""

    def __init__(self, kind: str, owner_id: int):
        self.kind = kind
        self.steps = _steps(kind, owner_id)
        for workload, step in self.steps.items():
            for _ in range(10):
                assert step(), f"{kind} ({workload}) failed during warm-up"
        self.samplers = {workload: Sampler() for workload in self.steps}
        self.requests = dict.fromkeys(self.steps, 0)
        self.used = dict.fromkeys(self.steps, 0.0)

    def run(self, workload: str, cpu_seconds: float) -> None:
        """Requests of `workload` under its Sampler until they have used `cpu_seconds` of CPU (at least 1)."""
        step, sampler = self.steps[workload], self.samplers[workload]
        n, failed, overhead = 0, 0, sampler.overhead
        with sampler:
            began = time.thread_time()
            for _ in range(100_000):
                failed += not step()
                n += 1
                if time.thread_time() - began >= cpu_seconds:
                    break
            self.used[workload] += time.thread_time() - began - (sampler.overhead - overhead)
        assert not failed, f"{self.kind} ({workload}): {failed} of {n} requests failed"
        self.requests[workload] += n

    def result(self) -> dict:
        """Per workload: CPU ms per request and its split by layer. The split is the samples'; its total
        the main thread's CPU time less the sampler's own; the client side (this script) left out of both."""
        out = {}
        for workload, sampler in self.samplers.items():
            n = self.requests[workload]
            if not n:
                continue
            seconds = dict(sampler.seconds)
            driver = seconds.pop("driver", 0.0)
            sampled = sum(seconds.values())
            scale = self.used[workload] / (sampled + driver) if sampled + driver else 0.0  # after the last sample
            top = sorted(sampler.sites.items(), key=lambda item: item[1], reverse=True)[:12]
            out[workload] = {
                "requests": n,
                "samples": sampler.samples,
                "cpu_ms": round(sampled * scale * 1000 / n, 3),
                "driver_ms": round(driver * scale * 1000 / n, 3),
                "layers": {layer: round(seconds.get(layer, 0.0) * scale * 1000 / n, 3) for layer in LAYERS},
                "top": [[_label(site[:3]), site[3], round(weight * scale * 1000 / n, 3)] for site, weight in top],
            }
        return out


def profile(kind: str, owner_id: int, cpu_seconds: float | None) -> dict:
    """With `cpu_seconds`: that much CPU of each workload in one go. Without: a slice for every line
    "WORKLOAD SECONDS" read from stdin (answered "ok", after "ready" once warm), until stdin closes."""
    profiler = Profile(kind, owner_id)
    if cpu_seconds is not None:
        for workload in profiler.steps:
            profiler.run(workload, cpu_seconds)
        return profiler.result()
    print("ready", flush=True)
    for _ in range(100_000):
        line = sys.stdin.readline()
        if not line:
            break
        workload, seconds = line.split()
        profiler.run(workload, float(seconds))
        print("ok", flush=True)
    return profiler.result()


def _label(func) -> str:
    filename, line, name = func
    path = _relative(filename)
    if path is None:  # the standard library by its own path (json/encoder.py), else as it is named
        path = next((filename.removeprefix(lib) for lib in _STDLIB if filename.startswith(lib)), filename)
    return f"{path}:{line}({name})"


# --- Live refresh tokens ----------------------------------------------------------------------------------


def _jti(token: str | None) -> str | None:
    """The jti claim of a JWT, read without verifying it (the token came from the server itself)."""
    try:
        payload = (token or "").split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))["jti"]
    except (IndexError, ValueError, KeyError, TypeError):
        return None


def live(kind: str, email: str, tokens: list) -> dict:
    """How many refresh tokens of EMAIL's account would still be accepted, and which of `tokens` (what
    each client or tab holds; None: nothing) are among them."""
    from django.contrib.auth import get_user_model
    from django.utils import timezone

    user = get_user_model().objects.get(email=email)
    if kind == "ours":
        from accounts.models import DeviceSession
        from accounts.tokens import hash_token

        sessions = [s for s in DeviceSession.objects.filter(user=user) if s.is_live()]
        hashes = {s.refresh_token_hash for s in sessions}
        return {
            "live": len(sessions),
            "sessions": len(sessions),
            "held": [bool(t) and hash_token(t) in hashes for t in tokens],
            "meaning": "live device sessions, one refresh token each",
        }
    if kind == "simplejwt":
        from rest_framework_simplejwt.token_blacklist.models import OutstandingToken

        jtis = set(
            OutstandingToken.objects.filter(
                user=user, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
            ).values_list("jti", flat=True)
        )
        return {
            "live": len(jtis),
            "held": [_jti(t) in jtis for t in tokens],
            "meaning": "outstanding, unexpired, not blacklisted refresh tokens",
        }
    from django.contrib.sessions.models import Session

    now, jtis, sessions = time.time(), set(), 0
    for session in Session.objects.filter(expire_date__gt=timezone.now()):
        data = session.get_decoded()
        if data.get("_auth_user_id") == str(user.pk):
            sessions += 1
            jtis |= {jti for jti, exp in data.get("headless_refresh_tokens", {}).items() if exp > now}
    return {
        "live": len(jtis),
        "sessions": sessions,
        "held": [_jti(t) in jtis for t in tokens],
        "meaning": "unexpired refresh-token ids held by the user's sessions",
    }


def watch(kind: str, email: str) -> None:
    """live() for every JSON list of tokens on stdin (one per line), until stdin closes (bounded)."""
    for _ in range(100_000):
        line = sys.stdin.readline()
        if not line:
            return
        print(json.dumps(live(kind, email, json.loads(line))), flush=True)


def main() -> None:
    command, kind = sys.argv[1], sys.argv[2]
    _django(kind)
    if command == "setup":
        result = setup(kind)
    elif command == "queries":
        result = queries(kind, int(sys.argv[3]))
    elif command == "profile":
        result = profile(kind, int(sys.argv[3]), float(sys.argv[4]) if len(sys.argv) > 4 else None)
    elif command == "watch":
        watch(kind, sys.argv[3])
        return
    else:
        result = live(kind, sys.argv[3], json.loads(os.environ.get("BENCH_TOKENS", "[]")))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
