"""The Celery application: JSON only, late acks, prefetch 1, results in our own tables.

Configuration comes from Django settings (CELERY_* names). Queues: ``default`` for small
housekeeping, ``scans`` for scan jobs, ``hunts`` for retro-hunt chunks, ``publish`` for
building releases. A worker started with ``-Q`` takes only the queues it names, so scans,
hunts and publishing can scale on separate machines.
"""

from __future__ import annotations

import os

from celery import Celery, bootsteps, signals
from celery.signals import celeryd_init
from kombu import Exchange, Queue
from kombu.transport import TRANSPORT_ALIASES

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
# `filesystem://` means our write-then-rename transport (portal/broker.py), in every process.
TRANSPORT_ALIASES["filesystem"] = "portal.broker:Transport"

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.task_queues = [
    Queue(name, Exchange(name, type="direct"), routing_key=name)
    for name in ("default", "scans", "hunts", "publish")
]
app.autodiscover_tasks()


@signals.setup_logging.connect
def use_django_logging(loglevel: int | str | None = None, **kwargs: object) -> None:
    """Workers and beat log through settings.LOGGING (LOG_FORMAT=json gives JSON lines).

    With a receiver on this signal Celery configures no logging of its own: it neither
    replaces the root handlers (worker_hijack_root_logger) nor gives ``celery.task`` and the
    pool's logger plain-text handlers of their own, which turning off
    worker_hijack_root_logger alone would still do. ``--loglevel`` still sets the level.
    """
    import logging.config

    from celery.utils.log import get_multiprocessing_logger
    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    root = logging.getLogger()
    if loglevel:
        root.setLevel(loglevel)
    # billiard's pool logger does not propagate; without a handler its errors ("Process ...
    # exited with ...") would reach stderr as bare text
    pool_logger = get_multiprocessing_logger()
    if pool_logger is not None:
        pool_logger.handlers = list(root.handlers)
        pool_logger.setLevel(logging.ERROR)


# This process's Celery node name ("worker1@host"), set when a worker starts and inherited
# by its pool processes. Jobs record it, so any machine can tell from the node's heartbeat
# row whether the worker running a job is still alive (scans.leases.holder_lost).
NODE_NAME = ""


@signals.task_prerun.connect
@signals.task_postrun.connect
def _close_old_connections(**_: object) -> None:
    """Drop a connection past CONN_MAX_AGE or broken, as Django does around each request
    (connections are reused across tasks: CELERY_DB_REUSE_MAX)."""
    from django.db import close_old_connections

    close_old_connections()


@celeryd_init.connect
def _remember_node_name(sender: object = None, **_: object) -> None:
    global NODE_NAME
    NODE_NAME = str(sender or "")


class HeartbeatStep(bootsteps.StartStopStep):
    """Writes this worker's heartbeat row on a timer, so /healthz can tell a live worker.

    Celery's remote-control ping needs a broker with fan-out, which the filesystem transport
    lacks; a row in our own database works the same on every broker.
    """

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: object, **kwargs: object) -> None:
        super().__init__(worker, **kwargs)
        self.tref: object | None = None

    def start(self, worker: object) -> None:
        from django.conf import settings

        from portal.services import worker_heartbeat

        hostname = str(getattr(worker, "hostname", "worker"))
        queues = sorted(q.name for q in app.amqp.queues.consume_from.values())

        def beat() -> None:
            try:
                worker_heartbeat(hostname=hostname, queues=queues)
            except Exception:  # a heartbeat must never take the worker down
                import logging

                logging.getLogger(__name__).exception("worker heartbeat failed")

        beat()
        timer = worker.timer  # type: ignore[attr-defined]
        self.tref = timer.call_repeatedly(settings.WORKER_HEARTBEAT_SECONDS, beat)

    def stop(self, worker: object) -> None:
        if self.tref is not None:
            self.tref.cancel()  # type: ignore[attr-defined]


app.steps["worker"].add(HeartbeatStep)
