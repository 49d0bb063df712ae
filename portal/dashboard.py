"""Dashboard panels. Each app adds its figures by appending a provider to ``PROVIDERS``.

A panel is a dict: ``title``; ``rows`` of ``(label, value)`` or ``(label, value, url)`` (a
figure with a URL is a link to the list it counts); ``events`` (what happened recently: dicts
with ``when``, ``text`` and ``url``); ``html`` (e.g. a chart from ``row_chart``);
``footer``. Charts are inline SVG drawn here, so no page loads a script or a CDN for them."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from django.http import HttpRequest
from django.utils import timezone
from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

from portal.selectors import health_check, live_workers

Panel = dict[str, Any]
PROVIDERS: list[Callable[[HttpRequest], list[Panel]]] = []

# "this week" on the dashboard: the last seven days, today included
WEEK_DAYS = 7


def week_start() -> date:
    """The first day of "this week" (the local date six days ago)."""
    return timezone.localdate() - timedelta(days=WEEK_DAYS - 1)


def week_start_at() -> datetime:
    """The first moment of "this week", aware."""
    return timezone.make_aware(datetime.combine(week_start(), datetime.min.time()))


@dataclass(frozen=True)
class Bar:
    label: str  # under a column, or before a row
    value: int
    url: str | None = None  # the list of what the bar counts
    title: str = ""  # the tooltip; the label and value by default


def _title(bar: Bar) -> str:
    return bar.title or f"{bar.label}: {bar.value:,}"


def row_chart(bars: Sequence[Bar], *, label: str, empty: str) -> SafeString:
    """Horizontal bars (e.g. one per family): the name, a bar, the figure; names and figures
    are links. HTML rows with an SVG bar each, so long names wrap instead of shrinking."""
    if not bars:
        return format_html('<p class="muted">{}</p>', empty)
    peak = max(b.value for b in bars) or 1
    rows = []
    for bar in bars:
        name = format_html('<a href="{}">{}</a>', bar.url, bar.label) if bar.url else bar.label
        figure = (
            format_html('<a href="{}">{}</a>', bar.url, f"{bar.value:,}")
            if bar.url
            else f"{bar.value:,}"
        )
        rows.append(
            format_html(
                '<li title="{}"><span class="name">{}</span>'
                '<svg viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true">'
                '<rect width="{}" height="10" rx="1"></rect></svg>'
                '<span class="figure">{}</span></li>',
                _title(bar),
                name,
                max(1, round(100 * bar.value / peak)),
                figure,
            )
        )
    return format_html(
        '<ol class="chart rows" aria-label="{}">{}</ol>',
        label,
        format_html_join("", "{}", ((r,) for r in rows)),
    )


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


def _rows(panel: Panel) -> Panel:
    """Rows as dicts the template reads: label, value, and the URL when the figure has one."""
    rows = [
        {"label": row[0], "value": row[1], "url": row[2] if len(row) > 2 else None}
        for row in panel.get("rows") or ()
    ]
    return {**panel, "rows": rows}


def panels(request: HttpRequest) -> list[Panel]:
    out = _system(request)
    for provider in PROVIDERS:
        out.extend(provider(request))
    return [_rows(panel) for panel in out]
