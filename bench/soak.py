"""Soak test: a mixed workload at about 70% of measured capacity, against gunicorn on the main PostgreSQL and Redis.

Run from the project root:

    uv run python bench/soak.py --duration 600      # CI: --duration 45

It creates a throwaway database (soak_<time>_<pid>) on the main PostgreSQL
(postgres://postgres@127.0.0.1:5432; bench/harness.py starts and stops
everything) and uses Redis database 6 under a unique key prefix, migrates,
seeds one verified account per client thread and serves the app with gunicorn
(DEBUG off; worker recycling off with --max-requests 0, so a leak cannot hide
behind restarts). Then:

1. capacity: 8 clients in a closed loop for 10 s on the mixed workload;
2. soak: the same workload, open loop at 70% of that rate for --duration
   seconds. Request k is due at start + k / rate (a token bucket that keeps
   its tokens for up to 10 s); its latency counts from when it was due, so a
   stalled server shows up as latency instead of as fewer requests;
3. capacity again, as in 1, to tell an app that slowed down from a busy machine.

Checks at the end: the client kept to its schedule (p99 send lag under 1 s,
no request missed: otherwise the offered load was not sustained and the other
numbers mean little); no 5xx and no unexpected status; every acknowledged todo
is in the database with its last acknowledged title, every acknowledged
deletion is gone; the tail latency at the end at most 2x the tail at the start,
judged on the median of the first and of the last three windows (p99 over
windows of 60 s; when the run is shorter than 3 minutes, p95 over ninths of it,
because one half-second hiccup of the machine moves the p99 of a short window
twofold by itself). A grown tail counts against the app only when the app also
lost throughput (capacity after the soak under 80% of before): on a shared
machine of two cores a neighbour's burst doubled the tail of a 45 s run for
30 s while capacity afterwards was higher than before. Gunicorn workers'
VmRSS (sampled from /proc every 5 s) at most 25% above the first soak sample,
with the same worker PIDs. Everything it created is removed in finally blocks.
"""

import argparse
import contextlib
import math
import os
import random
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    PASSWORD,
    Checks,
    Client,
    Gunicorn,
    drop_redis_keys,
    manage,
    production_env,
    seed_accounts,
    start_watchdog,
    stop_watchdog,
    throwaway_database,
)

CAPACITY_CLIENTS = 8
CAPACITY_SECONDS = 10
LOAD_FACTOR = 0.7
SOAK_THREADS = 12
P99_GROWTH_LIMIT = 2.0
CAPACITY_KEPT = 0.8  # capacity after the soak at least this share of before: the app did not slow down
EDGE_WINDOWS = 3  # windows at each end whose median tail is compared
RSS_GROWTH_LIMIT = 0.25
MEMORY_INTERVAL = 5.0
MAX_BEHIND_SECONDS = 10.0  # requests due longer ago than this are not sent (counted as missed): the run stays bounded
LAG_LIMIT_SECONDS = 1.0  # p99 of how late requests left the client; more means the offered load was not sustained
MAX_TODOS_PER_USER = 40
REDIS_URL = "redis://127.0.0.1:6379/6"
# (operation, weight, expected status)
WORKLOAD = [
    ("sign-in", 5, 200),
    ("refresh", 10, 200),
    ("create", 25, 201),
    ("list", 30, 200),
    ("update", 15, 200),
    ("delete", 15, 204),
]
EXPECTED = {op: status for op, _, status in WORKLOAD}

checks = Checks()
report, info = checks.report, checks.info


@dataclass
class Sample:
    op: str
    status: int
    due: float  # when the request should have been sent
    sent: float
    done: float

    @property
    def latency(self) -> float:
        return self.done - self.due


@dataclass
class VirtualUser:
    """One account used by one thread at a time, with what the server acknowledged."""

    client: Client
    email: str
    rng: random.Random
    titles: dict = field(default_factory=dict)  # todo id -> last acknowledged title (None: unknown)
    deleted: set = field(default_factory=set)
    counter: int = 0

    def step(self) -> tuple[str, int]:
        op = self.rng.choices([w[0] for w in WORKLOAD], [w[1] for w in WORKLOAD])[0]
        if op in ("update", "delete") and not self.titles:
            op = "create"
        elif op == "create" and len(self.titles) >= MAX_TODOS_PER_USER:
            op = "delete"
        self.counter += 1
        client = self.client
        if op == "sign-in":
            return op, client.login(self.email, PASSWORD).status
        if op == "refresh":
            return op, client.refresh().status
        if op == "list":
            return op, client.call("GET", "/api/todos/?page_size=20").status
        if op == "create":
            title = f"{self.email} #{self.counter}"
            reply = client.call("POST", "/api/todos/", {"title": title, "notes": "soak"})
            if reply.status == 201:
                self.titles[reply.body["id"]] = title
            return op, reply.status
        todo_id = self.rng.choice(list(self.titles))
        if op == "update":
            title = f"{self.email} #{self.counter} (edited)"
            reply = client.call("PATCH", f"/api/todos/{todo_id}/", {"title": title, "completed": True})
            self.titles[todo_id] = title if reply.status == 200 else None
            return op, reply.status
        reply = client.call("DELETE", f"/api/todos/{todo_id}/")
        del self.titles[todo_id]
        if reply.status == 204:
            self.deleted.add(todo_id)
        return op, reply.status


class Pacer:
    """Open-loop schedule shared by many threads: request k is due at start + k / rate.

    A token bucket that keeps its tokens: when the server (or the machine) falls
    behind, the backlog is sent late and shows up as latency, up to
    MAX_BEHIND_SECONDS; requests due longer ago are counted as missed.
    """

    def __init__(self, rate: float, start: float, end: float):
        self.rate, self.start, self.end = rate, start, end
        self.issued = 0
        self.lock = threading.Lock()

    def next_due(self) -> float | None:
        with self.lock:
            now = time.monotonic()
            due = self.start + self.issued / self.rate
            if due < now - MAX_BEHIND_SECONDS:  # shed the backlog the server could not take
                skip = int((now - MAX_BEHIND_SECONDS - due) * self.rate) + 1
                self.issued += skip
                due = self.start + self.issued / self.rate
            self.issued += 1
        if due >= self.end:
            return None
        time.sleep(max(0.0, due - time.monotonic()))
        return due


def run_closed_loop(users: list[VirtualUser], seconds: float, samples: list) -> float:
    """Each user as fast as it can; returns completed requests per second."""
    end = time.monotonic() + seconds

    def loop(user: VirtualUser) -> None:
        for _ in range(1_000_000):
            now = time.monotonic()
            if now >= end:
                break
            op, status = user.step()
            samples.append(Sample(op, status, now, now, time.monotonic()))

    threads = [threading.Thread(target=loop, args=(user,), daemon=True) for user in users]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 60)
    return len(samples) / (time.monotonic() - started)


def run_open_loop(users: list[VirtualUser], rate: float, seconds: float, samples: list) -> None:
    start = time.monotonic() + 0.5
    pacer = Pacer(rate, start, start + seconds)

    def loop(user: VirtualUser) -> None:
        for _ in range(10_000_000):
            due = pacer.next_due()
            if due is None:
                break
            sent = time.monotonic()
            op, status = user.step()
            samples.append(Sample(op, status, due, sent, time.monotonic()))

    threads = [threading.Thread(target=loop, args=(user,), daemon=True) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=seconds + 120)


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


def sample_memory(app: Gunicorn, stop: threading.Event, out: list) -> None:
    for _ in range(100_000):
        with contextlib.suppress(OSError):  # a worker went away between listing and reading
            out.append((time.monotonic(), {pid: rss_kib(pid) for pid in app.workers()}))
        if stop.wait(MEMORY_INTERVAL):
            break


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:8.1f}"


def seed_users(env: dict, count: int) -> list[str]:
    emails = [f"soak{n}@example.com" for n in range(count)]
    seed_accounts(env, verified=emails)
    return emails


def quiet_database(database_url: str) -> None:
    """Flush what earlier steps left dirty (databases made and dropped), so their checkpoint misses the soak."""
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://"), autocommit=True) as db:
        db.execute("CHECKPOINT")


def check_database(database_url: str, users: list[VirtualUser]) -> None:
    import psycopg

    with psycopg.connect(database_url.replace("postgres://", "postgresql://")) as db:
        stored = dict(db.execute("SELECT id, title FROM todos_todo").fetchall())
    present = sum(len(user.titles) for user in users)
    missing = [i for user in users for i in user.titles if i not in stored]
    wrong_title = [i for user in users for i, t in user.titles.items() if t is not None and stored.get(i, t) != t]
    resurrected = [i for user in users for i in user.deleted if i in stored]
    report(
        "every acknowledged todo is stored with its last acknowledged title; acknowledged deletions are gone",
        not missing and not wrong_title and not resurrected,
        f"{present} live todos checked: {len(missing)} missing, {len(wrong_title)} wrong title; "
        f"{sum(len(u.deleted) for u in users)} deletions checked: {len(resurrected)} still present",
    )


def summarize(
    capacity: list[Sample],
    soak: list[Sample],
    duration: float,
    memory: list,
    capacity_before: float,
    capacity_after: float,
) -> None:
    everything = capacity + soak
    server_errors = [s for s in everything if s.status >= 500]
    unexpected = [s for s in everything if s.status != EXPECTED[s.op]]
    report("zero 5xx", not server_errors, f"{len(server_errors)} of {len(everything)} responses")
    report(
        "no unexpected status (no dropped connection, no 4xx)",
        not unexpected,
        f"{len(unexpected)}: {sorted({(s.op, s.status) for s in unexpected})[:8]}",
    )

    print(f"\n{'operation':<10}{'count':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}")
    for op, _, _ in WORKLOAD:
        latencies = [s.latency for s in soak if s.op == op]
        print(
            f"{op:<10}{len(latencies):>8}{ms(percentile(latencies, 50))}{ms(percentile(latencies, 95))}"
            f"{ms(percentile(latencies, 99))}{ms(max(latencies, default=0))}"
        )

    window = 60.0 if duration >= 180 else duration / 9
    # A 5 s window holds ~1000 answers: its p99 is its ~10 slowest, which one
    # brief stall of the machine (a checkpoint, another process) fills alone.
    tail = 99 if duration >= 180 else 95
    start = min(s.due for s in soak)
    buckets: dict[int, list[Sample]] = {}
    for sample in soak:
        buckets.setdefault(min(int((sample.due - start) // window), int(duration // window) - 1), []).append(sample)
    print(
        f"\n{'window':<14}{'requests':>9}{'req/s':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'max ms':>9}"
        f"{'lag p99':>9}{'5xx':>5}{'RSS MiB':>9}"
    )
    tails = []
    for index in sorted(buckets):
        rows = buckets[index]
        latencies = [s.latency for s in rows]
        tails.append(percentile(latencies, tail))
        span = f"{index * window:.0f}-{(index + 1) * window:.0f} s"
        print(
            f"{span:<14}{len(rows):>9}{len(rows) / window:>8.1f}{ms(percentile(latencies, 50))}"
            f"{ms(percentile(latencies, 95))}{ms(percentile(latencies, 99))}"
            f"{ms(max(latencies))}{ms(percentile([s.sent - s.due for s in rows], 99))}"
            f"{sum(s.status >= 500 for s in rows):>5}{rss_at(memory, start + (index + 1) * window) / 1024:>9.1f}"
        )
    edge = max(1, min(EDGE_WINDOWS, len(tails) // 3))
    first, last = statistics.median(tails[:edge]), statistics.median(tails[-edge:])
    grew = last > P99_GROWTH_LIMIT * first
    slowed = capacity_after < CAPACITY_KEPT * capacity_before
    report(
        f"p{tail} stable: the last windows' tail at most {P99_GROWTH_LIMIT:g}x the first's, "
        f"unless capacity held (at least {CAPACITY_KEPT:.0%} of before)",
        not (grew and slowed),
        f"median of the first {edge} windows {first * 1000:.1f} ms, of the last {edge} {last * 1000:.1f} ms "
        f"({last / first:.2f}x), windows of {window:.0f} s; capacity {capacity_before:.1f} -> {capacity_after:.1f} "
        "req/s" + ("; the tail grew while capacity held: the machine was busier, not the app slower" if grew else ""),
    )


def rss_at(samples: list, moment: float) -> int:
    """Total worker VmRSS (KiB) of the last sample taken by ``moment``."""
    taken = [sizes for at, sizes in samples if at <= moment] or [samples[0][1]]
    return sum(taken[-1].values())


def check_memory(samples: list) -> None:
    first_at, first = samples[0]
    last_at, last = samples[-1]
    print(
        f"\n{'worker':<10}{'first MiB':>10}{'last MiB':>10}{'growth':>8}   ({len(samples)} samples, "
        f"{last_at - first_at:.0f} s apart)"
    )
    for pid in sorted(set(first) | set(last)):
        before, after = first.get(pid, 0), last.get(pid, 0)
        growth = f"{(after - before) / before:+.1%}" if before and after else "gone/new"
        print(f"{pid:<10}{before / 1024:>10.1f}{after / 1024:>10.1f}{growth:>8}")
    total_before, total_after = sum(first.values()), sum(last.values())
    worst = max((last[p] - first[p]) / first[p] for p in first if p in last and first[p]) if first else 0
    report(
        f"worker memory flat: same workers, each and all at most {RSS_GROWTH_LIMIT:.0%} above the first sample",
        set(first) == set(last) and worst <= RSS_GROWTH_LIMIT and total_after <= total_before * (1 + RSS_GROWTH_LIMIT),
        f"total {total_before / 1024:.1f} -> {total_after / 1024:.1f} MiB, worst worker {worst:+.1%}",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600, help="soak seconds (default 600; CI: 45)")
    parser.add_argument(
        "--workers",
        type=int,
        default=(os.cpu_count() or 1) * 2 + 1,
        help="gunicorn workers (default: the config's 2 x cores + 1)",
    )
    args = parser.parse_args()
    start_watchdog(int(args.duration) + 300, "soak.py ran past its time limit")

    started = time.monotonic()
    run_id = f"soak_{int(time.time())}_{os.getpid()}"
    app = None
    stop_memory = threading.Event()
    # Unwound last in, first out once the run is over: gunicorn stops, the database and the Redis keys go.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(drop_redis_keys, REDIS_URL, run_id)
        try:
            database_url = cleanup.enter_context(throwaway_database(run_id))
            env = production_env(
                database_url=database_url,
                redis_url=REDIS_URL,
                key_prefix=run_id,
                email_backend="django.core.mail.backends.locmem.EmailBackend",
                CONN_MAX_AGE="60",
            )
            manage(env, "migrate", "--noinput")
            emails = seed_users(env, max(CAPACITY_CLIENTS, SOAK_THREADS))
            app = cleanup.enter_context(
                Gunicorn(env, workers=args.workers, extra_args=("--max-requests", "0"), name=run_id)
            )
            users = [VirtualUser(Client(app.port), email, random.Random(n)) for n, email in enumerate(emails)]
            for user in users:
                assert user.client.login(user.email, PASSWORD).status == 200, "sign-in before the run failed"
            quiet_database(database_url)
            print(
                f"database {run_id}, Redis {REDIS_URL} prefix {run_id}, gunicorn {args.workers} workers on "
                f":{app.port}; setup {time.monotonic() - started:.1f} s",
                flush=True,
            )
            soak(app, users, args.duration, stop_memory)
            check_database(database_url, users)
            output = app.output()
            report(
                "no worker timeouts or crashes in gunicorn's log",
                "WORKER TIMEOUT" not in output and "Traceback" not in output,
                f"{output.count('WORKER TIMEOUT')} timeouts, {output.count('Traceback')} tracebacks",
            )
        except Exception as error:
            checks.crashed(error, app)
        finally:
            stop_watchdog()
            stop_memory.set()
    return checks.finish(started)


def soak(app: Gunicorn, users: list[VirtualUser], duration: float, stop_memory: threading.Event) -> None:
    """Capacity, the soak at LOAD_FACTOR of it, capacity again; then the checks of latency and memory."""
    capacity_samples: list[Sample] = []
    capacity = run_closed_loop(users[:CAPACITY_CLIENTS], CAPACITY_SECONDS, capacity_samples)
    rate = LOAD_FACTOR * capacity
    info(
        "capacity",
        f"{capacity:.1f} req/s with {CAPACITY_CLIENTS} closed-loop clients for {CAPACITY_SECONDS} s; "
        f"soak at {rate:.1f} req/s ({LOAD_FACTOR:.0%}) with {SOAK_THREADS} threads for {duration:.0f} s",
    )

    memory: list = []
    sampler = threading.Thread(target=sample_memory, args=(app, stop_memory, memory), daemon=True)
    sampler.start()
    soak_samples: list[Sample] = []
    run_open_loop(users[:SOAK_THREADS], rate, duration, soak_samples)
    missed = max(0, math.ceil(duration * rate) - len(soak_samples))
    stop_memory.set()
    sampler.join(timeout=10)
    memory.append((time.monotonic(), {pid: rss_kib(pid) for pid in app.workers()}))
    span = max(s.done for s in soak_samples) - min(s.due for s in soak_samples)
    info(
        "soak",
        f"{len(soak_samples)} requests in {span:.1f} s: {len(soak_samples) / span:.1f} req/s of {rate:.1f} planned",
    )
    capacity_samples_after: list[Sample] = []
    after = run_closed_loop(users[:CAPACITY_CLIENTS], CAPACITY_SECONDS, capacity_samples_after)
    info(
        "capacity after the soak",
        f"{after:.1f} req/s (before: {capacity:.1f}); much lower means the app slowed down, or the machine is busier",
    )
    lag = percentile([s.sent - s.due for s in soak_samples], 99)
    report(
        "the app sustained the offered load (the client kept to its schedule)",
        missed == 0 and lag < LAG_LIMIT_SECONDS,
        f"p99 send lag {lag * 1000:.1f} ms (limit {LAG_LIMIT_SECONDS * 1000:.0f}), {missed} requests missed; "
        "if this fails, the machine was busier than while capacity was measured, or the app slowed down",
    )
    summarize(capacity_samples + capacity_samples_after, soak_samples, duration, memory, capacity, after)
    check_memory(memory)


if __name__ == "__main__":
    sys.exit(main())
