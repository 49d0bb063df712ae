"""With a real ``celery worker`` process: an upload is scanned, then the chained livehunt
task matches it, notifies the rule's owner and POSTs the webhook, once each."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from livehunt.models import DeliveryStatus, WatchHit, WebhookDelivery
from livehunt.services import watch_rule_create
from livehunt.tests.conftest import PACKAGE, YARA_MATCH, YARA_MISS, wait_received
from portal.models import Notification
from portal.testing import wait_for
from scans.models import ScanJob, ScanStatus

pytestmark = [pytest.mark.integration]


def test_an_upload_is_matched_by_the_worker_after_its_scan(
    celery_worker, api, researcher, small_apk: Path, hook_server
) -> None:
    # given a watch rule with a webhook, one that does not match, and a scan worker
    rule = watch_rule_create(
        user=researcher,
        kind="yara",
        body=YARA_MATCH,
        name="tiny",
        webhook_url=hook_server.url,
    )
    watch_rule_create(user=researcher, kind="yara", body=YARA_MISS)
    worker = celery_worker("scans", env={"LIVEHUNT_WEBHOOK_ALLOW_LOCAL": "true"})

    # when an app is uploaded
    response = api(researcher).post(
        "/api/v1/samples/",
        {"file": SimpleUploadedFile(small_apk.name, small_apk.read_bytes())},
        format="multipart",
    )
    assert response.status_code == 201
    scan_id = response.json()["scan"]["id"]

    # then the scan succeeds, and the worker's livehunt task records one hit and notifies
    wait_for(
        lambda: ScanJob.objects.filter(pk=scan_id, status=ScanStatus.SUCCEEDED).exists(),
        timeout=120,
        what=f"the scan to succeed; worker log:\n{worker.output()}",
    )
    wait_for(
        lambda: Notification.objects.filter(recipient=researcher, kind="livehunt").exists(),
        timeout=60,
        what=f"the livehunt notification; worker log:\n{worker.output()}",
    )
    wait_for(
        lambda: WebhookDelivery.objects.filter(status=DeliveryStatus.DELIVERED).exists(),
        timeout=60,
        what=f"the webhook delivery; worker log:\n{worker.output()}",
    )
    wait_received(hook_server, 1)
    hit = WatchHit.objects.get()
    assert hit.rule_id == rule.pk
    assert hit.scan_id == scan_id
    assert hit.package == PACKAGE
    assert "livehunt.watch_sample" in worker.output()
    assert len(hook_server.received) == 1
    assert hook_server.received[0].body["rule"]["name"] == "tiny"
    note = Notification.objects.get(recipient=researcher)
    assert "tiny" in note.title

    # and the same app uploaded again (a new scan) notifies and posts nothing more
    again = api(researcher).post(
        "/api/v1/samples/",
        {"file": SimpleUploadedFile(small_apk.name, small_apk.read_bytes())},
        format="multipart",
    )
    assert again.status_code in (200, 201)
    scan2 = again.json()["scan"]["id"]
    assert scan2 != scan_id
    wait_for(
        lambda: ScanJob.objects.filter(pk=scan2, status=ScanStatus.SUCCEEDED).exists(),
        timeout=120,
        what=f"the second scan; worker log:\n{worker.output()}",
    )
    wait_for(
        lambda: worker.output().count("livehunt.watch_sample") >= 4,  # received + succeeded x2
        timeout=60,
        what=f"the second watch task; worker log:\n{worker.output()}",
    )
    assert Notification.objects.filter(recipient=researcher).count() == 1
    assert WatchHit.objects.count() == 1
    assert WebhookDelivery.objects.count() == 1
    assert len(hook_server.received) == 1
