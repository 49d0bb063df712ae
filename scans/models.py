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
    """What we know about an app (set by people or feeds), never what the rules say."""

    UNKNOWN = "unknown", "Unknown"
    CLEAN = "clean", "Known clean"
    MALICIOUS = "malicious", "Known malicious"


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
    # the app's ``androguard`` facts in their compact form (engine.facts_summary.stored_facts),
    # derived from ``features`` when they are stored: all a Koodous facts hunt reads. None for
    # a sample stored before the column: the first facts hunt computes and keeps them
    facts = models.JSONField(null=True, blank=True)
    # the engine whose features the sample's SampleKey rows came from (None: not keyed yet)
    keys_engine_version = models.PositiveIntegerField(null=True, blank=True)
    # What the rules say: the verdict under release ``verdict_release`` (0: no release yet),
    # kept current when releases ship (scans/verdicts.py, docs/verdicts.md); blank until a
    # scan of the sample succeeds. Each scan keeps its own verdict too.
    verdict = models.CharField(max_length=16, choices=Verdict.choices, blank=True, db_index=True)
    verdict_score = models.PositiveSmallIntegerField(null=True, blank=True)
    verdict_release = models.PositiveIntegerField(null=True, blank=True, db_index=True)
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
        indexes = [
            models.Index(fields=["label", "verdict"]),
            # which samples have current features, in id order, without reading the rows: on
            # SQLite a row's later columns sit past its summary JSON (overflow pages), so a
            # hunt's creation and each facts chunk would otherwise read every summary
            models.Index(
                fields=["id", "features_engine_version", "features_file"],
                name="sample_current_features",
            ),
        ]

    def __str__(self) -> str:
        return self.package or self.sha256


class SampleKey(models.Model):
    """One stored fact of a sample that a hash, indicator or package_cert rule can match, as a
    64-bit key (``scans.featurekeys``): the gate looks these up instead of reading apps."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="+")
    key = models.BigIntegerField(db_index=True)

    def __str__(self) -> str:
        return f"{self.sample_id}:{self.key:x}"


class CurrentMatch(models.Model):
    """A signature of the sample's verdict release that hits it: the rows its current verdict
    is computed from. ``weight`` is the match's weight (``engine.ruleset.record_weight``);
    ``scoring`` is False for a noisy signature, which is shown but never counts."""

    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="current_matches")
    signature_id = models.PositiveBigIntegerField(db_index=True)
    revision = models.PositiveIntegerField()
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=32)
    severity = models.CharField(max_length=16)
    scoring = models.BooleanField(default=True)
    weight = models.FloatField(default=0.0)

    class Meta:
        ordering = ["sample_id", "-weight", "signature_id"]
        constraints = [
            models.UniqueConstraint(fields=["sample", "signature_id"], name="currentmatch_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.sample_id}"


class VerdictSync(models.Model):
    """One row: the lock that serialises bringing verdicts up to the current release, and
    what the last pass did (for the dashboard and the bench)."""

    release = models.PositiveIntegerField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    seconds = models.FloatField(default=0.0)
    samples_changed = models.PositiveIntegerField(default=0)
    samples_matched = models.PositiveIntegerField(default=0)

    def __str__(self) -> str:
        return f"verdicts as of release {self.release}"


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
    # When the task was last handed to the broker (None: never, e.g. the broker was down);
    # the recovery pass sends a long-queued scan again.
    sent_at = models.DateTimeField(null=True, blank=True)
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
        indexes = [
            models.Index(fields=["sample", "-id"]),
            # /metrics reads the scans finished in the last minutes at every scrape
            models.Index(fields=["finished_at"], name="scanjob_finished_at"),
        ]

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


# --- retro-hunts (docs/retrohunts.md) ------------------------------------------------------------
class HuntStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    FINISHED = "finished", "Finished"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


HUNT_DONE = (HuntStatus.FINISHED, HuntStatus.CANCELLED, HuntStatus.FAILED)


class RetroHunt(models.Model):
    """Signature revisions (or one unsaved rule) run over every sample stored when it started.

    The samples covered are exactly those with ``id <= max_sample_id``: that is what makes a
    finished hunt a proof about the clean corpus (the approval gate checks that no clean sample
    has a larger id). ``records`` is the snapshot of the rules as hunted (``RuleRecord`` as
    dicts), so a later edit of a draft cannot pass for what was tested.
    """

    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    status = models.CharField(
        max_length=16, choices=HuntStatus.choices, default=HuntStatus.QUEUED, db_index=True
    )
    # the rule source: signature revisions (each record names its revision_id), or an unsaved
    # rule {kind, body}
    rule_kind = models.CharField(max_length=32, blank=True)
    rule_body = models.JSONField(null=True, blank=True)
    records = models.JSONField(default=list, blank=True)
    # what it covers
    max_sample_id = models.BigIntegerField(default=0)
    clean_count = models.PositiveIntegerField(default=0)  # clean samples among them at start
    total = models.PositiveIntegerField(default=0)
    scanned = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)  # samples that could not be analysed
    bytes_scanned = models.BigIntegerField(default=0)
    match_count = models.PositiveIntegerField(default=0)
    chunks_total = models.PositiveIntegerField(default=0)
    chunks_done = models.PositiveIntegerField(default=0)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # Set when a sample it hit changed label to or from clean: its clean hits are no longer
    # what a gate decided on, so a gate on it is stale until hunted again (scans/labels.py).
    stale_reason = models.TextField(blank=True)

    class Meta:
        ordering = ["-id"]

    def __str__(self) -> str:
        return f"retro-hunt {self.pk} ({self.status})"

    @property
    def is_done(self) -> bool:
        return self.status in HUNT_DONE

    @property
    def revision_ids(self) -> list[int]:
        """The signature revisions hunted, in order, read from ``records`` (empty for an
        unsaved rule). Loads the records: a list of hunts counts them in the database
        (``scans.selectors.hunt_rule_names``)."""
        return [int(r["revision_id"]) for r in self.records if r.get("revision_id") is not None]

    @property
    def progress(self) -> int:
        """Percent of the samples scanned (100 for a finished hunt, even of no samples)."""
        if self.status == HuntStatus.FINISHED:
            return 100
        return min(100, int(100 * self.scanned / self.total)) if self.total else 0


class ChunkStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    CANCELLED = "cancelled", "Cancelled"
    FAILED = "failed", "Failed"


class HuntChunk(models.Model):
    """A slice of a hunt's samples (``first_id..last_id``) that one task runs."""

    hunt = models.ForeignKey(RetroHunt, on_delete=models.CASCADE, related_name="chunks")
    index = models.PositiveIntegerField()
    first_id = models.BigIntegerField()
    last_id = models.BigIntegerField()
    sample_count = models.PositiveIntegerField()
    status = models.CharField(
        max_length=16, choices=ChunkStatus.choices, default=ChunkStatus.QUEUED, db_index=True
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    worker = models.CharField(max_length=255, blank=True)  # "host:pid" while running
    worker_name = models.CharField(max_length=255, blank=True)  # Celery hostname that ran it
    queued_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)  # last handed to the broker
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    scanned = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["hunt_id", "index"]
        constraints = [
            models.UniqueConstraint(fields=["hunt", "index"], name="huntchunk_unique_index")
        ]
        # /metrics reads the chunks finished in the last minutes at every scrape
        indexes = [models.Index(fields=["finished_at"], name="huntchunk_finished_at")]

    def __str__(self) -> str:
        return f"hunt {self.hunt_id} chunk {self.index} ({self.status})"


class HuntMatch(models.Model):
    """One rule of a hunt hitting one sample; ``label`` is the sample's label at match time."""

    hunt = models.ForeignKey(RetroHunt, on_delete=models.CASCADE, related_name="matches")
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="hunt_matches")
    # a saved signature's revision, or none for the unsaved rule (signature_id 0)
    signature_id = models.PositiveBigIntegerField(default=0, db_index=True)
    revision_id = models.PositiveBigIntegerField(null=True, blank=True)
    revision_number = models.PositiveIntegerField(default=0)
    name = models.CharField(max_length=255)
    kind = models.CharField(max_length=32)
    label = models.CharField(max_length=16, choices=Label.choices)
    evidence = models.JSONField(default=list, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["hunt_id", "sample_id", "signature_id"]
        constraints = [
            models.UniqueConstraint(
                fields=["hunt", "sample", "signature_id", "revision_number"],
                name="huntmatch_unique",
            )
        ]
        indexes = [models.Index(fields=["revision_id", "hunt"])]

    def __str__(self) -> str:
        return f"{self.name} on {self.sample_id}"


class SignatureHit(models.Model):
    """That a signature hit a sample (in a scan or a hunt), and when last: per-signature
    statistics count these by the sample's current label without scanning JSON."""

    signature_id = models.PositiveBigIntegerField()
    sample = models.ForeignKey(Sample, on_delete=models.CASCADE, related_name="signature_hits")
    last_hit_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["signature_id", "sample"], name="signaturehit_unique")
        ]

    def __str__(self) -> str:
        return f"signature {self.signature_id} on {self.sample_id}"


class LookupCount(models.Model):
    """How often phones asked about an app by SHA-256 (``POST /api/v1/devices/lookup/``),
    counted without saying which phone asked (docs/privacy.md): the unknown apps phones ask
    about most are the ones researchers should collect next."""

    sha256 = models.CharField(max_length=64, unique=True)
    count = models.PositiveBigIntegerField(default=0)
    first_at = models.DateTimeField()
    last_at = models.DateTimeField(db_index=True)

    class Meta:
        indexes = [models.Index(fields=["-count"], name="lookupcount_count")]

    def __str__(self) -> str:
        return f"{self.sha256}: {self.count}"


class FactsSegment(models.Model):
    """The inverted index of the compact facts (``Sample.facts``) of the samples in one block
    of ids (``engine.facts_segment``): what a Koodous facts hunt reads instead of a row per
    sample. Built by the first facts hunt over the block and kept for the next ones
    (``scans.hunt_match``); one of another ``version`` (segment form, facts form, engine) is
    built again, never read."""

    block = models.BigIntegerField(unique=True)
    version = models.CharField(max_length=64)
    apps = models.PositiveIntegerField()
    # the block's samples with current features it was built over: ``apps`` and those that
    # had no facts to read (to tell, without reading it, how many have been stored since)
    covered = models.PositiveIntegerField(default=0)
    data = models.BinaryField()
    built_at = models.DateTimeField()

    def __str__(self) -> str:
        return f"facts segment {self.block} ({self.apps} apps)"
