from __future__ import annotations

from typing import Any

from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import permission_required
from django.contrib.auth.forms import AuthenticationForm
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils.decorators import method_decorator
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client.django import PrometheusDjangoView

from portal import dashboard
from portal.htmx import is_htmx
from portal.metrics import metrics_registry, metrics_scrape_allowed
from portal.models import User
from portal.roles import user_roles
from portal.selectors import audit_facets, audit_list, health_check, queues_without_worker
from portal.services import (
    login_failure_record,
    login_locked_for,
    login_locked_message,
    login_success_record,
)


class LoginView(auth_views.LoginView):
    """Django's log-in page, refusing further tries after repeated failures of this username
    (from this IP, or from many) with 429 and Retry-After (portal.services)."""

    template_name = "registration/login.html"
    redirect_authenticated_user = True

    def _ip(self) -> str | None:
        return self.request.META.get("REMOTE_ADDR") or None

    def _locked(self, wait: int) -> HttpResponse:
        form = self.get_form()
        form.errors.clear()
        response = self.render_to_response(
            self.get_context_data(form=form, locked=login_locked_message(wait)), status=429
        )
        response["Retry-After"] = str(wait)
        return response

    def post(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        username = request.POST.get("username", "")
        wait = login_locked_for(username=username, ip=self._ip())
        if wait:
            return self._locked(wait)
        return super().post(request, *args, **kwargs)

    def form_invalid(self, form: AuthenticationForm) -> HttpResponse:
        login_failure_record(username=self.request.POST.get("username", ""), ip=self._ip())
        return super().form_invalid(form)

    def form_valid(self, form: AuthenticationForm) -> HttpResponse:
        login_success_record(username=form.get_user().get_username(), ip=self._ip())
        return super().form_valid(form)


def dashboard_view(request: HttpRequest) -> HttpResponse:
    return render(request, "portal/dashboard.html", {"panels": dashboard.panels(request)})


def dashboard_panels_view(request: HttpRequest) -> HttpResponse:
    """The figures alone, re-fetched by htmx every few seconds."""
    return render(request, "portal/_dashboard_panels.html", {"panels": dashboard.panels(request)})


def notifications_view(request: HttpRequest) -> HttpResponse:
    """The person's notifications, newest first; POST marks them all read."""
    from portal.notifications import notifications_for, notifications_mark_read

    if not user_roles(request.user):
        raise PermissionDenied
    user = request.user
    assert isinstance(user, User)
    if request.method == "POST":
        notifications_mark_read(user=user)
        return redirect("notifications")
    return render(request, "portal/notifications.html", {"notifications": notifications_for(user)})


@permission_required("portal.view_auditentry", raise_exception=True)
def audit_view(request: HttpRequest) -> HttpResponse:
    filterset = audit_list(filters=request.GET.dict())
    page = Paginator(filterset.qs.select_related("actor"), 50).get_page(request.GET.get("page"))
    query = request.GET.copy()
    query.pop("page", None)
    context = {"filter": filterset, "page": page, "query": query.urlencode(), **audit_facets()}
    template = "portal/_audit_rows.html" if is_htmx(request) else "portal/audit.html"
    return render(request, template, context)


@never_cache
@require_GET
def healthz_view(request: HttpRequest) -> JsonResponse:
    checks = health_check()
    down = sorted(name for name, state in checks.items() if state != "ok")
    body: dict[str, Any] = {"status": "ok" if not down else "down", **checks}
    if down:
        body["message"] = f"Down: {', '.join(down)}."
    if checks["worker"] != "ok":
        idle = queues_without_worker()
        body["queues_without_worker"] = idle
        body["message"] += f" No live worker consumes: {', '.join(idle)}."
    return JsonResponse(body, status=503 if down else 200)


@method_decorator(never_cache, name="dispatch")
class MetricsView(PrometheusDjangoView):
    """``GET /metrics`` for Prometheus: allowed addresses or the metrics token only."""

    http_method_names = ["get", "head"]

    def get(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not metrics_scrape_allowed(
            remote_addr=request.META.get("REMOTE_ADDR"),
            authorization=request.headers.get("Authorization"),
        ):
            return JsonResponse(
                {
                    "message": "Metrics are served only to allowed addresses or with the token.",
                    "extra": {},
                },
                status=403,
            )
        self.registry = metrics_registry()
        # prometheus_client's Django view is untyped
        response: HttpResponse = super().get(request, *args, **kwargs)  # type: ignore[no-untyped-call]
        return response
