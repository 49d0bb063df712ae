from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.db.models import QuerySet
from django.http import HttpRequest

from portal.models import User
from releases.models import AdoptionSnapshot, Device, Release, ReleaseFile
from releases.services import device_token_forget
from releases.services_reports import device_delete


class ReleaseFileInline(admin.TabularInline):
    model = ReleaseFile
    extra = 0
    can_delete = False
    readonly_fields = ["kind", "base", "target", "size", "sha256", "listed"]


@admin.register(Release)
class ReleaseAdmin(admin.ModelAdmin):
    """Read-only: releases change through the services (audited), never by hand."""

    list_display = ["number", "state", "signature_count", "rollout_percent", "halted", "created_at"]
    list_filter = ["state", "halted"]
    exclude = ["pins"]
    readonly_fields = [
        f.name for f in Release._meta.get_fields() if f.concrete and f.name != "pins"
    ]
    inlines = [ReleaseFileInline]

    def has_add_permission(self, request: object) -> bool:
        return False

    def has_change_permission(self, request: object, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: object, obj: object = None) -> bool:
        return False


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    list_display = [
        "device_id",
        "channel",
        "model",
        "app_version",
        "installed_release",
        "last_seen_at",
    ]
    list_filter = ["channel", "app_version"]
    search_fields = ["device_id", "model"]
    readonly_fields = ["device_id", "token_hash", "token_prefix", "rollout_bucket", "registered_at"]

    # the update check authenticates from a cache (releases.authentication.cached_device):
    # an edit here (a revocation, a channel) must reach it at once (device_delete does too)
    def save_model(self, request: Any, obj: Device, form: Any, change: bool) -> None:
        super().save_model(request, obj, form, change)
        device_token_forget(obj)

    # deleting goes through the service: raw reports and batches go, roll-ups stay, audited
    def delete_model(self, request: HttpRequest, obj: Device) -> None:
        device_delete(device=obj, by=_user(request), reason="deleted in the Django admin")

    def delete_queryset(self, request: HttpRequest, queryset: QuerySet[Device]) -> None:
        for device in queryset:
            device_delete(device=device, by=_user(request), reason="deleted in the Django admin")


def _user(request: HttpRequest) -> User:
    assert isinstance(request.user, User)
    return request.user


@admin.register(AdoptionSnapshot)
class AdoptionSnapshotAdmin(admin.ModelAdmin):
    list_display = ["day", "release_number", "devices"]
