"""Feeds through the clean-corpus gate: the gate never passes on nothing (GATE_MIN_CLEAN_APPS),
one gate hunt per submission of many revisions, byte-free gating of hash, indicator and
package_cert rules from stored features, and ``import_signatures --submit``."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.management import call_command

from portal.exceptions import ApplicationError
from portal.models import AuditEntry
from portal.testing import gate
from scans.models import HuntStatus, RetroHunt
from scans.retrohunts import retrohunt_chunk_run
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample
from threats import services
from threats.models import Signature, SignatureRevision, Status
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db

A2DP = "a2dp.Vol_137.apk"


@pytest.fixture(autouse=True)
def _gate_minimum(settings) -> None:
    settings.GATE_MIN_CLEAN_APPS = 1  # the production default (tests elsewhere use 0)


def _hash(author, value: str, *, target: str = "apk") -> Signature:
    return services.signature_create(
        actor=author,
        kind="hash",
        body={"algorithm": "sha256", "target": target, "value": value},
        family=make_family(name="Joker"),
    )


def _run_chunks(hunt: RetroHunt) -> RetroHunt:
    """Run a queued hunt's chunks here, as a worker would."""
    for chunk_id in hunt.chunks.order_by("index").values_list("id", flat=True):
        retrohunt_chunk_run(chunk_id=chunk_id, worker_name="test")
    hunt.refresh_from_db()
    return hunt


# --- the gate never passes on nothing ---------------------------------------------------------
def test_with_no_clean_corpus_the_gate_says_so_and_approval_needs_a_written_override(
    researcher, reviewer, client
) -> None:
    sig = services.signature_submit(signature=_hash(researcher, "ab" * 32), actor=researcher)
    gate(sig)  # a real hunt, over no stored sample

    client.force_login(reviewer)
    page = client.get(f"/signatures/{sig.pk}/").content.decode()
    assert "no clean corpus" in page
    assert ">passed<" not in page
    assert 'name="override_reason"' in page
    queue = client.get("/signatures/review/").content.decode()
    assert "no clean corpus" in queue
    assert ">passed<" not in queue

    with pytest.raises(ApplicationError, match="No clean corpus") as refused:
        services.signature_approve(signature=sig, actor=reviewer)
    assert refused.value.status_code == 409
    assert refused.value.extra["gate"] == "no_clean_corpus"
    assert (refused.value.extra["clean_apps"], refused.value.extra["clean_min"]) == (0, 1)
    sig.refresh_from_db()
    assert sig.status == Status.IN_REVIEW

    services.signature_approve(
        signature=sig, actor=reviewer, override_reason="feed hash; no clean corpus here yet"
    )
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED
    assert sig.deployed_revision is not None
    assert sig.deployed_revision.gate_override_reason == "feed hash; no clean corpus here yet"
    audit = AuditEntry.objects.get(action="signature.gate_override", object_id=str(sig.pk))
    assert audit.reason == "feed hash; no clean corpus here yet"
    assert "no_clean_corpus" in str(audit.changes)


def test_a_gate_over_a_clean_corpus_passes_and_says_how_many_apps_it_covered(
    researcher, reviewer, client, corpus: Path
) -> None:
    stored_sample(corpus / "apks" / SMALL_APK, label="clean", user=researcher)
    sig = services.signature_submit(signature=_hash(researcher, "cd" * 32), actor=researcher)
    gate(sig)

    client.force_login(reviewer)
    page = client.get(f"/signatures/{sig.pk}/").content.decode()
    assert "covered 1 clean app(s) and hit none" in page
    assert 'name="override_reason"' not in page

    services.signature_approve(signature=sig, actor=reviewer)
    sig.refresh_from_db()
    assert sig.status == Status.DEPLOYED
    assert sig.deployed_revision is not None
    assert sig.deployed_revision.gate_override_reason == ""


# --- one gate hunt per submission -------------------------------------------------------------
def test_a_bulk_submit_of_many_revisions_starts_one_hunt_and_records_each_result(
    researcher, corpus: Path, django_capture_on_commit_callbacks
) -> None:
    clean = stored_sample(corpus / "apks" / A2DP, label="clean", user=researcher)[0]
    sigs = [_hash(researcher, clean.sha256)] + [_hash(researcher, f"{i:064x}") for i in range(4)]

    with django_capture_on_commit_callbacks(execute=True):
        result = services.signature_bulk_action(
            actor=researcher, ids=[s.pk for s in sigs], action="submit"
        )
    assert sorted(result.succeeded) == sorted(s.pk for s in sigs)
    assert RetroHunt.objects.count() == 1
    hunt = _run_chunks(RetroHunt.objects.get())
    assert hunt.status == HuntStatus.FINISHED

    revisions = SignatureRevision.objects.filter(signature__in=sigs)
    assert {r.gate_hunt_id for r in revisions} == {hunt.pk}
    assert all(r.gated_at is not None for r in revisions)
    hits = {r.signature_id: r.clean_hits for r in revisions}
    assert hits == {sigs[0].pk: 1, **{s.pk: 0 for s in sigs[1:]}}


def test_the_bulk_api_submit_starts_one_hunt(
    researcher, api, django_capture_on_commit_callbacks
) -> None:
    sigs = [_hash(researcher, f"{i + 100:064x}") for i in range(3)]
    with django_capture_on_commit_callbacks(execute=True):
        response = api(researcher).post(
            "/api/v1/signatures/bulk/",
            {"ids": [s.pk for s in sigs], "action": "submit"},
            format="json",
        )
    assert response.status_code == 200, response.content
    assert RetroHunt.objects.count() == 1
    hunt = RetroHunt.objects.get()
    assert sorted(hunt.revision_ids) == sorted(int(s.current_revision_id or 0) for s in sigs)


# --- import --submit --------------------------------------------------------------------------
def test_import_signatures_submit_makes_submitted_signatures_with_gate_results(
    researcher, corpus: Path, tmp_path: Path, django_capture_on_commit_callbacks
) -> None:
    clean = stored_sample(corpus / "apks" / SMALL_APK, label="clean", user=researcher)[0]
    make_family(name="Joker")
    feed = tmp_path / "feed.csv"
    rows = [clean.sha256, "ee" * 32, "ff" * 32]
    feed.write_text(
        "kind,body,family,severity\n" + "".join(f"hash,{v},Joker,malicious\n" for v in rows)
    )

    with django_capture_on_commit_callbacks(execute=True):
        call_command("import_signatures", str(feed), "--author", researcher.username, "--submit")
    sigs = list(Signature.objects.order_by("pk"))
    assert len(sigs) == 3
    assert {s.status for s in sigs} == {Status.IN_REVIEW}
    assert RetroHunt.objects.count() == 1
    _run_chunks(RetroHunt.objects.get())

    revisions = {r.signature_id: r for r in SignatureRevision.objects.filter(signature__in=sigs)}
    assert all(r.gated_at is not None for r in revisions.values())
    assert [revisions[s.pk].clean_hits for s in sigs] == [1, 0, 0]


# --- byte-free gating -------------------------------------------------------------------------
def test_hash_rules_on_a_clean_apps_sha256_and_dex_hash_are_flagged_without_reading_apps(
    researcher, reviewer, corpus: Path, monkeypatch
) -> None:
    from scans import hunt_match

    clean = stored_sample(corpus / "apks" / A2DP, label="clean", user=researcher)[0]
    gate(services.signature_submit(signature=_hash(researcher, "12" * 32), actor=researcher))
    clean.refresh_from_db()  # that first hunt analysed the app and stored its features
    assert clean.features is not None
    dex_sha = clean.features["dex"][0]["sha256"]

    def no_bytes(*args, **kwargs):
        raise AssertionError("the byte-free gate read an app")

    monkeypatch.setattr(hunt_match, "local_path", no_bytes)
    monkeypatch.setattr(hunt_match, "sample_features_load", no_bytes)
    monkeypatch.setattr(hunt_match, "analyze_with_content", no_bytes)
    apk_rule = _hash(researcher, clean.sha256)
    dex_rule = _hash(researcher, dex_sha, target="dex")
    miss = _hash(researcher, "34" * 32, target="dex")
    result = services.signatures_submit(actor=researcher, ids=[apk_rule.pk, dex_rule.pk, miss.pk])
    assert len(result.succeeded) == 3
    hunt = gate(apk_rule, dex_rule, miss)

    assert (hunt.status, hunt.errors) == (HuntStatus.FINISHED, 0)
    revs = {r.signature_id: r for r in SignatureRevision.objects.filter(gate_hunt_id=hunt.pk)}
    assert [revs[s.pk].clean_hits for s in (apk_rule, dex_rule, miss)] == [1, 1, 0]
    for flagged in (apk_rule, dex_rule):
        with pytest.raises(ApplicationError, match="hits 1 clean app") as refused:
            services.signature_approve(signature=flagged, actor=reviewer)
        assert refused.value.extra["clean_hits"][0]["sha256"] == clean.sha256


def test_feature_keys_never_miss_a_match_of_the_engine_over_the_corpus(corpus: Path) -> None:
    """The keys only skip samples: every rule the engine matches on a corpus app must have its
    key among the app's facts (hashes, DEX, certificates, package, indicators)."""
    from engine.analyze import analyze
    from engine.errors import AnalysisError
    from engine.features import RuleRecord
    from engine.kinds import get_kind
    from engine.ruleset import compile_ruleset, match
    from scans.featurekeys import feature_facts, rule_key

    def record(n: int, kind: str, body: object) -> RuleRecord | None:
        normal = get_kind(kind).validate(body)  # a string the indicator kind refuses: no rule
        return RuleRecord(n, 1, f"r{n}", kind, normal.body, "malicious") if normal.ok else None

    checked = matched = 0
    for path in sorted((corpus / "apks").iterdir()):
        try:
            features = analyze(path)
        except AnalysisError:
            continue
        bodies: list[tuple[str, object]] = [("hash", features.sha256), ("hash", features.md5)]
        for part in (features, *features.parts):
            bodies += [("hash", {"value": d.sha256, "target": "dex"}) for d in part.dex]
            bodies += [("hash", {"value": c.sha1, "target": "cert"}) for c in part.certificates]
            if part.manifest.package:
                bodies.append(
                    (
                        "package_cert",
                        {"package": part.manifest.package, "allowed_certs": ["0" * 64]},
                    )
                )
            found = part.indicators
            bodies += [("indicator", {"type": "url", "value": u}) for u in found.urls[:20]]
            bodies += [("indicator", {"type": "ip", "value": i}) for i in found.ips[:20]]
            bodies += [
                ("indicator", {"type": "short_code", "value": c}) for c in found.short_codes[:5]
            ]
            for domain in found.domains[:20]:
                parent = ".".join(domain.split(".")[-2:])
                bodies += [("indicator", {"type": "domain", "value": parent})]
        made = (record(n, kind, body) for n, (kind, body) in enumerate(bodies, 1))
        records = [r for r in made if r is not None]
        ruleset = compile_ruleset(records)
        facts = feature_facts(features)
        by_id = {r.id: r for r in records}
        for m in match(features, ruleset):
            key = rule_key(by_id[m.signature_id])
            assert key is not None
            assert key in facts, (path.name, m.name, key)
            matched += 1
        checked += 1
    assert checked >= 30
    assert matched >= 200


def test_the_import_api_with_submit_submits_the_feed_with_one_gate_hunt(
    researcher, api, tmp_path: Path, django_capture_on_commit_callbacks
) -> None:
    make_family(name="Joker")
    feed = tmp_path / "feed.csv"
    feed.write_text(
        "kind,body,family\n"
        + "".join(f"hash,{i:064x},Joker\n" for i in range(1, 4))
        + "indicator,evil-feed.example,Joker\n"
    )
    with feed.open("rb") as fh, django_capture_on_commit_callbacks(execute=True):
        response = api(researcher).post(
            "/api/v1/signatures/import/", {"files": [fh], "submit": "true"}, format="multipart"
        )
    assert response.status_code == 200, response.content
    assert (response.json()["imported"], response.json()["submitted"]) == (4, 4)
    assert response.json()["submit_failed"] == []
    assert set(Signature.objects.values_list("status", flat=True)) == {Status.IN_REVIEW}
    assert RetroHunt.objects.count() == 1
    # no sample stored: the hunt finished at once and each revision has its result
    assert SignatureRevision.objects.filter(gated_at__isnull=False).count() == 4
