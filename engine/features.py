"""Plain dataclasses exchanged between the engine, the portal and the client.

They are frozen and made of tuples, strings and ints so that they hash, compare and
serialise (``to_dict``/``from_dict``) without surprises. Field names are part of the stored
format (scan results keep ``AppFeatures.to_dict()`` as JSON), so rename with care.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["malicious", "suspicious", "riskware"]
Verdict = Literal["malicious", "suspicious", "clean"]


@dataclass(frozen=True, slots=True)
class IntentFilter:
    actions: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    data_schemes: tuple[str, ...] = ()
    priority: int | None = None


@dataclass(frozen=True, slots=True)
class Component:
    kind: Literal["activity", "service", "receiver", "provider"]
    name: str
    exported: bool | None = None
    permission: str | None = None
    intent_filters: tuple[IntentFilter, ...] = ()


@dataclass(frozen=True, slots=True)
class Manifest:
    package: str | None = None
    version_name: str | None = None
    version_code: int | None = None
    min_sdk: int | None = None
    target_sdk: int | None = None
    app_label: str | None = None
    permissions: tuple[str, ...] = ()
    components: tuple[Component, ...] = ()
    # added later (older stored features lack them: read as unknown / none)
    max_sdk: int | None = None
    declared_permissions: tuple[str, ...] = ()  # <permission android:name> the app defines


@dataclass(frozen=True, slots=True)
class Certificate:
    sha256: str
    sha1: str
    subject: str
    issuer: str
    serial: str
    not_before: str  # ISO 8601, UTC
    not_after: str
    schemes: tuple[str, ...] = ()  # which of "v1", "v2", "v3", "v3.1" carry this certificate
    # OpenSSL's one-line form, "/C=US/O=Example/CN=Example" (Koodous' rules match on it);
    # "" in features stored before it existed
    subject_dn: str = ""
    issuer_dn: str = ""


@dataclass(frozen=True, slots=True)
class DexFile:
    path: str  # entry name inside the archive, e.g. "classes.dex" or "assets/payload.dex"
    sha256: str
    size: int
    hidden: bool = False  # True when found outside the standard classesN.dex slots


@dataclass(frozen=True, slots=True)
class MethodRef:
    cls: str  # "Landroid/telephony/SmsManager;"
    name: str  # "sendTextMessage"
    descriptor: str  # "(Ljava/lang/String;...)V"


@dataclass(frozen=True, slots=True)
class Indicators:
    urls: tuple[str, ...] = ()
    domains: tuple[str, ...] = ()
    ips: tuple[str, ...] = ()
    short_codes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class TamperFlag:
    code: str  # stable identifier, e.g. "zip.bogus_compression", "zip.path_traversal"
    detail: str  # for people


@dataclass(frozen=True, slots=True)
class AppFeatures:
    engine_version: int
    file_type: Literal["apk", "xapk"]
    size: int
    md5: str
    sha1: str
    sha256: str
    manifest: Manifest = field(default_factory=Manifest)
    signing_schemes: tuple[str, ...] = ()
    certificates: tuple[Certificate, ...] = ()
    # v3 rotation lineage, oldest certificate first (SHA-256 fingerprints); empty if none
    lineage: tuple[str, ...] = ()
    dex: tuple[DexFile, ...] = ()
    strings: tuple[str, ...] = ()  # DEX string tables, merged and de-duplicated
    types: tuple[str, ...] = ()
    methods: tuple[MethodRef, ...] = ()
    indicators: Indicators = field(default_factory=Indicators)
    native_libs: tuple[str, ...] = ()
    tamper: tuple[TamperFlag, ...] = ()
    # the APKs inside an XAPK bundle, each analysed on its own
    parts: tuple[AppFeatures, ...] = ()
    # every URL-shaped DEX string, hosts unjudged (``indicators.urls`` keeps real hosts only);
    # added later: features stored before have none
    url_strings: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppFeatures:
        features: AppFeatures = _from_dict(cls, data)
        return features


@dataclass(frozen=True, slots=True)
class RuleRecord:
    """One signature revision as the engine sees it: what releases ship and rulesets compile."""

    id: int  # signature id
    revision: int
    name: str  # Andr.<Category>.<Family>-<id>-<revision>
    kind: str  # a key of engine.kinds.REGISTRY
    body: Any  # the kind's normalised body (str for yara, dict otherwise)
    severity: Severity
    noisy: bool = False  # reported, never scores
    min_engine: int = 1


@dataclass(frozen=True, slots=True)
class Match:
    signature_id: int
    revision: int
    name: str
    kind: str
    severity: Severity
    scoring: bool  # False for noisy signatures
    evidence: tuple[str, ...] = ()  # for people: what matched where


@functools.cache
def _field_hints(cls: Any) -> tuple[tuple[str, Any], ...]:
    """(field name, resolved type) per field: ``get_type_hints`` evaluates every annotation
    string, which cost more than the rest of ``from_dict`` (retro-hunts decode a summary per
    sample), so it runs once per class."""
    import typing

    hints = typing.get_type_hints(cls)
    return tuple((f.name, hints[f.name]) for f in dataclasses.fields(cls))


def _from_dict(cls: Any, data: Any) -> Any:
    """Rebuild nested frozen dataclasses from ``dataclasses.asdict`` output (lists → tuples)."""
    kwargs: dict[str, Any] = {}
    for name, hint in _field_hints(cls):
        if name not in data:
            continue
        kwargs[name] = _converter(hint)(data[name])
    return cls(**kwargs)


def _same(value: Any) -> Any:
    return value


@functools.cache
def _converter(hint: Any) -> Callable[[Any], Any]:
    """The function that turns a JSON value into ``hint`` (None stays None), built once per
    type: nested dataclasses from dicts, tuples from lists, the first type of an Optional."""
    import types
    import typing

    if dataclasses.is_dataclass(hint):
        return lambda v: _from_dict(hint, v) if isinstance(v, dict) else v
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin is tuple:
        inner = _converter(args[0] if args else Any)
        if inner is _same:
            return lambda v: None if v is None else tuple(v)
        return lambda v: None if v is None else tuple(inner(x) for x in v)
    if origin in (typing.Union, types.UnionType):
        for arg in args:
            if arg is not type(None):
                return _converter(arg)
    return _same


@dataclass(frozen=True, slots=True)
class AppContent:
    """The bytes yara rules look at, read once by ``engine.analyze.analyze_with_content``.

    ``path`` is the file on disk (yara scans it whole); ``manifest`` is the binary
    AndroidManifest.xml as stored; ``dex`` holds each DEX entry's bytes, decompressed under the
    engine's size limits. For an XAPK, the base APK's manifest and every part's DEX files.
    ``facts``, when known (a unit pack keeps them), are the ``android`` yara facts of the app
    (``engine.ruleset.android_globals``), so yara rules can run without the features.
    """

    path: str
    manifest: bytes = b""
    dex: tuple[tuple[str, bytes], ...] = ()
    facts: dict[str, Any] | None = None
