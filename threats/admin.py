"""The signature database in the Django admin (for the admin role).

Signatures and revisions are read-only here: the workflow (four eyes, audit rows) lives in
the services and the pages, and an admin form would bypass it.
"""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from threats.models import Family, Signature, SignatureRevision, Tag


@admin.register(Family)
class FamilyAdmin(admin.ModelAdmin):
    list_display = ("name", "category", "severity", "created_at")
    list_filter = ("category", "severity")
    search_fields = ("name", "description")


@admin.register(Tag)
class TagAdmin(admin.ModelAdmin):
    search_fields = ("name",)


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class RevisionInline(admin.TabularInline):
    model = SignatureRevision
    fk_name = "signature"
    fields = (
        "number",
        "state",
        "severity",
        "family",
        "author",
        "last_editor",
        "reviewed_by",
        "reviewed_at",
    )
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True


@admin.register(Signature)
class SignatureAdmin(_ReadOnly):
    list_display = ("id", "kind", "family", "severity", "status", "author", "updated_at")
    list_filter = ("kind", "status", "severity")
    search_fields = ("search_text",)
    list_select_related = ("family", "author", "current_revision")
    raw_id_fields = ("current_revision", "deployed_revision")
    inlines = [RevisionInline]
    show_full_result_count = False  # 100,000 rows: no COUNT(*) on every page


@admin.register(SignatureRevision)
class SignatureRevisionAdmin(_ReadOnly):
    list_display = (
        "signature_id",
        "number",
        "state",
        "severity",
        "family",
        "author",
        "reviewed_by",
        "created_at",
    )
    list_filter = ("state", "severity")
    list_select_related = ("author", "reviewed_by", "family")
    raw_id_fields = ("signature",)
    show_full_result_count = False
