"""Which release a device should move to, decided from signed data alone.

The portal publishes each release's rollout (percentage, halt, spread, urgency) as custom data
on the release's full-bundle TUF target, signed with targets.json. Phones read it after a TUF
refresh and decide here; the portal's compatibility endpoint decides with the *same* function
over the same signed data. One rule in one place, so a phone and the portal cannot disagree.

The rules:

- A device has a stable bucket 0..99 from its id (``rollout_bucket``). A stable-channel device
  may have a release when ``bucket < percent``; a beta device may have every release at once.
- A halted release is never offered. The device is offered the newest eligible, non-halted
  release *above* the installed one: a device on a halted release gets the next good one, and
  no device is ever offered a lower release.
- The file: the delta from the installed release when one is listed, else the full bundle.

And when (``Schedule``): a phone fetches the cheap, static ``timestamp.json`` every
``check_seconds`` (5 minutes, jittered), conditionally, so an unchanged repository costs a 304.
When it changed and the offered release is *urgent* (it disables a signature or marks one
noisy: the kill switch for a false positive) the phone installs it at once. A normal release
waits for the device's own slot in each ``update_seconds`` period (a stable phase from the
device id), so a fleet spreads its downloads evenly instead of fetching in the same minute.
A person who taps "update now" (the reference client's ``sync``) installs at once.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

BETA: Final = "beta"


@dataclass(frozen=True)
class Rollout:
    """A release's rollout as signed in its full target's custom data (``custom["rollout"]``)."""

    percent: int = 100
    halted: bool = False
    urgent: bool = False
    published_at: int = 0  # Unix seconds

    def as_custom(self) -> dict[str, Any]:
        return {
            "percent": self.percent,
            "halted": self.halted,
            "urgent": self.urgent,
            "published_at": self.published_at,
        }

    @classmethod
    def from_custom(cls, data: Any) -> Rollout:
        """Read signed custom data; anything malformed is a halted rollout (never offered)."""
        if data is None:
            return cls()  # releases signed before rollouts were: offered to all, at once
        if not isinstance(data, dict):
            return cls(halted=True)
        percent, halted = data.get("percent", 100), data.get("halted", False)
        urgent, published = data.get("urgent", False), data.get("published_at", 0)
        ints_ok = type(percent) is int and type(published) is int
        if not ints_ok or type(halted) is not bool or type(urgent) is not bool:
            return cls(halted=True)
        if not 0 <= percent <= 100 or published < 0:
            return cls(halted=True)
        return cls(percent, halted, urgent, published)


@dataclass(frozen=True)
class Offer:
    version: int
    target: str
    urgent: bool = False


@dataclass(frozen=True)
class Device:
    """What the rules need to know about a device; all of it is known on the phone."""

    bucket: int
    channel: str = "stable"
    engine_version: int = 1
    phase: float = 0.0  # 0 <= phase < 1: this device's slot in each update period


def _hash_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


def rollout_bucket(device_id: str) -> int:
    """A stable number 0..99 from the device id: the same device is always in the same slice."""
    return _hash_int(device_id) % 100


def update_phase(device_id: str) -> float:
    """A stable number in [0, 1), independent of the bucket: the device's slot in a period."""
    return _hash_int("phase:" + device_id) / 2**64


def device_of(device_id: str, *, channel: str = "stable", engine_version: int = 1) -> Device:
    return Device(
        bucket=rollout_bucket(device_id),
        channel=channel,
        engine_version=engine_version,
        phase=update_phase(device_id),
    )


@dataclass(frozen=True)
class ReleaseEntry:
    number: int
    rollout: Rollout
    min_engine: int
    full: str
    deltas: Mapping[int, str]  # base release -> target name


def releases_of(targets: Mapping[str, Any]) -> list[ReleaseEntry]:
    """The releases listed in signed targets (``{name: custom}``), newest first.

    Only full targets define a release (and carry its rollout); deltas attach to theirs.
    Targets whose custom data is malformed are ignored: never offered.
    """
    full: dict[int, tuple[str, Rollout, int]] = {}
    deltas: dict[int, dict[int, str]] = {}
    for name, custom in targets.items():
        if not isinstance(custom, dict):
            continue
        release, base, min_engine = (
            custom.get("release"),
            custom.get("base"),
            custom.get("min_engine", 1),
        )
        if type(release) is not int or type(min_engine) is not int:
            continue
        if custom.get("kind") == "full" and base is None:
            full[release] = (name, Rollout.from_custom(custom.get("rollout")), min_engine)
        elif custom.get("kind") == "delta" and type(base) is int:
            deltas.setdefault(release, {})[base] = name
    return [
        ReleaseEntry(number, rollout, min_engine, name, deltas.get(number, {}))
        for number, (name, rollout, min_engine) in sorted(full.items(), reverse=True)
    ]


def eligible(rollout: Rollout, device: Device) -> bool:
    if rollout.halted:
        return False
    return device.channel == BETA or device.bucket < rollout.percent


def choose_update(releases: list[ReleaseEntry], *, installed: int, device: Device) -> Offer | None:
    """The newest release above ``installed`` this device may have, and the file to fetch.

    ``releases`` is ``releases_of(...)``'s answer (newest first). The choice does not depend on
    the time, so a phone and the portal agree whatever their clocks say.
    """
    for entry in releases:
        if entry.number <= installed:
            return None
        if entry.min_engine > device.engine_version or not eligible(entry.rollout, device):
            continue
        target = entry.deltas.get(installed) if installed else None
        return Offer(entry.number, target or entry.full, entry.rollout.urgent)
    return None


@dataclass(frozen=True)
class Schedule:
    """How often a phone checks, and when it installs; the reference client and the fleet
    simulator (bench/bench_fleet.py) both run these numbers."""

    check_seconds: float = 300.0
    jitter: float = 0.2  # each wait is check_seconds * (1 ± jitter)
    update_seconds: float = 1800.0

    def next_check(self, now: float, rand: float) -> float:
        """When to fetch timestamp.json again; ``rand`` is uniform in [0, 1)."""
        return now + self.check_seconds * (1 - self.jitter + 2 * self.jitter * rand)

    def install_at(self, offer: Offer, device: Device, now: float) -> float:
        """When to install ``offer`` learnt of at ``now``: at once when urgent (or for beta
        devices), else at the device's next slot in the update period."""
        if offer.urgent or device.channel == BETA:
            return now
        offset = device.phase * self.update_seconds
        slot = math.ceil((now - offset) / self.update_seconds) * self.update_seconds + offset
        return max(now, slot)
