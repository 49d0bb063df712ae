from __future__ import annotations

from collections.abc import Callable

from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.http import HttpRequest, HttpResponse

from portal.request_context import source_ip

# Paths that authenticate on their own (API tokens, device tokens, signed update files) or
# need none (health, static files, the log-in page itself).
OPEN_PREFIXES = (
    "/api/v1/",
    "/api/schema/",
    "/updates/",
    "/healthz",
    "/metrics",  # its own access rule: portal.metrics.metrics_scrape_allowed
    "/static/",
    "/accounts/login/",
)


class RequestContextMiddleware:
    """Keeps the source IP for the audit log. REMOTE_ADDR only: put a proxy's address
    rewriting (e.g. gunicorn's --forwarded-allow-ips) in front if the portal sits behind one."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        token = source_ip.set(request.META.get("REMOTE_ADDR") or None)
        try:
            return self.get_response(request)
        finally:
            source_ip.reset(token)


class LoginRequiredMiddleware:
    """Every page but log-in needs a log-in; APIs answer 401/403 JSON through DRF instead."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.user.is_authenticated or request.path.startswith(OPEN_PREFIXES):
            return self.get_response(request)
        return redirect_to_login(request.get_full_path(), settings.LOGIN_URL)
