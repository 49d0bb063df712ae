"""What the scans app records on signatures: the clean-corpus gate of each revision a hunt
covered, and per-signature hit counters (called through ``threats.public``, the front door)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db import transaction
from django.utils import timezone

from threats.models import RevisionState, Signature, SignatureRevision
from threats.public import GateResult, HitStats
from threats.services_common import BULK_BATCH, in_batches


@transaction.atomic
def revisions_record_gate(*, hunt_id: int, results: Sequence[GateResult]) -> list[int]:
    """Record that finished hunt ``hunt_id`` covered the clean corpus for these revisions.

    Skipped for a revision whose body changed since it was hunted (a draft edited in place)
    and for an approved revision that already carries its gate (what it was approved on
    stays). Returns the ids recorded.
    """
    by_id = {r.revision_id: r for r in results}
    now = timezone.now()
    recorded: list[int] = []
    batch: list[SignatureRevision] = []
    for rev in in_batches(SignatureRevision.objects.select_for_update(), list(by_id)):
        result = by_id[rev.pk]
        if rev.body != result.body:
            continue
        if rev.state == RevisionState.APPROVED and rev.gated_at is not None:
            continue
        if rev.gate_hunt_id is not None and rev.gate_hunt_id > hunt_id:
            continue  # a newer hunt already spoke
        batch.append(rev)
        recorded.append(rev.pk)
    # a feed's gate records 100,000 revisions: one UPDATE per clean-hit count (nearly all 0),
    # not a CASE per row
    by_hits: dict[int, list[int]] = {}
    for rev in batch:
        by_hits.setdefault(by_id[rev.pk].clean_hits, []).append(rev.pk)
    for hits, ids in by_hits.items():
        for start in range(0, len(ids), BULK_BATCH):
            SignatureRevision.objects.filter(pk__in=ids[start : start + BULK_BATCH]).update(
                gated_at=now, gate_hunt_id=hunt_id, clean_hits=hits
            )
    return recorded


def revision_clean_hits_refresh(*, revision: SignatureRevision, clean_hits: int) -> None:
    """The gate saw a different count of clean hits (samples relabelled since the hunt)."""
    if revision.clean_hits != clean_hits:
        SignatureRevision.objects.filter(pk=revision.pk).update(clean_hits=clean_hits)


def signature_stats_record(*, stats: dict[int, HitStats]) -> None:
    """Store per-signature hit counters (the scans app computes them from its hits table)."""
    batch: list[Signature] = []
    for sig in in_batches(
        Signature.objects.only("id", "hits_malicious", "hits_clean", "hits_unknown", "last_hit_at"),
        list(stats),
    ):
        s = stats[sig.pk]
        now = (s.malicious, s.clean, s.unknown, s.last_hit_at)
        if (sig.hits_malicious, sig.hits_clean, sig.hits_unknown, sig.last_hit_at) == now:
            continue  # unchanged (a feed's new signatures mostly hit nothing)
        sig.hits_malicious, sig.hits_clean, sig.hits_unknown = s.malicious, s.clean, s.unknown
        sig.last_hit_at = s.last_hit_at
        batch.append(sig)
    Signature.objects.bulk_update(
        batch, ["hits_malicious", "hits_clean", "hits_unknown", "last_hit_at"], batch_size=500
    )
