"""Counters and fixed-window rate limits over the shared cache: atomic on every machine.

``cache.add`` creates a counter only if it is absent and ``cache.incr`` is atomic on Redis
and local memory, so two web machines counting the same key never lose a count. The log-in
throttle (portal.services) and the publish throttle (releases.services) both count here.
"""

from __future__ import annotations

import time

from django.core.cache import cache


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/min' → (10, 60). Periods: s, sec, min, hour, day (first letter counts)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1].lower()]
    return int(count), seconds


def counter_add(key: str, *, timeout: int) -> int:
    """Add one to the counter ``key`` (created at 0 if missing), kept ``timeout`` seconds from
    now; returns the new value. ``incr`` is atomic on Redis and local memory: of concurrent
    callers, exactly one sees each value."""
    for _ in range(3):
        cache.add(key, 0, timeout=timeout)
        try:
            value = int(cache.incr(key))
        except ValueError:  # expired between add and incr: add it again
            continue
        # Redis and local memory keep a key's expiry on incr, the file cache resets it to the
        # default timeout: touching gives every backend the same expiry.
        cache.touch(key, timeout)
        return value
    cache.set(key, 1, timeout=timeout)
    return 1


def rate_hit(key: str, *, rate: str) -> int | None:
    """Count one hit on ``key``; None when within the rate, else seconds until it resets.

    Fixed windows aligned on the clock (``key`` + window number), so no second key is needed
    to know when the window started."""
    limit, window = parse_rate(rate)
    now = int(time.time())
    hits = counter_add(f"rl:{key}:{now // window}", timeout=window)
    if hits <= limit:
        return None
    return max(1, window - now % window)
