"""Prometheus metrics: HTTP requests of this machine's web processes, and fleet-wide figures.

Two kinds of figures, kept apart on purpose (docs/observability.md):

- **HTTP requests** are counted in the web processes by ``RequestMetricsMiddleware``, in
  prometheus_client's multiprocess mode (settings.PROMETHEUS_MULTIPROC_DIR), so one scrape of
  ``/metrics`` sums every gunicorn worker of this machine.
- **Fleet figures** (queue depth, scans, hunt chunks, releases, worker heartbeats) are read at
  scrape time from the database and the broker, which every machine shares, so they are right
  whichever machine runs the workers. Each app adds its own as a provider
  (``register_fleet_metrics``), like the dashboard's panels; portal reads only its own tables.
"""

from __future__ import annotations

import hmac
import ipaddress
import logging
import os
import time
from collections import Counter as Tally
from collections.abc import Callable, Iterable, Iterator
from datetime import datetime
from functools import lru_cache

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve
from django.utils import timezone
from prometheus_client import CollectorRegistry, Counter, Histogram, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from portal.models import WorkerHeartbeat

log = logging.getLogger(__name__)

if not getattr(values.ValueClass, "_multiprocess", False):  # pragma: no cover - misconfiguration
    raise ImproperlyConfigured(
        "prometheus_client was imported before portal.settings set PROMETHEUS_MULTIPROC_DIR; "
        "HTTP metrics would stay inside each process. Import it only after Django's settings."
    )

# --- HTTP requests, per web process, summed over processes at scrape time -------------------
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# Seconds; uploads of large APKs are the slow end.
HTTP_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)

http_requests = Counter(
    "portal_http_requests",
    "HTTP requests answered, by view (URL name or route, never the raw path), method and status.",
    ["view", "method", "status"],
    registry=None,
)
http_request_duration = Histogram(
    "portal_http_request_duration_seconds",
    "Time from the request reaching Django to the response leaving it, by view and method.",
    ["view", "method"],
    buckets=HTTP_BUCKETS,
    registry=None,
)


def view_label(request: HttpRequest) -> str:
    """The resolved URL name (``sample-detail``, ``admin:index``) or, for an unnamed URL, its
    route (``api/v1/samples/<int:pk>/``): a bounded set of values, never an id."""
    match = getattr(request, "resolver_match", None)
    if match is None:
        # answered before URL resolution (a log-in redirect, a static file): resolve it here
        if request.path_info.startswith(settings.STATIC_URL):
            return "static"
        try:
            match = resolve(request.path_info, getattr(request, "urlconf", None))
        except Resolver404:
            return "<unmatched>"
    return match.view_name or match.route or "<unnamed>"


class RequestMetricsMiddleware:
    """Counts and times every response. First in MIDDLEWARE, so it sees the final status."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        start = time.perf_counter()
        response = self.get_response(request)
        elapsed = time.perf_counter() - start
        view = view_label(request)
        method = request.method if request.method in HTTP_METHODS else "other"
        http_requests.labels(view, method, str(response.status_code)).inc()
        http_request_duration.labels(view, method).observe(elapsed)
        return response


# --- who may scrape ---------------------------------------------------------------------------
@lru_cache(maxsize=8)
def _networks(
    entries: tuple[str, ...],
) -> tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...]:
    networks = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            # fail closed: a typo allows nobody rather than somebody
            log.error("METRICS_ALLOWED_IPS: %r is not an address or network; ignored", entry)
    return tuple(networks)


def metrics_scrape_allowed(*, remote_addr: str | None, authorization: str | None) -> bool:
    """True for an address in METRICS_ALLOWED_IPS, or for ``Bearer <METRICS_TOKEN>`` when a
    token is set. REMOTE_ADDR only (behind a proxy on this machine every request comes from
    127.0.0.1: see docs/observability.md)."""
    token = settings.METRICS_TOKEN
    scheme, _, given = (authorization or "").partition(" ")
    if (
        token
        and scheme.lower() == "bearer"
        and given
        and hmac.compare_digest(given.strip().encode(), token.encode())
    ):
        return True
    if not remote_addr:
        return False
    try:
        address = ipaddress.ip_address(remote_addr)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED_IPS)))


# --- fleet figures, read at scrape time ---------------------------------------------------------
MetricsProvider = Callable[[], Iterable[Metric]]
# (source name, provider) pairs; apps add theirs in AppConfig.ready().
PROVIDERS: list[tuple[str, MetricsProvider]] = []


def register_fleet_metrics(source: str, provider: MetricsProvider) -> None:
    """Add an app's scrape-time figures. ``source`` names it in ``portal_metrics_source_up``."""
    if all(name != source for name, _ in PROVIDERS):
        PROVIDERS.append((source, provider))


class FleetCollector(Collector):
    """Calls every provider at scrape time. A failing provider (database down, a bug) costs
    only its own figures and shows as ``portal_metrics_source_up{source=...} 0``."""

    def collect(self) -> Iterator[Metric]:
        up = GaugeMetricFamily(
            "portal_metrics_source_up",
            "1 if this scrape read the source's figures, 0 if reading them failed (see logs).",
            labels=["source"],
        )
        for source, provider in PROVIDERS:
            try:
                families = list(provider())
            except Exception:
                log.warning("metrics: reading %s failed", source, exc_info=True)
                up.add_metric([source], 0)
                continue
            up.add_metric([source], 1)
            yield from families
        yield up


def metrics_registry() -> CollectorRegistry:
    """What one scrape returns: every web process's HTTP metrics, then the fleet figures."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(settings.PROMETHEUS_MULTIPROC_DIR))
    registry.register(FleetCollector())
    return registry


def age_seconds(moment: datetime | None, now: datetime) -> float:
    return max(0.0, (now - moment).total_seconds()) if moment is not None else 0.0


# --- portal's own providers: the broker's queues and the workers' heartbeats -------------------
BROKER_TIMEOUT_SECONDS = 1.0


def queue_depths() -> dict[str, int] | None:
    """Messages waiting per queue, or None when the broker could not be asked. Raises
    NotImplementedError for a broker whose queues we do not measure (e.g. AMQP)."""
    url = settings.CELERY_BROKER_URL
    queues = list(settings.CELERY_TASK_QUEUES_NAMES)
    try:
        if url.startswith("filesystem://"):
            return _filesystem_depths(queues)
        if url.startswith(("redis://", "rediss://")):
            return _redis_depths(url, queues)
    except Exception:
        log.warning("metrics: the broker did not answer", exc_info=True)
        return None
    raise NotImplementedError(url.partition(":")[0])


def _filesystem_depths(queues: list[str]) -> dict[str, int]:
    # kombu names a message <ms>_<uuid>.<queue>.msg (kombu/transport/filesystem.py)
    folder = settings.CELERY_BROKER_TRANSPORT_OPTIONS.get(
        "data_folder_in", settings.BROKER_DIR / "queue"
    )
    wanted = {f"{queue}.msg": queue for queue in queues}
    depths = dict.fromkeys(queues, 0)
    with os.scandir(str(folder)) as entries:
        for entry in entries:
            queue = wanted.get(entry.name.partition(".")[2])
            if queue is not None:
                depths[queue] += 1
    return depths


def _redis_depths(url: str, queues: list[str]) -> dict[str, int]:
    import redis
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # kombu keeps a queue's messages in a list named after it (plus any global_keyprefix)
    prefix = str(settings.CELERY_BROKER_TRANSPORT_OPTIONS.get("global_keyprefix", ""))
    client = redis.Redis.from_url(
        url,
        socket_timeout=BROKER_TIMEOUT_SECONDS,
        socket_connect_timeout=BROKER_TIMEOUT_SECONDS,
        retry=Retry(NoBackoff(), 0),
    )
    try:
        pipe = client.pipeline(transaction=False)
        for queue in queues:
            pipe.llen(prefix + queue)
        return {queue: int(n) for queue, n in zip(queues, pipe.execute(), strict=True)}
    finally:
        client.close()


def broker_metrics() -> Iterator[Metric]:
    try:
        depths = queue_depths()
    except NotImplementedError:
        return  # nothing we can measure on this broker
    up = GaugeMetricFamily(
        "portal_broker_up", "1 if the broker answered the queue-depth query, else 0."
    )
    up.add_metric([], 0 if depths is None else 1)
    yield up
    if depths is not None:
        depth = GaugeMetricFamily(
            "portal_celery_queue_length",
            "Messages waiting in the broker per Celery queue (not yet taken by a worker).",
            labels=["queue"],
        )
        for queue, n in depths.items():
            depth.add_metric([queue], n)
        yield depth


def worker_metrics() -> Iterator[Metric]:
    """From WorkerHeartbeat: one row per worker, pruned after a day, so a bounded read."""
    now = timezone.now()
    rows = list(WorkerHeartbeat.objects.values_list("hostname", "queues", "last_seen"))
    age = GaugeMetricFamily(
        "portal_worker_heartbeat_age_seconds",
        "Seconds since each Celery worker (by hostname) last wrote its heartbeat.",
        labels=["hostname"],
    )
    live: Tally[str] = Tally(dict.fromkeys(settings.CELERY_TASK_QUEUES_NAMES, 0))
    fresh = now - settings.WORKER_STALE_AFTER
    for hostname, queues, last_seen in rows:
        age.add_metric([hostname], age_seconds(last_seen, now))
        if last_seen >= fresh:
            live.update(str(queue) for queue in queues or [])
    yield age
    workers = GaugeMetricFamily(
        "portal_workers_live",
        "Workers consuming each queue whose heartbeat is younger than WORKER_STALE_AFTER.",
        labels=["queue"],
    )
    for queue, n in sorted(live.items()):
        workers.add_metric([queue], n)
    yield workers


register_fleet_metrics("broker", broker_metrics)
register_fleet_metrics("workers", worker_metrics)
