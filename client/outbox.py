"""Reports waiting to be sent: what this phone detected, and what it has installed.

``scan`` queues its detections here and ``sync``/``check`` queue what they installed; both
then send the queue (``flush``) with ``client.reports.post_report``. A batch keeps its id
until the portal answered it, so a retry after a lost answer never counts twice. A phone is
often offline: the queue stays in the state folder (``outbox.json``) until it can be sent,
and a failed send never fails the sync that attempted it.
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Iterable
from typing import Any

from client.api import Backoff
from client.reports import MAX_DETECTIONS, new_batch, post_report
from client.state import ClientError, Config, StateDir
from engine.binary import write_atomic

# a phone that stays offline for months keeps at most this many batches (oldest dropped)
MAX_BATCHES = 200


def _load(state_dir: StateDir) -> list[dict[str, Any]]:
    try:
        data = json.loads(state_dir.outbox_path.read_text())
    except (FileNotFoundError, ValueError):
        return []
    return [b for b in data if isinstance(b, dict)] if isinstance(data, list) else []


def _save(state_dir: StateDir, batches: list[dict[str, Any]]) -> None:
    write_atomic(state_dir.outbox_path, json.dumps(batches[-MAX_BATCHES:]).encode())


def pending(state_dir: StateDir) -> int:
    """How many batches wait to be sent."""
    return len(_load(state_dir))


def queue(
    state_dir: StateDir,
    *,
    release: int,
    engine_version: int,
    detections: Iterable[dict[str, Any]] = (),
) -> int:
    """Queue what is installed and any detections, in batches of at most MAX_DETECTIONS."""
    items = list(detections)
    batches = _load(state_dir)
    chunks = [items[i : i + MAX_DETECTIONS] for i in range(0, len(items), MAX_DETECTIONS)]
    for chunk in chunks or [[]]:
        batches.append(new_batch(release=release, engine_version=engine_version, detections=chunk))
    _save(state_dir, batches)
    return len(items)


def detection(
    *, signature_id: int, revision: int, release: int, sha256: str, package: str, cert: str
) -> dict[str, Any]:
    """One detection as the report API takes it (no personal data: the app's facts only)."""
    now = datetime.datetime.now(datetime.UTC).replace(microsecond=0)
    return {
        "signature_id": signature_id,
        "revision": revision,
        "release": release,
        "app_sha256": sha256,
        "package": package,
        "cert_sha256": cert,
        "detected_at": now.isoformat().replace("+00:00", "Z"),
    }


def flush(state_dir: StateDir, config: Config, backoff: Backoff | None = None) -> dict[str, Any]:
    """Send queued batches in order; stop at the first failure and keep the rest."""
    batches = _load(state_dir)
    sent = accepted = 0
    try:
        while batches:
            receipt = post_report(config.server, config.token, batches[0], backoff)
            accepted += int(receipt["accepted"])
            sent += 1
            batches.pop(0)
            _save(state_dir, batches)
    except ClientError as exc:
        return {"sent": sent, "accepted": accepted, "waiting": len(batches), "error": exc.message}
    return {"sent": sent, "accepted": accepted, "waiting": 0}
