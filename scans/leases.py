"""One lease machinery for the jobs workers run: scans (``ScanJob``) and hunt chunks
(``HuntChunk``). Each kind describes itself once in a ``LeaseSpec``; claim, liveness and
recovery are written here once (docs/scanning.md "Lost workers").

- ``claim``: a compare-and-swap of the row to ``running`` for this process (``worker_id``),
  unless it is finished, held by a live worker, or out of attempts (then the kind gives up).
- ``holder_lost``: whether the process that marked a job running can no longer be running it.
  Works across machines: the job names its Celery node, and a node whose heartbeat row in the
  database is older than WORKER_STALE_AFTER is gone wherever it ran. On the same host a dead
  pid is a quicker answer (a pool process killed while its node lives on); the pid of another
  machine is never looked up. The lease (hard time limit + 30 s) bounds the rest.
- ``recover``: jobs whose holder is lost go back to queued, each in its own short
  transaction, and are sent again after it commits;
  jobs queued longer than SCAN_REQUEUE_AFTER_SECONDS and never sent since are sent again
  (the broker was down, or a filesystem broker lost the fetched message on SIGKILL).

A duplicate delivery is harmless: ``claim`` refuses it.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Generic, Protocol, TypeVar, cast

from django.conf import settings
from django.db import models, transaction
from django.db.models import F
from django.utils import timezone

from portal.selectors import live_worker_names

# A job is given up after this many starts: a file that kills its worker every time must
# end as failed, not loop forever.
MAX_ATTEMPTS = 3
# The most never-started jobs one recovery pass sends again (the next pass sends the rest).
RESEND_AT_MOST = 1000


class Leased(Protocol):
    """The fields a leased job's row has (``ScanJob`` and ``HuntChunk`` both do)."""

    pk: int
    status: str
    attempts: int
    worker: str
    started_at: datetime | None


J = TypeVar("J", bound=models.Model)


@dataclass(frozen=True)
class LeaseSpec(Generic[J]):
    """What the lease machinery needs to know of one kind of job.

    The model has ``status``, ``attempts``, ``worker``, ``queued_at``, ``sent_at``,
    ``started_at``, ``finished_at`` and ``error``; the hooks are what differs between kinds.
    """

    name: str  # "scan", "hunt chunk": log lines say it
    model: type[J]
    running: str
    queued: str
    done: frozenset[str]  # statuses with nothing left to do
    # hand these jobs to the broker (and note ``sent_at``)
    send: Callable[[list[int]], None]
    # the job was started ``max_attempts`` times and never finished: end it with a reason
    give_up: Callable[[J, datetime], None]
    log: logging.Logger  # the kind's own logger, so its lines keep their name
    max_attempts: int = MAX_ATTEMPTS
    # how ``claim`` reads the row (a chunk comes with its hunt)
    rows: Callable[[], models.QuerySet[J]] | None = None
    # in the claim's transaction: True when the job must not run any more (a chunk whose
    # hunt is done is marked cancelled here)
    moot: Callable[[J], bool] | None = None
    # in the claim's transaction, once claimed (a chunk's hunt becomes running)
    claimed: Callable[[J, datetime], None] | None = None
    # at each recovery pass, before sending (chunks of done hunts are cancelled)
    tidy: Callable[[], None] | None = None

    def queryset(self) -> models.QuerySet[J]:
        return self.rows() if self.rows is not None else self.model._default_manager.all()


# --- configuration read at call time --------------------------------------------------------
def lease() -> timedelta:
    """How long a running job may go without finishing before another worker takes it over.

    The hard time limit kills a task before then, so a job still ``running`` after the
    lease belongs to a worker that is gone.
    """
    return timedelta(seconds=int(settings.CELERY_TASK_TIME_LIMIT) + 30)


def requeue_after() -> timedelta:
    """A queued scan or hunt chunk not started after this long is sent to the broker again."""
    return timedelta(seconds=max(1, int(settings.SCAN_REQUEUE_AFTER_SECONDS)))


def worker_id() -> str:
    """``node/host:pid``: the Celery node (whose heartbeat row any machine can read), then
    this process. Outside a worker (tests, management commands) the node part is empty."""
    from portal.celery import NODE_NAME

    return f"{NODE_NAME}/{socket.gethostname()}:{os.getpid()}"


# --- liveness ------------------------------------------------------------------------------------
def _pid_dead(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    with contextlib.suppress(OSError):  # a zombie nobody has reaped is dead too
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] == "Z"
    return False


_PROCESS = re.compile(r"(?:(?P<node>[^/]*)/)?(?P<host>.*):(?P<pid>[0-9]{1,9})", re.ASCII)


def holder_lost(job: Leased, *, now: datetime, me: str | None) -> bool:
    """True when the process that marked ``job`` running can no longer be running it
    (see the module docstring). ``me``: this process's ``worker_id``, None in recovery."""
    if job.worker and job.worker == me:
        return True  # this process was interrupted (e.g. a retried DB error) and is back
    if job.started_at is None or job.started_at + lease() < now:
        return True
    holder = _PROCESS.fullmatch(job.worker)
    if holder is None:
        return False
    node, host, pid = holder["node"], holder["host"], int(holder["pid"])
    if host == socket.gethostname() and _pid_dead(pid):
        return True
    return bool(node) and not live_worker_names([node])


# --- claim ---------------------------------------------------------------------------------------
def claim(spec: LeaseSpec[J], job_id: int, **fields: object) -> J | None:
    """Mark the job running for this process and return it as claimed, or None when there is
    nothing to do (gone, finished, held by a live worker, taken by another claim meanwhile,
    or out of attempts). ``fields``: more columns the claim sets (a chunk's worker name)."""
    now = timezone.now()
    me = worker_id()
    with transaction.atomic():
        job = spec.queryset().filter(pk=job_id).first()
        if job is None:
            spec.log.warning("%s %s no longer exists", spec.name, job_id)
            return None
        row = cast(Leased, job)  # the spec's model has the fields
        if row.status in spec.done:
            spec.log.info("%s %s already %s; nothing to do", spec.name, job_id, row.status)
            return None
        if spec.moot is not None and spec.moot(job):
            return None
        if row.status == spec.running and not holder_lost(row, now=now, me=me):
            spec.log.info("%s %s is running on %s; leaving it", spec.name, job_id, row.worker)
            return None
        if row.attempts >= spec.max_attempts:
            spec.give_up(job, now)
            return None
        claimed = spec.model._default_manager.filter(
            pk=job_id, status=row.status, attempts=row.attempts
        ).update(
            status=spec.running,
            started_at=now,
            finished_at=None,
            attempts=F("attempts") + 1,
            worker=me,
            error="",
            **fields,
        )
        if claimed and spec.claimed is not None:
            spec.claimed(job, now)
    if not claimed:
        return None
    # read again as claimed, the way the spec reads it
    return spec.queryset().get(pk=job_id)


# --- recovery ------------------------------------------------------------------------------------
def recover(spec: LeaseSpec[J]) -> list[int]:
    """Send again the jobs whose worker is gone (back to queued first) and the jobs queued
    long ago but never started; returns their ids. Runs when a worker starts and then on a
    timer in every worker of the kind's queue."""
    now = timezone.now()
    manager = spec.model._default_manager
    lost: list[int] = []
    running = manager.filter(status=spec.running).only(
        "id", "status", "worker", "started_at", "attempts"
    )
    for job in running:
        row = cast(Leased, job)
        if not holder_lost(row, now=now, me=None):
            continue
        # one short transaction a job: no write lock is held while liveness is looked up
        with transaction.atomic():
            moved = manager.filter(
                pk=row.pk, status=spec.running, attempts=row.attempts, worker=row.worker
            ).update(status=spec.queued, worker="")
            if moved:
                spec.log.warning(
                    "%s %s: worker %s is gone; re-queued", spec.name, row.pk, row.worker
                )
                lost.append(row.pk)
                transaction.on_commit(partial(spec.send, [row.pk]))
    if spec.tidy is not None:
        spec.tidy()
    stale = now - requeue_after()
    never_started = list(
        manager.filter(status=spec.queued, queued_at__lt=stale)
        .exclude(sent_at__gte=stale)
        .exclude(pk__in=lost)  # sent once the move above commits
        .order_by("pk")
        .values_list("pk", flat=True)[:RESEND_AT_MOST]
    )
    if never_started:
        spec.log.warning(
            "%s(s) %s queued since before %s and never started; sent again",
            spec.name,
            never_started,
            stale,
        )
        spec.send(never_started)
    return lost + never_started
