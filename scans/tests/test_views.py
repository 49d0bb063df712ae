"""Pages: lists with filters, a sample's features, a scan's live status, roles, dashboard."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from scans.rulesets import EMPTY, ExplicitRuleset
from scans.services import scan_run
from scans.tests.conftest import manifest_rows, record
from scans.tests.factories import stored_sample

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def test_the_sample_page_shows_package_certificates_and_permissions(
    researcher, small_apk: Path
) -> None:
    sample, scan = stored_sample(small_apk)
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)
    facts = manifest_rows()[small_apk.name]
    html = _client(researcher).get(f"/samples/{sample.sha256}/").content.decode()
    assert facts["package"] in html
    assert facts["signer_cert_sha256"] in html
    assert "Certificates (1)" in html
    assert f"/scans/{scan.pk}/" in html


def test_permissions_carry_their_protection_level(researcher, corpus: Path) -> None:
    sample, scan = stored_sample(corpus / "apks" / "krvarma-android-samples-smsdemo.apk")
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)
    html = _client(researcher).get(f"/samples/{sample.sha256}/").content.decode()
    assert "android.permission.SEND_SMS" in html or "android.permission.RECEIVE_SMS" in html
    assert "level-dangerous" in html


def test_the_scan_page_polls_while_running_and_shows_matches_when_done(
    researcher, small_apk: Path
) -> None:
    sample, scan = stored_sample(small_apk)
    client = _client(researcher)
    queued = client.get(f"/scans/{scan.pk}/").content.decode()
    assert 'hx-trigger="every 1s"' in queued
    source = ExplicitRuleset.of([record(9, "hash", {"value": sample.sha256})], release=3)
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: source)
    done = client.get(f"/scans/{scan.pk}/", HTTP_HX_REQUEST="true").content.decode()
    assert "hx-trigger" not in done
    assert "Andr.SmsFraud.Test-9-1" in done
    assert sample.sha256 in done
    assert "release 3" in done


def test_lists_filter_and_search(researcher, small_apk: Path, corpus: Path) -> None:
    first, scan = stored_sample(small_apk, label="clean")
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)
    other, _ = stored_sample(corpus / "apks" / "InsecureBankv2.apk", label="malicious")
    client = _client(researcher)
    html = client.get("/samples/", {"q": first.sha256}).content.decode()
    assert first.sha256 in html
    assert other.sha256 not in html
    html = client.get("/samples/", {"label": "malicious"}).content.decode()
    assert other.sha256 in html
    assert first.sha256 not in html
    html = client.get("/samples/", {"verdict": "clean"}).content.decode()
    assert first.sha256 in html
    assert other.sha256 not in html
    html = client.get("/scans/", {"status": "succeeded"}).content.decode()
    assert f"/scans/{scan.pk}/" in html


@pytest.mark.parametrize(
    ("role", "upload"), [("researcher", 200), ("reviewer", 200), ("admin", 200), ("auditor", 403)]
)
def test_page_roles(role_users, small_apk: Path, role: str, upload: int) -> None:
    sample, scan = stored_sample(small_apk)
    client = _client(role_users[role])
    for url in ("/samples/", "/scans/", f"/samples/{sample.sha256}/", f"/scans/{scan.pk}/"):
        assert client.get(url).status_code == 200, url
    assert client.get("/samples/upload/").status_code == upload


def test_a_user_without_a_role_gets_403_and_unknown_things_404(make_user, researcher) -> None:
    nobody = _client(make_user())
    assert nobody.get("/samples/").status_code == 403
    assert nobody.get("/scans/").status_code == 403
    client = _client(researcher)
    assert client.get(f"/samples/{'0' * 64}/").status_code == 404
    assert client.get("/scans/999999/").status_code == 404


def test_the_dashboard_shows_scans_per_day_and_verdicts(researcher, small_apk: Path) -> None:
    _, scan = stored_sample(small_apk)
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)
    html = _client(researcher).get("/").content.decode()
    assert "Scans per day (last 14 days)" in html
    assert "Samples by verdict (current release)" in html
    assert '<a href="/samples/?verdict=clean">1</a>' in html
    assert '<a href="/scans/?status=failed">0</a>' in html
    assert "1 scan(s) in 14 days" in html


def test_ingest_samples_command_stores_and_queues(corpus: Path, capsys) -> None:
    from django.core.management import call_command

    from scans.models import Sample, ScanJob

    folder = corpus / "apks"
    call_command("ingest_samples", str(folder), "--label", "clean", verbosity=0)
    files = [p for p in folder.iterdir() if p.is_file() and p.stat().st_size > 0]
    assert Sample.objects.filter(label="clean").count() == len({p.read_bytes() for p in files})
    assert ScanJob.objects.count() >= Sample.objects.count()
    assert "queued" in capsys.readouterr().out
