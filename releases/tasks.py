"""Celery tasks of the releases app: thin wrappers that load by id and call a service."""

from __future__ import annotations

from celery import shared_task

from releases.models import Release, ReleaseState
from releases.services import adoption_snapshot, builds_resend, release_build, timestamp_refresh

# a build waits for an earlier release still building (so deltas chain), but not forever
_WAIT_FOR_EARLIER_TRIES = 30


@shared_task(
    bind=True,
    name="releases.build_release",
    acks_late=True,
    reject_on_worker_lost=True,
    max_retries=_WAIT_FOR_EARLIER_TRIES,
    soft_time_limit=900,
    time_limit=960,
)
def build_release(self: object, number: int) -> str:
    release = Release.objects.filter(number=number).first()
    if release is None or release.state != ReleaseState.BUILDING:
        return "nothing to do"
    earlier = Release.objects.filter(number__lt=number, state=ReleaseState.BUILDING).exists()
    retries = getattr(getattr(self, "request", None), "retries", 0) or 0
    if earlier and retries < _WAIT_FOR_EARLIER_TRIES:
        raise self.retry(countdown=2)  # type: ignore[attr-defined]
    return release_build(number=number).state


@shared_task(name="releases.refresh_timestamp")
def refresh_timestamp() -> int | None:
    return timestamp_refresh()


@shared_task(name="releases.snapshot_adoption")
def snapshot_adoption() -> int:
    return adoption_snapshot()


@shared_task(name="releases.resend_stuck_builds")
def resend_stuck_builds() -> list[int]:
    return builds_resend()


@shared_task(
    name="releases.rollup_detection_reports",
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=1800,
    time_limit=1860,
)
def rollup_detection_reports() -> dict[str, int]:
    """Roll complete days of detection reports up, then expire raw ones (hourly, beat)."""
    from releases.services_reports import detections_rollup

    done = detections_rollup()
    return {
        "days_rolled": len(done.days_rolled),
        "rollup_rows": done.rollup_rows,
        "reports_deleted": done.reports_deleted,
        "batches_deleted": done.batches_deleted,
    }


@shared_task(name="releases.check_auto_halt")
def check_auto_halt() -> int | None:
    """Halt the current release if phones' reports say it hurts (releases.halts)."""
    from releases.halts import auto_halt_check

    halt = auto_halt_check()
    return halt.pk if halt is not None else None


@shared_task(name="releases.sign_rollouts", acks_late=True, reject_on_worker_lost=True)
def sign_rollouts() -> int:
    """Sign rollout changes made on a machine without the update repository (queue publish)."""
    from releases.services import rollouts_sync

    return rollouts_sync()
