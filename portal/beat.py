"""Celery beat with a heartbeat: /healthz tells when the scheduler is gone.

Beat has no queue and runs no task, so a worker's heartbeat says nothing about it. This
scheduler writes its own heartbeat row (hostname ``celery-beat@<host>``) every
WORKER_HEARTBEAT_SECONDS from its tick, on whichever machine it runs. Start beat with
``--scheduler portal.beat:HeartbeatScheduler`` (run_portal does).
"""

from __future__ import annotations

import logging
import socket
import time
from typing import Any

from celery.beat import PersistentScheduler
from django.conf import settings

log = logging.getLogger(__name__)


class HeartbeatScheduler(PersistentScheduler):
    _last_beat = 0.0

    def tick(self, *args: Any, **kwargs: Any) -> float:
        now = time.monotonic()
        every = float(settings.WORKER_HEARTBEAT_SECONDS)
        if now - self._last_beat >= every:
            self._last_beat = now
            self._beat()
        # wake up at least as often as the heartbeat is due
        return min(float(super().tick(*args, **kwargs)), every)

    @staticmethod
    def _beat() -> None:
        from portal.selectors import BEAT_PREFIX
        from portal.services import worker_heartbeat

        try:
            worker_heartbeat(hostname=f"{BEAT_PREFIX}{socket.gethostname()}", queues=[])
        except Exception:  # the schedule must go on even when the database is away
            log.exception("beat heartbeat failed")
