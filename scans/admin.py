from __future__ import annotations

from django.contrib import admin

from scans.models import Sample, ScanJob


class ScanInline(admin.TabularInline):
    model = ScanJob
    fields = ("status", "verdict", "score", "queued_at", "finished_at", "error")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Sample)
class SampleAdmin(admin.ModelAdmin):
    list_display = ["sha256", "package", "label", "verdict", "family", "size", "last_seen"]
    list_filter = ["label", "verdict"]
    search_fields = ["sha256", "sha1", "md5", "package"]
    list_select_related = ["family"]
    raw_id_fields = ["family", "uploaded_by"]
    readonly_fields = [
        "sha256",
        "sha1",
        "md5",
        "size",
        "file",
        "features",
        "features_file",
        "features_engine_version",
        "verdict",
        "first_seen",
        "last_seen",
        "uploaded_by",
    ]
    inlines = [ScanInline]


@admin.register(ScanJob)
class ScanJobAdmin(admin.ModelAdmin):
    list_display = ["id", "sample", "status", "verdict", "score", "queued_at", "finished_at"]
    list_filter = ["status", "verdict"]
    search_fields = ["sample__sha256", "sample__package"]
    list_select_related = ["sample"]
    raw_id_fields = ["sample", "requested_by"]
    readonly_fields = [f.name for f in ScanJob._meta.fields if f.name != "id"]
