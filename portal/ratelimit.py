"""A fixed-window rate limit over the shared cache: atomic on every machine.

``cache.add`` creates a window's counter only if it is absent and ``cache.incr`` is atomic on
Redis and Memcached, so two web machines counting the same key never lose a count. The window
starts at the first hit; the caller learns how long until it ends.
"""

from __future__ import annotations

import time

from django.core.cache import cache


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/min' → (10, 60). Periods: s, sec, min, hour, day (first letter counts)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1].lower()]
    return int(count), seconds


def rate_hit(key: str, *, rate: str) -> int | None:
    """Count one hit on ``key``; None when within the rate, else seconds until it resets."""
    limit, window = parse_rate(rate)
    now = int(time.time())
    counter, started = f"rl:{key}", f"rl:{key}:start"
    if cache.add(counter, 1, timeout=window):
        cache.set(started, now, timeout=window)
        return None
    try:
        hits = cache.incr(counter)
    except ValueError:  # the window expired between add and incr: this hit opens a new one
        cache.add(counter, 1, timeout=window)
        cache.set(started, now, timeout=window)
        return None
    if hits <= limit:
        return None
    began = cache.get(started) or now
    return max(1, int(began) + window - now)
