"""Stored features as lookup keys: how hash, indicator and package_cert rules are gated without
reading any app (docs/retrohunts.md, "Byte-free gating").

Every analysed sample keeps, in ``SampleKey``, one 64-bit key per fact such a rule can match:
its md5/sha1/sha256, each DEX's sha256, each signing certificate's sha256 and sha1, its
package name, and every domain (with its parent domains), URL, IP address and SMS short code
its strings hold, the same way ``engine.ruleset`` reads them (an XAPK's parts included). A
rule has one key (``rule_key``). A sample can match a rule only if it holds the rule's key,
so a hunt looks up each sample's keys (one indexed range query per chunk), keeps the samples
that hold a key of the hunt, and runs the engine's own ``match`` on those candidates' stored
summaries only: the engine decides every result, the keys only skip samples that cannot
match (a 64-bit collision merely adds a candidate).

Not keyed (they go through the per-sample path as before): CIDR indicators (a range, not a
value), behaviour rules (they need the DEX method tables from storage), YARA.

Keys are derived data, written with the engine version they came from
(``Sample.keys_engine_version``): when a sample's features are stored (a scan, or a hunt that
had to analyse it), and for samples analysed before keys existed, from ``Sample.features``
when a hunt first needs them.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Sequence

from django.db import transaction

from engine import ENGINE_VERSION
from engine.features import AppFeatures, RuleRecord
from engine.kinds.indicator import IndicatorError, normalise_domain, normalise_ip, normalise_url
from scans.models import Sample, SampleKey

KEYED_KINDS = ("hash", "indicator", "package_cert")


def key_of(text: str) -> int:
    """A fact as a signed 64-bit integer (what the index stores)."""
    return int.from_bytes(
        hashlib.blake2b(text.encode(), digest_size=8).digest(), "big", signed=True
    )


def rule_key(record: RuleRecord) -> str | None:
    """The one fact a sample must hold for ``record`` to match it; None: not keyed."""
    body = record.body
    if not isinstance(body, dict):
        return None
    if record.kind == "hash":
        return f"{body['algorithm']}:{body['target']}:{str(body['value']).lower()}"
    if record.kind == "indicator":
        kind = body["type"]
        if kind == "cidr":
            return None
        if kind == "short_code":
            return f"short_code:{str(body['value']).strip()}"
        return f"{kind}:{body['value']}"
    if record.kind == "package_cert":
        return f"package:{body['package']}"
    return None


def _parent_domains(domain: str) -> Iterable[str]:
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        yield ".".join(labels[i:])


def _indicator_facts(features: AppFeatures) -> set[str]:
    """What ``engine.ruleset._match_indicators`` compares with rule values (kept in step with
    it; ``scans/tests/test_gate_feed.py`` checks both agree over the corpus)."""
    found = features.indicators
    out: set[str] = set()
    hosts = list(found.domains)
    ips = list(found.ips)
    for raw in found.urls:
        try:
            url = normalise_url(raw)
        except IndicatorError:
            continue
        out.add(f"url:{url}")
        host = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
        host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
        host = host.strip("[]")
        if any(c.isalpha() for c in host) and ":" not in host:
            hosts.append(host)
        else:
            ips.append(host)
    for raw in hosts:
        try:
            domain = normalise_domain(raw)
        except IndicatorError:
            continue
        out.update(f"domain:{parent}" for parent in _parent_domains(domain))
    for raw in ips:
        try:
            address = ipaddress.ip_address(normalise_ip(raw))
        except (IndicatorError, ValueError):
            continue
        out.add(f"ip:{address}")
    out.update(f"short_code:{code.strip()}" for code in found.short_codes)
    return out


def feature_facts(features: AppFeatures) -> set[str]:
    """Every fact of an app (and of an XAPK's parts) a keyed rule can match."""
    out: set[str] = set()
    for part in (features, *features.parts):
        for algorithm, value in (("md5", part.md5), ("sha1", part.sha1), ("sha256", part.sha256)):
            if value:
                out.add(f"{algorithm}:apk:{value.lower()}")
        out.update(f"sha256:dex:{d.sha256.lower()}" for d in part.dex if d.sha256)
        for cert in part.certificates:
            if cert.sha256:
                out.add(f"sha256:cert:{cert.sha256.lower()}")
            if cert.sha1:
                out.add(f"sha1:cert:{cert.sha1.lower()}")
        out.add(f"package:{part.manifest.package or ''}")
        out |= _indicator_facts(part)
    return out


def summary_features(sample: Sample) -> AppFeatures | None:
    """The stored summary as features (enough for every keyed kind), if current."""
    if sample.features_engine_version != ENGINE_VERSION or not sample.features:
        return None
    return AppFeatures.from_dict(sample.features)


def sample_keys_store(*, samples: Sequence[Sample]) -> dict[int, set[int]]:
    """(Re)write the keys of samples with current stored features; returns them by sample."""
    keys: dict[int, set[int]] = {}
    for sample in samples:
        features = summary_features(sample)
        if features is not None:
            keys[sample.pk] = {key_of(f) for f in feature_facts(features)}
    _keys_write(keys)
    return keys


def sample_keys_write(*, sample: Sample, features: AppFeatures) -> None:
    """Key a sample whose features were just stored (``scans.services`` after analysis)."""
    _keys_write({sample.pk: {key_of(f) for f in feature_facts(features)}})


@transaction.atomic
def _keys_write(keys: dict[int, set[int]]) -> None:
    if not keys:
        return
    SampleKey.objects.filter(sample_id__in=list(keys)).delete()
    SampleKey.objects.bulk_create(
        (SampleKey(sample_id=sid, key=k) for sid, ks in keys.items() for k in ks),
        batch_size=2000,
    )
    Sample.objects.filter(pk__in=list(keys)).update(keys_engine_version=ENGINE_VERSION)


def sample_keys(*, first_id: int, last_id: int, samples: Sequence[Sample]) -> dict[int, set[int]]:
    """The keys of ``samples`` (all with ids in ``first_id..last_id`` and current stored
    features), computing those not stored yet from the summary."""
    wanted = {s.pk for s in samples}
    out: dict[int, set[int]] = {pk: set() for pk in wanted}
    current = {s.pk for s in samples if s.keys_engine_version == ENGINE_VERSION}
    rows = SampleKey.objects.filter(sample_id__gte=first_id, sample_id__lte=last_id)
    for sid, key in rows.values_list("sample_id", "key").iterator(chunk_size=5000):
        if sid in current:
            out[sid].add(key)
    missing = [s for s in samples if s.pk not in current]
    if missing:
        # derived data: loaded with the summary only when it has to be written
        full = list(Sample.objects.filter(pk__in=[s.pk for s in missing]))
        out.update(sample_keys_store(samples=full))
    return out
