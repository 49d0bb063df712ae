"""Watch rules (livehunt): a researcher's rules matched against every new sample after its
scan, the hits they made, and the webhook deliveries of those hits (docs/livehunt.md).

Samples are named by id and SHA-256, not by a foreign key: livehunt sits above scans and
reaches it only through ``scans.public``; a hit keeps what it said even if the sample goes.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models


class WatchRule(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="watch_rules"
    )
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=32)  # a key of engine.kinds.REGISTRY
    body = models.JSONField()  # the kind's normalised body (text for YARA)
    # the signature revision it was copied from (None: written directly)
    source_signature_id = models.PositiveBigIntegerField(null=True, blank=True)
    source_revision_id = models.PositiveBigIntegerField(null=True, blank=True)
    webhook_url = models.URLField(max_length=500, blank=True)
    enabled = models.BooleanField(default=True)
    expires_at = models.DateTimeField()
    # bumped on every change that alters what matches: part of the ruleset stamp
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-id"]
        indexes = [models.Index(fields=["enabled", "expires_at"], name="watchrule_active")]

    def __str__(self) -> str:
        return f"watch rule {self.pk} ({self.name})"


class WatchHit(models.Model):
    rule = models.ForeignKey(WatchRule, on_delete=models.CASCADE, related_name="hits")
    sample_id = models.PositiveBigIntegerField()
    sample_sha256 = models.CharField(max_length=64)
    package = models.CharField(max_length=255, blank=True)
    app_label = models.CharField(max_length=255, blank=True)
    original_name = models.CharField(max_length=255, blank=True)
    scan_id = models.PositiveBigIntegerField(null=True, blank=True)
    rule_version = models.PositiveIntegerField()
    evidence = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [models.UniqueConstraint(fields=["rule", "sample_id"], name="watchhit_once")]

    def __str__(self) -> str:
        return f"hit of rule {self.rule_id} on {self.sample_sha256}"


class DeliveryStatus(models.TextChoices):
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"
    REFUSED = "refused", "Refused"  # the target is not allowed (SSRF guard)


class WebhookDelivery(models.Model):
    """At most one POST per (rule, sample): the row is claimed before the request is made."""

    rule = models.ForeignKey(WatchRule, on_delete=models.CASCADE, related_name="deliveries")
    sample_id = models.PositiveBigIntegerField()
    url = models.URLField(max_length=500)
    status = models.CharField(
        max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.SENDING
    )
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    error = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "sample_id"], name="webhookdelivery_once")
        ]

    def __str__(self) -> str:
        return f"webhook of rule {self.rule_id} for sample {self.sample_id}: {self.status}"
