"""Releases, their update files, devices and adoption.

A ``Release`` is an immutable, numbered snapshot of the shipping signature revisions. The
snapshot is *not* a million rows: ``pins`` holds the sorted (signature id, revision id, noisy)
triples as one zstd-compressed blob (``releases.pins``), a few bytes per signature, from
which diffs between any two releases are computed. The records themselves are in the full
bundle file the release build writes (``ReleaseFile``), which is also what
``releases.public.release_records`` reads.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q


class ReleaseState(models.TextChoices):
    BUILDING = "building", "Building"
    PUBLISHED = "published", "Published"
    FAILED = "failed", "Failed"


class Release(models.Model):
    number = models.PositiveIntegerField(unique=True)
    state = models.CharField(
        max_length=16, choices=ReleaseState.choices, default=ReleaseState.BUILDING, db_index=True
    )
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="releases"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    published_at = models.DateTimeField(null=True, blank=True)
    notes = models.TextField(blank=True, help_text="Why this release: shown to reviewers")
    # the packed (signature id, revision id, noisy) triples, see releases.pins
    pins = models.BinaryField()
    state_sha256 = models.CharField(max_length=64, blank=True)
    signature_count = models.PositiveIntegerField(default=0)
    noisy_count = models.PositiveIntegerField(default=0)
    added_count = models.PositiveIntegerField(default=0)
    removed_count = models.PositiveIntegerField(default=0)
    changed_count = models.PositiveIntegerField(default=0)
    rollout_percent = models.PositiveSmallIntegerField(
        default=100, validators=[MinValueValidator(1), MaxValueValidator(100)]
    )
    halted = models.BooleanField(default=False)
    halted_at = models.DateTimeField(null=True, blank=True)
    build_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-number"]
        constraints = [
            models.CheckConstraint(
                condition=Q(rollout_percent__gte=1) & Q(rollout_percent__lte=100),
                name="release_rollout_percent_range",
            ),
        ]
        permissions = [
            ("publish_release", "Can publish a release"),
            ("rollout_release", "Can change a release's rollout or halt it"),
        ]

    def __str__(self) -> str:
        return f"Release {self.number}"


class FileKind(models.TextChoices):
    FULL = "full", "Full bundle"
    DELTA = "delta", "Delta"


class ReleaseFile(models.Model):
    """A TUF target a release build wrote: the full bundle or a delta from ``base``."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="files")
    kind = models.CharField(max_length=8, choices=FileKind.choices)
    base = models.PositiveIntegerField(null=True, blank=True)  # the delta's base release
    target = models.CharField(max_length=200)  # the TUF target path, e.g. delta-4-5.bin
    size = models.PositiveBigIntegerField()
    sha256 = models.CharField(max_length=64)
    # False once a later release de-listed it from targets.json (delta retention)
    listed = models.BooleanField(default=True)

    class Meta:
        ordering = ["release_id", "kind", "-base"]
        constraints = [
            models.UniqueConstraint(fields=["release", "kind", "base"], name="release_file_once"),
            models.UniqueConstraint(
                fields=["release"], condition=Q(kind="full"), name="release_one_full"
            ),
        ]

    def __str__(self) -> str:
        return self.target


class Channel(models.TextChoices):
    STABLE = "stable", "Stable"
    BETA = "beta", "Beta"


class Device(models.Model):
    """An enrolled phone. Only the SHA-256 of its token is stored."""

    device_id = models.CharField(max_length=36, unique=True)  # a UUID4, public
    token_hash = models.CharField(max_length=64, unique=True)
    token_prefix = models.CharField(max_length=8)
    # sha256(device_id) mod 100: a device gets a release when bucket < rollout percent
    rollout_bucket = models.PositiveSmallIntegerField()
    channel = models.CharField(
        max_length=8, choices=Channel.choices, default=Channel.STABLE, db_index=True
    )
    model = models.CharField(max_length=100, blank=True)
    os_version = models.CharField(max_length=100, blank=True)
    app_version = models.CharField(max_length=50, blank=True, db_index=True)
    engine_version = models.PositiveIntegerField(default=1)
    installed_release = models.PositiveIntegerField(default=0, db_index=True)
    registered_at = models.DateTimeField(auto_now_add=True)
    last_seen_at = models.DateTimeField(null=True, blank=True, db_index=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-registered_at"]

    def __str__(self) -> str:
        return self.device_id


class AdoptionSnapshot(models.Model):
    """How many devices had each release installed on a day (written by a beat task)."""

    day = models.DateField()
    release_number = models.PositiveIntegerField()  # 0: nothing installed yet
    devices = models.PositiveIntegerField()

    class Meta:
        ordering = ["-day", "-release_number"]
        constraints = [
            models.UniqueConstraint(fields=["day", "release_number"], name="adoption_once_a_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} r{self.release_number}: {self.devices}"


# --- detection reports from phones (docs/privacy.md) ---------------------------------------
# Raw reports reference their device and are kept DEVICE_REPORT_RETENTION_DAYS; the daily
# roll-ups carry no device id and are what stays. ``releases.services_reports`` writes both.


class ReportBatch(models.Model):
    """One batch a device posted: its idempotency key (a repeat stores nothing new)."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="report_batches")
    batch_id = models.UUIDField()
    received_at = models.DateTimeField(db_index=True)
    installed_release = models.PositiveIntegerField()
    engine_version = models.PositiveIntegerField()
    detections = models.PositiveIntegerField()

    class Meta:
        ordering = ["-received_at"]
        constraints = [
            models.UniqueConstraint(fields=["device", "batch_id"], name="report_batch_once"),
        ]

    def __str__(self) -> str:
        return str(self.batch_id)


class DetectionReport(models.Model):
    """What one phone detected: a signature revision of a release on one app. No personal data:
    the app's facts (hashes, package name) and the device, nothing about its owner."""

    device = models.ForeignKey(Device, on_delete=models.CASCADE, related_name="detections")
    day = models.DateField()  # the server's UTC day of receipt: what roll-ups and expiry use
    signature_id = models.PositiveBigIntegerField()
    revision = models.PositiveIntegerField()
    release = models.PositiveIntegerField()
    app_sha256 = models.CharField(max_length=64)
    package = models.CharField(max_length=255, blank=True)
    cert_sha256 = models.CharField(max_length=64, blank=True)
    detected_at = models.DateTimeField()  # the phone's clock, kept within the retention window

    class Meta:
        indexes = [
            models.Index(fields=["day"], name="detection_day"),
            models.Index(fields=["signature_id", "day"], name="detection_signature_day"),
            models.Index(fields=["release", "day"], name="detection_release_day"),
        ]

    def __str__(self) -> str:
        return f"{self.signature_id}r{self.revision} on {self.app_sha256[:12]}"


class DetectionRollup(models.Model):
    """Anonymous daily counts: no device id, so deleting a device leaves them as they are."""

    day = models.DateField()
    signature_id = models.PositiveBigIntegerField()
    revision = models.PositiveIntegerField()
    release = models.PositiveIntegerField()
    cohort = models.CharField(max_length=8)  # the devices' channel
    app_sha256 = models.CharField(max_length=64)
    package = models.CharField(max_length=255, blank=True)
    cert_sha256 = models.CharField(max_length=64, blank=True)
    devices = models.PositiveIntegerField()  # distinct devices that day
    reports = models.PositiveIntegerField()
    first_seen = models.DateTimeField()
    last_seen = models.DateTimeField()

    class Meta:
        indexes = [
            models.Index(fields=["signature_id", "day"], name="rollup_signature_day"),
            models.Index(fields=["release", "day"], name="rollup_release_day"),
        ]

    def __str__(self) -> str:
        return f"{self.day} {self.signature_id}r{self.revision}: {self.reports}"


class DetectionRollupDay(models.Model):
    """A day whose raw reports are rolled up: rolled once, never again (the raw rows of a day
    may be deleted later, and a second roll-up would count less)."""

    day = models.DateField(unique=True)
    rolled_at = models.DateTimeField()
    reports = models.PositiveIntegerField()
    rows = models.PositiveIntegerField()

    class Meta:
        ordering = ["-day"]

    def __str__(self) -> str:
        return f"{self.day}: {self.reports} reports in {self.rows} rows"


class HaltRule(models.TextChoices):
    CLEAN_APP = "clean_app", "A new signature fired on a clean app"
    APP_SHARE = "app_share", "One app drew detections from too many devices"


class AutoHalt(models.Model):
    """Why the portal halted a release on its own, and the kill switch it proposes: the
    signature marked noisy, in an urgent release (``releases.halts``)."""

    release = models.ForeignKey(Release, on_delete=models.CASCADE, related_name="auto_halts")
    rule = models.CharField(max_length=16, choices=HaltRule.choices)
    signature_id = models.PositiveBigIntegerField()
    revision = models.PositiveIntegerField()
    app_sha256 = models.CharField(max_length=64)
    package = models.CharField(max_length=255, blank=True)
    cert_sha256 = models.CharField(max_length=64, blank=True)
    cohort = models.CharField(max_length=8, blank=True)
    devices = models.PositiveIntegerField(default=0)  # devices that reported it in the window
    reporting = models.PositiveIntegerField(default=0)  # devices of the cohort that reported
    reason = models.TextField()
    created_at = models.DateTimeField(auto_now_add=True)
    # set when a reviewer used the proposed kill switch: the urgent release it published
    resolved_by_release = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(fields=["release", "signature_id"], name="auto_halt_once"),
        ]

    def __str__(self) -> str:
        return f"release {self.release_id}: {self.rule} on signature {self.signature_id}"
