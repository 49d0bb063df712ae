"""Read an APK or XAPK into ``AppFeatures``: the one entry point for APK analysis.

Everything that cannot be analysed (empty file, not a ZIP, zip bomb, no manifest, unreadable
manifest) raises ``AnalysisError`` with a message for people; no other exception escapes for bad
input. Oddities that Android tolerates but analysers trip over are reported as ``TamperFlag``s.

Libraries: apkInspector decodes the binary manifest and flags manifest tricks; the ZIP directory,
DEX tables, signing block and one-string resource lookup are small bounded readers of our own
(see each module for why). androguard is not used: its ``APK`` class re-reads the ZIP, parses the
whole manifest into lxml and lacks the v3 lineage, and its DEX parser is 20-50x slower.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine import ENGINE_VERSION
from engine.apk.archive import Archive, Entry, Limits, open_archive
from engine.apk.manifest import parse_manifest
from engine.apk.resources import resolve_string
from engine.apk.signing import describe, read_signing
from engine.dex import DexError, is_dex, read_tables
from engine.errors import AnalysisError
from engine.features import AppContent, AppFeatures, DexFile, Indicators, MethodRef, TamperFlag
from engine.indicators import extract, url_strings

__all__ = ["DEFAULT_LIMITS", "Limits", "analyze", "analyze_with_content", "read_content"]

log = logging.getLogger(__name__)

DEFAULT_LIMITS = Limits()
_STANDARD_DEX = re.compile(r"^classes(\d*)\.dex$")
_NATIVE_LIB = re.compile(r"^lib/[^/]+/[^/]+\.so$")
_MAX_XAPK_PARTS = 64
_MAX_ARSC = 64 << 20
_HASH_CHUNK = 1 << 20


def analyze(path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> AppFeatures:
    """Analyse the APK or XAPK at ``path``; AnalysisError if it cannot be analysed."""
    return analyze_with_content(path, limits=limits)[0]


def analyze_with_content(
    path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS
) -> tuple[AppFeatures, AppContent]:
    """Like ``analyze``, also returning the manifest and DEX bytes for yara rules."""
    p = os.fspath(path)
    with _as_analysis_error(p, "analysed"):
        return _analyze_file(p, limits, nested=False)


def read_content(path: str | os.PathLike[str], *, limits: Limits = DEFAULT_LIMITS) -> AppContent:
    """Only the bytes yara rules scan (the binary manifest and every DEX, inflated), for a
    file whose features are already known: no hashing, DEX tables, signing block, manifest
    parsing or indicators. Same entries and limits as ``analyze_with_content`` (an XAPK gives
    its base part's manifest and every part's DEX); AnalysisError for what it would refuse."""
    p = os.fspath(path)
    with _as_analysis_error(p, "read"):
        return _read_content_file(p, limits, nested=False)


@contextmanager
def _as_analysis_error(path: str, done: str) -> Iterator[None]:
    """Whatever goes wrong with a hostile file becomes one readable AnalysisError: a parser
    bug must not take the worker down."""
    try:
        yield
    except AnalysisError:
        raise
    except OSError as exc:
        raise AnalysisError(f"cannot read the file: {exc.strerror or exc}") from exc
    except MemoryError as exc:
        raise AnalysisError("refused: analysing this file needs too much memory") from exc
    except Exception as exc:
        log.debug("unexpected error with %s", path, exc_info=True)
        raise AnalysisError(
            f"the file could not be {done} (unexpected {type(exc).__name__}: {exc})"
        ) from exc


def _read_content_file(path: str, limits: Limits, *, nested: bool) -> AppContent:
    size = os.path.getsize(path)
    if size == 0:
        raise AnalysisError("the file is empty (0 bytes)")
    if size > limits.max_file_size:
        raise AnalysisError(f"the file is {size} bytes, over the {limits.max_file_size}-byte limit")
    with open(path, "rb") as fh:
        arc = open_archive(fh, size, limits)
        if not arc.entries:
            raise AnalysisError("the ZIP archive is empty: there is no app in it")
        manifest_entry = arc.get("AndroidManifest.xml")
        if manifest_entry is None:
            if not nested and _looks_like_xapk(arc):
                return _read_xapk_content(path, arc, limits)
            raise AnalysisError("not an APK: the archive has no AndroidManifest.xml")
        manifest = arc.read(manifest_entry, limits.max_manifest_size)
        dex: list[tuple[str, bytes]] = []
        for entry in arc.entries:
            if entry.is_dir or entry.data_offset < 0:
                continue
            if _STANDARD_DEX.match(entry.name) is None and not is_dex(arc.peek(entry, 8)):
                continue
            dex.append((entry.name, arc.read(entry, limits.max_dex_size)))
    return AppContent(path=path, manifest=manifest, dex=tuple(dex))


def _read_xapk_content(path: str, arc: Archive, limits: Limits) -> AppContent:
    meta = _xapk_meta(arc)
    apk_entries = [e for e in arc.entries if e.name.endswith(".apk") and not e.is_dir]
    if len(apk_entries) > _MAX_XAPK_PARTS:
        raise AnalysisError(
            f"the XAPK holds {len(apk_entries)} APKs, over the {_MAX_XAPK_PARTS} limit"
        )
    base_name = _xapk_base_name(meta, apk_entries)
    parts: list[tuple[str, AppContent]] = []
    with tempfile.TemporaryDirectory(prefix="engine-xapk-") as tmp:
        for i, entry in enumerate(apk_entries):
            target = Path(tmp) / f"part{i}.apk"  # never a name from the archive on disk
            data = arc.read(entry, limits.max_nested_apk_size)
            target.write_bytes(data)
            del data
            try:
                parts.append((entry.name, _read_content_file(str(target), limits, nested=True)))
            except AnalysisError:
                continue
            finally:
                target.unlink(missing_ok=True)
    if not parts:
        raise AnalysisError("the XAPK holds no APK that could be analysed")
    base = next((c for name, c in parts if name == base_name), None)
    if base is None:
        base = next((c for _, c in parts if c.dex), parts[0][1])
    dex = tuple((f"{name}!{d}", b) for name, c in parts for d, b in c.dex)
    return AppContent(path=path, manifest=base.manifest, dex=dex)


@dataclass(slots=True)
class _Hashes:
    size: int
    md5: str
    sha1: str
    sha256: str


def _hash_file(path: str) -> _Hashes:
    md5 = hashlib.md5(usedforsecurity=False)
    sha1 = hashlib.sha1(usedforsecurity=False)
    sha256 = hashlib.sha256()
    size = 0
    with open(path, "rb") as fh:
        while chunk := fh.read(_HASH_CHUNK):
            size += len(chunk)
            md5.update(chunk)
            sha1.update(chunk)
            sha256.update(chunk)
    return _Hashes(size, md5.hexdigest(), sha1.hexdigest(), sha256.hexdigest())


def _analyze_file(path: str, limits: Limits, *, nested: bool) -> tuple[AppFeatures, AppContent]:
    size = os.path.getsize(path)
    if size == 0:
        raise AnalysisError("the file is empty (0 bytes)")
    if size > limits.max_file_size:
        raise AnalysisError(f"the file is {size} bytes, over the {limits.max_file_size}-byte limit")
    with open(path, "rb") as fh:
        # what is no app is refused from its ZIP directory, before hashing the whole file
        arc = open_archive(fh, size, limits)
        if not arc.entries:
            raise AnalysisError("the ZIP archive is empty: there is no app in it")
        if arc.get("AndroidManifest.xml") is None:
            if not nested and _looks_like_xapk(arc):
                return _analyze_xapk(path, arc, _hash_file(path), limits)
            raise AnalysisError("not an APK: the archive has no AndroidManifest.xml")
        return _analyze_apk(path, arc, _hash_file(path))


@dataclass(slots=True)
class _DexPart:
    strings: list[tuple[str, ...]] = field(default_factory=list)
    types: list[tuple[str, ...]] = field(default_factory=list)
    methods: list[tuple[tuple[str, str, str], ...]] = field(default_factory=list)
    defined: set[str] = field(default_factory=set)


def _analyze_apk(path: str, arc: Archive, hashes: _Hashes) -> tuple[AppFeatures, AppContent]:
    limits = arc.limits
    tamper: list[TamperFlag] = []
    manifest_entry = arc.get("AndroidManifest.xml")
    assert manifest_entry is not None
    manifest_bytes = arc.read(manifest_entry, limits.max_manifest_size)

    arsc_cache: list[bytes] = []

    def resolve(res_id: int) -> str | None:
        if not arsc_cache:
            entry = arc.get("resources.arsc")
            arsc_cache.append(arc.read(entry, _MAX_ARSC) if entry else b"")
        return resolve_string(arsc_cache[0], res_id)

    parsed = parse_manifest(manifest_bytes, resolve)
    manifest = parsed.manifest
    tamper.extend(TamperFlag(c, d) for c, d in parsed.tamper)

    dex_files: list[DexFile] = []
    dex_content: list[tuple[str, bytes]] = []
    part = _DexPart()
    for entry in arc.entries:
        if entry.is_dir or entry.data_offset < 0:
            continue
        standard = _STANDARD_DEX.match(entry.name) is not None
        if not standard and not is_dex(arc.peek(entry, 8)):
            continue
        _read_dex(arc, entry, standard, dex_files, dex_content, part, tamper)

    signing = read_signing(arc)
    tamper.extend(TamperFlag(c, d) for c, d in signing.problems)
    certificates = tuple(describe(der, tuple(s)) for der, s in signing.certs.items())
    lineage = tuple(hashlib.sha256(der).hexdigest() for der in signing.lineage)

    strings = tuple(dict.fromkeys(s for table in part.strings for s in table))
    types = tuple(dict.fromkeys(t for table in part.types for t in table))
    methods = tuple(
        MethodRef(c, n, d)
        for (c, n, d) in dict.fromkeys(m for table in part.methods for m in table)
        if c not in part.defined
    )
    indicators = extract(
        strings,
        methods=methods,
        permissions=manifest.permissions,
        not_domains=_java_packages(types, manifest.package),
    )
    native_libs = tuple(e.name for e in arc.entries if _NATIVE_LIB.match(e.name))

    features = AppFeatures(
        engine_version=ENGINE_VERSION,
        file_type="apk",
        size=hashes.size,
        md5=hashes.md5,
        sha1=hashes.sha1,
        sha256=hashes.sha256,
        manifest=manifest,
        signing_schemes=tuple(signing.schemes),
        certificates=certificates,
        lineage=lineage,
        dex=tuple(dex_files),
        strings=strings,
        types=types,
        methods=methods,
        indicators=indicators,
        native_libs=native_libs,
        tamper=_dedupe(arc.tamper + tamper),
        url_strings=url_strings(strings),
    )
    content = AppContent(path=path, manifest=manifest_bytes, dex=tuple(dex_content))
    return features, content


def _java_packages(types: tuple[str, ...], package: str | None) -> set[str]:
    """``Lcom/foo/Bar;`` gives "com.foo" and "com"; with the app's package, never domains."""
    out = {package} if package else set()
    for t in types:
        if t.startswith("L") and "/" in t:
            parts = t[1:].split("/")[:-1]
            for i in range(2, len(parts) + 1):
                out.add(".".join(parts[:i]))
    return out


def _read_dex(
    arc: Archive,
    entry: Entry,
    standard: bool,
    dex_files: list[DexFile],
    dex_content: list[tuple[str, bytes]],
    part: _DexPart,
    tamper: list[TamperFlag],
) -> None:
    data = arc.read(entry, arc.limits.max_dex_size)
    dex_files.append(
        DexFile(
            path=entry.name,
            sha256=hashlib.sha256(data).hexdigest(),
            size=len(data),
            hidden=not standard,
        )
    )
    dex_content.append((entry.name, data))
    try:
        tables = read_tables(data)
    except DexError as exc:
        tamper.append(TamperFlag("dex.malformed", f"{entry.name!r}: {exc.message}"))
        return
    part.strings.append(tables.strings)
    part.types.append(tables.types)
    part.methods.append(tables.methods)
    part.defined.update(tables.defined_classes)


def _dedupe(flags: list[TamperFlag]) -> tuple[TamperFlag, ...]:
    return tuple(dict.fromkeys(flags))


# --- XAPK ------------------------------------------------------------------------------------


def _looks_like_xapk(arc: Archive) -> bool:
    return arc.get("manifest.json") is not None and any(
        e.name.endswith(".apk") for e in arc.entries
    )


def _analyze_xapk(
    path: str, arc: Archive, hashes: _Hashes, limits: Limits
) -> tuple[AppFeatures, AppContent]:
    """Analyse each APK of an XAPK bundle on its own; the base APK's manifest leads."""
    meta = _xapk_meta(arc)
    apk_entries = [e for e in arc.entries if e.name.endswith(".apk") and not e.is_dir]
    if len(apk_entries) > _MAX_XAPK_PARTS:
        raise AnalysisError(
            f"the XAPK holds {len(apk_entries)} APKs, over the {_MAX_XAPK_PARTS} limit"
        )
    base_name = _xapk_base_name(meta, apk_entries)
    parts: list[tuple[str, AppFeatures, AppContent]] = []
    with tempfile.TemporaryDirectory(prefix="engine-xapk-") as tmp:
        for i, entry in enumerate(apk_entries):
            # never a name from the archive on disk: "part3.apk" cannot escape the temp dir
            target = Path(tmp) / f"part{i}.apk"
            data = arc.read(entry, limits.max_nested_apk_size)
            target.write_bytes(data)
            del data
            try:
                feats, content = _analyze_file(str(target), limits, nested=True)
            except AnalysisError as exc:
                arc.flag("xapk.bad_part", f"{entry.name!r}: {exc.message}")
                continue
            finally:
                target.unlink(missing_ok=True)
            parts.append((entry.name, feats, content))
    if not parts:
        raise AnalysisError("the XAPK holds no APK that could be analysed")
    base = next((p for p in parts if p[0] == base_name), None)
    if base is None:
        base = next((p for p in parts if p[1].dex), parts[0])
    _, base_f, base_c = base
    dex_content = tuple((f"{name}!{d}", b) for name, _, c in parts for d, b in c.dex)
    features = AppFeatures(
        engine_version=ENGINE_VERSION,
        file_type="xapk",
        size=hashes.size,
        md5=hashes.md5,
        sha1=hashes.sha1,
        sha256=hashes.sha256,
        manifest=base_f.manifest,
        signing_schemes=base_f.signing_schemes,
        certificates=base_f.certificates,
        lineage=base_f.lineage,
        # code and indicators of every part, so rules need not look inside ``parts``
        dex=tuple(
            DexFile(f"{name}!{d.path}", d.sha256, d.size, d.hidden)
            for name, f, _ in parts
            for d in f.dex
        ),
        strings=tuple(dict.fromkeys(s for _, f, _ in parts for s in f.strings)),
        types=tuple(dict.fromkeys(t for _, f, _ in parts for t in f.types)),
        methods=tuple(dict.fromkeys(m for _, f, _ in parts for m in f.methods)),
        indicators=_merge_indicators([f for _, f, _ in parts]),
        native_libs=tuple(f"{name}!{lib}" for name, f, _ in parts for lib in f.native_libs),
        tamper=_dedupe(arc.tamper),
        parts=tuple(f for _, f, _ in parts),
        url_strings=tuple(sorted({u for _, f, _ in parts for u in f.url_strings})),
    )
    return features, AppContent(path=path, manifest=base_c.manifest, dex=dex_content)


def _xapk_meta(arc: Archive) -> dict[str, object]:
    entry = arc.get("manifest.json")
    if entry is None:
        return {}
    try:
        meta = json.loads(arc.read(entry, 1 << 20))
    except (AnalysisError, ValueError):
        arc.flag("xapk.bad_manifest_json", "manifest.json is not readable JSON")
        return {}
    return meta if isinstance(meta, dict) else {}


def _xapk_base_name(meta: dict[str, object], entries: list[Entry]) -> str | None:
    splits = meta.get("split_apks")
    if isinstance(splits, list):
        for item in splits:
            if isinstance(item, dict) and item.get("id") == "base":
                name = item.get("file")
                if isinstance(name, str):
                    return name
    package = meta.get("package_name")
    for e in entries:
        if e.name in ("base.apk", f"{package}.apk"):
            return e.name
    return None


def _merge_indicators(parts: list[AppFeatures]) -> Indicators:
    def merged(attr: str) -> tuple[str, ...]:
        return tuple(sorted({v for p in parts for v in getattr(p.indicators, attr)}))

    return Indicators(
        urls=merged("urls"),
        domains=merged("domains"),
        ips=merged("ips"),
        short_codes=merged("short_codes"),
    )
