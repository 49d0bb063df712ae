from __future__ import annotations

from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.core.exceptions import SuspiciousOperation
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.templatetags.static import static
from django.urls import include, path
from django.views import defaults
from django.views.decorators.http import require_GET
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

from portal import apis, views
from portal.exceptions import ApplicationError, request_error


def favicon_view(request: HttpRequest) -> HttpResponse:
    """Browsers ask for /favicon.ico whatever the page links: send them to the SVG icon,
    served with the other static files (WhiteNoise, hashed name when not DEBUG)."""
    return redirect(static("portal/favicon.svg"), permanent=False)


api_v1 = [
    path("auth/token/", apis.TokenApi.as_view(), name="auth-token"),
    path("auth/me/", apis.MeApi.as_view(), name="auth-me"),
    path("notifications/", apis.NotificationListApi.as_view(), name="notifications-list"),
    path("notifications/read/", apis.NotificationReadApi.as_view(), name="notifications-read"),
]

urlpatterns = [
    path("", views.dashboard_view, name="dashboard"),
    path("dashboard/panels/", views.dashboard_panels_view, name="dashboard-panels"),
    path("audit/", views.audit_view, name="audit"),
    path("notifications/", views.notifications_view, name="notifications"),
    path("favicon.ico", require_GET(favicon_view), name="favicon"),
    path("healthz", views.healthz_view, name="healthz"),
    path("metrics", views.MetricsView.as_view(), name="metrics"),
    path("accounts/login/", views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("admin/", admin.site.urls),
    path("api/v1/", include(api_v1)),
    path("api/v1/", include("threats.api_urls")),
    path("api/v1/", include("scans.api_urls")),
    path("api/v1/", include("releases.api_urls")),
    path("api/v1/", include("livehunt.api_urls")),
    path("", include("threats.urls")),
    path("", include("scans.urls")),
    path("", include("releases.urls")),
    path("", include("livehunt.urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="api-docs"),
]


def _wants_json(request: HttpRequest) -> bool:
    return request.path.startswith(("/api/", "/updates/"))


def handler404(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"message": "Not found.", "extra": {}}, status=404)
    return render(request, "404.html", status=404)


def handler400(request: HttpRequest, exception: Exception) -> HttpResponse:
    """Requests Django refused to read (a body over DATA_UPLOAD_MAX_MEMORY_SIZE: 413; too
    many fields: 400) get JSON under /api/, like every other API error."""
    if _wants_json(request):
        error = (
            request_error(exception)
            if isinstance(exception, SuspiciousOperation)
            else ApplicationError("Bad request.")
        )
        return JsonResponse(
            {"message": error.message, "extra": error.extra}, status=error.status_code
        )
    return defaults.bad_request(request, exception)


def handler403(request: HttpRequest, exception: Exception) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse({"message": "Your role does not allow this.", "extra": {}}, status=403)
    return render(request, "403.html", status=403)


def handler500(request: HttpRequest) -> HttpResponse:
    if _wants_json(request):
        return JsonResponse(
            {"message": "Internal error; it has been logged.", "extra": {}}, status=500
        )
    return render(request, "500.html", status=500)
