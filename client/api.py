"""The device API, spoken with patience: jittered exponential back-off and Retry-After.

- ``POST {server}/api/v1/devices/register/`` with the enrollment key → 201 ``device_id``,
  ``token``.
- ``GET {server}/api/v1/devices/update/?installed=N`` with ``Authorization: Token <token>`` →
  ``{"version", "target", "min_wait_seconds"}`` or ``{"up_to_date": true, "min_wait_seconds"}``;
  429 with ``Retry-After`` when the server wants fewer requests.

Network errors and 5xx answers are retried a bounded number of times, waiting
``base * 2**attempt`` seconds with jitter (half fixed, half random, so a fleet that failed
together does not come back together). A 429 is retried in-process only when its Retry-After
is short; otherwise ``Throttled`` tells the caller to come back later, and the caller stores
that time so the next run does not ask early.
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
UPDATE_PATH = "/api/v1/devices/update/"
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
            if response.status_code == 429:
                retry_after = retry_after_seconds(response)
                if retry_after is None:
                    retry_after = backoff.delay(attempt)
                if retry_after > backoff.max_inline_retry_after:
                    raise Throttled(retry_after)
                last_problem = "the server kept answering 429"
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


@dataclass(frozen=True)
class UpdateAnswer:
    min_wait_seconds: float
    version: int | None = None  # None: up to date
    target: str | None = None


def ask_update(
    server: str, token: str, installed: int, backoff: Backoff | None = None
) -> UpdateAnswer:
    response = _request(
        "GET",
        server.rstrip("/") + UPDATE_PATH,
        backoff or Backoff(),
        params={"installed": installed},
        headers={"Authorization": f"Token {token}"},
    )
    data = _json(response)
    if response.status_code != 200:
        raise ClientError(f"the update API answered {response.status_code}", detail=data)
    wait = data.get("min_wait_seconds", 0)
    if not isinstance(wait, int | float) or isinstance(wait, bool) or wait < 0:
        raise ClientError("min_wait_seconds is not a non-negative number")
    if data.get("up_to_date") is True:
        return UpdateAnswer(min_wait_seconds=float(wait))
    version, target = data.get("version"), data.get("target")
    if type(version) is not int or not isinstance(target, str) or not target:
        raise ClientError("the update answer lacks version or target", detail=data)
    return UpdateAnswer(min_wait_seconds=float(wait), version=version, target=target)
