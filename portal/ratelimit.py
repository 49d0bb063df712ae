"""Counters and fixed-window rate limits over the shared cache: atomic on every machine.

``cache.add`` creates a counter only if it is absent and ``cache.incr`` is atomic on Redis
and local memory, so two web machines counting the same key never lose a count. The log-in
throttle (portal.services) and the publish throttle (releases.services) both count here.
"""

from __future__ import annotations

import time

from django.core.cache import cache, caches
from django.core.cache.backends.filebased import FileBasedCache


def parse_rate(rate: str) -> tuple[int, int]:
    """'10/min' → (10, 60). Periods: s, sec, min, hour, day (first letter counts)."""
    count, _, period = rate.partition("/")
    seconds = {"s": 1, "m": 60, "h": 3600, "d": 86400}[period.strip()[:1].lower()]
    return int(count), seconds


def counter_add(key: str, *, timeout: int, refresh: bool = True) -> int:
    """Add one to the counter ``key`` (created at 1 if missing); returns the new value.
    ``incr`` is atomic on Redis, diskcache and local memory: of concurrent callers, exactly
    one sees each value.

    With ``refresh`` the counter is kept ``timeout`` seconds from now (a streak that lasts
    while it grows: the log-in lockouts); without, from its creation (a fixed window), which
    costs one write in the common case: the device update check counts here at fleet rates,
    and on the embedded cache every write takes a SQLite lock."""
    for _ in range(3):
        try:
            value = int(cache.incr(key))
        except ValueError:  # missing (first hit of the window, or expired): create it
            if cache.add(key, 1, timeout=timeout):
                return 1
            continue  # another process created it meanwhile: count on it
        if refresh or isinstance(caches["default"], FileBasedCache):
            # (the file cache rewrites the key with the default timeout on incr)
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
    hits = counter_add(f"rl:{key}:{now // window}", timeout=window, refresh=False)
    if hits <= limit:
        return None
    return max(1, window - now % window)
