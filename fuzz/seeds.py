"""Seed corpora for the harnesses, built from the real APK corpus into a scratch folder.

The corpus (``../shared/corpus/apks``) is third-party test input: seeds are written under the
var dir (``$PORTAL_VAR_DIR/fuzz/<harness>/seeds``, else ``var/fuzz/<harness>/seeds``), never
into the repository. What each harness gets:

- zip, analyze: whole APKs no longer than the harness' ``max_len``, plus small archives made
  here (a deflated and a stored entry; for analyze, an XAPK of two corpus APKs);
- dex: every distinct DEX image in the corpus APKs that fits ``max_len``;
- signing_block: the APK Signing Block of every v2/v3 APK (what the harness wraps);
- units: unit packs ``engine.units.write_units`` makes from corpus APKs, with and without
  their yara facts;
- codec: full bundles, canonical states, deltas and delta payloads made by ``engine.codec``
  from the records in ``fuzz.fuzz_codec`` (the first byte of each seed is the harness mode).
"""

from __future__ import annotations

import hashlib
import io
import re
import shutil
import struct
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

from fuzz import NAMES, load

Seed = tuple[str, bytes]


def build(name: str, out: Path, corpus: Path) -> int:
    """Write the seeds of harness ``name`` into ``out`` (emptied first); the number written."""
    if not corpus.is_dir():
        raise FileNotFoundError(f"the APK corpus is missing: {corpus}")
    max_len = load(name).max_len
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    seen: set[str] = set()
    for label, data in _BUILDERS[name](corpus, max_len):
        digest = hashlib.sha1(data, usedforsecurity=False).hexdigest()
        if len(data) > max_len or digest in seen:
            continue
        seen.add(digest)
        (out / f"{_safe(label)}-{digest[:12]}").write_bytes(data)
    return len(seen)


def _safe(label: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", label)[:80]


def _apks(corpus: Path) -> list[Path]:
    return sorted(p for p in corpus.iterdir() if p.suffix in (".apk", ".xapk") and p.is_file())


def _small_apks(corpus: Path, max_len: int) -> Iterator[Seed]:
    for path in _apks(corpus):
        if path.stat().st_size <= max_len:
            yield path.name, path.read_bytes()


def _zip_of(files: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, method in files:
            zf.writestr(zipfile.ZipInfo(name), data, compress_type=method)
    return buf.getvalue()


def _zip_seeds(corpus: Path, max_len: int) -> Iterator[Seed]:
    yield from _small_apks(corpus, max_len)
    yield (
        "synthetic-two-entries",
        _zip_of(
            [
                ("classes.dex", b"dex\n035\x00" + bytes(120), zipfile.ZIP_DEFLATED),
                ("assets/a.bin", b"stored bytes", zipfile.ZIP_STORED),
            ]
        ),
    )


def _analyze_seeds(corpus: Path, max_len: int) -> Iterator[Seed]:
    yield from _zip_seeds(corpus, max_len)
    small = [p for p in _apks(corpus) if p.suffix == ".apk" and p.stat().st_size < 12_000]
    if len(small) >= 2:
        meta = b'{"package_name":"fuzz.app","split_apks":[{"file":"base.apk","id":"base"}]}'
        yield (
            "synthetic-xapk",
            _zip_of(
                [
                    ("manifest.json", meta, zipfile.ZIP_DEFLATED),
                    ("base.apk", small[0].read_bytes(), zipfile.ZIP_STORED),
                    ("config.split.apk", small[1].read_bytes(), zipfile.ZIP_STORED),
                ]
            ),
        )


def _dex_seeds(corpus: Path, max_len: int) -> Iterator[Seed]:
    from engine.analyze import read_content
    from engine.errors import AnalysisError

    for path in _apks(corpus):
        try:
            content = read_content(path)
        except AnalysisError:
            continue
        for name, data in content.dex:
            if len(data) <= max_len:
                yield f"{path.stem}-{name}", data


def _signing_block_seeds(corpus: Path, max_len: int) -> Iterator[Seed]:
    from engine.apk.archive import Limits, open_archive
    from engine.apk.signing import SIG_BLOCK_MAGIC
    from engine.errors import AnalysisError

    for path in _apks(corpus):
        with path.open("rb") as fh:
            try:
                arc = open_archive(fh, path.stat().st_size, Limits())
            except AnalysisError:
                continue
            if arc.cd_offset < 32:
                continue
            fh.seek(arc.cd_offset - 24)
            size, magic = struct.unpack("<Q16s", fh.read(24))
            start = arc.cd_offset - size - 8
            if magic != SIG_BLOCK_MAGIC or start < 0 or size + 8 > max_len:
                continue
            fh.seek(start)
            yield f"{path.stem}-signing-block", fh.read(size + 8)


def _units_seeds(corpus: Path, max_len: int) -> Iterator[Seed]:
    from dataclasses import replace

    from engine.analyze import analyze_with_content
    from engine.errors import AnalysisError
    from engine.features import AppContent
    from engine.ruleset import android_globals
    from engine.units import write_units
    from fuzz.fuzz_units import OWNER

    def pack(content: AppContent) -> bytes:
        buf = io.BytesIO()
        write_units(buf, OWNER, content)
        return buf.getvalue()

    for path in _apks(corpus):
        if path.stat().st_size > 4 * max_len:
            continue
        try:
            features, content = analyze_with_content(path)
        except AnalysisError:
            continue
        yield f"{path.stem}-pack", pack(content)
        yield f"{path.stem}-pack-facts", pack(replace(content, facts=android_globals(features)))
    yield "manifest-only", pack(AppContent(path="x", manifest=b"\x03\x00\x08\x00"))
    yield "facts-only", pack(AppContent(path="x", facts={"package": "a", "n": [1, 2.5, None]}))
    yield "empty", pack(AppContent(path="x"))


def _codec_seeds(corpus: Path, max_len: int) -> Iterator[Seed]:
    import zstandard

    from engine import codec
    from fuzz.fuzz_codec import base_records, base_state, generic_records, hash_record

    base = base_records()
    targets = {
        "add": [*base, hash_record(100), hash_record(101, min_engine=2)],
        "remove": base[5:],
        "change": [hash_record(1, revision=2), *base[1:]],
        "generic-only": [r for r in base if r.id > 500_000],
    }
    state = base_state()
    yield "full-base", b"\x00" + codec.build_full(state.release, base)
    yield "full-empty", b"\x00" + codec.build_full(1, [])
    yield "state-base", b"\x01" + codec.encode_state(base)
    yield "state-generic", b"\x01" + codec.encode_state(generic_records())
    yield "state-empty", b"\x01" + codec.encode_state([])
    for label, target in targets.items():
        upserts, removed = codec.diff_states({r.id: r for r in base}, {r.id: r for r in target})
        delta = codec.build_delta(
            base_release=state.release,
            base_sha256=state.sha256,
            release=state.release + 1,
            state_sha256=codec.state_sha256(target),
            upserts=upserts,
            removed=removed,
        )
        yield f"delta-{label}", b"\x02" + delta
        payload = zstandard.ZstdDecompressor().decompress(delta[codec._DELTA_HEADER.size + 4 :])
        yield f"delta-payload-{label}", b"\x03" + payload
        yield f"full-{label}", b"\x00" + codec.build_full(2, target)


_BUILDERS: dict[str, Callable[[Path, int], Iterator[Seed]]] = {
    "zip": _zip_seeds,
    "dex": _dex_seeds,
    "signing_block": _signing_block_seeds,
    "units": _units_seeds,
    "codec": _codec_seeds,
    "analyze": _analyze_seeds,
}
assert set(_BUILDERS) == set(NAMES)
