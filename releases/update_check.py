"""The compatibility update check, ``GET /api/v1/devices/update/``, at fleet rates.

Older apps ask the portal which release to install. The answer comes from the signed targets
(``releases.selectors.update_offer``, the same rules a phone runs) and the device from the
shared cache (``releases.authentication.cached_device``): no database query. Two doors lead
here and answer alike:

- ``UpdateCheckFastPath``, a WSGI wrapper in front of Django: a well-formed check from a device
  whose token entry is in the cache is answered without Django's middleware and DRF, about a
  tenth of the CPU (docs/releases.md has the figures). Anything else — no or another kind of
  credentials, a token not cached yet, an odd query string, another method — goes on to:
- ``releases.apis.DeviceUpdateApi``, the DRF view, which documents the endpoint in the OpenAPI
  schema and gives every error its usual JSON.

Both count the per-device limit in the same shared counter (``device_update_limited``) and
build the body with ``update_answer``.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.core.cache import cache

from portal.exceptions import RateLimitedError, error_body
from portal.metrics import http_request_duration, http_requests
from portal.ratelimit import rate_hit
from releases.models import Channel, Device
from releases.selectors import update_offer
from releases.services import device_token_cache_key, token_hash

PATH = "/api/v1/devices/update/"
VIEW_NAME = "device-update"  # the URL name: the fast path counts under the same metrics label
_TOKEN = re.compile(r"Token ([A-Za-z0-9_\-]{1,200})")
_QUERY = re.compile(r"installed=([0-9]{1,10})", re.ASCII)
RELEASE_NUMBER_MAX = 2**31 - 1


def update_answer(*, device: Device | DeviceRef, installed: int) -> dict[str, Any]:
    """The body of a 200 answer."""
    wait = int(settings.DEVICE_MIN_WAIT_SECONDS)
    offer = update_offer(device=device, installed=installed)
    if offer is None:
        return {"up_to_date": True, "min_wait_seconds": wait}
    return {"version": offer.version, "target": offer.target, "min_wait_seconds": wait}


def device_update_limited(device: Device | DeviceRef) -> RateLimitedError | None:
    """Count one check against the device's ``DEVICE_UPDATE_RATE``; the error when over it."""
    wait = rate_hit(f"device-update:{device.pk}", rate=settings.DEVICE_UPDATE_RATE)
    if wait is None:
        return None
    return RateLimitedError(
        f"This device checks too often: wait {wait} s (min_wait_seconds says how long).",
        retry_after=wait,
    )


StartResponse = Callable[[str, list[tuple[str, str]]], Any]
WsgiApp = Callable[[dict[str, Any], Any], Iterable[bytes]]
Answer = tuple[int, dict[str, Any], list[tuple[str, str]]]
_STATUS = {200: "200 OK", 429: "429 Too Many Requests"}


@dataclass(frozen=True, slots=True)
class DeviceRef:
    """What the check needs of a device, straight from its cache entry (building a Device
    model instance cost a tenth of the fast path)."""

    pk: int
    device_id: str
    channel: str
    engine_version: int


def _cached_only(key: str) -> DeviceRef | None:
    """The device from the cache entry alone (None: let the full stack look it up)."""
    entry = cache.get(device_token_cache_key(token_hash(key)))
    if not isinstance(entry, dict) or entry.get("unknown"):
        return None
    try:
        ref = DeviceRef(
            int(entry["pk"]),
            str(entry["device_id"]),
            str(entry["channel"]),
            int(entry["engine_version"]),
        )
    except (KeyError, TypeError, ValueError):
        return None
    return ref if ref.channel in Channel.values else None


class UpdateCheckFastPath:
    """WSGI middleware: answers the common update check before Django sees it."""

    def __init__(self, app: WsgiApp) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        if environ.get("PATH_INFO") != PATH or environ.get("REQUEST_METHOD") != "GET":
            return self.app(environ, start_response)
        started = time.perf_counter()
        answer = self._answer(environ)
        if answer is None:
            return self.app(environ, start_response)
        status, body, extra_headers = answer
        data = json.dumps(body, separators=(",", ":")).encode()
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(data))),
            ("Vary", "Authorization"),
            ("X-Content-Type-Options", "nosniff"),
            ("X-Frame-Options", "DENY"),
            *extra_headers,
        ]
        start_response(_STATUS[status], headers)
        http_requests.labels(VIEW_NAME, "GET", str(status)).inc()
        http_request_duration.labels(VIEW_NAME, "GET").observe(time.perf_counter() - started)
        return [data]

    @staticmethod
    def _answer(
        environ: dict[str, Any],
    ) -> tuple[int, dict[str, Any], list[tuple[str, str]]] | None:
        auth = _TOKEN.fullmatch(environ.get("HTTP_AUTHORIZATION", ""))
        query = environ.get("QUERY_STRING", "")
        wanted = _QUERY.fullmatch(query) if query else None
        if auth is None or (query and wanted is None):
            return None
        installed = int(wanted.group(1)) if wanted else 0
        if installed > RELEASE_NUMBER_MAX:
            return None
        device = _cached_only(auth.group(1))
        if device is None:
            return None
        limited = device_update_limited(device)
        if limited is not None:
            return 429, error_body(limited), [("Retry-After", str(limited.retry_after))]
        return 200, update_answer(device=device, installed=installed), []
