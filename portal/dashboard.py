"""Dashboard panels. Each app adds its figures by appending a provider to ``PROVIDERS``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.http import HttpRequest

from portal.selectors import health_check, live_workers

Panel = dict[str, Any]
PROVIDERS: list[Callable[[HttpRequest], list[Panel]]] = []


def _system(request: HttpRequest) -> list[Panel]:
    checks = health_check()
    workers = list(live_workers())
    return [
        {
            "title": "System",
            "rows": [(name.capitalize(), state) for name, state in checks.items()],
            "footer": f"{len(workers)} live worker(s): "
            + (", ".join(w.hostname for w in workers) or "none"),
        }
    ]


def panels(request: HttpRequest) -> list[Panel]:
    out = _system(request)
    for provider in PROVIDERS:
        out.extend(provider(request))
    return out
