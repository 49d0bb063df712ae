"""The real client refuses a stale feed from the real portal: a timestamp.json rolled back to
an older version, and one that has expired (signed by the real timestamp key either way).

Same set-up as test_client_e2e: the portal on a live server, the client through its CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portal.models import User
from releases.tests.conftest import SignatureMaker
from releases.tests.test_client_e2e import installed, phone, publish, sync  # noqa: F401
from releases.tuf_repo import UpdateRepository

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


def _timestamp(repo: UpdateRepository) -> Path:
    return repo.metadata_dir / "timestamp.json"


def test_a_rolled_back_timestamp_is_refused_and_the_old_database_kept(
    phone: Callable[..., Path],  # noqa: F811
    signatures: SignatureMaker,
    reviewer: User,
    update_repo: UpdateRepository,
) -> None:
    # given a phone that has installed release 2, and so trusts the timestamp that named it
    a = phone()
    signatures.deploy()
    publish(reviewer)
    assert sync(a)[0] == 0
    old_timestamp = _timestamp(update_repo).read_bytes()
    signatures.deploy()
    second = publish(reviewer)
    assert sync(a)[1]["to"] == 2
    before = (a / "db" / "state.bin").read_bytes()
    # when release 3 is out but a mirror serves the timestamp of release 1 again
    signatures.deploy()
    third = publish(reviewer)
    new_timestamp = _timestamp(update_repo).read_bytes()
    _timestamp(update_repo).write_bytes(old_timestamp)
    code, report = sync(a)
    # then the client refuses it, says why, and keeps release 2 byte for byte
    assert code == 1, report
    assert "TUF verification failed" in report["error"]
    assert "version" in report["error"].lower()
    assert report["from"] == 2
    assert (a / "db" / "state.bin").read_bytes() == before
    assert installed(a) == (2, second.state_sha256)
    # and once the real timestamp is back, the same phone moves on
    _timestamp(update_repo).write_bytes(new_timestamp)
    code, report = sync(a)
    assert (code, report["from"], report["to"]) == (0, 2, 3)
    assert installed(a) == (3, third.state_sha256)


def test_an_expired_timestamp_is_refused_and_the_old_database_kept(
    phone: Callable[..., Path],  # noqa: F811
    signatures: SignatureMaker,
    reviewer: User,
    update_repo: UpdateRepository,
) -> None:
    # given a phone on release 1
    a = phone()
    signatures.deploy()
    first = publish(reviewer)
    assert sync(a)[0] == 0
    before = (a / "db" / "state.bin").read_bytes()
    # when release 2 is published but its timestamp is then re-signed, with the real
    # timestamp key and a newer version, by a signer whose clock is two days behind: the
    # timestamp devices fetch expired yesterday
    signatures.deploy()
    second = publish(reviewer)
    two_days_ago = datetime.now(UTC) - timedelta(days=2)
    stale = UpdateRepository(update_repo.root_dir, update_repo.keys, clock=lambda: two_days_ago)
    stale.refresh_timestamp(timedelta(hours=24))
    assert update_repo.timestamp().signed.expires < datetime.now(UTC)
    code, report = sync(a)
    # then the client refuses it, says why, and keeps release 1 byte for byte
    assert code == 1, report
    assert "TUF verification failed" in report["error"]
    assert "expired" in report["error"].lower()
    assert report["from"] == 1
    assert (a / "db" / "state.bin").read_bytes() == before
    assert installed(a) == (1, first.state_sha256)
    # and the scheduled re-signing (the real clock) repairs the feed for the same phone
    update_repo.refresh_timestamp()
    code, report = sync(a)
    assert (code, report["from"], report["to"]) == (0, 1, 2)
    assert installed(a) == (2, second.state_sha256)
