from __future__ import annotations

from celery import shared_task

from portal.services import heartbeats_prune


@shared_task(name="portal.prune_heartbeats")
def prune_heartbeats() -> int:
    """Forget workers not seen for a day (scheduled by beat)."""
    return heartbeats_prune()
