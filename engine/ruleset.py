"""Compile signature records into lookup structures and match apps against them.

``compile(records)`` builds one ``Ruleset``: sets and dicts for hashes, indicators and
package/certificate pairs, an inverted index for behaviours and a single ``yara_x.Rules`` for
every YARA record. ``match(features, ruleset, content)`` costs time in proportion to what the
app contains, not to the number of records (YARA excepted, which scans bytes).

Records are expected to carry the normalised body their kind's ``validate`` returned; compile
trusts them, so that a release of a million records compiles in seconds. A record that still
cannot be used (unknown kind, a YARA rule this yara-x rejects) lands in ``Ruleset.errors`` and
never stops the others from compiling.

Verdict and score (``verdict``):

- only scoring matches count (noisy signatures are reported but never score);
- the verdict is ``malicious`` if any scoring match has severity ``malicious``, else
  ``suspicious`` if any has severity ``suspicious`` or ``riskware`` (riskware is software a
  user may want but should know about), else ``clean``;
- each scoring match has a weight: 100 for malicious, 60 for suspicious, 30 for riskware;
  a behaviour match scales its weight by its body's score / 100 (when the ruleset is given);
- the score combines the weights as independent evidence, ``100 * (1 - prod(1 - w/100))``,
  rounded: one malicious match gives 100, two suspicious ones give 84, and it never exceeds 100.
"""

from __future__ import annotations

import builtins
import io
import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import yara_x

from engine import ENGINE_VERSION, androguard, literal_split
from engine.features import AppContent, AppFeatures, Match, RuleRecord, Severity, Verdict
from engine.kinds import REGISTRY, _yara_source
from engine.kinds import yara as yara_kind
from engine.kinds.behavior import api_key, normalise_descriptor
from engine.kinds.indicator import IndicatorError, normalise_domain, normalise_ip, normalise_url

SEVERITY_WEIGHT: dict[str, int] = {"malicious": 100, "suspicious": 60, "riskware": 30}
YARA_SCAN_TIMEOUT_SECONDS = 60
MAX_EVIDENCE_PER_MATCH = 10
_MAX_PATTERNS_IN_EVIDENCE = 3


@dataclass(frozen=True, slots=True)
class CompileProblem:
    """A record that is in the ruleset's input but cannot be matched by this engine."""

    signature_id: int
    revision: int
    name: str
    message: str


# A value maps to one record index (the common case) or to a list of them; this halves the
# memory of a million-record ruleset compared to a list per value.
_Slot = int | list[int]


def _add(table: dict[Any, _Slot], key: Any, index: int) -> None:
    current = table.get(key)
    if current is None:
        table[key] = index
    elif isinstance(current, int):
        table[key] = [current, index]
    else:
        current.append(index)


def _get(table: dict[Any, _Slot], key: Any) -> list[int]:
    current = table.get(key)
    if current is None:
        return []
    return [current] if isinstance(current, int) else current


@dataclass
class Ruleset:
    engine_version: int
    records: list[RuleRecord] = field(default_factory=list)
    skipped: int = 0
    errors: list[CompileProblem] = field(default_factory=list)
    # (algorithm, target) -> hex value -> record indexes
    hashes: dict[tuple[str, str], dict[str, _Slot]] = field(default_factory=dict)
    domains: dict[str, _Slot] = field(default_factory=dict)
    urls: dict[str, _Slot] = field(default_factory=dict)
    ips: dict[str, _Slot] = field(default_factory=dict)
    short_codes: dict[str, _Slot] = field(default_factory=dict)
    # (ip version, prefix length) -> network address as int >> host bits -> record indexes
    networks: dict[tuple[int, int], dict[int, _Slot]] = field(default_factory=dict)
    # package -> [(record index, allowed certificate SHA-256s)]
    package_certs: dict[str, list[tuple[int, frozenset[str]]]] = field(default_factory=dict)
    # "perm:<name>" / "api:<Lcls;->name(desc)>" -> indexes of the behaviours that require it
    behavior_index: dict[str, list[int]] = field(default_factory=dict)
    behavior_needs: dict[int, int] = field(default_factory=dict)
    yara_rules: yara_x.Rules | None = None
    yara_namespaces: dict[str, int] = field(default_factory=dict)
    # YARA records whose compiled condition may read the scanned bytes (``reads_bytes``)
    yara_byte_readers: set[int] = field(default_factory=set)
    # YARA records that may read the ``android`` global, and those that may read its fields
    # that change with the part scanned (``reads_globals``): the others need no set_global
    yara_global_readers: set[int] = field(default_factory=set)
    yara_part_readers: set[int] = field(default_factory=set)
    # a lone regex-heavy YARA record that hunts can match through its literals
    # (``engine.literal_split``); None for any other ruleset
    yara_split: literal_split.SplitPlan | None = None

    def __len__(self) -> int:
        return len(self.records)

    def __getstate__(self) -> dict[str, Any]:
        # yara_x.Rules does not pickle, but it serialises to bytes
        state = {k: getattr(self, k) for k in self.__dataclass_fields__}
        if self.yara_rules is not None:
            buffer = io.BytesIO()
            self.yara_rules.serialize_into(buffer)
            state["yara_rules"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        raw = state.get("yara_rules")
        if isinstance(raw, bytes):
            state = {**state, "yara_rules": yara_x.Rules.deserialize_from(io.BytesIO(raw))}
        for key, value in state.items():
            setattr(self, key, value)

    @property
    def yara_only(self) -> bool:
        """Only YARA records can match (``match_yara`` needs no features then)."""
        return bool(self.yara_namespaces) and not (
            self.hashes
            or self.domains
            or self.urls
            or self.ips
            or self.short_codes
            or self.networks
            or self.package_certs
            or self.behavior_index
        )

    @property
    def yara_facts_only(self) -> bool:
        """Only YARA records, none of which reads bytes: ``match_facts`` answers from the
        app's stored facts alone, with no file, manifest or DEX to read."""
        return self.yara_only and not self.yara_byte_readers

    def counts(self) -> dict[str, int]:
        """How many matchable records of each kind (for logs and the bench)."""
        result: dict[str, int] = {}
        yara_ok = set(self.yara_namespaces.values())
        for index, record in enumerate(self.records):
            if record.kind != "yara" or index in yara_ok:
                result[record.kind] = result.get(record.kind, 0) + 1
        return result


# shadows the builtin inside this module only; callers import compile_ruleset
def compile(records: Iterable[RuleRecord], *, engine_version: int = ENGINE_VERSION) -> Ruleset:
    """Build a ``Ruleset`` from records; see the module docstring for what goes where."""
    ruleset = Ruleset(engine_version=engine_version)
    yara_records: list[int] = []
    for record in records:
        kind = REGISTRY.get(record.kind)
        if record.min_engine > engine_version or (kind and kind.min_engine > engine_version):
            ruleset.skipped += 1
            continue
        if kind is None:
            ruleset.errors.append(_problem(record, f"unknown signature kind {record.kind!r}"))
            continue
        index = len(ruleset.records)
        try:
            if record.kind == "yara":
                if not isinstance(record.body, str):
                    raise TypeError("a YARA body is text")
                yara_records.append(index)
            else:
                _index_record(ruleset, record, index)
        except (KeyError, TypeError, ValueError) as exc:
            ruleset.errors.append(_problem(record, f"malformed body: {exc!r}"))
            continue
        ruleset.records.append(record)
    if yara_records:
        _compile_yara(ruleset, yara_records)
    return ruleset


compile_ruleset = compile


def _problem(record: RuleRecord, message: str) -> CompileProblem:
    return CompileProblem(record.id, record.revision, record.name, message)


def _index_record(ruleset: Ruleset, record: RuleRecord, index: int) -> None:
    body = record.body
    if record.kind == "hash":
        table = ruleset.hashes.setdefault((body["algorithm"], body["target"]), {})
        _add(table, body["value"], index)
    elif record.kind == "indicator":
        kind, value = body["type"], body["value"]
        if kind == "cidr":
            net = ipaddress.ip_network(value, strict=False)
            host_bits = net.max_prefixlen - net.prefixlen
            networks = ruleset.networks.setdefault((net.version, net.prefixlen), {})
            _add(networks, int(net.network_address) >> host_bits, index)
        else:
            tables = {
                "domain": ruleset.domains,
                "url": ruleset.urls,
                "ip": ruleset.ips,
                "short_code": ruleset.short_codes,
            }
            _add(tables[kind], value, index)
    elif record.kind == "package_cert":
        allowed = frozenset(body["allowed_certs"])
        ruleset.package_certs.setdefault(body["package"], []).append((index, allowed))
    elif record.kind == "behavior":
        keys = {f"perm:{p}" for p in body["permissions"]}
        keys |= {
            f"api:{api_key(a['class'], a['method'], a.get('descriptor'))}" for a in body["api"]
        }
        if not keys:
            raise ValueError("a behaviour needs at least one permission or API call")
        for key in keys:
            ruleset.behavior_index.setdefault(key, []).append(index)
        ruleset.behavior_needs[index] = len(keys)
    else:
        raise ValueError(f"no matcher for kind {record.kind!r}")


def _compile_yara(ruleset: Ruleset, indexes: list[int]) -> None:
    """All YARA records into one ``yara_x.Rules``, one namespace per record.

    The first pass adds each record to one compiler and notes those yara-x rejects (adding
    continues after an error); if any failed, a second compiler builds the good ones alone,
    so that a half-added bad source cannot leave stray rules behind.
    """
    good: list[int] = []
    bad: set[int] = set()
    sources: dict[int, str] = {}  # what yara-x compiles (a Koodous rule: its rewrite)
    compiler = yara_kind.new_compiler()
    for index in indexes:
        record = ruleset.records[index]
        structure_errors, _, _ = yara_kind.structure_issues(record.body)
        source, rewrite_errors = yara_kind.compiled_source(record.body)
        if structure_errors or rewrite_errors:
            ruleset.errors.append(_problem(record, str((structure_errors + rewrite_errors)[0])))
            bad.add(index)
            continue
        sources[index] = source
        compiler.new_namespace(f"r{index}")
        try:
            compiler.add_source(source, origin=record.name)
        except yara_x.CompileError as exc:
            ruleset.errors.append(_problem(record, str(exc).splitlines()[0]))
            bad.add(index)
            continue
        good.append(index)
        if reads_bytes(source):
            ruleset.yara_byte_readers.add(index)
        global_, part = reads_globals(source)
        if global_:
            ruleset.yara_global_readers.add(index)
        if part:
            ruleset.yara_part_readers.add(index)
    if bad:
        compiler = yara_kind.new_compiler()
        for index in good:
            compiler.new_namespace(f"r{index}")
            compiler.add_source(sources[index], origin=ruleset.records[index].name)
    ruleset.yara_rules = compiler.build()
    # a rejected record keeps its index (so others' stay valid) but gets no namespace
    ruleset.yara_namespaces = {f"r{i}": i for i in good}
    if len(good) == 1:
        ruleset.yara_split = literal_split.plan(sources[good[0]])


# identifiers whose value depends on the bytes scanned or on which part of the app is scanned
_BYTE_WORDS = frozenset({"filesize", "entrypoint", "file_kind", "file_name"})
_BYTE_FUNCTION = re.compile(r"u?int(8|16|32)(be)?$")


def reads_bytes(source: str) -> bool:
    """Whether a compiled YARA source may depend on the bytes scanned: patterns (``$a``,
    ``#a``, ``@a``, ``!a``), ``filesize``, ``entrypoint``, ``uint8(…)`` and kin, any module
    (they parse the bytes), and ``android.file_kind``/``file_name`` (which part is scanned).
    Conservative: a rule this says no to answers the same on any bytes, so from facts alone
    (a rewritten Koodous rule without strings, ``android.package == "…"``)."""
    if _yara_source.parse(source).imports:
        return True
    for token in _yara_source.tokenize(source):
        if token.kind == "var":
            return True
        if token.kind == "ident" and (
            token.text in _BYTE_WORDS or _BYTE_FUNCTION.match(token.text) is not None
        ):
            return True
    return False


_GLOBAL_WORD = re.compile(rf"\b{yara_kind.GLOBAL_NAME}\b")
_PART_WORD = re.compile(r"\bfile_(kind|name)\b")


def reads_globals(source: str) -> tuple[bool, bool]:
    """Whether a compiled YARA source may read the ``android`` global at all, and whether it
    may read ``file_kind``/``file_name``, the fields that change with the part scanned.

    Textual, so conservative: a word anywhere (a tag, a comment, a string) counts. A rule
    can only read the global by naming it (``android.package``, ``0..android.cert_count``),
    and a struct field only by its name, so a source without the word cannot tell what
    ``set_global`` gave: ``_match_yara`` then skips handing yara-x the facts (about 50 µs per
    part scanned, as long as scanning a small DEX)."""
    return _GLOBAL_WORD.search(source) is not None, _PART_WORD.search(source) is not None


# --------------------------------------------------------------------------------------------
# matching


class _Hits:
    """Evidence per record index, in the order records were first hit."""

    def __init__(self) -> None:
        self.evidence: dict[int, list[str]] = {}

    def add(self, index: int, text: str) -> None:
        found = self.evidence.setdefault(index, [])
        if len(found) < MAX_EVIDENCE_PER_MATCH and text not in found:
            found.append(text)


def match(
    features: AppFeatures,
    ruleset: Ruleset,
    content: AppContent | None = None,
    *,
    first_hit: bool = False,
) -> list[Match]:
    """The records ``features`` matches, one ``Match`` per record, with evidence for people.

    Hash, indicator, package_cert and behaviour records are matched from ``features`` alone
    (for an XAPK also from each part). YARA records need the bytes: pass ``content`` (from
    ``engine.analyze.analyze_with_content``) and they run over the whole file, the binary
    manifest and each DEX. Without ``content`` YARA records are not evaluated at all, so a
    match list computed without content says nothing about them.

    ``first_hit`` is for retro-hunts, which ask *which* samples each rule hits, not every
    place it hits: the DEX files are scanned first (where Android rules usually hit), then the
    manifest, then the whole file, and scanning stops once every YARA record has hit; the
    evidence is then that of the first part hit. Which records match is the same either way.

    Raises ``yara_x.TimeoutError`` if a YARA scan exceeds YARA_SCAN_TIMEOUT_SECONDS rather
    than returning a result that silently misses rules.
    """
    hits = _Hits()
    _match_features(features, ruleset, hits, where="")
    for n, part in enumerate(features.parts, 1):
        label = part.manifest.package or part.sha256[:12]
        _match_features(part, ruleset, hits, where=f" (part {n}: {label})")
    if content is not None and ruleset.yara_rules is not None and ruleset.yara_namespaces:
        facts = content.facts if content.facts is not None else android_globals(features)
        _match_yara(facts, content, ruleset, hits, first_hit=first_hit)
    return _matches(ruleset, hits)


def match_yara(content: AppContent, ruleset: Ruleset, *, first_hit: bool = False) -> list[Match]:
    """``match`` for a ruleset of YARA records only (``Ruleset.yara_only``), from bytes whose
    ``facts`` are known (a unit pack): no features needed. ``first_hit`` as in ``match``."""
    if content.facts is None:
        raise ValueError("match_yara needs content.facts")
    hits = _Hits()
    if ruleset.yara_rules is not None and ruleset.yara_namespaces:
        _match_yara(content.facts, content, ruleset, hits, first_hit=first_hit)
    return _matches(ruleset, hits)


class FactsScanner:
    """``match_facts`` for many apps in a row, reusing one yara-x scanner (a hunt's loop)."""

    def __init__(self, ruleset: Ruleset) -> None:
        if not ruleset.yara_facts_only:
            raise ValueError("match_facts needs a ruleset of YARA records that read no bytes")
        assert ruleset.yara_rules is not None
        self.ruleset = ruleset
        self.scanner = yara_x.Scanner(ruleset.yara_rules)
        self.scanner.set_timeout(YARA_SCAN_TIMEOUT_SECONDS)

    def match(self, facts: dict[str, Any]) -> list[Match]:
        """The records ``facts`` (``android_globals``, as unit packs and features keep them)
        matches: one evaluation over no bytes at all, the same answer ``match`` gives over
        the file, its manifest and every DEX."""
        if androguard.FACTS_FIELD not in facts:
            facts = {**facts, androguard.FACTS_FIELD: androguard.default_facts()}
        self.scanner.set_global(yara_kind.GLOBAL_NAME, {**facts, "file_kind": "apk"})
        hits = _Hits()
        for rule in self.scanner.scan(b"").matching_rules:
            index = self.ruleset.yara_namespaces.get(rule.namespace)
            if index is not None:
                hits.add(index, f"yara: rule {rule.identifier} condition on the app's facts")
        return _matches(self.ruleset, hits)


def match_facts(facts: dict[str, Any], ruleset: Ruleset) -> list[Match]:
    """``match`` for a ruleset whose YARA records read no bytes (``Ruleset.yara_facts_only``):
    from the app's stored facts alone, no file read. Use ``FactsScanner`` for many apps."""
    return FactsScanner(ruleset).match(facts)


def _matches(ruleset: Ruleset, hits: _Hits) -> list[Match]:
    matches = []
    for index, evidence in hits.evidence.items():
        record = ruleset.records[index]
        matches.append(
            Match(
                signature_id=record.id,
                revision=record.revision,
                name=record.name,
                kind=record.kind,
                severity=record.severity,
                scoring=not record.noisy,
                evidence=tuple(evidence),
            )
        )
    return matches


def _match_features(features: AppFeatures, rs: Ruleset, hits: _Hits, where: str) -> None:
    if rs.hashes:
        _match_hashes(features, rs, hits, where)
    _match_indicators(features, rs, hits, where)
    if rs.package_certs:
        _match_package_cert(features, rs, hits, where)
    if rs.behavior_index:
        _match_behavior(features, rs, hits, where)


def _match_hashes(features: AppFeatures, rs: Ruleset, hits: _Hits, where: str) -> None:
    subject = "xapk" if features.file_type == "xapk" else "apk"
    checks: list[tuple[str, str, str, str]] = [
        ("md5", "apk", features.md5, f"{subject} md5"),
        ("sha1", "apk", features.sha1, f"{subject} sha1"),
        ("sha256", "apk", features.sha256, f"{subject} sha256"),
    ]
    checks += [("sha256", "dex", d.sha256, f"dex {d.path} sha256") for d in features.dex]
    for cert in features.certificates:
        checks.append(("sha256", "cert", cert.sha256, "certificate sha256"))
        checks.append(("sha1", "cert", cert.sha1, "certificate sha1"))
    for algorithm, target, value, text in checks:
        table = rs.hashes.get((algorithm, target))
        if table and value:
            for index in _get(table, value.lower()):
                hits.add(index, f"{text} = {value.lower()}{where}")


def _parent_domains(domain: str) -> Iterable[str]:
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        yield ".".join(labels[i:])


def _match_indicators(features: AppFeatures, rs: Ruleset, hits: _Hits, where: str) -> None:
    found = features.indicators
    hosts: list[tuple[str, str]] = [(d, "strings") for d in found.domains]
    ips: list[tuple[str, str]] = [(i, "strings") for i in found.ips]
    if rs.urls or rs.domains or rs.ips or rs.networks:
        for raw in found.urls:
            try:
                url = normalise_url(raw)
            except IndicatorError:
                continue
            for index in _get(rs.urls, url):
                hits.add(index, f"url {url} in strings{where}")
            host = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            host = host.strip("[]")
            if any(c.isalpha() for c in host) and ":" not in host:
                hosts.append((host, f"url {url}"))
            else:
                ips.append((host, f"url {url}"))
    if rs.domains:
        for raw, source in hosts:
            try:
                domain = normalise_domain(raw)
            except IndicatorError:
                continue
            for parent in _parent_domains(domain):
                for index in _get(rs.domains, parent):
                    under = "" if parent == domain else f" (under {parent})"
                    hits.add(index, f"domain {domain}{under} in {source}{where}")
    if rs.ips or rs.networks:
        for raw, source in ips:
            try:
                address = ipaddress.ip_address(normalise_ip(raw))
            except (IndicatorError, ValueError):
                continue
            for index in _get(rs.ips, str(address)):
                hits.add(index, f"ip {address} in {source}{where}")
            number = int(address)
            for (version, prefix), table in rs.networks.items():
                if version != address.version:
                    continue
                for index in _get(table, number >> (address.max_prefixlen - prefix)):
                    net = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
                    hits.add(index, f"ip {address} in network {net} in {source}{where}")
    if rs.short_codes:
        for code in found.short_codes:
            for index in _get(rs.short_codes, code.strip()):
                hits.add(index, f"SMS short code {code.strip()} in strings{where}")


def _match_package_cert(features: AppFeatures, rs: Ruleset, hits: _Hits, where: str) -> None:
    package = features.manifest.package
    rules = rs.package_certs.get(package or "")
    if not rules:
        return
    signers = [c.sha256.lower() for c in features.certificates]
    lineage = {c.lower() for c in features.lineage}
    for index, allowed in rules:
        if any(s in allowed for s in signers):
            continue
        if lineage & allowed:
            # the app rotated (v3 lineage) away from an allowed key: the owner did that
            continue
        if not signers:
            hits.add(index, f"the app is unsigned but uses the protected package {package}")
        for signer in signers:
            hits.add(
                index,
                f"certificate {signer} is not among the allowed signers of {package}{where}",
            )


def _match_behavior(features: AppFeatures, rs: Ruleset, hits: _Hits, where: str) -> None:
    present: dict[str, str] = {
        f"perm:{p}": f"permission {p}" for p in features.manifest.permissions
    }
    for method in features.methods:
        short = api_key(method.cls, method.name)
        present.setdefault(f"api:{short}", short)
        full = api_key(method.cls, method.name, normalise_descriptor(method.descriptor))
        present.setdefault(f"api:{full}", full)
    counts: dict[int, list[str]] = {}
    for key, text in present.items():
        for index in rs.behavior_index.get(key, ()):
            counts.setdefault(index, []).append(text)
    for index, texts in counts.items():
        if len(texts) == rs.behavior_needs[index]:
            texts.sort(key=lambda t: (not t.startswith("permission"), t))
            hits.add(index, " + ".join(texts) + where)


def android_globals(
    features: AppFeatures, *, file_kind: str = "apk", file_name: str = ""
) -> dict[str, Any]:
    """The ``android`` yara-x global for one scan (see ``engine.kinds.yara``)."""
    manifest = features.manifest
    if manifest.package is None:
        # an XAPK has no top-level manifest; its base part speaks for it
        manifest = next((p.manifest for p in features.parts if p.manifest.package), manifest)
    certificates = features.certificates or tuple(c for p in features.parts for c in p.certificates)
    permissions = [p for p in manifest.permissions if p]
    certs = sorted({c.sha256.lower() for c in certificates if c.sha256})
    values = yara_kind.default_globals()
    values[androguard.FACTS_FIELD] = androguard.facts(features)
    values.update(
        package=manifest.package or "",
        app_label=manifest.app_label or "",
        version_name=manifest.version_name or "",
        version_code=manifest.version_code or 0,
        min_sdk=manifest.min_sdk or 0,
        target_sdk=manifest.target_sdk or 0,
        permissions=permissions or [""],
        permission_count=len(permissions),
        cert_sha256=certs or [""],
        cert_count=len(certs),
        sha256=features.sha256 or "",
        file_kind=file_kind,
        file_name=file_name,
    )
    return values


def _match_yara(
    facts: dict[str, Any], content: AppContent, rs: Ruleset, hits: _Hits, *, first_hit: bool
) -> None:
    assert rs.yara_rules is not None
    scanner = yara_x.Scanner(rs.yara_rules)
    scanner.set_timeout(YARA_SCAN_TIMEOUT_SECONDS)
    whole: list[tuple[str, str, bytes | None]] = [("apk", "", None)] if content.path else []
    manifest = [("manifest", "AndroidManifest.xml", content.manifest)] if content.manifest else []
    dex = [("dex", name, data) for name, data in content.dex]
    targets = [*dex, *manifest, *whole] if first_hit else [*whole, *manifest, *dex]
    if first_hit and rs.yara_split is not None and _match_split(rs, content.path, targets, hits):
        return
    hit: set[int] = set()
    if androguard.FACTS_FIELD not in facts:
        # facts kept before Koodous rules ran (a unit pack): their androguard part is unknown
        facts = {**facts, androguard.FACTS_FIELD: androguard.default_facts()}
    # the facts once per app, or per part when a rule may read which part it sees, or never
    # when no rule names the global (``reads_globals``): the answers are the same
    per_part = bool(rs.yara_part_readers)
    if rs.yara_global_readers and not per_part:
        scanner.set_global(yara_kind.GLOBAL_NAME, {**facts, "file_kind": "apk", "file_name": ""})
    for file_kind, file_name, data in targets:
        if first_hit and len(hit) == len(rs.yara_namespaces):
            break  # every YARA record has hit: the rest cannot change which ones match
        if per_part:
            scanner.set_global(
                yara_kind.GLOBAL_NAME,
                {**facts, "file_kind": file_kind, "file_name": file_name},
            )
        if data is None:
            results = scanner.scan_file(content.path)
            place = "the file"
        else:
            results = scanner.scan(data)
            place = file_name
        for rule in results.matching_rules:
            index = rs.yara_namespaces.get(rule.namespace)
            if index is None:
                continue
            first = [(p.identifier, p.matches[0].offset) for p in rule.patterns if p.matches]
            hits.add(index, _yara_evidence(first, rule.identifier, place))
            hit.add(index)


def _yara_evidence(first: list[tuple[str, int]], rule: str, place: str) -> str:
    """What a YARA match shows: its first strings matched, each at its first offset."""
    shown = [f"{name} at {offset:#x}" for name, offset in first[:_MAX_PATTERNS_IN_EVIDENCE]]
    detail = ", ".join(shown) if shown else f"rule {rule} condition"
    return f"yara: {detail} in {place}"


def _match_split(
    rs: Ruleset, path: str, targets: list[tuple[str, str, bytes | None]], hits: _Hits
) -> bool:
    """``first_hit`` matching of a ruleset's one regex-heavy record through its literals
    (``engine.literal_split``): the same answer and evidence as yara-x over the whole rule.
    False, with nothing added, when a regex's literal is too common in some part to pay
    (``literal_split.max_windows``): the caller then scans the usual way."""
    assert rs.yara_split is not None
    (index,) = rs.yara_namespaces.values()
    for _, file_name, data in targets:
        first = rs.yara_split.first_matches(data, path, YARA_SCAN_TIMEOUT_SECONDS)
        if first is None:
            return False
        if first:
            place = "the file" if data is None else file_name
            hits.add(index, _yara_evidence(first, rs.records[index].name, place))
            return True
    return True


# --------------------------------------------------------------------------------------------
# verdict


def record_weight(record: RuleRecord) -> float:
    """The weight (0-1) a scoring match of ``record`` adds: its severity's, and a behaviour
    body's score scales it (the rule is in the module docstring)."""
    weight = SEVERITY_WEIGHT.get(record.severity, 0) / 100
    if record.kind == "behavior" and isinstance(record.body, dict):
        weight *= int(record.body.get("score", 100)) / 100
    return weight


def verdict_of(weighted: Iterable[tuple[Severity, float]]) -> tuple[Verdict, int]:
    """(verdict, score 0-100) from the (severity, weight) of each scoring match: how
    ``verdict`` decides, for callers that keep matches as rows (scans' current verdicts)."""
    severities: set[Severity] = set()
    remaining = 1.0
    for severity, weight in weighted:
        severities.add(severity)
        remaining *= 1 - weight
    score = min(100, builtins.round(100 * (1 - remaining)))
    if "malicious" in severities:
        return "malicious", score
    if severities & {"suspicious", "riskware"}:
        return "suspicious", score
    return "clean", score


def verdict(matches: Iterable[Match], ruleset: Ruleset | None = None) -> tuple[Verdict, int]:
    """(verdict, score 0-100) for a list of matches; the rule is in the module docstring.

    ``Match`` carries no score of its own, so behaviour scores are looked up in ``ruleset``
    when it is given; without it a behaviour match weighs as its severity says.
    """
    behavior: dict[tuple[int, int], RuleRecord] = {}
    if ruleset is not None:
        for index in ruleset.behavior_needs:
            record = ruleset.records[index]
            behavior[(record.id, record.revision)] = record

    def weighted() -> Iterable[tuple[Severity, float]]:
        for m in matches:
            if not m.scoring:
                continue
            record = behavior.get((m.signature_id, m.revision)) if m.kind == "behavior" else None
            if record is not None:
                yield m.severity, record_weight(record)
            else:
                yield m.severity, SEVERITY_WEIGHT.get(m.severity, 0) / 100

    return verdict_of(weighted())


__all__ = [
    "SEVERITY_WEIGHT",
    "CompileProblem",
    "FactsScanner",
    "Ruleset",
    "android_globals",
    "compile",
    "compile_ruleset",
    "match",
    "match_facts",
    "match_yara",
    "reads_bytes",
    "reads_globals",
    "record_weight",
    "verdict",
    "verdict_of",
]
