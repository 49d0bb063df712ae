"""Detection reports, sent with the same patience as every other device call.

``POST {server}/api/v1/devices/reports/`` with ``Authorization: Token <token>`` and a batch::

    {"batch_id": "<uuid4>", "installed": {"release": N, "engine_version": E},
     "detections": [{"signature_id", "revision", "release", "app_sha256", "package",
                     "cert_sha256", "detected_at"}, ...]}   # at most 500

201 stores it; 200 means the server had this batch id already (a retry after a lost answer):
both give the same receipt ``{"batch_id", "accepted", "received_at"}``. Keep the batch id of a
batch until it is answered, so that retrying never counts a detection twice. A 4xx other than
429 is final (``ClientError`` names the bad field); 429 and 5xx follow ``client.api._request``.
``new_batch`` builds a batch with a fresh id.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

from client.api import Backoff, _json, _request
from client.state import ClientError

REPORTS_PATH = "/api/v1/devices/reports/"
MAX_DETECTIONS = 500


def new_batch(
    *, release: int, engine_version: int, detections: Iterable[dict[str, Any]] = ()
) -> dict[str, Any]:
    """A batch with a new id; its detections are sent as given (at most MAX_DETECTIONS)."""
    items = list(detections)
    if len(items) > MAX_DETECTIONS:
        raise ClientError(f"{len(items)} detections; a batch holds at most {MAX_DETECTIONS}")
    return {
        "batch_id": str(uuid.uuid4()),
        "installed": {"release": release, "engine_version": engine_version},
        "detections": items,
    }


def post_report(
    server: str, token: str, batch: dict[str, Any], backoff: Backoff | None = None
) -> dict[str, Any]:
    """Send one batch; the receipt (``accepted`` detections) on 200 or 201."""
    if not isinstance(batch.get("batch_id"), str):
        raise ClientError("a batch needs a batch_id (new_batch makes one)")
    response = _request(
        "POST",
        server.rstrip("/") + REPORTS_PATH,
        backoff or Backoff(),
        json=batch,
        headers={"Authorization": f"Token {token}"},
    )
    data = _json(response)
    if response.status_code not in (200, 201):
        raise ClientError(f"the report was refused ({response.status_code})", detail=data)
    accepted = data.get("accepted")
    if type(accepted) is not int or data.get("batch_id") != batch["batch_id"]:
        raise ClientError("the report answer lacks accepted or names another batch", detail=data)
    return data
