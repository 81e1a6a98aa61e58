"""Fault-tolerance checks: the app under gunicorn while PostgreSQL, Redis or the email provider fail.

Run from the project root (as root: the private cluster runs as the postgres user):

    uv run python bench/faults.py

It starts a PRIVATE PostgreSQL cluster and a PRIVATE redis-server on free ports
in a temporary directory (the machine's own services are never touched),
migrates the app into it, seeds two users and serves the app with gunicorn
(2 workers, DEBUG off, production settings). Then:

  (a) PostgreSQL is stopped under load and started again;
  (b) Redis is stopped and started again;
  (c) the app runs with an email backend that always fails.

One PASS/FAIL line per check with the measured numbers; exit status 1 on any
FAIL. Everything is bounded (a watchdog ends the run after MAX_RUN_SECONDS)
and cleaned up in finally blocks. The servers come from bench/harness.py, the
harness bench/soak.py, bench/enumeration_timing.py and bench/run.py share.
"""

import os
import shutil
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from harness import (
    PASSWORD,
    PROJECT_ROOT,
    Checks,
    Client,
    EmailWorker,
    Gunicorn,
    PrivatePostgres,
    PrivateRedis,
    Reply,
    http,
    manage,
    production_env,
    seed_accounts,
    start_watchdog,
    stop_all,
    stop_watchdog,
    wait_until,
)

EMAIL = "faults@example.com"
UNVERIFIED_EMAIL = "pending@example.com"
NEW_PASSWORD = "a different passphrase entirely"
FAIL_FAST_SECONDS = 5.0  # the longest any answer may take during an outage, and the recovery bound
HEALTHZ_SECONDS = 1.0  # /healthz/ must stay this quick while the database is down
OUTAGE_SECONDS = 5.0  # how long PostgreSQL stays down in (a)
MAIL_SETTLE_SECONDS = 2.0  # the worker sends emails from the outbox: wait this long before counting
MAX_RUN_SECONDS = 170

checks = Checks()
report, info = checks.report, checks.info


def mails_sent(mail_dir: Path) -> int:
    """Messages the file-based email backend has written, but new-device sign-in notices (a sign-in
    from a fresh client sends one, which the scenarios do not count)."""
    texts = [path.read_text(errors="replace") for path in mail_dir.glob("*") if path.is_file()]
    return sum(text.count("Message-ID:") - text.count("Subject: New sign-in to your") for text in texts)


# --- Scenarios -------------------------------------------------------------------


def ok_or_unavailable(reply: Reply) -> bool:
    return 200 <= reply.status < 300 or (
        reply.status == 503 and reply.code == "service_unavailable" and "retry-after" in reply.headers
    )


def scenario_database_down(app: Gunicorn, pg: PrivatePostgres) -> None:
    print("\n(a) PostgreSQL stopped under load", flush=True)
    writer, reader = Client(app.port, EMAIL), Client(app.port, EMAIL)
    for client in (writer, reader):
        assert client.login().status == 200, "sign-in before the outage failed"
    records: list[tuple[str, Reply]] = []  # (what, reply); list.append is atomic
    attempted: list[str] = []
    acknowledged: list[str] = []
    stop = threading.Event()
    deadline = time.monotonic() + 60
    workers_before = app.workers()

    def running() -> bool:
        return not stop.is_set() and time.monotonic() < deadline

    def write() -> None:
        for _ in range(100_000):
            if not running():
                break
            title = f"fault-{uuid.uuid4().hex}"
            attempted.append(title)
            reply = writer.call("POST", "/api/todos/", {"title": title})
            records.append(("create", reply))
            if reply.status == 201:
                acknowledged.append(title)

    def read() -> None:
        actions = [
            ("list", lambda: reader.call("GET", "/api/todos/?page_size=5")),
            ("me", lambda: reader.call("GET", "/api/auth/me/")),
            ("refresh", reader.refresh),
            ("login", reader.login),
        ]
        for step in range(100_000):
            if not running():
                break
            what, action = actions[step % len(actions)]
            records.append((what, action()))
            time.sleep(0.05)

    def probe() -> None:
        for _ in range(1000):
            if not running():
                break
            records.append(("healthz", http(app.port, "GET", "/healthz/")))
            records.append(("readyz", http(app.port, "GET", "/readyz/")))
            stop.wait(0.2)

    threads = [threading.Thread(target=target, daemon=True) for target in (write, read, probe)]
    for thread in threads:
        thread.start()
    time.sleep(2)
    stopping = time.monotonic()
    pg.stop("fast")
    down = time.monotonic()
    time.sleep(OUTAGE_SECONDS)
    starting = time.monotonic()
    pg.start()
    back = time.monotonic()

    def recovered() -> bool:
        return any(
            what not in ("healthz", "readyz") and 200 <= r.status < 300 and r.ended > back for what, r in records
        )

    wait_until(recovered, timeout=15)
    time.sleep(1)
    stop.set()
    for thread in threads:
        thread.join(timeout=30)

    api = [(what, r) for what, r in records if what not in ("healthz", "readyz")]
    health = [r for what, r in records if what == "healthz"]
    ready = [r for what, r in records if what == "readyz"]
    during = [r for _, r in api if r.started < back and r.ended > stopping]  # overlapping the outage at all
    strictly = [(what, r) for what, r in api if r.started >= down and r.ended <= starting]  # wholly inside it
    kinds = sorted({what for what, _ in strictly})
    strictly = [r for _, r in strictly]
    info(
        "load",
        f"{len(api)} API requests ({len(attempted)} creates), {len(health)} /healthz/ probes; "
        f"PostgreSQL down {starting - down:.1f} s (stop took {down - stopping:.2f} s, start {back - starting:.2f} s)",
    )

    bad = [(what, r.status, r.code) for what, r in api if not ok_or_unavailable(r)]
    report(
        "a1 no 500, no dropped connection: every API answer is 2xx or 503 service_unavailable + Retry-After",
        not bad,
        f"{len(api)} answers; unexpected: {bad[:5]}",
    )
    statuses = sorted({r.status for r in strictly})
    report(
        "a2 every API request during the outage is a 503 JSON service_unavailable",
        bool(strictly) and statuses == [503] and all(r.code == "service_unavailable" for r in strictly),
        f"{len(strictly)} requests ({', '.join(kinds)}), statuses {statuses}",
    )
    slowest = max((r.seconds for r in during), default=0.0)
    report(
        f"a3 they fail fast (max latency < {FAIL_FAST_SECONDS:.0f} s)",
        slowest < FAIL_FAST_SECONDS,
        f"max {slowest * 1000:.0f} ms over {len(during)} requests overlapping the outage",
    )
    health_slowest = max((r.seconds for r in health), default=99.0)
    report(
        f"a4 /healthz/ stays 200 and quick (< {HEALTHZ_SECONDS:.0f} s) throughout",
        bool(health) and all(r.status == 200 for r in health) and health_slowest < HEALTHZ_SECONDS,
        f"{len(health)} probes, statuses {sorted({r.status for r in health})}, max {health_slowest * 1000:.0f} ms",
    )
    ready_down = [r for r in ready if r.started >= down and r.ended <= starting]
    unready = [r for r in ready_down if r.status == 503 and r.body["database"] == "unavailable"]
    report(
        "a5 /readyz/ is 503 (database unavailable) during the outage and 200 after it",
        bool(ready_down) and unready == ready_down and bool(ready) and ready[-1].status == 200,
        f"{len(ready_down)} probes during, last {ready[-1].status if ready else None}",
    )
    first_ok = min((r.ended for _, r in api if 200 <= r.status < 300 and r.ended > down), default=None)
    recovery = None if first_ok is None else max(0.0, first_ok - back)
    report(
        f"a6 recovers by itself within {FAIL_FAST_SECONDS:.0f} s of the database being back (first 2xx)",
        recovery is not None and recovery < FAIL_FAST_SECONDS,
        "never"
        if recovery is None
        else f"first 2xx {(first_ok - starting) * 1000:.0f} ms after pg_ctl start "
        f"was run, {recovery * 1000:.0f} ms after it returned",
    )
    after = {
        what: action().status
        for what, action in [
            ("create", lambda: writer.call("POST", "/api/todos/", {"title": "after the outage"})),
            ("list", lambda: reader.call("GET", "/api/todos/")),
            ("refresh", reader.refresh),
            ("login", Client(app.port, EMAIL).login),
        ]
    }
    report("a7 afterwards every kind of request succeeds", all(200 <= s < 300 for s in after.values()), str(after))

    counts = dict(pg.query("SELECT title, count(*) FROM todos_todo WHERE title LIKE 'fault-%%' GROUP BY title"))
    missing = [t for t in acknowledged if counts.get(t, 0) != 1]
    doubled = [t for t, n in counts.items() if n > 1]
    ambiguous = len(set(counts) - set(acknowledged))
    report(
        "a8 every acknowledged (201) todo exists exactly once, none written twice",
        not missing and not doubled,
        f"{len(acknowledged)} acknowledged of {len(attempted)} attempted; missing/not once {len(missing)}, "
        f"doubled {len(doubled)}; stored without a 201 (answer lost in the outage) {ambiguous}",
    )
    output = app.output()
    workers_after = app.workers()
    report(
        "a9 no worker hung or was replaced (no WORKER TIMEOUT, same worker PIDs)",
        "WORKER TIMEOUT" not in output and workers_before == workers_after,
        f"workers {workers_before} -> {workers_after}",
    )


def scenario_redis_down(app: Gunicorn, redis: PrivateRedis, mail_dir: Path) -> dict:
    print("\n(b) Redis stopped", flush=True)
    user = Client(app.port, EMAIL)
    assert user.login().status == 200
    assert user.call("GET", "/api/todos/").status == 200  # the session is now "live" in Redis
    before = mails_sent(mail_dir)
    baseline = {
        "reset": http(app.port, "POST", "/api/auth/password/reset/", {"email": EMAIL}),
        "resend": http(app.port, "POST", "/api/auth/email/verify/resend/", {"email": UNVERIFIED_EMAIL}),
        "register": http(
            app.port, "POST", "/api/auth/register/", {"email": "new-b@example.com", "password": PASSWORD, "name": "New"}
        ),
    }
    sent = wait_until(lambda: mails_sent(mail_dir) >= before + 3, timeout=5) and mails_sent(mail_dir) - before
    report(
        "b0 control, Redis up: reset, resend and sign-up answer 202 and each sends its email",
        all(r.status == 202 for r in baseline.values()) and sent == 3,
        f"statuses {[r.status for r in baseline.values()]}, {sent} emails",
    )

    redis.stop()
    try:
        replies = {
            "create": user.call("POST", "/api/todos/", {"title": "while redis is down"}),
            "list": user.call("GET", "/api/todos/"),
        }
        other = Client(app.port, EMAIL)
        replies["login"] = other.login()
        replies["refresh"] = other.refresh()
        replies["todos with the refreshed token"] = other.call("GET", "/api/todos/")
        replies["password change"] = other.call(
            "POST", "/api/auth/password/change/", {"current_password": PASSWORD, "new_password": NEW_PASSWORD}
        )
        before = mails_sent(mail_dir)
        replies["reset"] = http(app.port, "POST", "/api/auth/password/reset/", {"email": EMAIL})
        replies["resend"] = http(app.port, "POST", "/api/auth/email/verify/resend/", {"email": UNVERIFIED_EMAIL})
        time.sleep(MAIL_SETTLE_SECONDS)
        skipped = mails_sent(mail_dir) - before
        replies["readyz"] = http(app.port, "GET", "/readyz/")

        def status(what: str) -> int:
            return replies[what].status

        report(
            "b1 todo API keeps working for valid tokens (revocation falls back to the database)",
            status("create") == 201 and status("list") == 200 and status("todos with the refreshed token") == 200,
            f"create {status('create')}, list {status('list')}, "
            f"with refreshed token {status('todos with the refreshed token')}",
        )
        report("b2 sign-in works (allow)", status("login") == 200, f"{status('login')}")
        report("b3 refresh works (allow)", status("refresh") == 200, f"{status('refresh')}")
        report(
            "b4 password change is refused: 429 rate_limited (deny)",
            status("password change") == 429 and replies["password change"].code == "rate_limited",
            f"{status('password change')} {replies['password change'].code}, "
            f"Retry-After {replies['password change'].headers.get('retry-after')}",
        )
        same = all(replies[k].status == 202 and replies[k].body == baseline[k].body for k in ("reset", "resend"))
        report(
            "b5 reset and verification requests answer as usual (202, same body) and send no email (skip)",
            same and skipped == 0,
            f"statuses {status('reset')}/{status('resend')}, same bodies {same}, {skipped} emails sent",
        )
        body = replies["readyz"].body
        report(
            "b6 /readyz/ is 503 with the cache unavailable (database ok)",
            status("readyz") == 503 and body.get("cache") == "unavailable" and body.get("database") == "ok",
            f"{status('readyz')} {body}",
        )
        slowest = max(replies.values(), key=lambda r: r.seconds)
        report(
            f"b7 every answer while Redis is down is quick (< {FAIL_FAST_SECONDS:.0f} s) and none is 5xx",
            slowest.seconds < FAIL_FAST_SECONDS and all(r.status < 500 or w == "readyz" for w, r in replies.items()),
            f"max {slowest.seconds * 1000:.0f} ms",
        )
        before = mails_sent(mail_dir)
        signup = http(app.port, "POST", "/api/auth/register/", {"email": EMAIL, "password": PASSWORD, "name": "X"})
        time.sleep(MAIL_SETTLE_SECONDS)
        info(
            "sign-up of an existing address while Redis is down (documented: allowed)",
            f"{signup.status}, {mails_sent(mail_dir) - before} 'account exists' email(s) sent, not rate limited",
        )
    finally:
        redis.start()

    wait_until(lambda: http(app.port, "GET", "/readyz/").status == 200, timeout=10)
    before = mails_sent(mail_dir)
    normal = {
        "readyz": http(app.port, "GET", "/readyz/").status,
        "login": other.login().status,
        "refresh": other.refresh().status,
        "create": other.call("POST", "/api/todos/", {"title": "after redis is back"}).status,
        "wrong current password": other.call(
            "POST", "/api/auth/password/change/", {"current_password": "wrong", "new_password": NEW_PASSWORD}
        ).code,
        "reset": http(app.port, "POST", "/api/auth/password/reset/", {"email": EMAIL}).status,
    }
    sent = wait_until(lambda: mails_sent(mail_dir) > before, timeout=5)
    report(
        "b8 Redis back: all normal (password change checks the password again instead of 429; reset mails)",
        normal
        == {
            "readyz": 200,
            "login": 200,
            "refresh": 200,
            "create": 201,
            "wrong current password": "invalid_password",
            "reset": 202,
        }
        and sent,
        f"{normal}, reset email sent {sent}",
    )
    return {k: r.body for k, r in baseline.items()}


def scenario_email_down(app: Gunicorn, sender: EmailWorker, baseline_bodies: dict) -> None:
    print("\n(c) the email backend always fails", flush=True)
    replies = {
        "reset": http(app.port, "POST", "/api/auth/password/reset/", {"email": EMAIL}),
        "resend": http(app.port, "POST", "/api/auth/email/verify/resend/", {"email": UNVERIFIED_EMAIL}),
        "register": http(
            app.port, "POST", "/api/auth/register/", {"email": "new-c@example.com", "password": PASSWORD, "name": "New"}
        ),
    }
    same = {k: r.status == 202 and r.body == baseline_bodies[k] for k, r in replies.items()}
    report(
        "c1 reset, resend verification and sign-up answer as usual (202, same bodies)",
        all(same.values()),
        f"statuses {[r.status for r in replies.values()]}, same bodies {same}",
    )

    def failures() -> list[str]:
        return [
            line
            for line in sender.output().splitlines()
            if "Sending email " in line and "failed: ConnectionRefusedError" in line
        ]

    wait_until(lambda: len(failures()) >= 3, timeout=10)
    logged = failures()
    templates = sorted({line.split("(")[1].split(")")[0] for line in logged if "(" in line})
    report(
        "c2 each failed attempt is logged by the worker (the email waits in the outbox for its retry)",
        len(logged) >= 3,
        f"{len(logged)} log lines, templates {templates}",
    )
    client = Client(app.port, EMAIL)
    todo = {
        "login": client.login().status,
        "create": client.call("POST", "/api/todos/", {"title": "mail down"}).status,
        "list": client.call("GET", "/api/todos/").status,
    }
    report("c3 the todo API is unaffected", todo == {"login": 200, "create": 201, "list": 200}, str(todo))


def main() -> int:
    start_watchdog(MAX_RUN_SECONDS, f"faults.py ran longer than {MAX_RUN_SECONDS} s")
    started = time.monotonic()
    root = Path(tempfile.mkdtemp(prefix="faults-"))
    root.chmod(0o755)  # the postgres user must reach its directory inside
    mail_dir = root / "mail"
    mail_dir.mkdir()
    pg = redis = app = sender = None
    try:
        pg = PrivatePostgres(root)
        pg.start()
        redis = PrivateRedis(root)
        redis.start()
        env = production_env(
            database_url=pg.url,
            redis_url=redis.url,
            key_prefix="faults",
            email_backend="django.core.mail.backends.filebased.EmailBackend",
            EMAIL_FILE_PATH=str(mail_dir),
        )
        manage(env, "migrate", "--noinput")
        seed_accounts(env, verified=[EMAIL], unverified=[UNVERIFIED_EMAIL])
        print(f"private PostgreSQL :{pg.port}, Redis :{redis.port}; setup {time.monotonic() - started:.1f} s")
        # Worker recycling off: a recycled worker must not look like a hung one.
        app = Gunicorn(env, root / "gunicorn.log", extra_args=("--max-requests", "0"))
        scenario_database_down(app, pg)
        sender = EmailWorker(env, root / "worker.log")
        bodies = scenario_redis_down(app, redis, mail_dir)
        app.stop()
        sender.stop()
        failing = {
            **env,
            "EMAIL_BACKEND": "failing_email_backend.FailingEmailBackend",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(PROJECT_ROOT / "bench"), env.get("PYTHONPATH")])),
        }
        app = Gunicorn(failing, root / "gunicorn-failing-email.log")
        sender = EmailWorker(failing, root / "worker-failing-email.log")
        scenario_email_down(app, sender, bodies)
    except Exception as error:
        checks.crashed(error, app)
    finally:
        stop_watchdog()
        stop_all(
            app and app.stop,
            sender and sender.stop,
            redis and redis.stop,
            pg and (lambda: pg.stop("immediate", check=False)),
        )
        shutil.rmtree(root, ignore_errors=True)
    return checks.finish(started)


if __name__ == "__main__":
    sys.exit(main())
