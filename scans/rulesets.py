"""Where a scan's rules come from, and the per-process cache of compiled rulesets.

A scan matches against the latest published release: ``releases.public.current_ruleset()``
returns the release number, a key that changes whenever the records change, and the
records. Compiling a million records takes seconds, so each worker process compiles a given
key once and keeps it (``compiled``); a new release has a new key and replaces it.

The source is injectable: services take a ``ruleset_provider`` (tests pass explicit records,
retro-hunts pass the revisions they test) and default to ``current_ruleset``.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from engine import ENGINE_VERSION
from engine.features import RuleRecord
from engine.ruleset import Ruleset, compile_ruleset

log = logging.getLogger(__name__)


class RulesetSource(Protocol):
    """What ``releases.public.current_ruleset()`` returns (and what tests may pass instead)."""

    @property
    def release(self) -> int | None: ...

    @property
    def key(self) -> str: ...

    @property
    def records(self) -> tuple[RuleRecord, ...]: ...


@dataclass(frozen=True, slots=True)
class ExplicitRuleset:
    """Records given directly (tests, retro-hunts); the key is derived from what they are."""

    records: tuple[RuleRecord, ...]
    release: int | None = None
    key: str = ""

    @classmethod
    def of(cls, records: Iterable[RuleRecord], *, release: int | None = None) -> ExplicitRuleset:
        recs = tuple(records)
        digest = hashlib.sha256()
        for r in sorted(recs, key=lambda r: (r.id, r.revision)):
            digest.update(
                f"{r.id}:{r.revision}:{r.kind}:{r.noisy}:{r.severity}:{r.body}\n".encode()
            )
        return cls(records=recs, release=release, key=f"explicit:{digest.hexdigest()}")


RulesetProvider = Callable[[], RulesetSource]
EMPTY = ExplicitRuleset(records=(), release=None, key="empty")


def current_ruleset() -> RulesetSource:
    """The latest published release's records (no release yet: an empty ruleset)."""
    from releases.public import current_ruleset as releases_current_ruleset

    return releases_current_ruleset()


_lock = threading.Lock()
_cache: dict[str, Ruleset] = {}


def compiled(source: RulesetSource) -> Ruleset:
    """The compiled ruleset for ``source``, compiled at most once per key in this process.

    Only the newest key is kept: a worker holds one release in memory, not every release
    it has ever seen.
    """
    key = f"{source.key}@engine{ENGINE_VERSION}"
    with _lock:
        ruleset = _cache.get(key)
        if ruleset is None:
            ruleset = compile_ruleset(source.records)
            if ruleset.errors:
                log.warning(
                    "ruleset %s: %d record(s) cannot be used by this engine",
                    source.key,
                    len(ruleset.errors),
                )
            _cache.clear()
            _cache[key] = ruleset
        return ruleset


def cache_clear() -> None:
    with _lock:
        _cache.clear()
