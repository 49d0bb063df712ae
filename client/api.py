"""The device API, spoken with patience: jittered exponential back-off and Retry-After.

- ``POST {server}/api/v1/devices/register/`` with the enrollment key → 201 ``device_id``,
  ``token``.
- ``GET {server}/updates/metadata/timestamp.json`` with ``If-None-Match``: the frequent check,
  a static file any CDN serves (``fetch_timestamp``); 304 when nothing changed.

(The portal's ``GET /api/v1/devices/update/`` answers older apps from the same signed data;
this client decides for itself, see ``engine.rollout``.)

Network errors and 5xx answers are retried a bounded number of times, waiting
``base * 2**attempt`` seconds with jitter (half fixed, half random, so a fleet that failed
together does not come back together). A 429, or a 503 with ``Retry-After``, is retried
in-process only when its Retry-After is short; otherwise ``Throttled`` tells the caller to come
back later, and the caller stores that time so the next run does not ask early.
"""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import parsedate_to_datetime
from typing import Any

import requests

from client.state import ClientError

REGISTER_PATH = "/api/v1/devices/register/"
TIMESTAMP_PATH = "/updates/metadata/timestamp.json"
TIMEOUT = (10.0, 30.0)  # connect, read
# a server that asks for more than this much waiting gets it by a later run, not a sleep
MAX_INLINE_RETRY_AFTER = 30.0


class Throttled(ClientError):
    exit_code = 75  # EX_TEMPFAIL: try again later

    def __init__(self, retry_after: float) -> None:
        super().__init__(
            f"the server asked to wait {retry_after:.0f} s (429 Retry-After)",
            retry_after_seconds=retry_after,
        )
        self.retry_after = retry_after


@dataclass
class Backoff:
    tries: int = 4
    base: float = 1.0
    cap: float = 60.0
    max_inline_retry_after: float = MAX_INLINE_RETRY_AFTER
    sleep: Callable[[float], None] = time.sleep
    rand: Callable[[], float] = field(default=random.random)

    def delay(self, attempt: int) -> float:
        ceiling = min(self.cap, self.base * (2**attempt))
        return float(ceiling / 2 + self.rand() * ceiling / 2)


def retry_after_seconds(response: requests.Response, now: float | None = None) -> float | None:
    """Retry-After as seconds: either delta-seconds or an HTTP date."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    value = value.strip()
    if re.fullmatch(r"[0-9]{1,9}", value):  # not isdigit(): "³" passes it and float() refuses
        return float(value)
    try:
        when = parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError):
        return None
    return max(0.0, when - (time.time() if now is None else now))


def _request(method: str, url: str, backoff: Backoff, **kwargs: Any) -> requests.Response:
    last_problem = "no attempt made"
    for attempt in range(backoff.tries):
        try:
            response = requests.request(method, url, timeout=TIMEOUT, **kwargs)
        except requests.RequestException as exc:
            last_problem = f"cannot reach the server: {exc}"
            wait = backoff.delay(attempt)
        else:
            told = retry_after_seconds(response) if response.status_code == 503 else None
            if response.status_code == 429 or told is not None:
                retry_after = retry_after_seconds(response)
                if retry_after is None:
                    retry_after = backoff.delay(attempt)
                if retry_after > backoff.max_inline_retry_after:
                    raise Throttled(retry_after)
                last_problem = f"the server kept answering {response.status_code}"
                wait = max(retry_after, backoff.delay(attempt))
            elif response.status_code >= 500:
                last_problem = f"the server answered {response.status_code}"
                wait = backoff.delay(attempt)
            else:
                return response
        if attempt + 1 < backoff.tries:
            backoff.sleep(wait)
    raise ClientError(f"{last_problem} (after {backoff.tries} tries)")


def _json(response: requests.Response) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError as exc:
        raise ClientError(f"the server answered {response.status_code} with no JSON") from exc
    if not isinstance(data, dict):
        raise ClientError("the server's answer is not a JSON object")
    return data


def register(
    server: str, payload: dict[str, Any], backoff: Backoff | None = None
) -> tuple[str, str]:
    response = _request(
        "POST", server.rstrip("/") + REGISTER_PATH, backoff or Backoff(), json=payload
    )
    data = _json(response)
    if response.status_code not in (200, 201):
        raise ClientError(f"registration refused ({response.status_code})", detail=data)
    device_id, token = data.get("device_id"), data.get("token")
    if not isinstance(device_id, str | int) or not isinstance(token, str) or not token:
        raise ClientError("the registration answer lacks device_id or token")
    return str(device_id), token


def fetch_timestamp(
    server: str, etag: str | None, backoff: Backoff | None = None
) -> tuple[bool, str | None]:
    """The frequent, cheap check: a conditional GET of the static timestamp.json.

    Returns (changed, ETag). 304 means the repository is as it was when ``etag`` was seen.
    The body is not used here: tuf.ngclient fetches and verifies it when it changed.
    """
    headers = {"If-None-Match": etag} if etag else {}
    response = _request(
        "GET", server.rstrip("/") + TIMESTAMP_PATH, backoff or Backoff(), headers=headers
    )
    if response.status_code == 304:
        return False, etag
    if response.status_code != 200:
        raise ClientError(f"timestamp.json answered {response.status_code}")
    return True, response.headers.get("ETag")
