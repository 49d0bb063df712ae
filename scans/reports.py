"""A scan's full report (the JSON a researcher downloads, docs/reports.md), and what a file is
when it is no app (the reason a failed scan gives).

``scan_report`` gathers in one document what the scan page shows: the sample's hashes and
metadata, its features (the stored summary and a short digest of it), the matches with their
evidence, the ruleset, the timings and the verdict. ``ScanReportSerializer`` is its shape, for
the OpenAPI schema; the report is built as plain data so the file and the API say the same.
"""

from __future__ import annotations

from datetime import datetime
from typing import IO, Any

from django.urls import reverse
from django.utils import timezone
from rest_framework import serializers

from engine import ENGINE_VERSION
from scans.android_permissions import protection_level
from scans.models import ScanJob

REPORT_VERSION = 1


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def _features_digest(features: dict[str, Any] | None) -> dict[str, Any] | None:
    """The few facts a reader looks at first (the full summary is beside it)."""
    if not features:
        return None
    manifest = features.get("manifest") or {}
    permissions = list(manifest.get("permissions") or ())
    indicators = features.get("indicators") or {}
    return {
        "file_type": features.get("file_type"),
        "package": manifest.get("package"),
        "app_label": manifest.get("app_label"),
        "version_name": manifest.get("version_name"),
        "version_code": manifest.get("version_code"),
        "min_sdk": manifest.get("min_sdk"),
        "target_sdk": manifest.get("target_sdk"),
        "permissions": len(permissions),
        "dangerous_permissions": sorted(
            p for p in permissions if protection_level(p) == "dangerous"
        ),
        "components": len(manifest.get("components") or ()),
        "certificates": [c.get("sha256") for c in features.get("certificates") or ()],
        "signing_schemes": list(features.get("signing_schemes") or ()),
        "dex_files": len(features.get("dex") or ()),
        "native_libs": len(features.get("native_libs") or ()),
        "tamper_flags": [t.get("code") for t in features.get("tamper") or ()],
        "indicators": {
            kind: len(indicators.get(kind) or ())
            for kind in ("urls", "domains", "ips", "short_codes")
        },
    }


def scan_report(scan: ScanJob) -> dict[str, Any]:
    """Everything known about ``scan`` as JSON-able data (``ScanReportSerializer``'s shape)."""
    sample = scan.sample
    features = sample.features or None
    return {
        "report_version": REPORT_VERSION,
        "generated_at": timezone.now().isoformat(),
        "portal_engine_version": ENGINE_VERSION,
        "scan": {
            "id": scan.pk,
            "url": reverse("scans:scan-detail", args=[scan.pk]),
            "status": scan.status,
            "error": scan.error,
            "requested_by": scan.requested_by.get_username() if scan.requested_by else None,
        },
        "verdict": scan.verdict or None,
        "score": scan.score,
        "engine_version": scan.engine_version,
        "sample": {
            "sha256": sample.sha256,
            "sha1": sample.sha1,
            "md5": sample.md5,
            "size": sample.size,
            "original_name": sample.original_name,
            "label": sample.label,
            "family": sample.family.name if sample.family else None,
            "package": sample.package,
            "app_label": sample.app_label,
            "first_seen": _iso(sample.first_seen),
            "last_seen": _iso(sample.last_seen),
            "url": reverse("scans:sample-detail", args=[sample.sha256]),
        },
        "features_engine_version": sample.features_engine_version,
        "features_summary": _features_digest(features),
        "features": features,
        "matches": [
            {
                "signature_id": m.get("signature_id"),
                "revision": m.get("revision"),
                "name": m.get("name"),
                "kind": m.get("kind"),
                "severity": m.get("severity"),
                "scoring": bool(m.get("scoring")),
                "evidence": [str(e) for e in m.get("evidence") or ()],
            }
            for m in scan.matches or ()
        ],
        "ruleset": {
            "release": scan.ruleset_release,
            "revisions": [list(r) for r in scan.ruleset_revisions or ()],
            "key": scan.ruleset_key,
        },
        "timings": {
            "queued_at": _iso(scan.queued_at),
            "started_at": _iso(scan.started_at),
            "finished_at": _iso(scan.finished_at),
            "analyse_ms": scan.analyse_ms,
            "match_ms": scan.match_ms,
            "duration_ms": scan.duration_ms,
            "attempts": scan.attempts,
            "worker": scan.worker,
        },
    }


def report_filename(scan: ScanJob) -> str:
    return f"scan-{scan.pk}-{scan.sample.sha256[:12]}.json"


# --- the report's shape (for the schema) ---------------------------------------------------------
class _ReportScanSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    url = serializers.CharField()
    status = serializers.ChoiceField(choices=["queued", "running", "succeeded", "failed"])
    error = serializers.CharField(allow_blank=True, help_text="Why it failed (empty if not).")
    requested_by = serializers.CharField(allow_null=True)


class _ReportSampleSerializer(serializers.Serializer):
    sha256 = serializers.CharField()
    sha1 = serializers.CharField()
    md5 = serializers.CharField()
    size = serializers.IntegerField()
    original_name = serializers.CharField(allow_blank=True)
    # "label" shadows Field.label in the stubs; it is the report key here
    label = serializers.CharField()  # type: ignore[assignment]
    family = serializers.CharField(allow_null=True)
    package = serializers.CharField(allow_blank=True)
    app_label = serializers.CharField(allow_blank=True)
    first_seen = serializers.DateTimeField()
    last_seen = serializers.DateTimeField()
    url = serializers.CharField()


class _ReportMatchSerializer(serializers.Serializer):
    signature_id = serializers.IntegerField(allow_null=True)
    revision = serializers.IntegerField(allow_null=True)
    name = serializers.CharField(allow_null=True)
    kind = serializers.CharField(allow_null=True)
    severity = serializers.CharField(allow_null=True)
    scoring = serializers.BooleanField(help_text="False for noisy signatures: reported only.")
    evidence = serializers.ListField(child=serializers.CharField())


class _ReportRulesetSerializer(serializers.Serializer):
    release = serializers.IntegerField(
        allow_null=True, help_text="The published release the scan matched against."
    )
    revisions = serializers.ListField(
        child=serializers.ListField(child=serializers.IntegerField()),
        help_text="[signature id, revision] pairs when no release was used (retro-hunts).",
    )
    key = serializers.CharField(allow_blank=True)


class _ReportTimingsSerializer(serializers.Serializer):
    queued_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    analyse_ms = serializers.IntegerField(allow_null=True)
    match_ms = serializers.IntegerField(allow_null=True)
    duration_ms = serializers.IntegerField(allow_null=True)
    attempts = serializers.IntegerField()
    worker = serializers.CharField(allow_blank=True, help_text="node/host:pid that ran it.")


class ScanReportSerializer(serializers.Serializer):
    report_version = serializers.IntegerField()
    generated_at = serializers.DateTimeField()
    portal_engine_version = serializers.IntegerField()
    scan = _ReportScanSerializer()
    verdict = serializers.ChoiceField(choices=["malicious", "suspicious", "clean"], allow_null=True)
    score = serializers.IntegerField(allow_null=True)
    engine_version = serializers.IntegerField(allow_null=True)
    sample = _ReportSampleSerializer()
    features_engine_version = serializers.IntegerField(allow_null=True)
    features_summary = serializers.JSONField(
        allow_null=True, help_text="Package, version, SDKs, permission and indicator counts."
    )
    features = serializers.JSONField(
        allow_null=True, help_text="The stored features summary (DEX tables as counts)."
    )
    matches = _ReportMatchSerializer(many=True)
    ruleset = _ReportRulesetSerializer()
    timings = _ReportTimingsSerializer()

    class Meta:
        ref_name = "ScanReport"


# --- what a file is, when it is no app --------------------------------------------------------
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"dex\n", "a DEX file, not an APK (an APK is a ZIP archive holding classes.dex)"),
    (b"\x7fELF", "an ELF binary (a native library or program), not a ZIP archive"),
    (b"%PDF", "a PDF document, not a ZIP archive"),
    (b"\x89PNG", "a PNG image, not a ZIP archive"),
    (b"\xff\xd8\xff", "a JPEG image, not a ZIP archive"),
    (b"GIF8", "a GIF image, not a ZIP archive"),
    (b"\x1f\x8b", "a gzip file, not a ZIP archive"),
    (b"Rar!", "a RAR archive, not a ZIP archive"),
    (b"7z\xbc\xaf", "a 7-Zip archive, not a ZIP archive"),
    (b"\x03\x00\x08\x00", "a binary Android XML file, not a ZIP archive"),
    (b"MZ", "a Windows executable, not a ZIP archive"),
    (b"\xca\xfe\xba\xbe", "a Java class file, not a ZIP archive"),
)
_ZIP = (b"PK\x03\x04", b"PK\x05\x06", b"PK\x07\x08")


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:  # a multi-byte character cut at the end is still text
        if exc.start < len(head) - 3:
            return False
    return True


def file_kind(head: bytes, size: int) -> str | None:
    """What a file is from its first bytes, in words ("a text file, not a ZIP archive"), or
    None when it starts like a ZIP archive (the engine's own reason says what is wrong)."""
    if size == 0:
        return "an empty file (0 bytes)"
    if head.startswith(_ZIP):
        return None
    for magic, words in _MAGIC:
        if head.startswith(magic):
            return words
    if _looks_like_text(head):
        return "a text file, not a ZIP archive"
    return "unknown binary data, not a ZIP archive"


def not_an_app_reason(fh: IO[bytes], size: int, engine_message: str) -> str:
    """The failure reason for a file the engine refused: what the file is, then the engine's
    words (``fh`` is the file; read from its start). A ZIP archive keeps the engine's words,
    which say what it lacks ("not an APK: the archive has no AndroidManifest.xml")."""
    fh.seek(0)
    kind = file_kind(fh.read(512), size)
    if kind is None:  # a ZIP archive: the engine says what it lacks (no AndroidManifest.xml)
        return engine_message
    if size == 0 or engine_message.startswith(("not a ZIP", "not a valid ZIP")):
        return f"not an app: {kind}"
    return f"not an app: {kind}; {engine_message}"
