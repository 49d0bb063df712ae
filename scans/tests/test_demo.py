"""The demo clean corpus: apps the seed builds itself, stored as clean, so that the demo's
gate covers clean apps and says "passed" rather than "no clean corpus"."""

from __future__ import annotations

import pytest

from engine.analyze import analyze
from scans import demo as scans_demo
from scans.models import Label, Sample
from threats import demo as threats_demo
from threats.models import Signature, Status

pytestmark = pytest.mark.django_db


def test_the_demo_apps_are_real_apks_the_engine_reads(tmp_path) -> None:
    for package, label, permissions in scans_demo.CLEAN_APPS:
        path = tmp_path / f"{package}.apk"
        path.write_bytes(scans_demo.build_apk(package, label, permissions))
        features = analyze(path)
        assert (features.manifest.package, features.manifest.app_label) == (package, label)
        assert features.manifest.permissions == permissions
    again = scans_demo.build_apk(*scans_demo.CLEAN_APPS[0])
    assert again == scans_demo.build_apk(*scans_demo.CLEAN_APPS[0])  # same bytes every run


def test_the_seed_stores_a_clean_corpus_and_the_demo_gate_passes_over_it(
    role_users, settings, client
) -> None:
    settings.GATE_MIN_CLEAN_APPS = 1  # the production default
    scans_demo.seed(role_users)
    scans_demo.seed(role_users)  # idempotent
    assert Sample.objects.filter(label=Label.CLEAN).count() == len(scans_demo.CLEAN_APPS)

    threats_demo.seed(role_users)  # gates and approves: refused if the corpus were empty
    assert set(Signature.objects.values_list("status", flat=True)) == {Status.DEPLOYED}
    sig = Signature.objects.order_by("pk").first()
    assert sig is not None
    client.force_login(role_users["reviewer"])
    page = client.get(f"/signatures/{sig.pk}/").content.decode()
    assert f"covered {len(scans_demo.CLEAN_APPS)} clean app(s) and hit none" in page
    assert "no clean corpus" not in page
