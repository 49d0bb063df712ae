"""The releases app's front door for other apps (OEP-49 style): frozen dataclasses only.

- ``current_ruleset()``: the ruleset a server-side scan should use — the records of the
  newest published, non-halted release (what devices are being offered), keyed so a caller
  can cache its compiled form: ``"release-<n>"``, or ``"empty"`` before the first release.
- ``release_records(number)``: the records a release pins, sorted by signature id.

Records come from the release's own full bundle (exactly what devices install), read from
shared storage so that a worker on any machine gets it (``releases.bundles``); a release whose
bundle is not there falls back to the pinned revisions in the database, which give the same
records (a test compares them record for record).
Decoded releases are kept in memory (a few, newest first), so calling this for every scan
costs one small query.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING

from django.dispatch import Signal

from engine.codec import CodecError, apply_full
from engine.features import RuleRecord
from releases import pins as pin_codec
from releases.bundles import bundle_read
from releases.models import FileKind, Release, ReleaseFile, ReleaseState
from threats.public import records_for_pins

log = logging.getLogger(__name__)

# records of at most this many releases stay decoded in memory per process
_CACHE_SIZE = 3
_cache: OrderedDict[tuple[int, str], tuple[RuleRecord, ...]] = OrderedDict()
_cache_lock = threading.Lock()
# decode every record whatever its min_engine: the server runs the newest engine
_ANY_ENGINE = 1 << 30


@dataclass(frozen=True)
class RulesetSnapshot:
    release: int | None
    key: str
    records: tuple[RuleRecord, ...]


class ReleaseNotFound(LookupError):
    pass


def current_release_number() -> int | None:
    """The newest published release that is not halted, or None."""
    return (
        Release.objects.filter(state=ReleaseState.PUBLISHED, halted=False)
        .order_by("-number")
        .values_list("number", flat=True)
        .first()
    )


# Sent (after commit) when the current release may have changed: a release published, halted
# or resumed. Receivers: scans brings the samples' current verdicts to it.
current_release_changed = Signal()

Pin = pin_codec.Pin
PinDiff = pin_codec.PinDiff
pin_diff = pin_codec.diff


def release_pins(number: int) -> list[Pin]:
    """The (signature id, revision number, noisy) pins of release ``number``."""
    blob = Release.objects.filter(number=number).values_list("pins", flat=True).first()
    if blob is None:
        raise ReleaseNotFound(f"there is no release {number}")
    return pin_codec.unpack(bytes(blob))


def current_ruleset() -> RulesetSnapshot:
    number = current_release_number()
    if number is None:
        return RulesetSnapshot(release=None, key="empty", records=())
    return RulesetSnapshot(release=number, key=f"release-{number}", records=release_records(number))


def release_records(number: int) -> tuple[RuleRecord, ...]:
    row = Release.objects.filter(number=number).values_list("state_sha256", "state").first()
    if row is None:
        raise ReleaseNotFound(f"there is no release {number}")
    sha, state = row
    cache_key = (number, sha)
    with _cache_lock:
        if sha and cache_key in _cache:
            _cache.move_to_end(cache_key)
            return _cache[cache_key]
    records: tuple[RuleRecord, ...] | None = None
    if state == ReleaseState.PUBLISHED:
        records = _records_from_bundle(number, sha)
    if records is None:
        records = _records_from_pins(number)
    if sha:
        with _cache_lock:
            _cache[cache_key] = records
            while len(_cache) > _CACHE_SIZE:
                _cache.popitem(last=False)
    return records


def _records_from_bundle(number: int, sha: str) -> tuple[RuleRecord, ...] | None:
    """The release's full bundle from shared storage, checked against the database."""
    full = (
        ReleaseFile.objects.filter(release__number=number, kind=FileKind.FULL)
        .values_list("sha256", flat=True)
        .first()
    )
    data = bundle_read(full) if full else None
    if data is None:
        return None
    try:
        state = apply_full(data, _ANY_ENGINE)
    except CodecError:
        log.warning("release %s: its full bundle does not decode; using its pins", number)
        return None
    if state.sha256 != sha:
        log.warning("release %s: its full bundle has another state; using its pins", number)
        return None
    return state.all_records


def _records_from_pins(number: int) -> tuple[RuleRecord, ...]:
    blob = Release.objects.filter(number=number).values_list("pins", flat=True).get()
    return tuple(records_for_pins(pin_codec.unpack(bytes(blob))))


if TYPE_CHECKING:
    from releases.authentication import DevicePrincipal, DeviceTokenAuthentication, IsDevice


def __getattr__(name: str) -> object:
    """Device authentication for other apps' device endpoints (the cloud look-up in scans),
    imported on first use: ``releases.authentication`` needs ``releases.services``, which
    imports this module."""
    if name in ("DevicePrincipal", "DeviceTokenAuthentication", "IsDevice"):
        from releases import authentication

        return getattr(authentication, name)
    raise AttributeError(name)


__all__ = [
    "DevicePrincipal",
    "DeviceTokenAuthentication",
    "IsDevice",
    "Pin",
    "PinDiff",
    "ReleaseNotFound",
    "RulesetSnapshot",
    "current_release_changed",
    "current_release_number",
    "current_ruleset",
    "pin_diff",
    "release_pins",
    "release_records",
]
