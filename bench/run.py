"""Benchmark: the app against startproject apps with simplejwt and allauth headless (JWT), under gunicorn.

    uv run python bench/run.py [--quick]

On PostgreSQL and Redis, with a floor: the same todo list in a bare startproject app with no
authentication. Prints one table per workload (with the CPU time per request by layer, from a profile),
the ratios and the targets; writes bench/.work/results.json.
"""

import argparse
import base64
import contextlib
import json
import multiprocessing
import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from pathlib import Path

import loadgen
from djtool import LAYERS, PASSWORD, TABS_EMAIL, USERS, email_of
from harness import Gunicorn, drop_redis_keys, ensure_databases, rate_limits_at, worker_pids

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
WORK = BENCH / ".work"
VENVS = BENCH / ".venvs"
WORKERS = 2
CLIENTS = 8
PG = "postgres://postgres@127.0.0.1:5432"
SERVERS = {"ours": 8601, "simplejwt": 8602, "allauth": 8603, "floor": 8604}
PEERS = ("simplejwt", "allauth")
DATABASES = {kind: f"bench_{kind}" for kind in SERVERS}
REDIS_URL = "redis://127.0.0.1:6379/13"
COMMON_PACKAGES = ["django>=5.2,<5.3", "djangorestframework", "psycopg[binary]", "argon2-cffi", "gunicorn"]
PEER_PACKAGES = {
    "simplejwt": [*COMMON_PACKAGES, "djangorestframework-simplejwt"],
    # redis: allauth's rate limits count in the cache, which a deployment of several processes shares.
    "allauth": [*COMMON_PACKAGES, "django-allauth[headless]", "PyJWT", "cryptography", "redis"],
}
ARGON2 = {"time_cost": 2, "memory_cost": 19456, "parallelism": 1}
RUN_ID = secrets.token_hex(4)
KEYS = {
    "SECRET_KEY": secrets.token_urlsafe(64),
    "JWT_SIGNING_KEY": secrets.token_urlsafe(48),
    "MFA_ENCRYPTION_KEYS": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
}
# CPU seconds of requests the in-process profile samples, per server and workload.
PROFILE_SECONDS = 3.0
WORKLOADS = {
    "a": "(a) authenticated GET /api/todos/ (10 items, page of 20), 8 clients",
    "b": "(b) chained refresh rotation, 8 concurrent clients (one session each)",
    "c": "(c) sign-in (Argon2id t=2 m=19456 p=1), 8 clients",
    "d": "(d) 8 tabs of one session refreshing at the same instant, repeated",
}


def python_of(kind: str) -> str:
    """The floor runs in simplejwt's environment (Django, DRF, psycopg, gunicorn: all it needs)."""
    return str(VENVS / ("simplejwt" if kind == "floor" else kind) / "bin" / "python")


def ensure_peer_environments() -> None:
    """Sync bench/.venvs/ours from uv.lock without the development tools, as a deployment installs
    the app (pytest, Playwright, mypy and their libraries are not in it, so nothing of theirs is
    imported or counted in its memory); create bench/.venvs/<peer> with uv the first time."""
    subprocess.run(
        ["uv", "sync", "-q", "--frozen", "--no-dev", "--compile-bytecode"],
        check=True,
        timeout=600,
        cwd=ROOT,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(VENVS / "ours")},
    )
    for peer, packages in PEER_PACKAGES.items():
        if not (VENVS / peer / "bin" / "python").exists():
            print(f"creating {VENVS / peer} ...", flush=True)
            subprocess.run(["uv", "venv", "-q", str(VENVS / peer)], check=True, timeout=300)
        # Every run: installs what a package list gained since the environment was made.
        subprocess.run(["uv", "pip", "install", "-q", "--python", python_of(peer), *packages], check=True, timeout=600)


def env_of(kind: str, port: int) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_", "REDIS_", "VIRTUAL_ENV"))}
    env.update(KEYS, PORT=str(port), HOST="127.0.0.1", WEB_CONCURRENCY=str(WORKERS), PYTHONDONTWRITEBYTECODE="1")
    if kind == "ours":
        env.update(
            DJANGO_SETTINGS_MODULE="config.settings",
            DEBUG="false",
            ALLOWED_HOSTS="127.0.0.1,localhost",
            SITE_URL="https://bench.example",
            EMAIL_BACKEND="django.core.mail.backends.locmem.EmailBackend",
            SECURE_SSL_REDIRECT="false",
            DATABASE_URL=f"{PG}/{DATABASES['ours']}",
            REDIS_URL=REDIS_URL,
            CACHE_KEY_PREFIX=f"bench-{RUN_ID}",
            ARGON2_TIME_COST="2",
            ARGON2_MEMORY_COST_KIB="19456",
            ARGON2_PARALLELISM="1",
            **rate_limits_at("100000/m"),
        )
    else:
        env.update(
            DJANGO_SETTINGS_MODULE=f"{kind}_peer.settings",
            PEER_DB_NAME=DATABASES[kind],
            PEER_REDIS_URL=REDIS_URL,
            PEER_CACHE_PREFIX=f"bench-{RUN_ID}-{kind}",
        )
    return env


def djtool(kind: str, *args: str, timeout: float = 180) -> dict:
    result = subprocess.run(
        [python_of(kind), str(BENCH / "djtool.py"), *args[:1], kind, *args[1:]],
        env=env_of(kind, SERVERS[kind]),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if result.returncode != 0:
        raise RuntimeError(f"djtool {args[0]} {kind} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def cpu_busy(seconds: float = 1.0) -> float:
    """Fraction of all cores busy over `seconds` (from /proc/stat)."""

    def read() -> tuple[int, int]:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return sum(values), values[3] + values[4]

    total0, idle0 = read()
    time.sleep(seconds)
    total1, idle1 = read()
    return 1 - (idle1 - idle0) / max(1, total1 - total0)


def wait_until_quiet(limit_s: float = 60) -> float:
    """Wait (at most limit_s) until other processes leave the cores idle; returns the last busy fraction."""
    busy = cpu_busy()
    deadline = time.monotonic() + limit_s
    for _ in range(int(limit_s / 2) + 1):
        if busy <= 0.15 or time.monotonic() >= deadline:
            break
        print(f"  the machine is {busy:.0%} busy with other work; waiting ...", flush=True)
        busy = cpu_busy(2.0)
    return round(busy, 2)


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process, its reaped descendants and its live descendants."""
    try:
        total = _cpu_seconds(pid) + _cpu_seconds(pid, children=True)
    except OSError:
        return 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            total += sum(_tree_cpu(int(child)) for child in (task / "children").read_text().split())
    return total


def cpu_accounting() -> tuple[float, float, float]:
    """(wall clock, CPU seconds used machine-wide, CPU seconds used by this benchmark's own processes,
    PostgreSQL and Redis), to tell afterwards how much other work ran during the measurements."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    busy = (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")
    ours = _tree_cpu(os.getpid())
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and (entry / "comm").read_text().strip() in ("postgres", "redis-server"):
                ours += _cpu_seconds(int(entry.name))
        except OSError:
            pass
    return time.monotonic(), busy, ours


def _cpu_seconds(pid: int, children: bool = False) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    first = 13 if children else 11  # utime, stime (or cutime, cstime: reaped children)
    return (int(fields[first]) + int(fields[first + 1])) / os.sysconf("SC_CLK_TCK")


class Workers(threading.Thread):
    """A gunicorn master's workers: their largest VmHWM (peak resident set), sampled every 0.2 s
    (a bounded loop), and the CPU time they used (live ones, plus recycled ones the master reaped)."""

    def __init__(self, kind: str, process: subprocess.Popen):
        super().__init__(daemon=True)
        self.kind, self.process, self.master = kind, process, process.pid
        self.peak_kb, self.done = 0, threading.Event()

    def check(self) -> None:
        if self.process.poll() is not None:
            raise RuntimeError(f"the {self.kind} server exited during the run; see {WORK / (self.kind + '.log')}")

    def worker_cpu(self) -> float:
        total = _cpu_seconds(self.master, children=True)
        for pid in worker_pids(self.master):
            with contextlib.suppress(OSError):  # a worker that just exited
                total += _cpu_seconds(pid)
        return total

    def sample(self) -> None:
        for pid in worker_pids(self.master):
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        self.peak_kb = max(self.peak_kb, int(line.split()[1]))
            except OSError:
                pass

    def run(self) -> None:
        for _ in range(10_000):
            if self.done.wait(0.2):
                return
            self.sample()

    def take_mb(self) -> float:
        self.sample()
        peak, self.peak_kb = self.peak_kb, 0
        return round(peak / 1024, 1)


@contextmanager
def server(kind: str):
    """Start one gunicorn (2 workers) and always stop it. The peers and the floor share one gunicorn conf."""
    port = SERVERS[kind]
    with socket.socket() as probe:  # never benchmark (or stop) someone else's server on our port
        if probe.connect_ex(("127.0.0.1", port)) == 0:
            raise RuntimeError(f"port {port} is already in use; stop what listens there first")
    # No worker recycling (max_requests): a worker rebooting mid-slice would charge ~1 s of imports to
    # whichever server and workload it happens in.
    # Ready once GET /api/todos/ answers at all (401 without a token; 404 on the floor) and every worker is up.
    peer = {"cwd": BENCH / "peers", "config": "gunicorn.conf.py", "wsgi": f"{kind}_peer.wsgi"}
    with Gunicorn(
        env_of(kind, port),
        WORK / f"{kind}.log",
        WORKERS,
        ("--max-requests", "0"),
        name=f"{kind} server",
        port=port,
        python=python_of(kind),
        log_mode="w",
        ready_path="/api/todos/",
        ready_status=None,
        ready_workers=WORKERS,
        **({} if kind == "ours" else peer),
    ) as app:
        sampler = Workers(kind, app.process)
        try:
            sampler.start()
            yield port, sampler
        finally:
            sampler.done.set()


def _verify_loop(args) -> tuple[int, float, list[float], float]:
    from argon2 import PasswordHasher

    encoded, duration = args
    hasher = PasswordHasher(**ARGON2)
    latencies, began, cpu = [], time.perf_counter(), time.process_time()
    for _ in range(1_000_000):
        if time.perf_counter() - began >= duration:
            break
        start = time.perf_counter()
        hasher.verify(encoded, PASSWORD)
        latencies.append(time.perf_counter() - start)
    return len(latencies), time.perf_counter() - began, latencies, time.process_time() - cpu


def argon2_slice(pool, encoded: str):
    """Argon2id verification alone, same parameters, in as many processes as gunicorn workers."""

    def run(seconds: float) -> tuple:
        runs = pool.map(_verify_loop, [(encoded, seconds)] * WORKERS)
        return [x for r in runs for x in r[2]], 0, max(r[1] for r in runs), sum(r[3] for r in runs), None

    return run


def server_slice(port: int, steps: list, sampler: Workers):
    """One server workload: 8 closed-loop clients for a slice of time, with the workers' CPU and peak memory."""

    def run(seconds: float) -> tuple:
        sampler.check()
        sampler.take_mb()
        cpu = sampler.worker_cpu()
        latencies, errors, elapsed = loadgen.closed_loop(port, steps, seconds)
        sampler.check()
        return latencies, errors, elapsed, sampler.worker_cpu() - cpu, sampler.take_mb()

    return run


def interleaved(runs: dict, duration: float, warmup: float, slices: int) -> dict:
    """Warm every target up, then give each `duration` seconds in `slices` round-robin slices, so that
    whatever else the machine does in the meantime hits all of them alike."""
    for run in runs.values():
        run(warmup)
    acc = {name: [[], 0, 0.0, 0.0, 0.0] for name in runs}
    for _ in range(slices):
        for name, run in runs.items():
            latencies, errors, elapsed, cpu, peak = run(duration / slices)
            a = acc[name]
            a[0] += latencies
            a[1] += errors
            a[2] += elapsed
            a[3] += cpu
            a[4] = max(a[4], peak or 0)
    results = {}
    for name, (latencies, errors, elapsed, cpu, peak) in acc.items():
        results[name] = loadgen.summarize(latencies, errors, elapsed)
        results[name]["cpu_ms"] = round(cpu * 1000 / max(1, len(latencies)), 2)
        results[name]["peak_rss_mb"] = peak or "-"
    return results


class Conversation:
    """A djtool process that answers one line for every line it is sent (`watch`, or `profile` in slices)."""

    def __init__(self, kind: str, *args: str):
        self.kind = kind
        self.log = WORK / f"djtool-{args[0]}-{kind}.log"  # its stderr
        with open(self.log, "w") as log:
            self.process = subprocess.Popen(
                [python_of(kind), str(BENCH / "djtool.py"), args[0], kind, *args[1:]],
                env=env_of(kind, SERVERS[kind]),
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                text=True,
            )

    def read(self) -> str:
        line = self.process.stdout.readline()
        if not line:
            code = self.process.wait(timeout=10)
            raise RuntimeError(f"djtool {self.kind} exited with {code}:\n{self.log.read_text()[-3000:]}")
        return line.strip()

    def ask(self, line: str) -> str:
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()
        return self.read()

    def close(self) -> str:
        """Close its input; the last line it printed (a JSON result, for profile)."""
        self.process.stdin.close()
        try:
            rest = self.process.stdout.read()
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
            rest = ""
        return (rest.strip().splitlines() or [""])[-1]


class Watch(Conversation):
    """Which refresh tokens of the (d) account are live, asked between rounds (never while requests are
    in flight), by the server's own models."""

    def __init__(self, kind: str):
        super().__init__(kind, "watch", TABS_EMAIL)

    def __call__(self, tokens: list) -> dict:
        return json.loads(self.ask(json.dumps(tokens)))


def profile_all(owners: dict, cpu_seconds: float, slices: int) -> dict:
    """Every server's layer profile (djtool.py profile): `cpu_seconds` of each workload per server, taken in
    `slices` slices, one process active at a time, the servers in turn."""
    tools = {kind: Conversation(kind, "profile", str(owners[kind])) for kind in SERVERS}
    try:
        for tool in tools.values():
            if tool.read() != "ready":
                raise RuntimeError(f"djtool profile {tool.kind} did not start")
        for _ in range(slices):
            for kind, tool in tools.items():
                for workload in "a" if kind == "floor" else "abc":
                    if tool.ask(f"{workload} {cpu_seconds / slices}") != "ok":
                        raise RuntimeError(f"djtool profile {kind} ({workload}) failed")
        return {kind: json.loads(tool.close()) for kind, tool in tools.items()}
    finally:
        for tool in tools.values():
            if tool.process.poll() is None:
                tool.process.kill()
                tool.process.wait(timeout=10)


def logins(port: int, proto, emails: list[str]) -> list[dict]:
    h = loadgen.Http(port)
    sessions = [proto.login(h, email) for email in emails]
    h.close()
    if not all(sessions):
        raise RuntimeError(f"{proto.name}: sign-in failed during setup")
    return sessions


def run_workloads(live: dict, owners: dict, argon2_run, duration: float, warmup: float, rounds: int) -> dict:
    emails = [email_of(i) for i in range(USERS)]
    runs: dict = {"a": {}, "b": {}, "c": {}}
    for kind, (port, sampler) in live.items():
        if kind == "floor":
            floor = [loadgen.list_step(f"/api/bench-floor/{owners[kind]}/todos/", None)] * CLIENTS
            runs["a"]["floor"] = server_slice(port, floor, sampler)
            continue
        proto = loadgen.PROTOCOLS[kind]
        sessions = logins(port, proto, emails[:CLIENTS])
        runs["a"][kind] = server_slice(port, [loadgen.list_step("/api/todos/", s["access"]) for s in sessions], sampler)
        sessions = logins(port, proto, emails[CLIENTS : 2 * CLIENTS])
        runs["b"][kind] = server_slice(port, [loadgen.refresh_chain_step(proto, s) for s in sessions], sampler)
        runs["c"][kind] = server_slice(
            port, [loadgen.login_step(proto, emails[i::CLIENTS]) for i in range(CLIENTS)], sampler
        )
    runs["c"]["argon2"] = argon2_run
    slices = max(1, round(duration / 2))
    results = {}
    for workload, targets in runs.items():
        print(f"  ({workload}) {', '.join(targets)}: {duration:g} s each in {slices} slices ...", flush=True)
        results[workload] = interleaved(targets, duration, warmup, slices)
    print(f"  (d) {rounds} rounds of {CLIENTS} tabs refreshing at once ...", flush=True)
    results["d"] = {}
    for kind, (port, sampler) in live.items():
        if kind == "floor":
            continue
        watch = Watch(kind)
        try:
            watch([])  # started and connected before the first round
            sampler.take_mb()
            cpu = sampler.worker_cpu()
            d, jars = loadgen.tabs(port, loadgen.PROTOCOLS[kind], TABS_EMAIL, rounds, CLIENTS, holds=watch)
            sampler.check()
            d["cpu_ms"] = round((sampler.worker_cpu() - cpu) * 1000 / max(1, d["requests"]), 2)
            d["peak_rss_mb"] = sampler.take_mb()
            after = watch(jars)
        finally:
            watch.close()
        d["live_after"] = {**after, "jars_holding": sum(after["held"]), "held": None}
        results["d"][kind] = d
    return results


def ratio(x: float, y: float) -> float:
    return round(x / y, 2) if y else float("nan")


def peak_memory(res: dict, kind: str) -> float:
    """A server's largest worker VmHWM over every workload, MB."""
    return max(
        (r[kind]["peak_rss_mb"] for r in res.values() if isinstance(r.get(kind, {}).get("peak_rss_mb"), float)),
        default=0.0,
    )


def evaluate(res: dict, sql: dict) -> tuple[dict, list]:
    ratios: dict = {
        w: {f"ours/{peer}": ratio(res[w]["ours"]["rps"], res[w][peer]["rps"]) for peer in PEERS} for w in "abcd"
    }
    for w in "ab":
        ratios[w]["ours/faster peer"] = ratio(res[w]["ours"]["rps"], max(res[w][peer]["rps"] for peer in PEERS))
    ratios["a"]["ours/floor"] = ratio(res["a"]["ours"]["rps"], res["a"]["floor"]["rps"])
    ratios["c"]["ours/argon2-only"] = ratio(res["c"]["ours"]["rps"], res["c"]["argon2"]["rps"])
    # The same comparisons by CPU time per request (other ÷ ours): less sensitive to other work on the machine.
    for w in "abcd":
        others = [n for n in res[w] if n != "ours"]
        ratios[w]["by CPU/req"] = {f"ours/{n}": ratio(res[w][n]["cpu_ms"], res[w]["ours"]["cpu_ms"]) for n in others}
    memory = {kind: peak_memory(res, kind) for kind in SERVERS}
    larger_peer = max(memory[peer] for peer in PEERS)
    ratios["memory"] = {"ours/larger peer": ratio(memory["ours"], larger_peer), "peak MB": memory}
    d, rules = res["d"]["ours"], sql["ours"]["rules"]
    checks = [  # name, value, goal, kind of comparison, margin as a percentage
        ("(a) ours / faster peer", ratios["a"]["ours/faster peer"], 1.15, ">=", True),
        ("(a) ours / floor (no auth)", ratios["a"]["ours/floor"], 0.85, ">=", True),
        ("(b) ours / faster peer", ratios["b"]["ours/faster peer"], 1.3, ">=", True),
        ("(b) DB round trips per refresh", sql["ours"]["b"]["round_trips"], 2, "<=", False),
        ("(b) grace rule: just-rotated token -> 200", rules["grace_status"], 200, "==", False),
        (
            "(b) reuse: older token -> 401, ends session",
            rules["reuse_status"] == 401 and rules["reuse_ends_session"],
            True,
            "==",
            False,
        ),
        ("(c) ours / Argon2-only", ratios["c"]["ours/argon2-only"], 0.9, ">=", True),
        ("(c) ours / simplejwt", ratios["c"]["ours/simplejwt"], 1.1, ">=", True),
        ("(d) errors", d["errors"], 0, "<=", False),
        ("(d) live refresh tokens afterwards", d["live_after"]["live"], 1, "==", False),
        ("(d) stale jars (tabs x rounds)", d["stale_jars"], 0, "<=", False),
        ("(d) jars holding the live token at the end", d["live_after"]["jars_holding"], CLIENTS, "==", False),
        ("memory: ours / larger peer, peak VmHWM", ratios["memory"]["ours/larger peer"], 1.1, "<=", True),
    ]
    verdicts = []
    for name, value, goal, op, pct in checks:
        if op == ">=":
            ok, margin = value >= goal, f"{(value / goal - 1) * 100:+.0f}%"
        elif op == "<=":
            ok, margin = value <= goal, f"{(goal / value - 1) * 100:+.0f}%" if pct and value else f"{goal - value:+g}"
        else:
            ok = value == goal
            margin = "exact" if ok else "no" if isinstance(value, bool) else f"off by {value - goal:+g}"
        verdicts.append({"target": name, "value": value, "goal": f"{op} {goal}", "pass": ok, "margin": margin})
    return ratios, verdicts


LABELS = {"floor": "floor (no auth)", "argon2": "argon2 verify only"}
SHORT = {"middleware": "mw", "serializer": "ser", "database": "db"}


def table_rows(w: str, res: dict, sql: dict, profiles: dict) -> list[str]:
    layers = "".join(f"{SHORT.get(layer, layer):>7}" for layer in LAYERS)
    rows = [
        f"{'server':<19}{'req/s':>8}{'p50 ms':>8}{'p99 ms':>8}{'errors':>7}{'SQL':>5}{'RT':>5}"
        f"{'CPU ms':>8}{'RSS MB':>8}" + (f" |{'prof':>7}{layers}" if w != "d" else "")
    ]
    for name, r in res[w].items():
        q = sql.get(name, {}).get(w, {})
        prof = profiles.get(name, {}).get(w)
        if prof:
            split = f"{prof['cpu_ms']:>7.2f}" + "".join(f"{prof['layers'][layer]:>7.2f}" for layer in LAYERS)
        elif name == "argon2":  # its CPU time per verification is all hash
            split = f"{r['cpu_ms']:>7.2f}" + "".join(
                f"{r['cpu_ms'] if layer == 'hash' else '-':>7}" for layer in LAYERS
            )
        else:
            split = f"{'-':>7}" * (1 + len(LAYERS)) if w != "d" else ""
        rows.append(
            f"{LABELS.get(name, name):<19}{r['rps']:>8}{r['p50_ms']:>8}{r['p99_ms']:>8}{r['errors']:>7}"
            f"{q.get('sql', '-')!s:>5}{q.get('round_trips', '-')!s:>5}{r['cpu_ms']!s:>8}{r['peak_rss_mb']!s:>8}"
            + (f" |{split}" if split else "")
        )
    return rows


def print_report(res: dict, sql: dict, profiles: dict, ratios: dict, verdicts: list, meta: dict) -> None:
    print(f"\n{meta['note']}")
    print(
        f"Other processes on the machine used {meta['others_during']:.0%} of the cores during the measurements"
        f" ({meta['busy_before']:.0%} just before)."
    )
    if max(meta["busy_before"], meta["others_during"]) > 0.1:
        print("WARNING: the machine was not quiet: the numbers are unreliable; run again on a quiet machine.")
    print(
        "\nColumns: SQL and RT: statements and database round trips per request (RT: statements + BEGIN and"
        " COMMIT of each\ntransaction; every server also sends one connection health check per request, not"
        " counted). CPU ms: the gunicorn\nworkers' CPU time per request under load. prof: in-process CPU ms per"
        " request (the WSGI handler, no HTTP server),\nsplit from a profile into mw (middleware and the request"
        " handler), auth, hash (Argon2), view, ser (serializers,\nparsers, renderers), db (Django ORM and psycopg),"
        " cache (Redis clients, Django's cache, rate limits) and other.\n"
    )
    for w, title in WORKLOADS.items():
        print(title)
        print("\n".join(table_rows(w, res, sql, profiles)))
        if w == "d":
            for k, d in res[w].items():
                live = d["live_after"]
                where = f" in {live['sessions']} session(s)" if "sessions" in live else ""
                print(
                    f"  {k}: {live['live']} live refresh token(s){where} afterwards ({live['meaning']}), "
                    f"held by {live['jars_holding']} of {d['tabs']} tabs' jars; stale jars {d['stale_jars']} "
                    f"over {d['rounds']} rounds ({d['rounds_with_stale_jars']} rounds with any); "
                    f"{d['extra_new_tokens']} extra new tokens, {d['relogins']} re-sign-ins, most live at once "
                    f"{d['live_max']}"
                )
        by_cpu = ratios[w]["by CPU/req"]
        print("  ratios of req/s: " + ", ".join(f"{k} {v}x" for k, v in ratios[w].items() if k != "by CPU/req"))
        print("  ratios by CPU/req: " + ", ".join(f"{k} {v}x" for k, v in by_cpu.items()) + "\n")
    todo_sql = {kind: [q for q in sql[kind]["list_sql"] if '"todo"' in q] for kind in SERVERS}
    same = all(todo_sql[kind] == todo_sql["ours"] for kind in SERVERS)
    print(
        f"(a) the list's SQL on the todo table, every server identical in shape to ours: {'yes' if same else 'NO'}"
        + " ("
        + "; ".join("COUNT" if "COUNT(" in q else "page " + q[q.find("ORDER BY") :] for q in todo_sql["ours"])
        + ")"
    )
    if not same:
        for kind in SERVERS:
            print(f"  {kind}: " + " | ".join(todo_sql[kind]))
    print("ours, one refresh: " + " | ".join(sql["ours"]["refresh_statements"]))
    print("ours, the just-rotated token again (a 2nd tab): " + " | ".join(sql["ours"]["replay_statements"]))
    for kind in ("ours", *PEERS):
        r = sql[kind]["rules"]
        print(
            f"  {kind}: just-rotated token again -> {r['grace_status']}"
            f"{' with the same successor' if r['grace_same_successor'] else ''}; an older one -> {r['reuse_status']}"
            f", {'ending' if r['reuse_ends_session'] else 'not ending'} the session"
        )
    for w in "abc":
        top = profiles["ours"][w]["top"][:5]
        print(f"ours ({w}), most own time: " + "; ".join(f"{label} [{layer}] {ms:.2f}" for label, layer, ms in top))
    memory = ratios["memory"]["peak MB"]
    print("peak worker VmHWM, MB: " + ", ".join(f"{k} {v}" for k, v in memory.items()))
    print("\ntargets")
    for v in verdicts:
        print(
            f"  {'PASS' if v['pass'] else 'MISS'}  {v['target']:<46} {v['value']!s:>6}  "
            f"(goal {v['goal']}, margin {v['margin']})"
        )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="4 s per workload and target instead of 8, 10 rounds of (d), half the profile's samples",
    )
    args = parser.parse_args()
    duration, warmup, rounds = (4.0, 0.5, 10) if args.quick else (8.0, 1.0, 20)
    profile_s = PROFILE_SECONDS / 2 if args.quick else PROFILE_SECONDS
    began = time.monotonic()
    WORK.mkdir(exist_ok=True)
    ensure_peer_environments()
    ensure_databases(list(DATABASES.values()))
    print(f"preparing databases (migrate, {USERS} users + 1, 10 todos each) and counting SQL ...", flush=True)
    with ThreadPoolExecutor(WORKERS) as prepare:  # two at a time (each on its own database); joined here
        owners = dict(zip(SERVERS, prepare.map(lambda kind: djtool(kind, "setup")["owner_id"], SERVERS), strict=True))
        sql = dict(
            zip(SERVERS, prepare.map(lambda kind: djtool(kind, "queries", str(owners[kind])), SERVERS), strict=True)
        )
    wait_until_quiet(30)
    print(f"profiling in process ({profile_s:g} CPU s per server and workload, in slices in turn) ...", flush=True)
    profiles = profile_all(owners, profile_s, slices=max(1, round(profile_s / 0.5)))
    from argon2 import PasswordHasher

    encoded = PasswordHasher(**ARGON2).hash(PASSWORD)
    # The pool forks before any thread starts; the servers are stopped in any case.
    with multiprocessing.get_context("fork").Pool(WORKERS) as pool, ExitStack() as stack:
        busy = wait_until_quiet()
        print("starting the four servers (each is loaded alone, in turn) ...", flush=True)
        live = {kind: stack.enter_context(server(kind)) for kind in SERVERS}
        before = cpu_accounting()
        results = run_workloads(live, owners, argon2_slice(pool, encoded), duration, warmup, rounds)
        after = cpu_accounting()
    wall, busy_cpu, own_cpu = (b - a for a, b in zip(before, after, strict=False))
    others = round(max(0.0, busy_cpu - own_cpu) / (wall * os.cpu_count()), 2)
    drop_redis_keys(REDIS_URL, f"bench-{RUN_ID}")
    ratios, verdicts = evaluate(results, sql)
    meta = {
        "busy_before": busy,
        "others_during": others,
        "duration_s": duration,
        "warmup_s": warmup,
        "d_rounds": rounds,
        "clients": CLIENTS,
        "workers": WORKERS,
        "cores": os.cpu_count(),
        "users": USERS,
        "profile_cpu_s": profile_s,
        "note": (
            f"{os.cpu_count()} cores shared by the server under test (gunicorn, {WORKERS} sync workers), PostgreSQL, "
            f"Redis and this Python load generator. One server loaded at a time, {CLIENTS} closed-loop clients, "
            f"{duration:g} s per server and workload (after {warmup:g} s warm-up), taken in 2 s slices in turn. "
            "Compare ratios, not absolute numbers."
        ),
    }
    print_report(results, sql, profiles, ratios, verdicts, meta)
    meta["total_s"] = round(time.monotonic() - began, 1)
    out = {"meta": meta, "results": results, "sql": sql, "profiles": profiles, "ratios": ratios, "targets": verdicts}
    (WORK / "results.json").write_text(json.dumps(out, indent=2))
    print(f"\nwhole run {meta['total_s']} s; results in {WORK / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
