"""Read paths of the releases app: what a device should install, diffs, adoption."""

from __future__ import annotations

import datetime
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from typing import Any

from django.db.models import Count
from django.utils import timezone

from engine import rollout
from releases import pins as pin_codec
from releases.models import (
    AdoptionSnapshot,
    Device,
    Release,
    ReleaseState,
)
from releases.repository import repo_dir
from releases.tuf_repo import read_listed_custom


@dataclass(frozen=True)
class Offer:
    version: int
    target: str


# The signed releases, parsed once per process and re-read when timestamp.json changes (a stat
# per call): every process that serves from the same repository folder answers the same.
_signed: dict[str, Any] = {"key": None, "releases": []}


def signed_releases() -> list[rollout.ReleaseEntry]:
    """The releases devices can see now, newest first, from the signed targets.json."""
    root = repo_dir()
    try:
        st = (root / "metadata" / "timestamp.json").stat()
    except FileNotFoundError:
        return []
    key = (str(root), st.st_ino, st.st_mtime_ns, st.st_size)
    if _signed["key"] != key:
        _signed["releases"] = rollout.releases_of(read_listed_custom(root))
        _signed["key"] = key
    releases: list[rollout.ReleaseEntry] = _signed["releases"]
    return releases


def update_offer(*, device: Any, installed: int) -> Offer | None:
    """What the compatibility check offers (None: up to date). ``device``: a Device or
    anything with its ``device_id``, ``channel`` and ``engine_version``.

    Decided by ``engine.rollout.choose_update`` over the signed targets, exactly as a phone
    decides over the same file; no database query.
    """
    who = rollout.device_of(
        device.device_id, channel=device.channel, engine_version=device.engine_version
    )
    offer = rollout.choose_update(signed_releases(), installed=installed, device=who)
    return None if offer is None else Offer(version=offer.version, target=offer.target)


# --- diffs ----------------------------------------------------------------------------------


def previous_published(release: Release) -> Release | None:
    return (
        Release.objects.filter(number__lt=release.number, state=ReleaseState.PUBLISHED)
        .order_by("-number")
        .first()
    )


def release_diff(release: Release) -> dict[str, Any]:
    """Added, removed and changed signatures since the previous published release, each
    with its name, kind, severity, revision and who approved that revision. Severity and
    family live on the revision, so a changed severity or family is a new revision and shows
    under ``changed`` with the name and severity each side shipped."""
    previous = previous_published(release)
    before = pin_codec.unpack(bytes(previous.pins)) if previous is not None else []
    change = pin_codec.diff(before, pin_codec.unpack(bytes(release.pins)))
    wanted: list[tuple[int, int]] = [(p[0], p[1]) for p in change.added + change.removed]
    for old, new in change.changed:
        wanted += [(old[0], old[1]), (new[0], new[1])]
    info = _revision_info(wanted)

    def entry(pin: pin_codec.Pin) -> dict[str, Any]:
        sid, number, noisy = pin
        return {
            "signature_id": sid,
            "revision": number,
            "noisy": noisy,
            **info.get((sid, number), {}),
        }

    added = [entry(p) for p in change.added]
    changed = [{"before": entry(old), "after": entry(new)} for old, new in change.changed]
    _add_gate_overrides([*added, *(c["after"] for c in changed)])
    return {
        "base": previous.number if previous is not None else None,
        "added": added,
        "removed": [entry(p) for p in change.removed],
        "changed": changed,
    }


def _add_gate_overrides(entries: list[dict[str, Any]]) -> None:
    """Add ``gate_override`` {reason, clean_hits, hunt} to each entry whose revision was
    approved although its gate hunt hit clean apps (the reviewer's reason is shown with the
    release)."""
    from threats.public import gate_facts

    facts = gate_facts((e["signature_id"], e["revision"]) for e in entries)
    for e in entries:
        fact = facts.get((e["signature_id"], e["revision"]))
        if fact is not None and fact.override_reason:
            e["gate_override"] = {
                "reason": fact.override_reason,
                "clean_hits": fact.clean_hits,
                "hunt": fact.gate_hunt_id,
            }


def _revision_info(pairs: list[tuple[int, int]]) -> dict[tuple[int, int], dict[str, Any]]:
    """Name (from the revision's family), kind, severity and approver of each (signature id,
    revision number), through the threats app's front door."""
    from threats.public import revision_infos

    return {key: asdict(info) for key, info in revision_infos(pairs).items()}


# --- devices and adoption -------------------------------------------------------------------


def device_counts() -> dict[str, Any]:
    active = Device.objects.filter(revoked_at__isnull=True)

    def by(field: str) -> list[tuple[Any, int]]:
        rows = active.values(field).annotate(n=Count("id")).order_by(field)
        return [(row[field], row["n"]) for row in rows]

    return {
        "total": active.count(),
        "by_channel": by("channel"),
        "by_app_version": by("app_version"),
        "by_installed_release": by("installed_release"),
    }


def release_adoption(number: int) -> dict[str, int]:
    """Devices with exactly this release installed, and with it or a newer one."""
    active = Device.objects.filter(revoked_at__isnull=True)
    return {
        "devices": active.count(),
        "on_this_release": active.filter(installed_release=number).count(),
        "on_this_or_newer": active.filter(installed_release__gte=number).count(),
    }


def adoption_history(
    days: int = 30,
) -> tuple[list[datetime.date], list[int], dict[int, dict[datetime.date, int]]]:
    """(days, release numbers, {release: {day: devices}}) from the daily snapshots."""
    # the same calendar as the snapshot writer (services_devices.adoption_snapshot)
    since = timezone.localdate() - datetime.timedelta(days=days)
    rows = AdoptionSnapshot.objects.filter(day__gte=since).order_by("day", "release_number")
    table: dict[int, dict[datetime.date, int]] = defaultdict(dict)
    seen_days: Counter[datetime.date] = Counter()
    for row in rows:
        table[row.release_number][row.day] = row.devices
        seen_days[row.day] += 1
    return sorted(seen_days), sorted(table, reverse=True), dict(table)
