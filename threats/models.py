"""The signature database: families, signatures and their revisions.

A ``Signature`` is the stable identity (its id is in the name researchers and phones see);
each change to what it detects or how a match is reported (body, severity, family) is a
``SignatureRevision``. Releases pin revisions, never signatures, so they ship exactly the
severity and family that were reviewed. Tags, references, description and linked samples are
signature-level notes for people: they never reach a phone (``engine.features.RuleRecord``).
Business rules live in ``threats/services.py``; the constraints here are the ones the
database itself must guarantee even if a service is bypassed.
"""

from __future__ import annotations

from django.conf import settings
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import F, Q


class Category(models.TextChoices):
    SMS_FRAUD = "sms-fraud", "SMS fraud (premium SMS)"
    PAYMENT_TROJAN = "payment-trojan", "Payment trojan"
    SMS_STEALER = "sms-stealer", "SMS / OTP stealer"
    COUNTERFEIT_APP = "counterfeit-app", "Counterfeit app"
    PHISHING = "phishing", "Phishing"
    SPYWARE = "spyware", "Spyware"
    ADWARE = "adware", "Adware"
    JUNKWARE = "junkware", "Junkware"
    RISKWARE = "riskware", "Riskware"


# The <Category> part of a signature name, ClamAV style: Andr.<Category>.<Family>-<id>-<rev>
CATEGORY_NAME_PART = {
    Category.SMS_FRAUD: "SmsFraud",
    Category.PAYMENT_TROJAN: "PaymentTrojan",
    Category.SMS_STEALER: "SmsStealer",
    Category.COUNTERFEIT_APP: "Counterfeit",
    Category.PHISHING: "Phishing",
    Category.SPYWARE: "Spyware",
    Category.ADWARE: "Adware",
    Category.JUNKWARE: "Junkware",
    Category.RISKWARE: "Riskware",
}


class Severity(models.TextChoices):
    MALICIOUS = "malicious", "Malicious"
    SUSPICIOUS = "suspicious", "Suspicious"
    RISKWARE = "riskware", "Riskware"


class Status(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    DEPLOYED = "deployed", "Deployed"
    NOISY = "noisy", "Noisy"  # shipped and reported, never scores
    DISABLED = "disabled", "Disabled"
    INVALID = "invalid", "Invalid"  # does not compile on this engine


class Family(models.Model):
    name = models.CharField(
        max_length=64,
        unique=True,
        validators=[
            RegexValidator(
                r"^[A-Z][A-Za-z0-9]*$",
                "A family name is one word in CamelCase (letters and digits), e.g. Joker.",
            )
        ],
    )
    category = models.CharField(max_length=32, choices=Category.choices)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    description = models.TextField(blank=True)
    aliases = models.JSONField(default=list, blank=True)
    references = models.JSONField(default=list, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+", null=True, blank=True
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "families"

    def __str__(self) -> str:
        return self.name


class Tag(models.Model):
    name = models.CharField(max_length=64, unique=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class Signature(models.Model):
    kind = models.CharField(max_length=32, db_index=True)  # a key of engine.kinds.REGISTRY
    # The current revision's family and severity, copied here by the services so lists filter
    # and show them without a join; what ships is the deployed revision's own.
    family = models.ForeignKey(Family, on_delete=models.PROTECT, related_name="signatures")
    severity = models.CharField(max_length=16, choices=Severity.choices, db_index=True)
    status = models.CharField(
        max_length=16, choices=Status.choices, default=Status.DRAFT, db_index=True
    )
    status_reason = models.TextField(blank=True)
    tags = models.ManyToManyField(Tag, blank=True, related_name="signatures")
    references = models.JSONField(default=list, blank=True)
    # SHA-256s of samples this signature was written from (samples live in the scans app)
    linked_samples = models.JSONField(default=list, blank=True)
    description = models.TextField(blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="signatures"
    )
    # Same kind + same normalised body = same signature; the key comes from the kind.
    dedup_key = models.CharField(max_length=128)
    # The newest revision (what the editor shows) and the one releases ship (if any).
    current_revision = models.ForeignKey(
        "SignatureRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    deployed_revision = models.ForeignKey(
        "SignatureRevision", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    search_text = models.TextField(blank=True)  # name, summary, tags: what `q` searches
    # Hits on stored samples by their current label, from scans and retro-hunts (kept by the
    # scans app through ``threats.services.signature_stats_record``; lists read them as is).
    hits_malicious = models.PositiveIntegerField(default=0)
    hits_clean = models.PositiveIntegerField(default=0, db_index=True)
    hits_unknown = models.PositiveIntegerField(default=0)
    last_hit_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)

    class Meta:
        ordering = ["-id"]
        constraints = [
            models.UniqueConstraint(fields=["kind", "dedup_key"], name="signature_unique_body"),
        ]
        indexes = [
            models.Index(fields=["status", "kind"]),
            models.Index(fields=["family", "status"]),
        ]
        permissions = [
            ("review_signature", "Can approve or reject signatures"),
            ("moderate_signature", "Can mark signatures noisy or disable them"),
            ("import_signature", "Can import signature files"),
        ]

    def __str__(self) -> str:
        return self.name

    @property
    def revision_number(self) -> int:
        rev = self.current_revision
        return rev.number if rev is not None else 1

    @property
    def name(self) -> str:
        return signature_name(
            category=self.family.category,
            family=self.family.name,
            signature_id=self.pk or 0,
            revision=self.revision_number,
        )


def signature_name(*, category: str, family: str, signature_id: int, revision: int) -> str:
    part = CATEGORY_NAME_PART.get(Category(category), "Unknown")
    return f"Andr.{part}.{family}-{signature_id}-{revision}"


class RevisionState(models.TextChoices):
    DRAFT = "draft", "Draft"
    IN_REVIEW = "in_review", "In review"
    APPROVED = "approved", "Approved"
    REJECTED = "rejected", "Rejected"


class SignatureRevision(models.Model):
    """One immutable-once-approved version of a signature's body, severity and family (what a
    phone reports when it matches). Releases pin these."""

    signature = models.ForeignKey(Signature, on_delete=models.CASCADE, related_name="revisions")
    number = models.PositiveIntegerField()
    body = models.JSONField()  # the kind's normalised body (a string for yara)
    severity = models.CharField(max_length=16, choices=Severity.choices)
    # the shipped name is Andr.<Category>.<Family>-<id>-<revision>
    family = models.ForeignKey(Family, on_delete=models.PROTECT, related_name="revisions")
    min_engine = models.PositiveIntegerField(default=1)
    state = models.CharField(
        max_length=16, choices=RevisionState.choices, default=RevisionState.DRAFT
    )
    author = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+")
    last_editor = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="+"
    )
    submitted_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(null=True, blank=True)
    review_comment = models.TextField(blank=True)
    # The clean-corpus gate (threats/gates.py, docs/retrohunts.md): the finished retro-hunt
    # of this exact body over the clean corpus (a scans id, not a foreign key: threats does
    # not depend on scans), its clean hits, and the reviewer's reason to approve regardless.
    gated_at = models.DateTimeField(null=True, blank=True)
    gate_hunt_id = models.PositiveBigIntegerField(null=True, blank=True)
    clean_hits = models.PositiveIntegerField(default=0)
    gate_override_reason = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["signature_id", "number"]
        constraints = [
            models.UniqueConstraint(fields=["signature", "number"], name="revision_unique_number"),
            # Four eyes, in the database too: whoever approves a revision neither wrote it nor
            # was the last to edit it.
            models.CheckConstraint(
                condition=~Q(state=RevisionState.APPROVED)
                | (
                    Q(reviewed_by__isnull=False)
                    & ~Q(reviewed_by=F("author"))
                    & ~Q(reviewed_by=F("last_editor"))
                ),
                name="revision_approver_not_author_or_editor",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.signature_id} r{self.number}"
