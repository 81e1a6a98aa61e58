"""Per-call cost of the configured cache against a real Redis: cache.get (present, missing) and one rate-limit hit."""

import argparse
import gc
import os
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]

# Before Django loads the settings: the real Redis, a key prefix of its own, and a refresh limit
# high enough that no hit in the run is refused (a refusal would write an audit row).
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
os.environ.setdefault("DEBUG", "true")
os.environ.setdefault("REDIS_URL", "redis://127.0.0.1:6379/15")
os.environ.setdefault("CACHE_KEY_PREFIX", "cachecost")
os.environ["RATE_LIMIT_REFRESH_PER_SESSION"] = "1000000000/d"


def measure(call: Callable[[], object], *, calls: int) -> tuple[list[float], float]:
    """Wall time of each call (µs) and the process's CPU time per call (µs) over the block."""
    samples = []
    gc.collect()
    cpu_started = time.process_time_ns()
    for _ in range(calls):
        started = time.perf_counter_ns()
        call()
        samples.append((time.perf_counter_ns() - started) / 1000)
    return samples, (time.process_time_ns() - cpu_started) / 1000 / calls


def count_work(call: Callable[[], object], *, calls: int) -> tuple[float, float]:
    """Function calls (Python and C) and Redis commands per call: the same on a busy machine as on an idle one."""
    import redis

    events = commands = 0
    original = redis.Redis.execute_command

    def counting_command(self: redis.Redis, *args: object, **options: object) -> object:
        nonlocal commands
        commands += 1
        return original(self, *args, **options)

    def profile(frame: object, event: str, arg: object) -> None:
        nonlocal events
        if event in {"call", "c_call"}:
            events += 1

    redis.Redis.execute_command = counting_command  # type: ignore[method-assign]  # counts, then restored
    try:
        sys.setprofile(profile)
        for _ in range(calls):
            call()
        sys.setprofile(None)
    finally:
        redis.Redis.execute_command = original  # type: ignore[method-assign]
    return events / calls, commands / calls


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=12000, help="timed calls of each operation (default 12000)")
    parser.add_argument("--warmup", type=int, default=1000, help="untimed calls of each operation first")
    parser.add_argument("--rounds", type=int, default=6, help="the operations take turns in this many blocks")
    args = parser.parse_args()

    sys.path.insert(0, str(PROJECT_ROOT))
    import django

    django.setup()
    from django.conf import settings
    from django.core.cache import cache

    from accounts import rate_limits

    backend = settings.CACHES["default"]["BACKEND"]
    if "redis" not in backend.lower():
        print(f"The default cache is {backend}; set REDIS_URL to measure Redis.", file=sys.stderr)
        return 2
    present_key, missing_key = f"cache-cost:present:{uuid.uuid4()}", f"cache-cost:missing:{uuid.uuid4()}"
    cache.set(present_key, "live", timeout=600)  # a session-state entry, as revocation stores it
    limit_key = f"session:{uuid.uuid4()}"
    operations: dict[str, Callable[[], object]] = {
        "cache.get (present key)": lambda: cache.get(present_key),
        "cache.get (missing key)": lambda: cache.get(missing_key),
        "rate_limits.hit(REFRESH_SESSION)": lambda: rate_limits.hit(rate_limits.REFRESH_SESSION, limit_key),
    }
    assert cache.get(present_key) == "live"
    assert cache.get(missing_key) is None

    for call in operations.values():
        for _ in range(args.warmup):
            call()
    wall: dict[str, list[float]] = {name: [] for name in operations}
    cpu: dict[str, list[float]] = {name: [] for name in operations}
    block = max(1, args.calls // args.rounds)
    for _ in range(args.rounds):  # interleaved, so that a noisy neighbour hits every operation alike
        for name, call in operations.items():
            samples, cpu_per_call = measure(call, calls=block)
            wall[name].extend(samples)
            cpu[name].append(cpu_per_call)
    work = {name: count_work(call, calls=200) for name, call in operations.items()}
    cache.delete(present_key)

    print(f"backend {backend}, {settings.CACHES['default']['LOCATION']}, {block * args.rounds} calls each")
    print(f"{'operation':34} {'median µs':>10} {'p95 µs':>10} {'CPU µs/call':>12} {'fn calls':>9} {'Redis cmds':>10}")
    for name in operations:
        function_calls, redis_commands = work[name]
        print(
            f"{name:34} {statistics.median(wall[name]):10.1f} {percentile(wall[name], 0.95):10.1f} "
            f"{statistics.median(cpu[name]):12.1f} {function_calls:9.0f} {redis_commands:10.2f}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
