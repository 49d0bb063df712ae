"""Celery tasks of livehunt: an interface over livehunt.services, nothing more.

``watch_sample`` is sent by the scan-succeeded hook (queue ``scans``) after the scan's
verdict is committed: the scan itself never waits for watch rules. Both tasks are safe to
run twice (see the services). ``watch_sample`` takes the time limits every task has from the
Celery configuration (``CELERY_TASK_SOFT_TIME_LIMIT``/``CELERY_TASK_TIME_LIMIT``): no setting
is read when this module is imported.
"""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from livehunt import services


@shared_task(
    name="livehunt.watch_sample",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
    ignore_result=True,
)
def watch_sample(sample_id: int, scan_id: int | None = None) -> int:
    return len(services.sample_watch(sample_id=sample_id, scan_id=scan_id))


@shared_task(
    name="livehunt.deliver_webhook",
    acks_late=True,
    soft_time_limit=60,
    time_limit=90,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=5,
    ignore_result=True,
)
def deliver_webhook(hit_id: int) -> None:
    services.webhook_deliver(hit_id=hit_id)
