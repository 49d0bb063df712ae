"""The one lease machinery (scans.leases) over both kinds of leased job: a scan and a hunt
chunk held by a process that really died, by a live one, by another machine's node, or held
past the lease, are claimed and recovered by the same rules."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from django.db import models
from django.utils import timezone

from portal.models import User, WorkerHeartbeat
from scans import leases, retrohunts, services
from scans.leases import LeaseSpec, claim, holder_lost, lease, recover
from scans.models import ChunkStatus, HuntChunk, HuntStatus, ScanJob, ScanStatus
from scans.retrohunts import CHUNK_LEASE, retrohunt_create
from scans.services import SCAN_LEASE
from scans.tests.factories import stored_sample

pytestmark = pytest.mark.django_db

MakeJob = Callable[..., tuple[LeaseSpec[Any], models.Model]]


@pytest.fixture
def sent(monkeypatch: Any) -> list[int]:
    """What the recovery hands to the broker (either kind)."""
    out: list[int] = []
    monkeypatch.setattr(services, "scans_enqueue", lambda *, scan_ids: out.extend(scan_ids))
    monkeypatch.setattr(retrohunts, "chunks_enqueue", lambda *, chunk_ids: out.extend(chunk_ids))
    return out


@pytest.fixture(params=["scan", "hunt chunk"])
def running_job(request: Any, small_apk: Path, researcher: User) -> MakeJob:
    """A scan or a hunt chunk marked running by ``worker`` at ``started_at``."""
    _, scan = stored_sample(small_apk)

    def make(*, worker: str, started_at: Any = None) -> tuple[LeaseSpec[Any], models.Model]:
        fields = {
            "worker": worker,
            "attempts": 1,
            "started_at": started_at or timezone.now(),
            "queued_at": timezone.now() - timedelta(days=1),
            "sent_at": timezone.now() - timedelta(days=1),
        }
        if request.param == "scan":
            ScanJob.objects.filter(pk=scan.pk).update(status=ScanStatus.RUNNING, **fields)
            return SCAN_LEASE, ScanJob.objects.get(pk=scan.pk)
        ScanJob.objects.filter(pk=scan.pk).update(status=ScanStatus.SUCCEEDED)
        hunt = retrohunt_create(
            user=researcher, rule={"kind": "indicator", "body": "evil.example"}, enqueue=False
        )
        chunk = hunt.chunks.get()
        HuntChunk.objects.filter(pk=chunk.pk).update(status=ChunkStatus.RUNNING, **fields)
        return CHUNK_LEASE, HuntChunk.objects.get(pk=chunk.pk)

    return make


@pytest.fixture
def killed_pid() -> Iterator[Callable[[bool], int]]:
    """The pid of a real process of this host killed with SIGKILL (reaped, or left a zombie)."""
    zombies: list[subprocess.Popen[bytes]] = []

    def kill(reap: bool) -> int:
        proc = subprocess.Popen(["sleep", "60"])
        os.kill(proc.pid, signal.SIGKILL)
        if reap:
            proc.wait()
        else:  # wait until it has died, without reaping it: a zombie
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            zombies.append(proc)
        return proc.pid

    yield kill
    for proc in zombies:
        proc.wait()


@pytest.mark.parametrize("reap", [True, False], ids=["reaped", "zombie"])
def test_a_job_whose_process_was_killed_is_recovered_and_claimed_again(
    running_job: MakeJob,
    killed_pid: Callable[[bool], int],
    sent: list[int],
    reap: bool,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given a job running in a process of this host that was then SIGKILLed (queued and sent
    # long ago, so it would also pass for never started)
    spec, job = running_job(worker=f"{socket.gethostname()}:{killed_pid(reap)}")

    # when a recovery pass runs, then it goes back to queued and is sent again once, after
    # the move commits
    with django_capture_on_commit_callbacks(execute=True):
        assert recover(spec) == [job.pk]
    job.refresh_from_db()
    assert (job.status, job.worker) == (spec.queued, "")  # type: ignore[attr-defined]
    assert sent == [job.pk]

    # and the delivery that follows claims it as a second attempt
    claimed = claim(spec, job.pk)
    assert claimed is not None
    assert (claimed.status, claimed.attempts) == (spec.running, 2)
    assert claimed.worker == leases.worker_id()


def test_a_job_held_by_a_live_process_is_left_alone_until_its_lease_expires(
    running_job: MakeJob, sent: list[int]
) -> None:
    # given a job held by a live process of this host (the test runner's parent)
    holder = f"{socket.gethostname()}:{os.getppid()}"
    spec, job = running_job(worker=holder)

    # then neither a delivery nor a recovery pass takes it
    assert claim(spec, job.pk) is None
    assert recover(spec) == []
    assert sent == []

    # when it has been running for longer than the lease (the hard time limit + 30 s)
    spec, job = running_job(
        worker=holder, started_at=timezone.now() - lease() - timedelta(seconds=1)
    )

    # then it is taken over
    assert holder_lost(job, now=timezone.now(), me=None)  # type: ignore[arg-type]
    assert recover(spec) == [job.pk]


@pytest.mark.parametrize(
    ("heartbeat_age", "lost"), [(timedelta(seconds=2), False), (timedelta(hours=1), True)]
)
def test_a_job_on_another_machine_is_judged_by_its_nodes_heartbeat_not_by_a_pid_here(
    running_job: MakeJob, heartbeat_age: timedelta, lost: bool
) -> None:
    # given a job held by pid 1 of another machine (pid 1 lives here too: it must not count)
    WorkerHeartbeat.objects.create(
        hostname="node@machine-b", queues=["scans"], last_seen=timezone.now() - heartbeat_age
    )
    spec, job = running_job(worker="node@machine-b/machine-b:1")

    # then it is lost exactly when the node's heartbeat row is stale
    assert holder_lost(job, now=timezone.now(), me=None) is lost  # type: ignore[arg-type]
    assert (recover(spec) == [job.pk]) is lost


def test_a_job_out_of_attempts_ends_failed_with_a_reason(running_job: MakeJob) -> None:
    spec, job = running_job(worker=f"{socket.gethostname()}:{2**22 + 1}")
    type(job)._default_manager.filter(pk=job.pk).update(attempts=spec.max_attempts)

    assert claim(spec, job.pk) is None

    job.refresh_from_db()
    assert job.status == "failed"  # type: ignore[attr-defined]
    assert "interrupted 3 times" in job.error  # type: ignore[attr-defined]
    if isinstance(job, HuntChunk):
        assert job.hunt.status == HuntStatus.FAILED
