"""livehunt's front door for other apps (none needs more yet): facts as frozen data."""

from __future__ import annotations

from dataclasses import dataclass

from livehunt.selectors import active_rules


@dataclass(frozen=True, slots=True)
class LivehuntStats:
    active_rules: int


def stats() -> LivehuntStats:
    return LivehuntStats(active_rules=active_rules().count())
