"""Write paths of the releases app: publish, build, roll out, halt.

Devices (enrolment, revocation, token cache, adoption) are in ``releases.services_devices``;
their names stay importable from here.

Publishing is two steps. ``release_publish`` takes the snapshot in one short transaction
(numbers only go up; concurrent publishes queue on a lock) and enqueues the build on queue
``publish``. ``release_build`` encodes the full bundle and the deltas and hands them to the
TUF repository, which writes timestamp.json last: until then devices see the previous
release, and a failure marks the release failed and leaves everything else as it was.
"""

from __future__ import annotations

import hashlib
import logging
import time
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.db import connection, transaction
from django.db.models import Q
from django.utils import timezone

from engine.codec import State, build_delta, state_file_bytes
from engine.rollout import Rollout
from portal.audit import audit_log
from portal.exceptions import (
    ApplicationError,
    ConflictError,
    ForbiddenError,
    NotFoundError,
    RateLimitedError,
)
from portal.models import User
from portal.ratelimit import rate_hit
from releases import pins as pin_codec
from releases.bundles import bundle_store
from releases.models import (
    FileKind,
    Release,
    ReleaseFile,
    ReleaseState,
)
from releases.public import current_release_changed
from releases.repository import open_repository, publish_lock, timestamp_expiry

# devices moved to their own module; these names stay importable from here
from releases.services_devices import DEVICE_TOKEN_FIELDS as DEVICE_TOKEN_FIELDS
from releases.services_devices import Enrolment as Enrolment
from releases.services_devices import adoption_snapshot as adoption_snapshot
from releases.services_devices import device_register as device_register
from releases.services_devices import device_revoke as device_revoke
from releases.services_devices import device_seen as device_seen
from releases.services_devices import device_token_cache_key as device_token_cache_key
from releases.services_devices import device_token_forget as device_token_forget
from releases.services_devices import device_token_remember as device_token_remember
from releases.services_devices import token_hash as token_hash
from releases.tuf_repo import (
    UpdateRepository,
    delta_target_name,
    full_target_name,
    release_custom,
)
from threats.public import records_for_pins, shipping_pins

logger = logging.getLogger(__name__)

# decode and encode every record whatever its min_engine: the server runs the newest engine
ANY_ENGINE = 1 << 30
# an arbitrary constant naming the publish lock on PostgreSQL
_PG_LOCK_KEY = 0x52454C45


def _require(user: User, perm: str, what: str) -> None:
    if not (user.is_active and user.has_perm(perm)):
        raise ForbiddenError(f"Your role does not allow you to {what}.")


# --- snapshot ----------------------------------------------------------------------------


def _refuse_ungated() -> None:
    """A release never ships a revision that skipped the clean-corpus gate (docs/retrohunts.md)."""
    from threats.public import ungated_shipping

    ungated = ungated_shipping()
    if ungated:
        names = ", ".join(ref.name for ref in ungated[:10])
        more = f" and {len(ungated) - 10} more" if len(ungated) > 10 else ""
        raise ApplicationError(
            f"{len(ungated)} shipping signature(s) were never retro-hunted over the clean "
            f"corpus: {names}{more}. Run a retro-hunt of them before publishing.",
            {
                "ungated": [
                    {"id": ref.id, "name": ref.name, "url": ref.url} for ref in ungated[:500]
                ],
                "ungated_count": len(ungated),
            },
            status_code=409,
        )


def _lock_publishing() -> None:
    """Serialise publishes. SQLite: the IMMEDIATE transaction already holds the write lock."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s)", [_PG_LOCK_KEY])


def _refuse_while_building() -> None:
    """Publishes coalesce: while one release is queued or building, another one would snapshot
    nearly the same revisions and queue a second build behind it, so it is refused (409)."""
    building = (
        Release.objects.filter(state=ReleaseState.BUILDING)
        .order_by("number")
        .values_list("number", flat=True)
        .first()
    )
    if building is not None:
        raise ConflictError(
            f"Release {building} is still being built. Publish again once it is published "
            "(it will include everything approved until its snapshot).",
            {"building": building, "url": f"/api/v1/releases/{building}/"},
        )


def release_publish(
    *,
    by: User,
    notes: str = "",
    rollout_percent: int | None = None,
    enqueue: bool = True,
) -> Release:
    """Snapshot the shipping revisions as the next release and queue its build."""
    _require(by, "releases.publish_release", "publish releases")
    wait = rate_hit(f"release-publish:{by.pk}", rate=settings.RELEASE_PUBLISH_RATE)
    if wait is not None:
        raise RateLimitedError(
            f"You have published too often; try again in {wait} s.", retry_after=wait
        )
    percent = (
        settings.RELEASE_INITIAL_ROLLOUT_PERCENT if rollout_percent is None else rollout_percent
    )
    _check_percent(percent)
    _refuse_ungated()
    open_repository()  # refuse before taking a number if the feed cannot be written
    with transaction.atomic():
        _lock_publishing()
        _refuse_while_building()
        previous = Release.objects.select_for_update().order_by("-number").first()
        number = (previous.number if previous is not None else 0) + 1
        pinned = shipping_pins()
        noisy = sum(1 for p in pinned if p[2])
        before = _pins_of(_previous_published(number))
        change = pin_codec.diff(before, pinned)
        release = Release(
            number=number,
            created_by=by,
            notes=notes,
            pins=pin_codec.pack(pinned),
            signature_count=len(pinned),
            noisy_count=noisy,
            added_count=len(change.added),
            removed_count=len(change.removed),
            changed_count=len(change.changed),
            rollout_percent=percent,
        )
        release.full_clean(exclude=["pins"])
        release.save()
        audit_log(
            actor=by,
            action="release.publish",
            obj=release,
            after={"number": number, "signatures": len(pinned), "rollout_percent": percent},
            reason=notes,
        )
        if enqueue:
            from releases.tasks import build_release

            transaction.on_commit(lambda: build_release.apply_async(args=(number,)))
    return release


def builds_resend() -> list[int]:
    """Send again the builds of releases still building long after they were published (their
    message was lost). A duplicate is harmless: the build checks the state under the lock."""
    from releases.tasks import build_release

    stale = timezone.now() - timedelta(seconds=settings.RELEASE_BUILD_RESEND_AFTER_SECONDS)
    numbers = list(
        Release.objects.filter(state=ReleaseState.BUILDING, created_at__lt=stale)
        .order_by("number")
        .values_list("number", flat=True)
    )
    for number in numbers:
        logger.warning("release %s still building since before %s; build sent again", number, stale)
        build_release.apply_async(args=(number,))
    return numbers


def _previous_published(number: int) -> Release | None:
    return (
        Release.objects.filter(number__lt=number, state=ReleaseState.PUBLISHED)
        .order_by("-number")
        .first()
    )


def _pins_of(release: Release | None) -> list[pin_codec.Pin]:
    return pin_codec.unpack(bytes(release.pins)) if release is not None else []


# --- build -------------------------------------------------------------------------------


@dataclass(frozen=True)
class BuiltFile:
    kind: str
    base: int | None
    target: str
    data: bytes
    custom: dict[str, Any]


def release_build(*, number: int) -> Release:
    """Build and publish release ``number``'s files; marks it failed on any error."""
    release = Release.objects.get(number=number)
    if release.state != ReleaseState.BUILDING:
        return release
    started = time.monotonic()
    try:
        with publish_lock():
            release = _build_locked(number, started)
    except Exception as exc:
        logger.exception("building release %s failed", number)
        Release.objects.filter(number=number, state=ReleaseState.BUILDING).update(
            state=ReleaseState.FAILED, error=f"{type(exc).__name__}: {exc}"[:2000]
        )
        release.refresh_from_db()
        audit_log(actor=None, action="release.failed", obj=release, reason=release.error)
        return release
    return release


def _build_locked(number: int, started: float) -> Release:
    release = Release.objects.get(number=number)
    if release.state != ReleaseState.BUILDING:
        return release
    repo = open_repository()
    pinned = _pins_of(release)
    records = records_for_pins(pinned)
    if len(records) != len(pinned):
        raise ApplicationError(f"{len(pinned) - len(records)} pinned revisions are missing")
    state = State(release=number, records=records, engine_version=ANY_ENGINE)
    by_id = {r.id: r for r in records}
    previous = _previous_published(number)
    urgent = pin_codec.diff(_pins_of(previous), pinned).is_urgent
    published_at = timezone.now()
    full_custom = _custom(number, None, state)
    full_custom["rollout"] = _rollout(release, urgent=urgent, at=published_at).as_custom()
    files = [
        BuiltFile(
            FileKind.FULL,
            None,
            full_target_name(number),
            state_file_bytes(state),
            full_custom,
        )
    ]
    retention = settings.RELEASE_DELTA_RETENTION
    bases = list(
        Release.objects.filter(number__lt=number, state=ReleaseState.PUBLISHED)
        .exclude(state_sha256="")
        .order_by("-number")[:retention]
    )
    for base in bases:
        change = pin_codec.diff(_pins_of(base), pinned)
        delta = build_delta(
            base_release=base.number,
            base_sha256=base.state_sha256,
            release=number,
            state_sha256=state.sha256,
            upserts=[by_id[i] for i in sorted(change.upsert_ids)],
            removed=change.removed_ids,
        )
        files.append(
            BuiltFile(
                FileKind.DELTA,
                base.number,
                delta_target_name(base.number, number),
                delta,
                _custom(number, base.number, state),
            )
        )
    # targets of releases that fell out of the retention window leave targets.json (their
    # files stay on disk for devices mid-download); so do the deltas of all but the newest
    # few releases: a device is offered the newest release it may have (or, when that one is
    # halted or rolling out, one just before), and every phone downloads targets.json after
    # each publish, rollout change and halt, so each listed delta costs the whole fleet
    keep_deltas = settings.RELEASE_DELTA_LISTED_RELEASES
    stale = list(
        ReleaseFile.objects.filter(listed=True).filter(
            Q(release__number__lte=number - retention)
            | Q(kind=FileKind.DELTA, release__number__lte=number - keep_deltas)
        )
    )
    # workers on other machines read the release from shared storage (releases/bundles.py)
    bundle_store(files[0].data)
    repo.add_targets(
        [(f.target, f.data, f.custom) for f in files],
        remove=[f.target for f in stale],
        timestamp_expiry=timestamp_expiry(),
    )
    with transaction.atomic():
        ReleaseFile.objects.filter(pk__in=[f.pk for f in stale]).update(listed=False)
        ReleaseFile.objects.bulk_create(
            ReleaseFile(
                release=release,
                kind=f.kind,
                base=f.base,
                target=f.target,
                size=len(f.data),
                sha256=hashlib.sha256(f.data).hexdigest(),
            )
            for f in files
        )
        release.state = ReleaseState.PUBLISHED
        release.state_sha256 = state.sha256
        release.published_at = published_at
        release.build_seconds = round(time.monotonic() - started, 3)
        release.save(update_fields=["state", "state_sha256", "published_at", "build_seconds"])
        audit_log(
            actor=None,
            action="release.published",
            obj=release,
            after={
                "state_sha256": state.sha256,
                "files": {f.target: len(f.data) for f in files},
            },
        )
        _current_release_changed()
    return release


def _current_release_changed() -> None:
    transaction.on_commit(current_release_announce)


def current_release_announce() -> None:
    """Tell the receivers of ``current_release_changed`` (after commit)."""
    current_release_changed.send(sender=Release)


def _custom(number: int, base: int | None, state: State) -> dict[str, Any]:
    return release_custom(
        release=number,
        base=base,
        state_sha256=state.sha256,
        min_engine=1,
        signatures=len(state),
    )


def _rollout(release: Release, *, urgent: bool, at: Any) -> Rollout:
    """The signed rollout of a release: what phones (and the compatibility check) decide by."""
    return Rollout(
        percent=release.rollout_percent,
        halted=release.halted,
        urgent=urgent,
        published_at=int(at.timestamp()),
    )


def _sign_rollout(release: Release) -> None:
    """Have the release's rollout (percentage, halt) signed into targets.json and the timestamp.

    Where this machine holds the update repository and its keys (the publish machine), it is
    signed now, inside the rollout or halt transaction: a failure to sign undoes the change in
    the database too. Elsewhere (a web machine, a worker of another queue) the transaction
    commits and ``releases.sign_rollouts`` on queue ``publish`` signs it moments later; the
    hourly timestamp refresh signs whatever is still behind. A release still building gets
    its rollout when its build signs it.
    """
    try:
        repo = open_repository()
    except ApplicationError:
        from releases.tasks import sign_rollouts

        transaction.on_commit(lambda: sign_rollouts.apply_async())
        return
    rollouts_sync(repo, only=[release.pk])


def rollouts_sync(repo: UpdateRepository | None = None, *, only: list[int] | None = None) -> int:
    """Re-sign the signed rollout of every listed release (or of ``only``) whose percentage or
    halt differs from the database's, in one signed step; how many changed."""
    repo = repo or open_repository()
    files = ReleaseFile.objects.filter(kind=FileKind.FULL, listed=True).select_related("release")
    if only is not None:
        files = files.filter(release_id__in=only)
    with publish_lock():
        signed = repo.target_files()
        changes: dict[str, dict[str, Any]] = {}
        for file in files:
            target = signed.get(file.target)
            if target is None:
                continue
            current = Rollout.from_custom((target.custom or {}).get("rollout"))
            wanted = {"percent": file.release.rollout_percent, "halted": file.release.halted}
            if (current.percent, current.halted) != (wanted["percent"], wanted["halted"]):
                changes[file.target] = {"rollout": {**current.as_custom(), **wanted}}
        if changes:
            repo.set_custom(changes, timestamp_expiry=timestamp_expiry())
    return len(changes)


def timestamp_refresh() -> int | None:
    """Re-sign timestamp.json (scheduled), after any rollout still unsigned; None when there
    is no repository on this machine."""
    try:
        repo = open_repository()
    except ApplicationError:
        return None
    rollouts_sync(repo)
    with publish_lock():
        return repo.refresh_timestamp(timestamp_expiry())


# --- rollout -----------------------------------------------------------------------------


def _check_percent(percent: Any) -> None:
    if type(percent) is not int or not 1 <= percent <= 100:
        raise ApplicationError(
            "The rollout percentage is a whole number from 1 to 100.", {"percent": percent}
        )


def _release_for_update(number: int) -> Release:
    release = Release.objects.select_for_update().filter(number=number).first()
    if release is None:
        raise NotFoundError(f"There is no release {number}.")
    return release


@transaction.atomic
def release_rollout(*, number: int, percent: int, by: User) -> Release:
    _require(by, "releases.rollout_release", "change a rollout")
    _check_percent(percent)
    release = _release_for_update(number)
    if release.state == ReleaseState.FAILED:
        raise ConflictError(f"Release {number} failed to build; publish a new one.")
    if release.halted:
        raise ConflictError(f"Release {number} is halted; publish a new release instead.")
    before = release.rollout_percent
    release.rollout_percent = percent
    release.full_clean(exclude=["pins"])
    release.save(update_fields=["rollout_percent"])
    _sign_rollout(release)
    audit_log(
        actor=by,
        action="release.rollout",
        obj=release,
        before={"rollout_percent": before},
        after={"rollout_percent": percent},
    )
    return release


@transaction.atomic
def release_halt(*, number: int, by: User, reason: str = "") -> Release:
    _require(by, "releases.rollout_release", "halt a release")
    return release_halt_locked(_release_for_update(number), by=by, reason=reason)


def release_halt_locked(
    release: Release, *, by: User | None, reason: str, action: str = "release.halt"
) -> Release:
    """Halt a release already locked in the caller's transaction (a person's halt, or the
    portal's own: ``releases.halts``); the signed rollout says so at once."""
    if release.halted:
        return release
    release.halted = True
    release.halted_at = timezone.now()
    release.save(update_fields=["halted", "halted_at"])
    _sign_rollout(release)
    _current_release_changed()
    audit_log(
        actor=by,
        action=action,
        obj=release,
        before={"halted": False},
        after={"halted": True},
        reason=reason,
    )
    return release
