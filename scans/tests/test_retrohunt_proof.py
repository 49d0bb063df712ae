"""Proof with real data (issue 6): Yara-Rules' ``android_meterpreter`` hits clean apps of the
shared corpus, and the clean-corpus gate stops it at approval until a reviewer overrides it
with a written, audited reason."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.analyze import analyze_with_content
from portal.models import AuditEntry
from scans.models import HuntMatch, HuntStatus, Label, Sample
from scans.retrohunts import retrohunt_run_sync
from scans.tests.conftest import corpus_files, manifest_rows
from scans.tests.factories import stored_sample
from threats import services
from threats.models import RevisionState, Signature, Status

pytestmark = pytest.mark.django_db

RULE_FILE = "Android_Metasploit.yar"
RULE = "android_meterpreter"


def _manifest_matches() -> set[str]:
    """The APKs MANIFEST.tsv says the rule matched ("observed matches" of the rule file)."""
    row = next(r for name, r in manifest_rows().items() if name == RULE_FILE)
    listed = row["notes"].split(f"{RULE} -> ", 1)[1]
    return {name.strip() for name in listed.split(",")}


def test_android_meterpreter_hits_clean_corpus_apps_and_is_blocked_at_approval(
    api, researcher, reviewer, corpus: Path
) -> None:
    # given the Yara-Rules set imported through the import service
    summary = services.signatures_import_paths(
        actor=researcher, paths=[corpus / "yara" / "Yara-Rules"]
    )
    assert summary.imported > 0
    sig = Signature.objects.get(
        pk__in=summary.signature_ids, description__startswith=f"{RULE} (imported from "
    )
    assert sig.kind == "yara"
    assert RULE_FILE in sig.description
    # ... and every corpus APK ingested as clean through the scans service (not analysed yet:
    # the scans are queued; the hunt analyses each file itself for its DEX and manifest bytes)
    names: dict[str, str] = {}
    for path in corpus_files():
        sample, _scan = stored_sample(path, label="clean", user=researcher)
        names.setdefault(sample.sha256, path.name)
    assert Sample.objects.filter(label=Label.CLEAN).count() == len(names)

    # when the researcher submits the rule and its gate hunt runs over the clean corpus
    services.signature_submit(signature=sig, actor=researcher)
    hunt = retrohunt_run_sync(user=researcher, signature_ids=[sig.pk])

    # then it hits clean apps: the nine benign APKs MANIFEST.tsv lists, and one more
    assert hunt.status == HuntStatus.FINISHED
    assert (hunt.scanned, hunt.total) == (len(names), len(names))
    assert hunt.errors == 2  # the signature-only ZIP and the empty ZIP are no apps
    hit = set(
        HuntMatch.objects.filter(hunt=hunt, signature_id=sig.pk).values_list(
            "sample__sha256", flat=True
        )
    )
    measured = {names[sha] for sha in hit}
    # MANIFEST scanned with stock yara-python the raw file, its top-level dex/so entries and
    # the binary manifest ("@dex", "@file"); the engine scans with yara-x the raw file, the
    # binary manifest and every DEX, including the DEX inside the split APKs of an XAPK.
    # Same nine APKs, all through "$stopEval" ("eval") in classes.dex (InsecureBankv2 and
    # issue2701 also in the raw file, MANIFEST's "@file"); the one difference is the XAPK
    # bundle, whose on-demand split APK carries "eval" in its classes.dex: MANIFEST's tool
    # did not open nested APKs ("dex=0 ... observed matches: none").
    assert _manifest_matches() == {
        "InsecureBankv2.apk",
        "a2dp.Vol_137.apk",
        "android.apk",
        "app-prod-debug.apk",
        "issue1498.apk",
        "issue2701.apk",
        "issue3533.apk",
        "ovaa.apk",
        "partialsignature.apk",
    }
    assert measured == _manifest_matches() | {"android_xapk.xapk"}
    evidence = {
        names[sha]: ev
        for sha, ev in HuntMatch.objects.filter(hunt=hunt).values_list("sample__sha256", "evidence")
    }
    assert "!classes.dex" in evidence["android_xapk.xapk"][0]
    assert all(any("$stopEval" in e for e in ev) for ev in evidence.values())
    clean_hits = len(measured)
    assert clean_hits == 10
    assert HuntMatch.objects.filter(hunt=hunt, label=Label.CLEAN).count() == clean_hits

    # ... and hunting again (features now stored: only the manifest and DEX bytes are read;
    # just the two files that are no apps, so have no features, are analysed again) finds
    # exactly the same
    import scans.hunt_match

    analysed: list[str] = []

    def counted(path, **kwargs):
        analysed.append(str(path))
        return analyze_with_content(path, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(scans.hunt_match, "analyze_with_content", counted)
        again = retrohunt_run_sync(user=researcher, signature_ids=[sig.pk])
    assert len(analysed) == hunt.errors == 2
    assert (again.scanned, again.errors) == (hunt.scanned, hunt.errors)

    def found(h):
        rows = HuntMatch.objects.filter(hunt=h).values_list("sample__sha256", "evidence")
        return {(sha, tuple(ev)) for sha, ev in rows}

    assert found(again) == found(hunt)

    # ... and approval is refused with the gate's verdict and the clean hits
    url = f"/api/v1/signatures/{sig.pk}/approve/"
    refused = api(reviewer).post(url, {}, format="json")
    assert refused.status_code == 409
    extra = refused.json()["extra"]
    assert extra["gate"] == "clean_hits"
    assert extra["clean_hit_count"] == clean_hits
    assert {h["sha256"] for h in extra["clean_hits"]} == hit
    assert set(extra["review_diff"]["new_clean_hits"]) == hit
    sig.refresh_from_db()
    assert sig.status == Status.IN_REVIEW
    assert sig.hits_clean == clean_hits

    # ... and passes with an override reason, which is audited
    reason = "proof only: matches 'eval' in every benign app; to be marked noisy"
    ok = api(reviewer).post(url, {"override_reason": reason}, format="json")
    assert ok.status_code == 200, ok.json()
    sig.refresh_from_db()
    rev = sig.current_revision
    assert rev is not None
    assert (sig.status, rev.state, rev.clean_hits) == (
        Status.DEPLOYED,
        RevisionState.APPROVED,
        clean_hits,
    )
    assert rev.gate_override_reason == reason
    entry = AuditEntry.objects.get(action="signature.gate_override")
    assert (entry.actor, entry.reason) == (reviewer, reason)
    assert entry.object_id == str(sig.pk)
    assert entry.changes["clean_hits"]["after"] == clean_hits
