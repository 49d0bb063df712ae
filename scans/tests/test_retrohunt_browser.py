"""In Chromium: a researcher starts a retro-hunt with the button on a signature page, watches the
progress bar reach 100 % while a real worker on queue ``hunts`` runs it, and finds the matches
grouped by label, each linked to its sample."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from scans.models import RetroHunt
from scans.tests.factories import stored_sample
from threats import services
from threats.tests.factories import make_family

pytestmark = [pytest.mark.browser, pytest.mark.integration]

# Every app with a DEX carries its magic "dex\n035" (or 036..039).
ANY_DEX = 'rule any_dex { strings: $d = "dex\\n03" condition: $d }'
LABELLED = {
    "a2dp.Vol_137.apk": "clean",
    "ovaa.apk": "clean",
    "InsecureBankv2.apk": "malicious",
    "android.apk": "malicious",
    "issue1498.apk": "unknown",
    "app-prod-debug.apk": "unknown",
}


def test_start_a_hunt_from_the_signature_page_and_watch_it_finish(
    page, login, celery_worker, researcher, corpus: Path, settings, monkeypatch
) -> None:
    # given six corpus apps stored through the scans service, two of each label, ...
    stored = {
        name: stored_sample(corpus / "apks" / name, label=label, user=researcher)[0]
        for name, label in LABELLED.items()
    }
    # ... a draft YARA signature, and a worker on queue hunts (one sample per chunk, slowed a
    # little so the bar is seen moving)
    sig = services.signature_create(
        actor=researcher, kind="yara", body=ANY_DEX, family=make_family(name="Joker")
    )
    settings.RETROHUNT_CHUNK_SIZE = 1
    monkeypatch.setenv("RETROHUNT_TEST_DELAY_SECONDS", "0.5")
    worker = celery_worker("hunts")

    # when the researcher presses "Retro-hunt" on the signature page
    login(researcher)
    page.goto(f"/signatures/{sig.pk}/")
    page.click("#retrohunt")

    # then the hunt page opens and its progress bar moves up to 100 %
    page.wait_for_url(re.compile(r"/retrohunts/\d+/$"))
    hunt = RetroHunt.objects.get()
    assert page.url.endswith(f"/retrohunts/{hunt.pk}/")
    assert hunt.revision_ids == [sig.current_revision_id]
    seen: set[int] = set()
    try:
        for _ in range(600):
            percent = int(page.inner_text("#hunt-percent").rstrip("%"))
            seen.add(percent)
            if percent == 100:
                break
            page.wait_for_timeout(200)
        page.wait_for_selector("#hunt-status[data-status=finished]", timeout=30_000)
    except Exception:
        pytest.fail(f"the hunt did not finish; worker log:\n{worker.output()[-4000:]}")
    assert 100 in seen
    assert len(seen) >= 2, f"the bar never moved: {seen}"  # it was seen before the end
    assert page.get_attribute("#hunt-progress", "value") == "100"

    # ... and the matches are grouped by label, each linked to its sample
    for label in ("clean", "malicious", "unknown"):
        group = page.locator(f"#matches-{label}")
        expected = {stored[n].sha256 for n, lab in LABELLED.items() if lab == label}
        links = {
            (a.get_attribute("href") or "").strip("/").split("/")[-1]
            for a in group.locator("a.mono").all()
        }
        assert links == expected, label
        assert f"{len(expected)} match(es)" in group.inner_text()

    # ... and a link opens the sample's page
    page.locator("#matches-malicious a.mono").first.click()
    page.wait_for_url(re.compile(r"/samples/[0-9a-f]{64}/$"))
    assert page.url.rstrip("/").split("/")[-1] in {
        stored["InsecureBankv2.apk"].sha256,
        stored["android.apk"].sha256,
    }
