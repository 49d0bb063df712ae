"""A retro-hunt's rules: which ones it runs, as hunted, and how they are compiled to run.

- ``unsaved_record`` / ``revision_records``: the rules a person (or the gate) asks to hunt,
  validated: an unsaved rule of any kind, or signatures' current revisions / given revisions
  (through ``threats.public``), at most MAX_HUNT_SIGNATURES for a person's hunt.
- ``record_dict`` / ``hunt_records``: the snapshot kept in ``RetroHunt.records`` and read back,
  so a later edit of a draft cannot pass for what was tested.
- ``HuntPlan`` / ``hunt_plan``: how a hunt's rules run (keyed through the stored feature keys,
  scanned sample by sample, or all of them on a sample analysed again), compiled once per
  worker process for the last few hunts.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from engine.features import RuleRecord
from engine.kinds import REGISTRY, UnknownKind, get_kind
from engine.ruleset import Ruleset, compile_ruleset
from portal.exceptions import ApplicationError
from scans.featurekeys import key_of, rule_key
from scans.models import RetroHunt

MAX_HUNT_SIGNATURES = 10_000
UNSAVED_NAME = "unsaved {kind} rule"


# --- the rules asked for -----------------------------------------------------------------------
def record_dict(record: RuleRecord, revision_id: int | None) -> dict[str, Any]:
    """What a hunt keeps of a rule: the record's fields, and the revision it came from."""
    return {"revision_id": revision_id, **asdict(record)}


def hunt_records(hunt: RetroHunt) -> list[RuleRecord]:
    return [RuleRecord(**{k: v for k, v in r.items() if k != "revision_id"}) for r in hunt.records]


def unsaved_record(rule: dict[str, Any]) -> RuleRecord:
    kind = str(rule.get("kind") or "")
    if "body" not in rule:
        raise ApplicationError("An unsaved rule needs a body.", {"fields": {"rule": ["body"]}})
    try:
        kind_obj = get_kind(kind)
    except UnknownKind:
        raise ApplicationError(
            f"Unknown signature kind {kind!r}.", {"kinds": list(REGISTRY)}
        ) from None
    result = kind_obj.validate(rule["body"])
    if result.errors:
        raise ApplicationError(
            f"The {kind} rule is not valid: {result.errors[0]}",
            {
                "errors": [
                    {"message": i.message, "line": i.line, "column": i.column}
                    for i in result.errors
                ]
            },
        )
    return RuleRecord(
        id=0,
        revision=0,
        name=UNSAVED_NAME.format(kind=kind),
        kind=kind,
        body=result.body,
        severity="malicious",
        min_engine=kind_obj.min_engine,
    )


def revision_records(
    *,
    signature_ids: Sequence[int] | None,
    revision_ids: Sequence[int] | None,
    limit: int | None = MAX_HUNT_SIGNATURES,
) -> list[tuple[RuleRecord, int]]:
    from threats.public import current_revision_ids, invalid_signature_ids, records_by_revision

    rev_ids: list[int] = [int(i) for i in revision_ids or ()]
    if signature_ids:
        wanted = list(dict.fromkeys(int(i) for i in signature_ids))
        bad = invalid_signature_ids(wanted)
        if bad:
            raise ApplicationError(
                "Invalid signatures do not compile on this engine and cannot be hunted: "
                + ", ".join(f"#{i}" for i in bad),
                {"invalid": bad},
            )
        current = current_revision_ids(wanted)
        missing = [i for i in wanted if i not in current]
        if missing:
            raise ApplicationError(
                "No such signature: " + ", ".join(f"#{i}" for i in missing), {"missing": missing}
            )
        rev_ids += [current[i] for i in wanted]
    rev_ids = list(dict.fromkeys(rev_ids))
    if limit is not None and len(rev_ids) > limit:
        raise ApplicationError(f"At most {limit} signatures per retro-hunt.")
    records = records_by_revision(rev_ids)
    missing_revs = [i for i in rev_ids if i not in records]
    if missing_revs:
        raise ApplicationError(
            "No such signature revision: " + ", ".join(map(str, missing_revs)),
            {"missing_revisions": missing_revs},
        )
    return [(records[i], i) for i in rev_ids]


# --- compiled to run --------------------------------------------------------------------------
_cache_lock = threading.Lock()
# keyed by (id, created_at): ids alone can repeat after a rolled-back transaction (tests)
_ruleset_cache: OrderedDict[tuple[int, str], HuntPlan] = OrderedDict()
_RULESET_CACHE_SIZE = 2


# compiled rulesets by what their records are (a pure function of them, so never stale): a
# hunt run again over the same rules, or the hunt a process just created, compiles nothing.
# Only rulesets of up to _COMPILED_CACHE_RECORDS records: a feed's gate hunt (100,000 hashes)
# runs once, and web processes should not keep it.
_compiled: OrderedDict[str, Ruleset] = OrderedDict()
_COMPILED_CACHE_SIZE = 4
_COMPILED_CACHE_RECORDS = 5_000


def compiled_records(records: Iterable[RuleRecord]) -> Ruleset:
    """``compile_ruleset(records)``, remembered per process by the records' content (up to
    ``_COMPILED_CACHE_RECORDS`` of them)."""
    records = list(records)
    if len(records) > _COMPILED_CACHE_RECORDS:
        return compile_ruleset(records)
    digest = hashlib.sha256()
    for record in records:
        digest.update(repr(record).encode())
        digest.update(b"\n")
    key = digest.hexdigest()
    with _cache_lock:
        found = _compiled.get(key)
        if found is not None:
            _compiled.move_to_end(key)
            return found
    ruleset = compile_ruleset(records)
    with _cache_lock:
        _compiled[key] = ruleset
        while len(_compiled) > _COMPILED_CACHE_SIZE:
            _compiled.popitem(last=False)
    return ruleset


@dataclass
class HuntPlan:
    """How a hunt's rules run: ``keyed`` (hash, indicator, package_cert) through the stored
    feature keys (``scans.featurekeys``) on candidate samples only; ``scanned`` (YARA,
    behaviour, CIDR) sample by sample as before; every rule on a sample that must be
    analysed again (``full``)."""

    records: list[RuleRecord]
    keyed: Ruleset | None
    keys: frozenset[int]
    scanned: Ruleset | None
    # (signature id, revision number) -> revision id, for the hunt's matches
    revision_ids: dict[tuple[int, int], int | None]
    _full: Ruleset | None = None

    def full(self) -> Ruleset:
        if self._full is None:
            self._full = compile_ruleset(self.records)
        return self._full


def hunt_plan_of(
    records: list[RuleRecord], revision_ids: dict[tuple[int, int], int | None] | None = None
) -> HuntPlan:
    keyed: list[RuleRecord] = []
    keys: set[int] = set()
    scanned: list[RuleRecord] = []
    for record in records:
        fact = rule_key(record)
        if fact is None:
            scanned.append(record)
        else:
            keyed.append(record)
            keys.add(key_of(fact))
    return HuntPlan(
        records=records,
        keyed=compiled_records(keyed) if keyed else None,
        keys=frozenset(keys),
        scanned=compiled_records(scanned) if scanned else None,
        revision_ids=revision_ids or {},
    )


def hunt_plan(hunt: RetroHunt) -> HuntPlan:
    """The hunt's compiled rules, compiled once per worker process (by hunt id)."""
    key = (hunt.pk, hunt.created_at.isoformat())
    with _cache_lock:
        plan = _ruleset_cache.get(key)
        if plan is not None:
            _ruleset_cache.move_to_end(key)
            return plan
    plan = hunt_plan_of(hunt_records(hunt), revision_ids(hunt))
    with _cache_lock:
        _ruleset_cache[key] = plan
        while len(_ruleset_cache) > _RULESET_CACHE_SIZE:
            _ruleset_cache.popitem(last=False)
    return plan


def ruleset_cache_clear() -> None:
    with _cache_lock:
        _ruleset_cache.clear()


def revision_ids(hunt: RetroHunt) -> dict[tuple[int, int], int | None]:
    """(signature id, revision number) → revision id, for the hunt's records."""
    return {(r["id"], r["revision"]): r.get("revision_id") for r in hunt.records}
