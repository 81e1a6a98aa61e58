"""Calls raced against each other: each on its own thread and database connection, released together."""

from bench.harness import Outcome, at_once

__all__ = ["Outcome", "run_at_once"]


def run_at_once(calls) -> list[Outcome]:
    """Run ``calls`` at once (a barrier releases their threads together); their outcomes in call order.

    Each thread closes its database connections when its call is done. A call still running a minute
    later fails the test (a deadlock).
    """
    from django.db import connections

    return at_once(list(calls), cleanup=connections.close_all)
