"""One harness for the system tests, the benchmark and the two-server tests: start servers, wait, stop, keep logs.

What it starts:

- the app (or a benchmark peer) under **gunicorn** (``Gunicorn``), or under ``manage.py runserver``
  (``Runserver``, the two-server tests in ``tests/support/servers.py``), on a free local port, its
  stdout and stderr in one log file, ready once a chosen path answers;
- a **private PostgreSQL** cluster and a **private redis-server** (``PrivatePostgres``,
  ``PrivateRedis``) on free ports in a directory of the caller's, never touching the machine's own;
- a **throwaway database** on the main PostgreSQL and a key prefix on the main Redis
  (``throwaway_database``, ``drop_redis_keys``).

Around them: one HTTP request on a fresh connection (``http``, never raising: status 0 is "no
answer"), an API client that keeps its cookies by hand (``Client``), the DEBUG-off environment that
passes the app's production checks (``production_env``), ``manage.py`` and seeding accounts, the
PASS/FAIL lines the scripts print (``Checks``), a watchdog that bounds a run, and calls raced on
threads released together (``at_once``).

Used by bench/faults.py, bench/soak.py, bench/enumeration_timing.py, bench/revocation_bound.py,
bench/run.py and the tests. Only the standard library is imported up front (psycopg and redis where
they are used). Everything here is a plain function or class: the scripts keep their own command
lines and output.
"""

import base64
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from email.message import Message
from http.client import HTTPConnection, HTTPException
from http.cookies import SimpleCookie
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Debian's PostgreSQL binaries (15 here; the newest installed version if there are several).
PG_BIN = max(
    Path("/usr/lib/postgresql").glob("*/bin"),
    key=lambda bin_dir: int(bin_dir.parent.name),
    default=Path("/usr/lib/postgresql/15/bin"),
)
MAIN_POSTGRES = "postgres://postgres@127.0.0.1:5432"
PASSWORD = "correct horse battery staple"  # the password of every account the scripts seed
REQUEST_TIMEOUT = 15.0
RATE_LIMITS = (
    "SIGN_IN_PER_ACCOUNT",
    "SIGN_IN_PER_IP",
    "SIGN_UP_PER_IP",
    "MAILS_PER_ADDRESS",
    "MAILS_PER_IP",
    "REFRESH_PER_SESSION",
    "PASSWORD_CHANGE_PER_USER",
    "SIGN_IN_CODE_MAILS_PER_ADDRESS",
    "SIGN_IN_CODE_FAILURES_PER_IP",
    "NO_ACCOUNT_MAILS_PER_ADDRESS",
)


def rate_limits_at(rate: str) -> dict[str, str]:
    """Every RATE_LIMIT_* environment variable at ``rate`` (e.g. "1000000/m": out of the way)."""
    return {f"RATE_LIMIT_{name}": rate for name in RATE_LIMITS}


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until(predicate: Callable[[], object], timeout: float, interval: float = 0.1) -> bool:
    """Poll ``predicate`` until it is true or ``timeout`` seconds have passed; whether it became true."""
    deadline = time.monotonic() + timeout
    for _ in range(int(timeout / interval) + 1):
        if predicate():
            return True
        if time.monotonic() >= deadline:
            break
        time.sleep(interval)
    return bool(predicate())


# --- HTTP ---------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int  # 0: no answer (refused, reset or timed out)
    body: object  # parsed JSON, else the start of the text, else the error
    headers: Message  # case-insensitive; get_all("Set-Cookie") gives every cookie header
    cookies: dict
    started: float
    seconds: float
    text: str = ""  # the whole body as text

    def __iter__(self):
        """``status, headers, body = reply``, as the two-server tests read an answer."""
        return iter((self.status, self.headers, self.body))

    @property
    def ended(self) -> float:
        return self.started + self.seconds

    @property
    def code(self):
        return self.body.get("code") if isinstance(self.body, dict) else None


def cookies_of(headers: Message) -> dict[str, str]:
    """The cookies a response sets, by name (an empty value: the cookie is cleared)."""
    jar: SimpleCookie = SimpleCookie()
    for header in headers.get_all("Set-Cookie") or []:
        jar.load(header)
    return {name: morsel.value for name, morsel in jar.items()}


def http(port: int, method: str, path: str, body=None, headers=None, timeout: float = REQUEST_TIMEOUT) -> Reply:
    """One request on a fresh connection (gunicorn's sync workers close it anyway); never raises."""
    data = json.dumps(body).encode() if body is not None else None
    headers = dict(headers or {})
    if data is not None:
        headers["Content-Type"] = "application/json"
    started = time.monotonic()
    connection = HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path, body=data, headers=headers)
        response = connection.getresponse()
        raw = response.read()
        text = raw.decode(errors="replace")
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = text[:200]
        return Reply(
            response.status,
            parsed,
            response.headers,
            cookies_of(response.headers),
            started,
            time.monotonic() - started,
            text,
        )
    except (OSError, HTTPException) as error:
        return Reply(0, f"{type(error).__name__}: {error}", Message(), {}, started, time.monotonic() - started)
    finally:
        connection.close()


class Client:
    """One browser tab of the API: the access token in memory, cookies by hand (they are Secure; we speak http)."""

    def __init__(self, port: int, email: str | None = None):
        self.port = port
        self.email = email  # whom login() signs in unless told otherwise
        self.access: str | None = None
        self.cookies: dict[str, str] = {}

    def call(self, method: str, path: str, body=None, *, csrf: bool = False) -> Reply:
        headers = {}
        if self.access:
            headers["Authorization"] = f"Bearer {self.access}"
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.cookies.items())
        if csrf:
            headers["X-CSRFToken"] = self.cookies.get("csrftoken", "")
        reply = http(self.port, method, path, body, headers)
        for name, value in reply.cookies.items():
            if value:
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return reply

    def login(self, email: str | None = None, password: str = PASSWORD) -> Reply:
        reply = self.call("POST", "/api/auth/login/", {"email": email or self.email, "password": password})
        if reply.status == 200:
            self.access = reply.body["access"]
        return reply

    def refresh(self) -> Reply:
        if "csrftoken" not in self.cookies:
            self.call("GET", "/api/auth/csrf/")
        reply = self.call("POST", "/api/auth/refresh/", csrf=True)
        if reply.status == 200:
            self.access = reply.body["access"]
        return reply


# --- The app's environment and manage.py -----------------------------------------------------------


def production_env(*, database_url: str, redis_url: str, key_prefix: str, email_backend: str, **extra) -> dict:
    """A DEBUG-off environment that passes the app's production checks, with rate limits out of the way."""
    env = {key: value for key, value in os.environ.items() if not key.startswith(("RATE_LIMIT_", "DJANGO_"))}
    env.update(
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(64),
        JWT_SIGNING_KEY=secrets.token_urlsafe(48),
        MFA_ENCRYPTION_KEYS=base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SITE_URL="https://faults.example",
        SECURE_SSL_REDIRECT="false",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CACHE_KEY_PREFIX=key_prefix,
        EMAIL_BACKEND=email_backend,
        PYTHONUNBUFFERED="1",
        **rate_limits_at("1000000/m"),
    )
    env.update(extra)
    return env


def manage(env: dict, *args: str, timeout: float = 120) -> str:
    done = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=timeout
    )
    if done.returncode != 0:
        raise RuntimeError(f"manage.py {args[0]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-4000:]}")
    return done.stdout


def seed_accounts(env: dict, *, verified: Sequence[str] = (), unverified: Sequence[str] = (), password=PASSWORD):
    """Create accounts with ``password`` through manage.py shell: verified ones, then unverified ones."""
    manage(
        env,
        "shell",
        "-c",
        "from django.utils import timezone\nfrom accounts.models import User\n"
        f"for email in {list(verified)!r}:\n"
        f"    User.objects.create_user(email=email, password={password!r}, name='Verified',\n"
        "                             email_verified_at=timezone.now())\n"
        f"for email in {list(unverified)!r}:\n"
        f"    User.objects.create_user(email=email, password={password!r}, name='Pending')\n",
    )


# --- Server processes ------------------------------------------------------------------------------


def worker_pids(master: int) -> list[int]:
    """PIDs of the children of ``master`` (a gunicorn master's workers), sorted."""
    try:
        return sorted(int(pid) for pid in Path(f"/proc/{master}/task/{master}/children").read_text().split())
    except FileNotFoundError:  # a kernel without /proc/<pid>/task/<tid>/children: scan /proc instead
        pass
    except OSError:
        return []
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == master:
            children.append(int(stat.parent.name))
    return sorted(children)


class Server:
    """One server process on a local port, stdout and stderr in one log file.

    Without ``log_path`` the log is a temporary file, removed by ``stop()``. Use it as a context
    manager, or call ``stop()`` in a finally block.
    """

    def __init__(
        self,
        command: Sequence[str],
        *,
        env: dict,
        port: int,
        name: str = "server",
        cwd: Path = PROJECT_ROOT,
        log_path: Path | None = None,
        log_mode: str = "ab",
    ):
        self.name = name
        self.port = port
        self.base = f"http://127.0.0.1:{port}"
        self._owns_log = log_path is None
        if log_path is None:
            handle, temporary = tempfile.mkstemp(prefix=f"{name}-", suffix=".log")
            os.close(handle)
            log_path = Path(temporary)
        self.log_path = log_path
        self._log = open(log_path, log_mode)  # noqa: SIM115  (open as long as the process runs; stop() closes it)
        self.process = subprocess.Popen(
            list(command), cwd=cwd, env=env, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT
        )

    def __enter__(self) -> "Server":
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def wait_until_ready(
        self, path: str, *, status: int | None = 200, workers: int = 0, timeout: float = 30, interval: float = 0.2
    ) -> None:
        """Wait until GET ``path`` answers (with ``status``; None: any answer) and ``workers`` workers run.

        Raises RuntimeError, with the end of the log, if the process exits or is not ready in time.
        """

        def ready() -> bool:
            if self.process.poll() is not None:
                return True
            answer = http(self.port, "GET", path, timeout=2).status
            answered = answer == status if status is not None else answer != 0
            return answered and (workers == 0 or len(self.workers()) >= workers)

        if not wait_until(ready, timeout=timeout, interval=interval) or self.process.poll() is not None:
            exited = self.process.poll()
            self.stop(remove_log=False)
            how = f"exited with {exited}" if exited is not None else f"did not answer within {timeout:g} s"
            raise RuntimeError(f"{self.name} {how}; the end of {self.log_path}:\n{self.output()[-4000:]}")

    def request(self, method: str, path: str, body=None, headers=None, timeout: float = REQUEST_TIMEOUT) -> Reply:
        return http(self.port, method, path, body, headers, timeout)

    def output(self) -> str:
        if not self._log.closed:
            self._log.flush()
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def workers(self) -> list[int]:
        """PIDs of the worker processes (children of the server process)."""
        return worker_pids(self.process.pid)

    def stop(self, timeout: float = 35, *, remove_log: bool = True) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self._log.close()
        if remove_log and self._owns_log:
            self.log_path.unlink(missing_ok=True)


class Gunicorn(Server):
    """gunicorn (``config/gunicorn.conf.py`` and ``config.wsgi`` unless told otherwise), ready once
    ``ready_path`` answers. No control socket: its default path (~/.gunicorn/gunicorn.ctl) is shared
    by every gunicorn on the machine."""

    def __init__(
        self,
        env: dict,
        log_path: Path | None = None,
        workers: int = 2,
        extra_args: Sequence[str] = (),
        *,
        name: str = "gunicorn",
        port: int | None = None,
        python: str = sys.executable,
        cwd: Path = PROJECT_ROOT,
        config: str = "config/gunicorn.conf.py",
        wsgi: str = "config.wsgi",
        log_mode: str = "ab",
        ready_path: str = "/healthz/",
        ready_status: int | None = 200,
        ready_workers: int = 0,
    ):
        port = port or free_port()
        super().__init__(
            [python, "-m", "gunicorn", "-c", config, "--no-control-socket", *extra_args, wsgi],
            env={**env, "HOST": "127.0.0.1", "PORT": str(port), "WEB_CONCURRENCY": str(workers)},
            port=port,
            name=name,
            cwd=cwd,
            log_path=log_path,
            log_mode=log_mode,
        )
        self.wait_until_ready(ready_path, status=ready_status, workers=ready_workers)


class EmailWorker:
    """``manage.py db_worker``: sends the email outbox (ACCOUNTS_EMAIL_QUEUE=database, the
    production default), as a deployment runs it beside gunicorn."""

    def __init__(self, env: dict, log_path: Path):
        command = [sys.executable, "manage.py", "db_worker", "--no-reload", "--no-startup-delay", "--interval", "0.2"]
        self.log_path = log_path
        with log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # it finishes the email it is sending
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


class Runserver(Server):
    """``manage.py runserver`` without the autoreloader; ``threaded`` keeps its request threads
    (so one server also races with itself). Ready once ``ready_path`` answers 200."""

    def __init__(
        self,
        env: dict,
        name: str,
        *,
        threaded: bool = False,
        ready_path: str = "/api/auth/csrf/",
        timeout: float = 20,
    ):
        port = free_port()
        command = [sys.executable, "manage.py", "runserver", f"127.0.0.1:{port}", "--noreload"]
        super().__init__(
            command if threaded else [*command, "--nothreading"], env=env, port=port, name=f"runserver-{name}"
        )
        self.ready_path, self.timeout = ready_path, timeout

    def wait_until_ready(self, path: str | None = None, **options) -> None:
        super().wait_until_ready(path or self.ready_path, **{"timeout": self.timeout, **options})


# --- Private PostgreSQL and Redis -----------------------------------------------------------------


class PrivatePostgres:
    """A throwaway cluster run by the postgres user: own port, own socket directory, fsync off."""

    def __init__(self, root: Path):
        self.dir = root / "pg"
        self.dir.mkdir()
        shutil.chown(self.dir, "postgres", "postgres")
        self.data = self.dir / "data"
        self.port = free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/postgres"
        self._tool("initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\nunix_socket_directories = '{self.dir}'\n"
                "fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n"
            )

    def _tool(self, name: str, *args, check: bool = True) -> int:
        with open(self.dir / "tools.log", "ab") as log:
            return subprocess.run(
                ["runuser", "-u", "postgres", "--", str(PG_BIN / name), *map(str, args)],
                cwd=self.dir,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=log,
                timeout=60,
                check=check,
            ).returncode

    def start(self) -> None:
        self._tool("pg_ctl", "-D", self.data, "-l", self.dir / "server.log", "-w", "-t", "30", "start")

    def stop(self, mode: str = "fast", check: bool = True) -> None:
        self._tool("pg_ctl", "-D", self.data, "-m", mode, "-w", "-t", "30", "stop", check=check)

    def query(self, sql: str, *params) -> list[tuple]:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres") as db:
            return db.execute(sql, params).fetchall()


class PrivateRedis:
    """A throwaway redis-server on its own port, without persistence."""

    def __init__(self, root: Path):
        self.root = root
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def ping(self) -> bool:
        import redis

        try:
            return bool(redis.Redis(port=self.port, socket_timeout=0.5, socket_connect_timeout=0.5).ping())
        except redis.RedisError:
            return False

    def start(self) -> None:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.root),
                "--logfile",
                str(self.root / "redis.log"),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if not wait_until(self.ping, timeout=10):
            raise RuntimeError("the private redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# --- The main PostgreSQL and Redis ------------------------------------------------------------------


def psql(sql: str, server_url: str = MAIN_POSTGRES) -> None:
    subprocess.run(
        ["psql", f"{server_url}/postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
        check=True,
        capture_output=True,
        timeout=60,
    )


@contextmanager
def throwaway_database(name: str, server_url: str = MAIN_POSTGRES) -> Iterator[str]:
    """CREATE DATABASE ``name`` on the main PostgreSQL; its URL; dropped (WITH FORCE) afterwards."""
    psql(f"CREATE DATABASE {name}", server_url)
    try:
        yield f"{server_url}/{name}"
    finally:
        try:
            psql(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)", server_url)
        except Exception as error:  # the run's own result matters more than its cleanup
            print(f"cleanup: could not drop {name}: {error}")


def ensure_databases(names: Sequence[str], server_url: str = MAIN_POSTGRES) -> None:
    """Create each of ``names`` on the main PostgreSQL unless it exists (kept between runs)."""
    import psycopg

    with psycopg.connect(f"{server_url}/postgres", autocommit=True, connect_timeout=3) as conn:
        existing = {row[0] for row in conn.execute("SELECT datname FROM pg_database")}
        for name in names:
            if name not in existing:
                conn.execute(f'CREATE DATABASE "{name}"')


def drop_redis_keys(redis_url: str, prefix: str) -> None:
    """Delete every key under ``prefix:`` (a run's own key prefix); report, never raise."""
    try:
        import redis

        connection = redis.Redis.from_url(redis_url)
        keys = list(connection.scan_iter(match=f"{prefix}:*", count=1000))
        for start in range(0, len(keys), 500):
            connection.delete(*keys[start : start + 500])
    except Exception as error:  # the run's own result matters more than its cleanup
        print(f"cleanup: Redis keys under {prefix}: {error}")


# --- Races -----------------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one racing call did: returned ``value``, or raised ``error``."""

    value: object = None
    error: BaseException | None = None


def at_once(
    calls: Sequence[Callable[[], object]],
    *,
    cleanup: Callable[[], object] | None = None,
    barrier_timeout: float = 30,
    join_timeout: float = 60,
) -> list[Outcome]:
    """Run every call on its own thread, all released together by a barrier; their outcomes in call order.

    ``cleanup`` runs at the end of each thread (closing its database connections, say). A call still
    running ``join_timeout`` seconds later is an AssertionError (a deadlock, or a server that hung).
    """
    barrier = threading.Barrier(len(calls))
    outcomes = [Outcome() for _ in calls]

    def run(index: int, call: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=barrier_timeout)
            outcomes[index].value = call()
        except BaseException as error:  # an outcome like any other: the caller judges it
            outcomes[index].error = error
        finally:
            if cleanup is not None:
                cleanup()

    threads = [threading.Thread(target=run, args=(index, call), daemon=True) for index, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + join_timeout
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    hung = [index for index, thread in enumerate(threads) if thread.is_alive()]
    assert not hung, f"calls {hung} still running after {join_timeout:g} s (a deadlock?)"
    return outcomes


# --- Reporting and bounds ---------------------------------------------------------------------------


@dataclass
class Checks:
    """The PASS/FAIL lines of a run, and its exit status."""

    results: list[bool] = field(default_factory=list)

    def report(self, name: str, ok: bool, detail: str = "") -> bool:
        self.results.append(bool(ok))
        print(f"{'PASS' if ok else 'FAIL'}  {name}" + (f"  [{detail}]" if detail else ""), flush=True)
        return ok

    def info(self, name: str, detail: str) -> None:
        print(f"INFO  {name}  [{detail}]", flush=True)

    def crashed(self, error: Exception, server: Server | None = None) -> None:
        """The run broke off: a FAIL line for it, and the end of the server's log."""
        self.report("the run completed", False, f"{type(error).__name__}: {error}")
        if server is not None:
            print(server.output()[-3000:])

    def finish(self, started: float) -> int:
        """Print the count of passed and failed checks; 1 if any failed or none ran, else 0."""
        failed = self.results.count(False)
        print(f"\n{len(self.results) - failed} passed, {failed} failed in {time.monotonic() - started:.1f} s")
        return 1 if failed or not self.results else 0


def start_watchdog(seconds: int, message: str) -> None:
    """Raise TimeoutError(message) in the main thread after ``seconds``; stop_watchdog() ends it."""

    def expire(signum, frame):
        raise TimeoutError(message)

    signal.signal(signal.SIGALRM, expire)
    signal.alarm(seconds)


def stop_watchdog() -> None:
    signal.alarm(0)


def stop_all(*stops: Callable[[], object] | None) -> None:
    """Call each stop function (None: nothing to stop), printing errors and carrying on."""
    for stop in stops:
        if stop is None:
            continue
        try:
            stop()
        except Exception as error:  # keep cleaning up
            print(f"cleanup: {type(error).__name__}: {error}")
