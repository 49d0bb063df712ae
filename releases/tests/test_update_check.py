"""The update check at fleet scale: rollout as signed data, a compatibility answer with no
database query, and the reference client following it all against a live portal."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from django.core import signals
from django.db import close_old_connections
from rest_framework.test import APIClient

from client.__main__ import main
from client.state import StateDir
from engine.rollout import Rollout
from releases.models import Device, Release
from releases.services import (
    device_revoke,
    release_build,
    release_halt,
    release_publish,
    release_rollout,
)
from releases.tests.conftest import ENROLLMENT_KEY
from releases.tuf_repo import UpdateRepository, full_target_name
from threats.models import Signature, Status

UPDATE = "/api/v1/devices/update/"


def publish(by: Any) -> int:
    release = release_publish(by=by, enqueue=False)
    return release_build(number=release.number).number


def device_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


def signed_rollout(repo: UpdateRepository, number: int) -> Rollout:
    custom = repo.target_files()[full_target_name(number)].custom
    return Rollout.from_custom(custom["rollout"])


@pytest.mark.django_db
def test_rollout_and_halt_are_signed_into_targets_and_the_timestamp_at_once(
    update_repo: UpdateRepository, signatures: Any, reviewer: Any
) -> None:
    signatures.deploy()
    publish(reviewer)
    before = update_repo.timestamp().signed.version
    first = signed_rollout(update_repo, 1)
    assert (first.percent, first.halted, first.urgent) == (100, False, False)
    assert first.published_at > 0
    # when a reviewer narrows the rollout, the signed data says so in a new timestamp
    release_rollout(number=1, percent=20, by=reviewer)
    assert signed_rollout(update_repo, 1).percent == 20
    assert update_repo.timestamp().signed.version == before + 1
    # and a halt likewise
    release_halt(number=1, by=reviewer, reason="false positives on a bank app")
    assert signed_rollout(update_repo, 1).halted is True
    assert update_repo.timestamp().signed.version == before + 2


@pytest.mark.django_db
def test_a_release_that_disables_or_quiets_a_signature_is_signed_urgent(
    update_repo: UpdateRepository, signatures: Any, reviewer: Any
) -> None:
    noisy, gone = signatures.deploy(), signatures.deploy()
    signatures.deploy()
    publish(reviewer)
    signatures.deploy()
    publish(reviewer)  # adds one: a normal release
    assert signed_rollout(update_repo, 2).urgent is False
    Signature.objects.filter(pk=noisy.pk).update(status=Status.NOISY)
    publish(reviewer)  # the kill switch: a signature marked noisy
    assert signed_rollout(update_repo, 3).urgent is True
    Signature.objects.filter(pk=gone.pk).update(status=Status.DISABLED)
    publish(reviewer)  # a signature disabled
    assert signed_rollout(update_repo, 4).urgent is True


@pytest.mark.django_db
def test_the_compatibility_check_makes_no_database_query(
    update_repo: UpdateRepository,
    make_device: Callable[..., tuple[Device, str]],
    signatures: Any,
    reviewer: Any,
    django_assert_num_queries: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        _, token = make_device()  # registration caches the device's token entry
    client = device_client(token)
    signatures.deploy()
    publish(reviewer)
    # then offers, "up to date" answers and a changed rollout cost no query at all, from the
    # very first check
    with django_assert_num_queries(0):
        offered = client.get(UPDATE, {"installed": 0})
        current = client.get(UPDATE, {"installed": 1})
    assert offered.json() == {"version": 1, "target": "full-1.bin", "min_wait_seconds": 0}
    assert current.json() == {"up_to_date": True, "min_wait_seconds": 0}
    signatures.deploy()
    publish(reviewer)
    release_halt(number=2, by=reviewer)
    with django_assert_num_queries(0):
        # a device on the halted release is offered nothing lower; a new one the last good one
        assert client.get(UPDATE, {"installed": 2}).json()["up_to_date"] is True
        assert client.get(UPDATE, {"installed": 0}).json()["version"] == 1


@pytest.mark.django_db
def test_a_revoked_device_is_refused_at_once_despite_the_cache(
    update_repo: UpdateRepository, make_device: Callable[..., tuple[Device, str]], reviewer: Any
) -> None:
    device, token = make_device()
    client = device_client(token)
    assert client.get(UPDATE, {"installed": 0}).status_code == 200  # now cached
    device_revoke(device=device, by=reviewer)
    refused = client.get(UPDATE, {"installed": 0})
    assert refused.status_code == 401
    assert refused.json()["message"] == "Invalid or revoked device token."


@pytest.mark.django_db
def test_the_check_no_longer_writes_per_request(
    update_repo: UpdateRepository, make_device: Callable[..., tuple[Device, str]]
) -> None:
    device, token = make_device()
    device_client(token).get(UPDATE, {"installed": 5})
    device.refresh_from_db()
    # adoption and last-seen come from the phones' reports (POST /api/v1/devices/reports/)
    assert (device.installed_release, device.last_seen_at) == (0, None)


# --- the reference client against the live portal ------------------------------------------


def run(*argv: str) -> dict[str, Any]:
    out = io.StringIO()
    with redirect_stdout(out):
        code = main(list(argv))
    lines = [json.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    assert code == 0, lines
    result: dict[str, Any] = lines[0]
    return result


@pytest.fixture
def phone(live_server: Any, update_repo: UpdateRepository, tmp_path: Path) -> Callable[..., Path]:
    root = tmp_path / "app-root.json"
    update_repo.export_root(root)

    def register(name: str, channel: str = "stable") -> Path:
        state = tmp_path / name
        run(
            "register",
            *("--server", live_server.url, "--enrollment-key", ENROLLMENT_KEY),
            *("--root", str(root), "--state", str(state), "--channel", channel),
        )
        return state

    return register


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_the_client_follows_releases_halts_and_the_kill_switch_without_force(
    phone: Callable[..., Path], signatures: Any, reviewer: Any
) -> None:
    a = phone("a")
    sig = signatures.deploy()
    signatures.deploy()
    publish(reviewer)
    # "update now", as the README's walkthrough does it, twice around a publish: no --force
    first = run("sync", "--state", str(a))
    assert first["to"] == 1
    # and the phone says what it installed: adoption comes from its report
    assert first["reports"] == {"sent": 1, "accepted": 0, "waiting": 0}
    device = Device.objects.get(device_id=StateDir(a).config().device_id)
    assert (device.installed_release, device.last_seen_at is not None) == (1, True)
    signatures.deploy()
    publish(reviewer)
    assert run("sync", "--state", str(a))["applied"] == "delta"
    # the scheduled check of an unchanged repository installs nothing and downloads nothing
    idle = run("check", "--state", str(a), "--force")
    assert (idle["checked"], idle["to"], idle["bytes"]) == ("unchanged", 2, 0)
    # a halted release is left alone by a device on it, and skipped by a new device
    release_halt(number=2, by=reviewer)
    b = phone("b")
    assert run("sync", "--state", str(b))["to"] == 1
    assert run("sync", "--state", str(a))["to"] == 2
    # the kill switch: a signature marked noisy makes an urgent release, which the scheduled
    # check installs at once, from the halted release and from the last good one alike
    Signature.objects.filter(pk=sig.pk).update(status=Status.NOISY)
    publish(reviewer)
    for state in (a, b):
        report = run("check", "--state", str(state), "--force")
        assert (report["to"], report.get("urgent")) == (3, True)


# --- the fast path in front of Django answers exactly as the DRF view does ------------------


def wsgi_get(query: str, token: str | None) -> tuple[int, dict[str, str], dict[str, Any]]:
    """A request through portal.wsgi.application, the callable gunicorn serves."""
    from wsgiref.util import setup_testing_defaults

    from portal.wsgi import application

    environ: dict[str, Any] = {
        "PATH_INFO": "/api/v1/devices/update/",
        "QUERY_STRING": query,
        "REQUEST_METHOD": "GET",
        "HTTP_HOST": "127.0.0.1",
    }
    if token is not None:
        environ["HTTP_AUTHORIZATION"] = f"Token {token}"
    setup_testing_defaults(environ)
    seen: dict[str, Any] = {}

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> None:
        seen["status"], seen["headers"] = int(status.split()[0]), dict(headers)

    # as django.test.Client does: the test's database connection must outlive the request
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        body = b"".join(application(environ, start_response))
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    return seen["status"], seen["headers"], json.loads(body)


@pytest.mark.django_db
def test_the_fast_path_and_the_api_view_give_the_same_answers(
    update_repo: UpdateRepository,
    make_device: Callable[..., tuple[Device, str]],
    signatures: Any,
    reviewer: Any,
    settings: Any,
    django_assert_num_queries: Any,
) -> None:
    settings.DEVICE_UPDATE_RATE = "3/min"
    _, token = make_device()
    _, other = make_device()
    signatures.deploy()
    publish(reviewer)
    view = device_client(token)
    # the first check fills the token cache through the full stack
    assert view.get(UPDATE, {"installed": 0}).json()["version"] == 1
    with django_assert_num_queries(0):
        fast = [wsgi_get(q, token) for q in ("installed=0", "installed=1")]
    assert [(status, body) for status, _, body in fast] == [
        (200, {"version": 1, "target": "full-1.bin", "min_wait_seconds": 0}),
        (200, {"up_to_date": True, "min_wait_seconds": 0}),
    ]
    assert fast[0][1]["Content-Type"] == "application/json"
    # both doors count in one per-device limit (3/min): the fourth check is refused
    status, headers, body = wsgi_get("installed=0", token)
    assert status == 429
    assert int(headers["Retry-After"]) == body["extra"]["retry_after_seconds"] > 0
    refused = view.get(UPDATE, {"installed": 0})
    assert refused.status_code == 429
    assert refused.json()["message"] == body["message"]
    # and what the fast path does not recognise, Django answers with its usual errors
    assert wsgi_get("installed=%C2%B3", other)[0] == 400  # a Unicode digit
    assert wsgi_get("installed=99999999999", other)[0] == 400  # past the field's range
    status, _, body = wsgi_get("installed=0", "dev_not-a-token")
    assert (status, body["message"]) == (401, "Invalid or revoked device token.")
    assert wsgi_get("installed=0", None)[0] == 401


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
def test_what_a_phone_detects_reaches_the_portal_with_its_next_check(
    phone: Callable[..., Path], signatures: Any, reviewer: Any, corpus: Path
) -> None:
    from releases.models import DetectionReport

    apk = corpus / "apks" / "v2-only-with-rsa-pkcs1-sha256-2048.apk"
    sha = "b11e85df088c3474b2d0f266f1a4863744162fc44b4b53a87d3432f03dce25c6"
    sig = signatures.deploy(sha)
    publish(reviewer)
    a = phone("a")
    run("sync", "--state", str(a))
    # when the phone scans an app its database detects (offline: the report is queued)
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["scan", "--state", str(a), str(apk)]) == 0
    assert json.loads(out.getvalue())["verdict"] == "malicious"
    assert not DetectionReport.objects.exists()
    # then its next check sends it: the signature's revision, the release, the app's facts
    report = run("check", "--state", str(a), "--force")
    assert report["reports"]["accepted"] == 1
    stored = DetectionReport.objects.get()
    assert (stored.signature_id, stored.revision, stored.release, stored.app_sha256) == (
        sig.pk,
        1,
        1,
        sha,
    )
    assert stored.package == "android.appsecurity.cts.tinyapp"
    # and it is not sent twice
    assert run("check", "--state", str(a), "--force").get("reports") is None


@pytest.mark.django_db
def test_a_halt_made_where_the_repository_is_not_is_signed_by_the_publish_queue(
    update_repo: UpdateRepository,
    signatures: Any,
    reviewer: Any,
    settings: Any,
    tmp_path: Path,
    django_capture_on_commit_callbacks: Any,
) -> None:
    from releases.services import rollouts_sync

    signatures.deploy()
    publish(reviewer)
    keys = settings.TUF_KEYS_DIR
    # given a web machine that holds neither the repository's keys nor the repository
    settings.TUF_KEYS_DIR = tmp_path / "no-keys-here"
    with django_capture_on_commit_callbacks() as queued:
        release_halt(number=1, by=reviewer, reason="false positives")
    # then the halt is recorded, and the signing is sent to the publish queue
    assert Release.objects.get(number=1).halted
    # (the other callback tells the current verdicts that the current release changed)
    names = sorted(getattr(c, "__name__", "") for c in queued)
    assert names == ["<lambda>", "current_release_announce"]
    assert signed_rollout(update_repo, 1).halted is False
    # when the publish machine's worker runs it, phones see the halt
    settings.TUF_KEYS_DIR = keys
    assert rollouts_sync() == 1
    assert signed_rollout(update_repo, 1).halted is True
    assert rollouts_sync() == 0  # nothing left behind
