"""Revocation bound: how long after a sign-out on one server does another server still accept the session's token?

Run from the project root:

    uv run python bench/revocation_bound.py                 # 200 trials, about 30 s
    uv run python bench/revocation_bound.py --trials 1000   # a steadier p99
    uv run python bench/revocation_bound.py --negative-control   # B never hears A: must FAIL (about 15 s)

It creates a throwaway database (revoke_<time>_<pid>) on the main PostgreSQL
(BENCH_POSTGRES_URL, default postgres://postgres@127.0.0.1:5432) and uses Redis
database 8 (BENCH_REDIS_URL) under a key prefix of the same name, migrates,
seeds one verified account and serves the app with TWO gunicorn servers, A and
B (production-like settings, every rate limit out of the way, --max-requests 0),
on that one database and Redis. Each trial:

1. signs in on A (POST /api/auth/login/: an access token and the refresh cookie);
2. warms the session on B: rounds of concurrent GET /api/todos/ with the bearer
   token until B's access log shows every worker of B answered it 200 at least
   WARM_PER_WORKER times (sync workers: the client cannot choose the worker, the
   log says which one answered, by a marker in the query string);
3. signs out on A (POST /api/auth/logout/ with the refresh cookie and CSRF
   token); t0 is the moment A's 204 arrived: the ending transaction has
   committed, and the invalidation was published inside it;
4. at once polls B with the token from --pollers threads until the pollers have
   seen a 401 followed by CONFIRMATIONS more 401s in a row AND B's access log
   shows a 401 from every worker of B (a worker that has refused the session
   never accepts it again).

The trial's bound is the time from t0 to the arrival of the last 200 after t0
(0 if there was none): every 200 after t0 is a stale answer. It prints p50,
p95, p99 and max of the bound and the stale answers, and PASS if the p99 is at
most --target-ms (50 by default). --negative-control gives B a key prefix of
its own, so A's invalidations never reach it (nor does A's cache): the stale
answers it then counts show that the measurement can see them. Everything it
created is removed in finally blocks; a watchdog bounds the run.
"""

import argparse
import contextlib
import itertools
import os
import re
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from harness import (
    MAIN_POSTGRES,
    PASSWORD,
    Checks,
    Client,
    Gunicorn,
    at_once,
    drop_redis_keys,
    http,
    manage,
    production_env,
    rate_limits_at,
    seed_accounts,
    start_watchdog,
    stop_watchdog,
    throwaway_database,
)

POSTGRES_URL = os.environ.get("BENCH_POSTGRES_URL", MAIN_POSTGRES)
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/8")
EMAIL = "revoked@example.com"
TODOS = "/api/todos/"
LOGOUT = "/api/auth/logout/"
CSRF = "/api/auth/csrf/"
# gunicorn's access log on both servers: worker PID, status, query string (which carries our marker).
ACCESS_FORMAT = "BENCH %(p)s %(s)s %(q)s"
ACCESS_LINE = re.compile(r"BENCH <(\d+)> (\d{3}) b=(\d+)([wp])(\d+)\s*$")
WARM_PER_WORKER = 3  # answers 200 each worker of B gives the session before the sign-out
WARM_ROUNDS = 12  # at most this many rounds of concurrent warm-up requests per trial
CONFIRMATIONS = 6  # 401s in a row after the first, as the pollers see them, before B's log is asked
TRIAL_TIMEOUT = 2.0  # seconds after t0 within which every worker of B must refuse the session
MAX_TIMEOUTS = 3  # trials that time out before the run gives up (a bound that never closes)
LOG_WAIT = 2.0  # seconds to wait for a request's access-log line (written just after the answer)
POLL_TIMEOUT = 5.0  # seconds one poll request may take

checks = Checks()
report, info = checks.report, checks.info


class AccessLog:
    """A server's log as it grows: for each marked request, the worker that answered it and the status."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = ""
        self.answers: dict[tuple[int, str, int], tuple[int, int]] = {}  # (trial, phase, seq) -> (pid, status)
        self.refused: dict[int, set[int]] = {}  # trial -> workers that answered one of its polls with 401

    def read(self) -> None:
        with open(self.path, "rb") as log:
            log.seek(self.offset)
            chunk = log.read()
        self.offset += len(chunk)
        lines = (self.partial + chunk.decode(errors="replace")).split("\n")
        self.partial = lines.pop()
        for line in lines:
            match = ACCESS_LINE.search(line)
            if match:
                pid, status, trial, phase, seq = match.groups()
                self.answers[(int(trial), phase, int(seq))] = (int(pid), int(status))
                if phase == "p" and status == "401":
                    self.refused.setdefault(int(trial), set()).add(int(pid))

    def wait_for(self, trial: int, phase: str, seqs: list[int]) -> dict[int, tuple[int, int]]:
        """The (pid, status) of each of ``seqs`` once all are logged (or LOG_WAIT passed: those that are)."""
        deadline = time.monotonic() + LOG_WAIT
        while True:
            self.read()
            found = {seq: self.answers[(trial, phase, seq)] for seq in seqs if (trial, phase, seq) in self.answers}
            if len(found) == len(seqs) or time.monotonic() > deadline:
                return found
            time.sleep(0.002)

    def refusing(self, trial: int) -> set[int]:
        """Workers that have answered a poll of ``trial`` with 401."""
        self.read()
        return self.refused.get(trial, set())


@dataclass
class Trial:
    bound: float  # seconds from t0 to the arrival of the last 200 after t0; 0: none
    stale: int  # answers 200 after t0
    confirmed: float  # seconds from t0 until a 401 from every worker of B had arrived (nan: timed out)
    polls: int
    warmed: dict[int, int]  # worker of B -> answers 200 before the sign-out
    stale_by_worker: Counter = field(default_factory=Counter)
    unexpected: Counter = field(default_factory=Counter)  # statuses other than 200 and 401 (0: no answer)
    timed_out: bool = False


def warm(b: Gunicorn, log: AccessLog, trial: int, headers: dict, workers: list[int]) -> dict[int, int]:
    """Concurrent rounds of GET /api/todos/ on B until every worker answered 200 WARM_PER_WORKER times."""
    counts: Counter = Counter()
    batch = 2 * len(workers)
    seqs = itertools.count()
    for _ in range(WARM_ROUNDS):
        markers = [next(seqs) for _ in range(batch)]
        outcomes = at_once(
            [lambda seq=seq: http(b.port, "GET", f"{TODOS}?b={trial}w{seq}", headers=headers) for seq in markers]
        )
        statuses = [outcome.value.status if outcome.error is None else repr(outcome.error) for outcome in outcomes]
        if any(status != 200 for status in statuses):
            raise RuntimeError(f"trial {trial}: warm-up answers on B were {statuses}, not all 200")
        for pid, _ in log.wait_for(trial, "w", markers).values():
            counts[pid] += 1
        if all(counts[worker] >= WARM_PER_WORKER for worker in workers):
            break
    return {worker: counts[worker] for worker in workers}


def run_trial(a_client: Client, b: Gunicorn, log: AccessLog, trial: int, workers: list[int], pollers: int) -> Trial:
    login = a_client.login(EMAIL, PASSWORD)
    if login.status != 200:
        raise RuntimeError(f"trial {trial}: sign-in on A answered {login.status} {login.body}")
    headers = {"Authorization": f"Bearer {a_client.access}"}
    a_client.access = None  # A's sign-out goes by the refresh cookie alone
    warmed = warm(b, log, trial, headers, workers)

    answers: list[tuple[float, int, int]] = []  # (arrived, status, seq), in order of arrival
    lock = threading.Lock()
    go, stop = threading.Event(), threading.Event()
    seqs = itertools.count()
    run_of_401s = [0]

    def poll() -> None:
        go.wait()
        while not stop.is_set():
            seq = next(seqs)
            reply = http(b.port, "GET", f"{TODOS}?b={trial}p{seq}", headers=headers, timeout=POLL_TIMEOUT)
            with lock:
                answers.append((reply.ended, reply.status, seq))
                run_of_401s[0] = run_of_401s[0] + 1 if reply.status == 401 else 0

    threads = [threading.Thread(target=poll, daemon=True) for _ in range(pollers)]
    for thread in threads:
        thread.start()
    if "csrftoken" not in a_client.cookies:  # the CSRF cookie, in case a sign-out cleared it
        a_client.call("GET", CSRF)
    try:
        logout = a_client.call("POST", LOGOUT, csrf=True)
        t0 = logout.ended
        go.set()
        if logout.status != 204:
            raise RuntimeError(f"trial {trial}: sign-out on A answered {logout.status} {logout.body}")
        timed_out = True
        while time.monotonic() < t0 + TRIAL_TIMEOUT:
            with lock:
                enough = run_of_401s[0] > CONFIRMATIONS
            if enough and set(workers) <= log.refusing(trial):
                timed_out = False
                break
            time.sleep(0.002)
    finally:
        go.set()
        stop.set()
        for thread in threads:
            thread.join(timeout=POLL_TIMEOUT + 5)

    logged = log.wait_for(trial, "p", [seq for _, status, seq in answers if status != 0])
    fresh = [arrived for arrived, status, _ in answers if status == 200]
    result = Trial(
        bound=max(fresh) - t0 if fresh else 0.0,
        stale=len(fresh),
        confirmed=float("nan"),
        polls=len(answers),
        warmed=warmed,
        timed_out=timed_out,
    )
    first_401: dict[int, float] = {}
    for arrived, status, seq in answers:
        pid = logged.get(seq, (None, None))[0]
        if status == 200:
            result.stale_by_worker[pid] += 1
        elif status == 401:
            first_401.setdefault(pid, arrived)
        else:
            result.unexpected[status] += 1
    if not timed_out and set(workers) <= set(first_401):
        result.confirmed = max(first_401[worker] for worker in workers) - t0
    return result


def percentile(values: list[float], q: float) -> float:
    """Nearest rank (as bench/soak.py): the smallest value with at least q% of the values at or below it."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))]


def spread(seconds: list[float]) -> str:
    """p50, p95, p99 and max in milliseconds."""
    if not seconds:
        return "none"
    quantiles = ", ".join(f"p{q:g} {percentile(seconds, q) * 1000:.1f}" for q in (50, 95, 99))
    return f"{quantiles}, max {max(seconds) * 1000:.1f} ms"


def redis_commands_per_get(b: Gunicorn, a_client: Client, workers: list[int], log: AccessLog) -> None:
    """INFO: Redis commands per GET /api/todos/ on B with a warm live session (shared Redis: approximate)."""
    import redis

    connection = redis.Redis.from_url(REDIS_URL)
    login = a_client.login(EMAIL, PASSWORD)
    headers = {"Authorization": f"Bearer {a_client.access}"}
    a_client.access = None
    warm(b, log, 10**6, headers, workers)
    requests = 60
    before = connection.info("stats")["total_commands_processed"]
    statuses = Counter(http(b.port, "GET", TODOS, headers=headers).status for _ in range(requests))
    after = connection.info("stats")["total_commands_processed"]
    a_client.call("POST", LOGOUT, csrf=True)
    info(
        "Redis commands per GET /api/todos/ on B with a live, warm session",
        f"{(after - before - 1) / requests:.2f} ({requests} requests, answers {dict(statuses)}, "
        f"sign-in {login.status}; "
        "counts every client of this Redis server: about 1 or more means the session is still asked of Redis on "
        "every request, about 0 means a per-process view answers it)",
    )


def summarize(trials: list[Trial], args) -> None:
    bounds = [trial.bound for trial in trials]
    stale = sum(trial.stale for trial in trials)
    stale_trials = sum(trial.stale > 0 for trial in trials)
    confirmed = [trial.confirmed for trial in trials if trial.confirmed == trial.confirmed]
    by_worker: Counter = Counter()
    unexpected: Counter = Counter()
    for trial in trials:
        by_worker.update(trial.stale_by_worker)
        unexpected.update(trial.unexpected)
    polls = sorted(trial.polls for trial in trials)
    print(f"\nbound (t0 -> last 200 on B) over {len(trials)} trials: {spread(bounds)}")
    print(f"stale answers (200 on B after t0): {stale} in {stale_trials} trials; by worker {dict(by_worker) or '-'}")
    print(
        f"every worker of B seen refusing (t0 -> its first 401 arrived, slowest worker): {spread(confirmed)}; "
        f"polls per trial: median {polls[len(polls) // 2]}, max {polls[-1]}"
    )
    report(
        f"p99 of the revocation bound at most {args.target_ms:g} ms",
        percentile(bounds, 99) * 1000 <= args.target_ms and not any(trial.timed_out for trial in trials),
        f"p99 {percentile(bounds, 99) * 1000:.1f} ms, max {max(bounds) * 1000:.1f} ms; {stale} stale answers in "
        f"{stale_trials} of {len(trials)} trials",
    )
    report(
        f"every worker of B refused the session within {TRIAL_TIMEOUT:g} s of t0 in every trial",
        not any(trial.timed_out for trial in trials),
        f"{sum(trial.timed_out for trial in trials)} trials timed out",
    )
    cold = [trial for trial in trials if min(trial.warmed.values()) < WARM_PER_WORKER]
    report(
        f"every worker of B answered the session 200 at least {WARM_PER_WORKER} times before each sign-out",
        not cold,
        f"{len(cold)} trials with a worker not warmed" + (f", e.g. {cold[0].warmed}" if cold else ""),
    )
    report(
        "every poll on B answered 200 or 401",
        not unexpected,
        f"other answers: {dict(unexpected)}" if unexpected else f"{sum(polls)} polls",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="sign-outs measured (default 200)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers of each server (default 2)")
    parser.add_argument("--pollers", type=int, default=4, help="threads polling B after each sign-out (default 4)")
    parser.add_argument("--target-ms", type=float, default=50, help="largest allowed p99 of the bound (default 50)")
    parser.add_argument(
        "--negative-control",
        action="store_true",
        help="B on a key prefix of its own, so A's invalidations never reach it: the run must FAIL",
    )
    args = parser.parse_args()
    start_watchdog(90 + args.trials, "revocation_bound.py ran past its time limit")

    started = time.monotonic()
    run_id = f"revoke_{int(time.time())}_{os.getpid()}"
    a = b = None
    trials: list[Trial] = []
    # Unwound last in, first out: the servers stop, then the database and the Redis keys go.
    with contextlib.ExitStack() as cleanup:
        cleanup.callback(drop_redis_keys, REDIS_URL, run_id)
        cleanup.callback(drop_redis_keys, REDIS_URL, f"{run_id}_deaf")
        try:
            database_url = cleanup.enter_context(throwaway_database(run_id, POSTGRES_URL))
            env = production_env(
                database_url=database_url,
                redis_url=REDIS_URL,
                key_prefix=run_id,
                email_backend="django.core.mail.backends.locmem.EmailBackend",
                **rate_limits_at("1000000/m"),
            )
            manage(env, "migrate", "--noinput")
            seed_accounts(env, verified=[EMAIL])
            gunicorn_args = ("--max-requests", "0", "--access-logformat", ACCESS_FORMAT)
            a = cleanup.enter_context(Gunicorn(env, workers=args.workers, extra_args=gunicorn_args, name=f"{run_id}-a"))
            # The negative control: B shares the database but neither the cache nor the channel with A.
            b_env = {**env, "CACHE_KEY_PREFIX": f"{run_id}_deaf"} if args.negative_control else env
            b = cleanup.enter_context(
                Gunicorn(
                    b_env,
                    workers=args.workers,
                    extra_args=gunicorn_args,
                    name=f"{run_id}-b",
                    ready_workers=args.workers,
                )
            )
            workers = b.workers()
            log = AccessLog(b.log_path)
            a_client = Client(a.port)
            assert a_client.call("GET", CSRF).status == 200, "GET /api/auth/csrf/ on A failed"
            print(
                f"database {run_id}, Redis {REDIS_URL} prefix {run_id}; A on :{a.port}, B on :{b.port} "
                f"(workers {workers}), {args.workers} workers each, {args.pollers} pollers; "
                f"setup {time.monotonic() - started:.1f} s"
                + ("; NEGATIVE CONTROL: B never hears A's invalidations" if args.negative_control else ""),
                flush=True,
            )
            measuring = time.monotonic()
            for index in range(args.trials):
                trial = run_trial(a_client, b, log, index, workers, args.pollers)
                trials.append(trial)
                if trial.stale or trial.timed_out:
                    print(
                        f"  trial {index}: bound {trial.bound * 1000:.1f} ms, {trial.stale} stale "
                        f"{dict(trial.stale_by_worker)}" + (", TIMED OUT" if trial.timed_out else ""),
                        flush=True,
                    )
                if sum(t.timed_out for t in trials) >= MAX_TIMEOUTS:
                    print(f"  {MAX_TIMEOUTS} trials timed out: stopping after {len(trials)} trials")
                    break
                if b.workers() != workers:
                    raise RuntimeError(f"B's workers changed from {workers} to {b.workers()}")
            info("trials", f"{len(trials)} in {time.monotonic() - measuring:.1f} s")
            summarize(trials, args)
            redis_commands_per_get(b, a_client, workers, log)
            for server in (a, b):
                output = server.output()
                report(
                    f"no worker timeouts or tracebacks in {server.name}'s log",
                    "WORKER TIMEOUT" not in output and "Traceback" not in output,
                    f"{output.count('WORKER TIMEOUT')} timeouts, {output.count('Traceback')} tracebacks",
                )
        except Exception as error:
            if trials:
                summarize(trials, args)
            checks.crashed(error, b or a)
        finally:
            stop_watchdog()
    return checks.finish(started)


if __name__ == "__main__":
    sys.exit(main())
