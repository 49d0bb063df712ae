"""``androguard.facts`` read straight from a stored summary dict, for the facts batch; and the
compact form of them a sample's row keeps (``stored_facts``), so that a hunt reads no summary."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeGuard

from engine import ENGINE_VERSION, androguard

# what the facts dict calls each list's count: the rewriter's own table (engine.androguard)
from engine.androguard import _COUNT


def summary_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """``androguard.facts`` of the features a stored summary (``AppFeatures.to_dict`` less its
    DEX tables) holds, read from the dict itself: the same values without rebuilding the
    dataclasses (~0.3 ms an app, ten times this). ``engine/tests/test_facts_batch.py`` checks
    it equals ``androguard.facts`` on every corpus app."""
    manifest = summary.get("manifest") or {}
    certificates = summary.get("certificates") or ()
    parts = summary.get("parts") or ()
    indicators = summary.get("indicators") or {}
    urls = list(summary.get("url_strings") or indicators.get("urls") or ())
    if manifest.get("package") is None:
        manifest = next(
            (p["manifest"] for p in parts if (p.get("manifest") or {}).get("package")), manifest
        )
    if not certificates:
        certificates = [c for p in parts for c in p.get("certificates") or ()]
    out = androguard.default_facts()
    package = manifest.get("package")
    label = manifest.get("app_label") or ""
    components = manifest.get("components") or ()
    permissions = manifest.get("permissions") or ()
    declared = manifest.get("declared_permissions") or ()
    out.update(
        package_name=package or "",
        app_name="" if label.startswith("@") else label,
        displayed_version=manifest.get("version_name") or "",
        main_activity=_main_activity(components, package),
        min_sdk=manifest.get("min_sdk") or 0,
        max_sdk=manifest.get("max_sdk") or 0,
        target_sdk=manifest.get("target_sdk") or 0,
        permissions_number=len(permissions) + len(declared),
    )
    names: dict[str, dict[str, None]] = {"activity": {}, "service": {}, "receiver": {}}
    filters: dict[str, None] = {}
    for comp in components:
        found = names.get(comp.get("kind"))
        if found is not None and comp.get("name"):
            found.setdefault(androguard.qualified(comp["name"], package))
        for f in comp.get("intent_filters") or ():
            for value in (*(f.get("actions") or ()), *(f.get("categories") or ())):
                filters.setdefault(value)
    _put(out, "activities", list(names["activity"]))
    _put(out, "services", list(names["service"]))
    _put(out, "receivers", list(names["receiver"]))
    _put(out, "filters", list(filters))
    _put(out, "urls", urls)
    _put(out, "permissions", [*permissions, *declared])
    certs = [c for c in certificates if c.get("sha1")]
    out["cert_sha1"] = [c["sha1"].lower() for c in certs] or [""]
    out["cert_issuer"] = [
        c.get("issuer_dn") or androguard.oneline_dn(c.get("issuer") or "") for c in certs
    ] or [""]
    out["cert_subject"] = [
        c.get("subject_dn") or androguard.oneline_dn(c.get("subject") or "") for c in certs
    ] or [""]
    out["cert_not_before"] = [c.get("not_before") for c in certs] or [""]
    out["cert_not_after"] = [c.get("not_after") for c in certs] or [""]
    out["cert_sha1_count"] = len(certs)
    return out


# the version of ``stored_facts``' form: a stored form of another version, or made by another
# engine version, is computed again from the summary (bump it when ``summary_facts`` changes)
FACTS_FORMAT = 1
_FORMAT_KEY = "_format"
_FORMAT = [FACTS_FORMAT, ENGINE_VERSION]  # a list: what it reads back as from JSON
_DEFAULTS = androguard.default_facts()


def compact_facts(facts: dict[str, Any]) -> dict[str, Any]:
    """``facts`` less every entry equal to ``androguard.default_facts()`` (an app's empty lists,
    zero counts, blank strings), tagged with ``FACTS_FORMAT`` and the engine's version.
    ``FactsBatch.match`` reads it as it reads ``facts``: a missing entry reads as its default.
    ``expand_facts`` gives ``facts`` back exactly."""
    out = {k: v for k, v in facts.items() if k not in _DEFAULTS or _DEFAULTS[k] != v}
    out[_FORMAT_KEY] = _FORMAT
    return out


def stored_facts(summary: dict[str, Any]) -> dict[str, Any]:
    """What ``Sample.facts`` keeps: ``compact_facts(summary_facts(summary))``."""
    return compact_facts(summary_facts(summary))


def facts_current(stored: object) -> TypeGuard[dict[str, Any]]:
    """Whether ``stored`` is a compact form of this ``FACTS_FORMAT`` and engine version."""
    return isinstance(stored, dict) and stored.get(_FORMAT_KEY) == _FORMAT


def expand_facts(stored: dict[str, Any]) -> dict[str, Any]:
    """The full facts of a compact form (``compact_facts``' inverse)."""
    out = androguard.default_facts()
    out.update(stored)
    out.pop(_FORMAT_KEY, None)
    return out


def _main_activity(components: Iterable[dict[str, Any]], package: str | None) -> str:
    for comp in components:
        if comp.get("kind") != "activity":
            continue
        for f in comp.get("intent_filters") or ():
            if "android.intent.action.MAIN" in (f.get("actions") or ()) and (
                "android.intent.category.LAUNCHER" in (f.get("categories") or ())
            ):
                return androguard.qualified(comp.get("name") or "", package)
    return ""


def _put(out: dict[str, Any], name: str, values: list[str]) -> None:
    values = [v for v in values if v]
    out[name] = values or [""]
    out[_COUNT[name]] = len(values)
