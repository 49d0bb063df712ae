"""Samples (apps we hold, keyed by SHA-256) and scan jobs (one engine run over one sample).

The APK itself lives in Django's default storage under its SHA-256 (a local folder, or S3
through django-storages, by configuration). What the engine extracted is kept twice, on
purpose (see docs/scanning.md): a summary in ``Sample.features`` (manifest, certificates,
DEX files, indicators, tamper flags: what pages and APIs show and filters use) and the full
``AppFeatures`` with the DEX string, type and method tables as zstd-compressed JSON in
storage (``Sample.features_file``), which can run to megabytes per app and is only needed to
match behaviour rules again (retro-hunts).
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class Label(models.TextChoices):
    UNKNOWN = "unknown", "Unknown"
    CLEAN = "clean", "Clean"
    MALICIOUS = "malicious", "Malicious"


class Verdict(models.TextChoices):
    MALICIOUS = "malicious", "Malicious"
    SUSPICIOUS = "suspicious", "Suspicious"
    CLEAN = "clean", "Clean"


class ScanStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


FINISHED = (ScanStatus.SUCCEEDED, ScanStatus.FAILED)


class Sample(models.Model):
    sha256 = models.CharField(max_length=64, unique=True)
    md5 = models.CharField(max_length=32, db_index=True)
    sha1 = models.CharField(max_length=40, db_index=True)
    size = models.BigIntegerField()
    file = models.FileField(max_length=255)  # storage name: samples/<ab>/<sha256>
    # The name the file was uploaded under: shown to people, never used as a path.
    original_name = models.CharField(max_length=255, blank=True)
    label = models.CharField(max_length=16, choices=Label.choices, default=Label.UNKNOWN)
    family = models.ForeignKey(
        "threats.Family",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="samples",
    )
    package = models.CharField(max_length=255, blank=True, db_index=True)
    app_label = models.CharField(max_length=255, blank=True)
    features = models.JSONField(null=True, blank=True)  # summary, see the module docstring
    features_file = models.CharField(max_length=255, blank=True)
    features_engine_version = models.PositiveIntegerField(null=True, blank=True)
    # The verdict of the newest finished scan (denormalised so lists filter on it).
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True, db_index=True)
    first_seen = models.DateTimeField(auto_now_add=True)
    last_seen = models.DateTimeField(db_index=True)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["-last_seen"]
        indexes = [models.Index(fields=["label", "verdict"])]

    def __str__(self) -> str:
        return self.package or self.sha256


class ScanJob(models.Model):
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="scans")
    status = models.CharField(
        max_length=16, choices=ScanStatus.choices, default=ScanStatus.QUEUED, db_index=True
    )
    error = models.TextField(blank=True)  # why it failed, for people
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    queued_at = models.DateTimeField(auto_now_add=True, db_index=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    analyse_ms = models.PositiveIntegerField(null=True, blank=True)
    match_ms = models.PositiveIntegerField(null=True, blank=True)
    # How many times a worker started this scan (more than one: a worker was lost mid-scan).
    attempts = models.PositiveSmallIntegerField(default=0)
    # Which process holds it while running ("host:pid"), so a dead one can be told apart.
    worker = models.CharField(max_length=255, blank=True)
    engine_version = models.PositiveIntegerField(null=True, blank=True)
    # The ruleset used: a published release number, or (retro-hunts) the revisions matched.
    ruleset_release = models.PositiveIntegerField(null=True, blank=True)
    ruleset_revisions = models.JSONField(default=list, blank=True)  # [[signature id, rev]]
    ruleset_key = models.CharField(max_length=128, blank=True)
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True)
    score = models.PositiveSmallIntegerField(null=True, blank=True)
    # [{signature_id, revision, name, kind, severity, scoring, evidence: [...]}]
    matches = models.JSONField(default=list, blank=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["sample", "-id"])]

    def __str__(self) -> str:
        return f"scan {self.pk} ({self.status})"

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED

    @property
    def duration_ms(self) -> int | None:
        if self.started_at and self.finished_at:
            return int((self.finished_at - self.started_at).total_seconds() * 1000)
        return None
