"""Sample search and pivots: every field of the search box and the API, the md5/sha1
redirect, and the signature page's samples grouped by label (real corpus apps, analysed)."""

from __future__ import annotations

from pathlib import Path

import pytest

from portal.testing import gate
from scans.featurekeys import sample_keys_store
from scans.models import HuntStatus, Label, RetroHunt, Sample
from scans.rulesets import EMPTY
from scans.services import scan_run
from scans.tests.factories import stored_sample
from threats.tests.factories import make_signature

pytestmark = pytest.mark.django_db

SAMPLES = "/api/v1/samples/"
HELLO_A = "HelloMaldr0id-double-package.apk"  # same signer and package as HELLO_B
HELLO_B = "HelloMaldr0id-restart-emulator.apk"
GHSA = "GHSA-2hqv-2xv4-5h5w.apk"  # same signer as ISSUE
ISSUE = "issue2701.apk"  # names www.google-analytics.com
BANK = "InsecureBankv2.apk"  # names www.google-analytics.com, URLs, short code 5554
# the HelloMaldr0id package signed by anyone but the (made-up) owner: hits both builds
REPACKAGED = {"package": "com.maldr0id.example.helloworld", "allowed_certs": ["ab" * 32]}


def _analysed(corpus: Path, name: str, label: str | None = None) -> Sample:
    sample, scan = stored_sample(corpus / "apks" / name, label=label)
    scan_run(scan_id=scan.pk, ruleset_provider=lambda: EMPTY)
    sample.refresh_from_db()
    assert sample.features, f"{name} was not analysed"
    return sample


@pytest.fixture
def apps(corpus: Path) -> dict[str, Sample]:
    return {
        HELLO_A: _analysed(corpus, HELLO_A, Label.MALICIOUS),
        HELLO_B: _analysed(corpus, HELLO_B),
        GHSA: _analysed(corpus, GHSA, Label.CLEAN),
        ISSUE: _analysed(corpus, ISSUE),
        BANK: _analysed(corpus, BANK, Label.CLEAN),
    }


def _found(client, **params) -> set[str]:
    response = client.get(SAMPLES, params)
    assert response.status_code == 200, response.json()
    return {s["original_name"] for s in response.json()["results"]}


def _cert(sample: Sample, algorithm: str = "sha256") -> str:
    assert sample.features is not None
    return str(sample.features["certificates"][0][algorithm])


def test_the_search_box_finds_samples_by_each_hash(api, researcher, apps) -> None:
    client = api(researcher)
    bank = apps[BANK]
    for value in (bank.md5, bank.sha1, bank.sha256, bank.sha256.upper(), f"md5:{bank.md5}"):
        assert _found(client, q=value) == {BANK}, value
    assert _found(client, q=f"sha1:{bank.sha1}") == {BANK}
    assert _found(client, q=f"sha256:{bank.sha256}") == {BANK}
    assert _found(client, q="0" * 32) == set()


def test_the_search_box_finds_file_names_packages_and_app_names(api, researcher, apps) -> None:
    client = api(researcher)
    assert _found(client, q="issue2701") == {ISSUE}  # part of the file name
    assert _found(client, q="name:restart-emulator") == {HELLO_B}
    assert _found(client, q="com.maldr0id.example.helloworld") == {HELLO_A, HELLO_B}
    assert _found(client, q="package:com.maldr0id.example.helloworld") == {HELLO_A, HELLO_B}
    assert _found(client, q="package:com.maldr0id") == set()  # package: is exact
    assert _found(client, q="insecurebank") == {BANK}  # app name, any case
    assert _found(client, q="app:Hello Maldr0id") == {HELLO_A, HELLO_B}


def test_a_signing_certificate_finds_every_app_it_signed(api, researcher, apps) -> None:
    client = api(researcher)
    sha256, sha1 = _cert(apps[ISSUE]), _cert(apps[ISSUE], "sha1")
    assert _cert(apps[GHSA]) == sha256
    assert _found(client, cert=sha256) == {GHSA, ISSUE}
    assert _found(client, cert=sha1) == {GHSA, ISSUE}
    colons = ":".join(sha256[i : i + 2] for i in range(0, 64, 2)).upper()
    assert _found(client, cert=colons) == {GHSA, ISSUE}  # as keytool prints it
    assert _found(client, q=sha256) == {GHSA, ISSUE}  # a bare fingerprint in the box
    assert _found(client, q=f"cert:{sha1}") == {GHSA, ISSUE}
    bad = client.get(SAMPLES, {"cert": "xyz"})
    assert bad.status_code == 400
    assert "cert" in bad.json()["message"]


def test_domains_urls_and_short_codes_find_the_apps_naming_them(api, researcher, apps) -> None:
    client = api(researcher)
    assert _found(client, domain="www.google-analytics.com") == {ISSUE, BANK}
    assert _found(client, domain="google-analytics.com") == {ISSUE, BANK}  # subdomains too
    assert _found(client, q="domain:WWW.Google-Analytics.com") == {ISSUE, BANK}
    assert _found(client, q="www.google-analytics.com") == {ISSUE, BANK}
    assert _found(client, url="http://plus.google.com/") == {BANK}
    assert _found(client, q="http://plus.google.com/") == {BANK}
    assert _found(client, short_code="5554") == {BANK}
    assert _found(client, q="sms:5554") == {BANK}
    assert _found(client, q="5554") == {BANK}
    assert client.get(SAMPLES, {"short_code": "12"}).status_code == 400
    assert client.get(SAMPLES, {"url": "not a url"}).status_code == 400


def test_an_ip_address_finds_the_app_whose_summary_names_it(api, researcher, apps) -> None:
    # no corpus app names an IP: give one stored summary an address, and key it again
    sample = apps[HELLO_B]
    sample.features["indicators"]["ips"] = ["10.0.2.2"]
    sample.save(update_fields=["features"])
    sample_keys_store(samples=[sample])
    client = api(researcher)
    assert _found(client, ip="10.0.2.2") == {HELLO_B}
    assert _found(client, q="10.0.2.2") == {HELLO_B}
    assert _found(client, q="ip:10.0.2.3") == set()
    assert client.get(SAMPLES, {"ip": "10.0.2"}).status_code == 400


def test_other_versions_are_the_same_package_newest_version_first(api, researcher, apps) -> None:
    Sample.objects.filter(pk=apps[HELLO_A].pk).update(
        features={**apps[HELLO_A].features, "manifest": {"version_code": 7}}
    )
    response = api(researcher).get(
        SAMPLES, {"q": "package:com.maldr0id.example.helloworld", "order": "version"}
    )
    names = [s["original_name"] for s in response.json()["results"]]
    assert names == [HELLO_A, HELLO_B]


def test_the_schema_documents_the_search_fields(api, researcher) -> None:
    schema = api(researcher).get("/api/schema/", {"format": "json"})
    assert schema.status_code == 200
    params = schema.json()["paths"]["/api/v1/samples/"]["get"]["parameters"]
    names = {p["name"] for p in params}
    assert {"q", "cert", "domain", "url", "ip", "short_code", "signature", "order"} <= names


# --- pages -----------------------------------------------------------------------------------
def test_md5_and_sha1_pages_redirect_to_the_sample(client, researcher, apps) -> None:
    client.force_login(researcher)
    bank = apps[BANK]
    for value in (bank.md5, bank.sha1, bank.md5.upper()):
        response = client.get(f"/samples/{value}/")
        assert response.status_code == 302, value
        assert response["Location"] == f"/samples/{bank.sha256}/"
    assert client.get(f"/samples/{'0' * 32}/").status_code == 404
    assert client.get("/samples/nothing/").status_code == 404


def test_an_md5_two_samples_share_shows_the_search_results(client, researcher, apps) -> None:
    Sample.objects.filter(pk=apps[HELLO_B].pk).update(md5=apps[HELLO_A].md5)
    client.force_login(researcher)
    response = client.get(f"/samples/{apps[HELLO_A].md5}/")
    assert response.status_code == 302
    assert response["Location"] == f"/samples/?q={apps[HELLO_A].md5}"
    listed = client.get(response["Location"]).content.decode()
    assert apps[HELLO_A].sha256 in listed
    assert apps[HELLO_B].sha256 in listed


def test_the_sample_page_links_each_value_to_its_pivot(client, researcher, apps) -> None:
    client.force_login(researcher)
    page = client.get(f"/samples/{apps[ISSUE].sha256}/").content.decode()
    assert f"/samples/?cert={_cert(apps[ISSUE])}" in page
    assert "/samples/?domain=www.google-analytics.com" in page
    assert "/samples/?q=package%3Acom.ibotpeaches.issue2701.test&amp;order=version" in page
    bank = client.get(f"/samples/{apps[BANK].sha256}/").content.decode()
    assert "/samples/?short_code=5554" in bank
    assert "/samples/?url=http%3A//plus.google.com/" in bank


def test_the_sample_list_searches_and_reports_bad_values(client, researcher, apps) -> None:
    client.force_login(researcher)
    page = client.get("/samples/", {"cert": _cert(apps[ISSUE])}).content.decode()
    assert apps[GHSA].sha256 in page
    assert apps[BANK].sha256 not in page
    bad = client.get("/samples/", {"q": "cert:nope"})
    assert bad.status_code == 200
    assert "is not a signing certificate" in bad.content.decode()


# --- the signature page ------------------------------------------------------------------------
def test_the_signature_page_lists_its_hits_grouped_by_label(client, researcher, apps) -> None:
    # a package signature hits both HelloMaldr0id builds (one malicious, one unknown)
    sig = make_signature(kind="package_cert", body=REPACKAGED)
    hunt = gate(sig)
    assert hunt.match_count == 2
    client.force_login(researcher)
    page = client.get(f"/signatures/{sig.pk}/").content.decode()
    assert 'id="signature-samples"' in page
    panel = page[page.index('id="signature-samples"') :]
    assert panel.index("Known malicious") < panel.index(apps[HELLO_A].sha256[:16])
    assert panel.index("Unknown") < panel.index(apps[HELLO_B].sha256[:16])
    assert f"/samples/?signature={sig.pk}&amp;label=malicious" in panel
    assert f"/retrohunts/{hunt.pk}/" in panel
    listed = client.get("/samples/", {"signature": sig.pk, "label": "malicious"})
    assert apps[HELLO_A].sha256 in listed.content.decode()
    assert apps[HELLO_B].sha256 not in listed.content.decode()


def test_signature_list_hit_counts_link_to_the_samples(client, researcher, apps) -> None:
    sig = make_signature(kind="package_cert", body=REPACKAGED)
    gate(sig)
    client.force_login(researcher)
    page = client.get("/signatures/").content.decode()
    assert f"/samples/?signature={sig.pk}&amp;label=malicious" in page
    assert f"/samples/?signature={sig.pk}&amp;label=unknown" in page


# --- the retro-hunt pages --------------------------------------------------------------------
def test_the_hunt_list_names_the_rules_it_ran(client, researcher) -> None:
    sigs = [make_signature() for _ in range(5)]
    hunt = gate(*sigs)
    client.force_login(researcher)
    page = client.get("/retrohunts/").content.decode()
    row = page[page.index(f'href="/retrohunts/{hunt.pk}/"') :]
    row = row[: row.index("</tr>")]
    shown = [s for s in sigs if f'href="/signatures/{s.pk}/"' in row]
    assert len(shown) == 3
    assert all(s.name in row for s in shown)
    assert "and 2 more" in row


def test_a_hunt_over_no_samples_does_not_look_like_finished_work(client, researcher) -> None:
    hunt = gate(make_signature())  # no sample stored
    assert (hunt.status, hunt.total) == ("finished", 0)
    client.force_login(researcher)
    listed = client.get("/retrohunts/").content.decode()
    row = listed[listed.index(f'href="/retrohunts/{hunt.pk}/"') :]
    row = row[: row.index("</tr>")]
    assert "nothing to hunt" in row
    assert "0 samples" in row
    assert "badge finished" not in row
    page = client.get(f"/retrohunts/{hunt.pk}/").content.decode()
    assert "nothing to hunt: 0 samples" in page
    assert "badge finished" not in page


def test_the_cancel_button_is_part_of_the_polled_status_and_goes_when_done(
    client, admin_user
) -> None:
    hunt = RetroHunt.objects.create(status=HuntStatus.RUNNING, total=10, records=[])
    client.force_login(admin_user)
    polled = client.get(f"/retrohunts/{hunt.pk}/", headers={"HX-Request": "true"})
    assert 'id="cancel-hunt"' in polled.content.decode()
    RetroHunt.objects.filter(pk=hunt.pk).update(status=HuntStatus.FINISHED, scanned=10)
    polled = client.get(f"/retrohunts/{hunt.pk}/", headers={"HX-Request": "true"})
    assert 'id="cancel-hunt"' not in polled.content.decode()
    assert 'id="cancel-hunt"' not in client.get(f"/retrohunts/{hunt.pk}/").content.decode()
