"""Celery tasks of the scans app: an interface over scans.services, nothing more.

``scan_sample`` acks late and is rejected (so re-queued) when its worker process is lost;
``scan_run`` decides whether there is still work to do. ``hunt_chunk`` runs one chunk of a
retro-hunt the same way (queue ``hunts``); workers on ``hunts`` run ``hunts_recover``.
Every worker that consumes the ``scans`` queue also runs ``scans_recover`` when it starts
and then every SCAN_RECOVER_EVERY_SECONDS, which re-queues scans whose worker died (the
filesystem broker loses a fetched message on SIGKILL; see docs/scanning.md).

The soft and hard time limits are Celery's ``task_soft_time_limit`` / ``task_time_limit``
(settings CELERY_TASK_SOFT_TIME_LIMIT / CELERY_TASK_TIME_LIMIT, through portal.celery's
``config_from_object``): a task that names no limit of its own takes them when it is bound to
the app, so nothing here reads settings when the module is imported.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import worker_ready
from django.db import InterfaceError, OperationalError

from scans import hunt_match, retrohunts, services, verdicts

log = logging.getLogger(__name__)


@shared_task(
    name="scans.scan_sample",
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
)
def scan_sample(scan_id: int) -> None:
    services.scan_run(scan_id=scan_id)


@shared_task(
    name="scans.hunt_chunk",
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=5,
)
def hunt_chunk(self: Any, chunk_id: int) -> None:
    """One chunk of a retro-hunt (queue ``hunts``); records which worker ran it."""
    retrohunts.retrohunt_chunk_run(chunk_id=chunk_id, worker_name=str(self.request.hostname or ""))


@shared_task(
    name="scans.verdicts_sync",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=5,
)
def verdicts_sync() -> None:
    """Bring the samples' current verdicts to the current release (queue ``default``)."""
    verdicts.verdicts_sync()


@shared_task(
    name="scans.facts_segments_build",
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=5,
)
def facts_segments_build() -> None:
    """Build the facts segments Koodous hunts read, ahead of them (queue ``hunts``)."""
    built = hunt_match.facts_segments_build()
    if built:
        log.info("facts segments built for blocks %s", built)


@shared_task(name="scans.recover", ignore_result=True)
def scans_recover() -> int:
    return len(services.scans_recover())


def _recover_safely() -> None:
    try:
        ids = services.scans_recover()
        if ids:
            log.warning("re-queued scans whose worker was lost or that never started: %s", ids)
    except Exception:  # recovery must never take the worker down
        log.exception("scan recovery failed")


def _recover_hunts_safely() -> None:
    try:
        ids = retrohunts.hunts_recover()
        if ids:
            log.warning("re-sent hunt chunks (worker lost or never started): %s", ids)
    except Exception:  # recovery must never take the worker down
        log.exception("hunt recovery failed")


@worker_ready.connect
def _start_recovery(sender: Any = None, **kwargs: Any) -> None:
    """In a worker that consumes ``scans`` / ``hunts``: recover now, then on a timer."""
    from portal.celery import app

    consumes = app.amqp.queues.consume_from
    timer = getattr(sender, "timer", None)
    if "scans" in consumes:
        _recover_safely()
        if timer is not None:
            timer.call_repeatedly(services.recover_every_seconds(), _recover_safely)
    if "hunts" in consumes:
        _recover_hunts_safely()
        if timer is not None:
            timer.call_repeatedly(retrohunts.recover_every_seconds(), _recover_hunts_safely)
