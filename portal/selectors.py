"""Read paths: health checks and the audit log."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from datetime import timedelta

import django_filters
from django.conf import settings
from django.db import connection
from django.db.models import QuerySet
from django.utils import timezone

from portal.models import AuditEntry, WorkerHeartbeat

log = logging.getLogger(__name__)


# Celery beat's heartbeat row (portal.beat) is told apart from workers' rows by this prefix.
BEAT_PREFIX = "celery-beat@"


def health_check() -> dict[str, str]:
    """'ok' or 'down' for the database, the broker, the workers (every queue has a live
    worker, on any machine) and beat. Says nothing about configuration."""
    idle, beat = _fleet()
    return {
        "database": _check_database(),
        "broker": _check_broker(),
        "worker": "ok" if idle == [] else "down",
        "beat": beat,
    }


def queues_without_worker() -> list[str]:
    """The queues no live worker consumes now (all of them when the database is down)."""
    return _fleet()[0] or []


def _fleet() -> tuple[list[str] | None, str]:
    """(queues with no live worker or None when unknown, beat state) from heartbeat rows."""
    try:
        fresh = timezone.now() - settings.WORKER_STALE_AFTER
        rows = list(
            WorkerHeartbeat.objects.filter(last_seen__gte=fresh).values_list("hostname", "queues")
        )
    except Exception:
        log.warning("health: heartbeat check failed", exc_info=True)
        return None, "down"
    served = {q for name, queues in rows if not name.startswith(BEAT_PREFIX) for q in queues}
    idle = [q for q in settings.CELERY_TASK_QUEUES_NAMES if q not in served]
    beat = "ok" if any(name.startswith(BEAT_PREFIX) for name, _ in rows) else "down"
    return idle, beat


def _check_database() -> str:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        return "ok"
    except Exception:
        log.warning("health: database check failed", exc_info=True)
        return "down"


def _check_broker() -> str:
    url = settings.CELERY_BROKER_URL
    if url.startswith("filesystem://"):
        folders = [
            settings.CELERY_BROKER_TRANSPORT_OPTIONS["data_folder_in"],
            settings.CELERY_BROKER_TRANSPORT_OPTIONS["processed_folder"],
        ]
        ok = all(os.path.isdir(str(f)) and os.access(str(f), os.W_OK) for f in folders)
        return "ok" if ok else "down"
    from portal.celery import app

    try:
        # A fresh connection, not the app's pool: health must see the broker as it is now.
        with app.connection_for_write(url) as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=2)
        return "ok"
    except Exception:
        log.warning("health: broker check failed", exc_info=True)
        return "down"


def live_worker_names(names: Iterable[str]) -> set[str]:
    """Those of ``names`` (Celery node names) whose heartbeat is fresh, on any machine."""
    wanted = {n for n in names if n}
    if not wanted:
        return set()
    fresh = timezone.now() - settings.WORKER_STALE_AFTER
    return set(
        WorkerHeartbeat.objects.filter(hostname__in=wanted, last_seen__gte=fresh).values_list(
            "hostname", flat=True
        )
    )


def live_workers() -> QuerySet[WorkerHeartbeat]:
    return (
        WorkerHeartbeat.objects.filter(last_seen__gte=timezone.now() - settings.WORKER_STALE_AFTER)
        .exclude(hostname__startswith=BEAT_PREFIX)
        .order_by("hostname")
    )


class AuditFilter(django_filters.FilterSet):
    actor = django_filters.CharFilter(field_name="actor_name", lookup_expr="iexact")
    object_type = django_filters.CharFilter(field_name="object_type")
    action = django_filters.CharFilter(field_name="action")
    date_from = django_filters.DateFilter(field_name="at", lookup_expr="date__gte")
    date_to = django_filters.DateFilter(field_name="at", lookup_expr="date__lte")

    class Meta:
        model = AuditEntry
        fields = ["actor", "object_type", "action", "date_from", "date_to"]


def audit_list(*, filters: dict[str, str] | None = None) -> AuditFilter:
    qs = AuditEntry.objects.all().order_by("-at", "-id")
    return AuditFilter(filters or {}, queryset=qs)


def audit_facets() -> dict[str, list[str]]:
    """Distinct object types and actions for the filter drop-downs (small sets)."""
    since = timezone.now() - timedelta(days=365)
    qs = AuditEntry.objects.filter(at__gte=since)
    return {
        "object_types": sorted(set(qs.values_list("object_type", flat=True).distinct())),
        "actions": sorted(set(qs.values_list("action", flat=True).distinct())),
    }
