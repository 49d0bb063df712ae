"""A burst against the portal as `make run` starts it: 500 uploads, 80 publishes and 10 hunts
within about a minute. Afterwards nothing is lost, nothing is stuck, and the portal answers."""

from __future__ import annotations

import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import requests

from portal.services import api_token_create
from portal.testing import wait_for
from releases.models import Release, ReleaseState
from scans.models import HuntStatus, RetroHunt, ScanJob, ScanStatus
from scans.tests.conftest import corpus_files

pytestmark = pytest.mark.integration

UPLOADS, PUBLISHES, HUNTS = 500, 80, 10


def test_a_burst_of_uploads_publishes_and_hunts_loses_nothing(
    update_repo: Any, portal_server: Any, make_user: Any
) -> None:
    # given the portal as make run starts it, a researcher and a reviewer with API tokens
    researcher = make_user("researcher", username="burst-researcher")
    reviewer = make_user("reviewer", username="burst-reviewer")
    researcher_token = api_token_create(user=researcher)[1]
    reviewer_token = api_token_create(user=reviewer)[1]
    server = portal_server(RETROHUNT_CHUNK_SIZE="50")
    base = server.base
    files = [(p.name, p.read_bytes()) for p in corpus_files()]

    def call(kind: str, i: int) -> tuple[str, int]:
        if kind == "upload":
            name, data = files[i % len(files)]
            response = requests.post(
                f"{base}/api/v1/samples/",
                files={"file": (name, data)},
                headers={"Authorization": f"Token {researcher_token}"},
                timeout=120,
            )
        elif kind == "publish":
            response = requests.post(
                f"{base}/api/v1/releases/",
                json={"notes": f"burst {i}"},
                headers={"Authorization": f"Token {reviewer_token}"},
                timeout=120,
            )
        else:
            response = requests.post(
                f"{base}/api/v1/retrohunts/",
                json={"rule": {"kind": "indicator", "body": f"burst-{i}.example"}},
                headers={"Authorization": f"Token {researcher_token}"},
                timeout=120,
            )
        return kind, response.status_code

    wait_for(lambda: _healthy(base), timeout=120, what=server.output())
    # when the burst arrives, interleaved, from 8 clients at once
    work = [("upload", i) for i in range(UPLOADS)]
    for i in range(PUBLISHES):
        work.insert(i * UPLOADS // PUBLISHES, ("publish", i))
    for i in range(HUNTS):
        work.insert(i * len(work) // HUNTS, ("hunt", i))
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(lambda item: call(*item), work))
    burst_seconds = time.monotonic() - started
    # then every request got an answer that is not a server error
    by_kind = Counter(answers)
    assert all(status < 500 for _, status in answers), by_kind
    assert by_kind[("upload", 201)] + by_kind[("upload", 200)] == UPLOADS, by_kind
    assert by_kind[("hunt", 201)] + by_kind[("hunt", 202)] == HUNTS, by_kind
    accepted = by_kind[("publish", 202)]
    refused = by_kind[("publish", 409)] + by_kind[("publish", 429)]
    assert accepted >= 1
    assert accepted + refused == PUBLISHES, by_kind
    # and afterwards every scan, hunt and release finishes: nothing lost, nothing stuck
    scans = ScanJob.objects.filter(requested_by=researcher)
    assert scans.count() == UPLOADS
    wait_for(
        lambda: not scans.filter(status__in=(ScanStatus.QUEUED, ScanStatus.RUNNING)).exists(),
        timeout=600,
        what=f"every scan to finish\n{server.output()[-3000:]}",
    )
    wait_for(
        lambda: not RetroHunt.objects.exclude(status=HuntStatus.FINISHED).exists(),
        timeout=300,
        what="every hunt to finish",
    )
    wait_for(
        lambda: not Release.objects.filter(state=ReleaseState.BUILDING).exists(),
        timeout=300,
        what="every release to be built",
    )
    assert RetroHunt.objects.filter(status=HuntStatus.FINISHED).count() == HUNTS
    assert Release.objects.filter(state=ReleaseState.PUBLISHED).count() == accepted
    failed = scans.filter(status=ScanStatus.FAILED)
    # the only failures are files that are not apps, each with its reason
    assert all(s.error and "interrupted" not in s.error for s in failed)
    # and the portal answers, with its worker and beat alive
    assert _healthy(base)
    output = server.output()
    assert "exited with code" not in output, output[-3000:]
    assert "Unrecoverable error" not in output
    print(f"burst of {len(work)} requests took {burst_seconds:.1f} s; {dict(by_kind)}")


def _healthy(base: str) -> bool:
    try:
        response = requests.get(f"{base}/healthz", timeout=10)
    except requests.RequestException:
        return False
    return response.status_code == 200
