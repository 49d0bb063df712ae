"""Plain dataclasses exchanged between the engine, the portal and the client.

They are frozen and made of tuples, strings and ints so that they hash, compare and
serialise (``to_dict``/``from_dict``) without surprises. Field names are part of the stored
format (scan results keep ``AppFeatures.to_dict()`` as JSON), so rename with care.
"""

from __future__ import annotations

import dataclasses
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

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AppFeatures:
        return _from_dict(cls, data)


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


def _from_dict(cls: Any, data: Any) -> Any:
    """Rebuild nested frozen dataclasses from ``dataclasses.asdict`` output (lists → tuples)."""
    import typing

    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            continue
        kwargs[f.name] = _convert(hints[f.name], data[f.name])
    return cls(**kwargs)


def _convert(hint: Any, value: Any) -> Any:
    import typing

    if value is None:
        return None
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint) and isinstance(value, dict):
        return _from_dict(hint, value)
    if origin is tuple:
        inner = args[0] if args else Any
        return tuple(_convert(inner, v) for v in value)
    if origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in args:
            if arg is type(None):
                continue
            return _convert(arg, value)
    return value


@dataclass(frozen=True, slots=True)
class AppContent:
    """The bytes yara rules look at, read once by ``engine.analyze.analyze_with_content``.

    ``path`` is the file on disk (yara scans it whole); ``manifest`` is the binary
    AndroidManifest.xml as stored; ``dex`` holds each DEX entry's bytes, decompressed under the
    engine's size limits. For an XAPK, the base APK's manifest and every part's DEX files.
    """

    path: str
    manifest: bytes = b""
    dex: tuple[tuple[str, bytes], ...] = ()
