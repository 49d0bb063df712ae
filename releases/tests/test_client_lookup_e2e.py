"""``client lookup`` (the real reference client) against the real portal on a live server: a
released signature's verdict reaches the phone, and a second run costs the portal nothing."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from releases.services import release_build, release_publish

# the live-server phone of the sync tests: register through the real client, same root
from releases.tests.test_client_e2e import phone, run  # noqa: F401
from scans.models import LookupCount
from scans.services import scan_run
from scans.tests.factories import stored_sample
from scans.verdicts import verdicts_sync

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def test_a_released_verdict_reaches_the_phone_and_the_second_run_is_answered_from_cache(
    phone,  # noqa: F811
    signatures,
    reviewer,
    researcher,
    corpus: Path,
) -> None:
    # given InsecureBankv2 stored and scanned (clean: no release yet)
    apk = corpus / "apks" / "InsecureBankv2.apk"
    sample, scan = stored_sample(apk, user=researcher)
    scan_run(scan_id=scan.pk)
    sample.refresh_from_db()
    assert sample.verdict == "clean"
    # and a hash signature for it, gated by a real hunt, published in release 1
    signatures.deploy(sample.sha256)
    release = release_publish(by=reviewer, enqueue=False)
    release_build(number=release.number)
    assert verdicts_sync().release == release.number
    # and a registered phone with that release installed
    state = phone("lookup-phone")
    code, out = run("sync", "--state", str(state), "--force")
    assert code == 0, out
    assert out[0]["to"] == release.number
    unseen = hashlib.sha256(b"an app no one has uploaded").hexdigest()

    # when the phone looks up the app file and an unseen hash
    code, lines = run("lookup", "--state", str(state), str(apk), unseen)

    # then the portal's current verdict comes back: malicious, with the family and signature
    assert code == 0, lines
    bank, other = lines
    assert (bank["sha256"], bank["verdict"], bank["cached"]) == (sample.sha256, "malicious", False)
    assert bank["signature"].startswith("Andr.")
    assert "Joker" in bank["signature"]
    assert bank["release"] == release.number
    assert (other["sha256"], other["verdict"], other["cached"]) == (unseen, "unknown", False)
    # and the portal counted each hash once, without the device
    counts = dict(LookupCount.objects.values_list("sha256", "count"))
    assert counts == {sample.sha256: 1, unseen: 1}

    # when the phone asks again
    code, again = run("lookup", "--state", str(state), unseen, str(apk))

    # then both answers come from its cache: the portal saw no request
    assert code == 0
    assert [(x["verdict"], x["cached"]) for x in again] == [("unknown", True), ("malicious", True)]
    assert dict(LookupCount.objects.values_list("sha256", "count")) == counts


def test_a_phone_over_its_lookup_rate_exits_75_and_does_not_ask_again_early(
    phone,  # noqa: F811
    settings,
) -> None:
    # given a portal that allows one look-up per device an hour
    settings.DEVICE_LOOKUP_RATE = "1/hour"
    state = phone("throttled-phone")
    first, second = (hashlib.sha256(x).hexdigest() for x in (b"first", b"second"))
    code, lines = run("lookup", "--state", str(state), first)
    assert code == 0, lines
    # when it asks about another app within the hour
    code, lines = run("lookup", "--state", str(state), first, second)
    # then the cached answer is still printed, the other app is not answered, and exit 75
    assert code == 75
    assert lines[0]["cached"] is True
    assert "not asked" in lines[1]["error"]
    assert lines[2]["retry_after_seconds"] > 30
    # and the next run does not ask before the time it was told, even where the portal
    # would now answer (a request would have counted the second app)
    settings.DEVICE_LOOKUP_RATE = "1000/hour"
    code, lines = run("lookup", "--state", str(state), second)
    assert code == 75
    assert not LookupCount.objects.filter(sha256=second).exists()
    # and --force asks at once
    code, lines = run("lookup", "--state", str(state), "--force", second)
    assert code == 0
    assert lines[0]["verdict"] == "unknown"
    assert LookupCount.objects.get(sha256=second).count == 1
