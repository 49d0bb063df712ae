"""engine.analyze over the real corpus: what researchers and rules rely on."""

from __future__ import annotations

import csv
import json
import struct
import subprocess
import sys
import time
import tracemalloc
import zlib
from pathlib import Path

import pytest

from engine.analyze import analyze, analyze_with_content
from engine.errors import AnalysisError
from engine.features import AppFeatures

REPO = Path(__file__).resolve().parents[2]
CORPUS = REPO.parent / "shared" / "corpus"


def _apk_rows() -> list[dict[str, str]]:
    path = CORPUS / "MANIFEST.tsv"
    if not path.exists():
        return []
    with path.open(newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [r for r in rows if r["relative_path"].startswith("apks/")]


def _facts(row: dict[str, str]) -> dict[str, str]:
    facts = {}
    for part in row["notes"].split("|")[1].split(";"):
        key, _, value = part.strip().partition("=")
        facts[key] = value.strip()
    return facts


SIGNED_ROWS = [
    r
    for r in _apk_rows()
    if "signer_cert_sha256" in _facts(r) and not _facts(r)["package"].startswith("(")
]


def tamper_codes(features: AppFeatures) -> set[str]:
    return {t.code for t in features.tamper}


def test_corpus_manifest_lists_the_apks(corpus: Path) -> None:
    assert len(_apk_rows()) == 39
    assert len(SIGNED_ROWS) >= 30


@pytest.mark.parametrize("row", SIGNED_ROWS, ids=lambda r: Path(r["relative_path"]).name)
def test_package_and_signer_match_the_corpus_notes(corpus: Path, row: dict[str, str]) -> None:
    facts = _facts(row)
    features = analyze(corpus / row["relative_path"])
    assert features.manifest.package == facts["package"].split()[0]
    expected = set(facts["signer_cert_sha256"].split(","))
    assert expected <= {c.sha256 for c in features.certificates}
    if facts.get("dex", "").isdigit():
        assert len([d for d in features.dex if not d.hidden]) == int(facts["dex"])


@pytest.mark.parametrize("row", _apk_rows(), ids=lambda r: Path(r["relative_path"]).name)
def test_every_corpus_file_gives_features_or_analysis_error_quickly(
    corpus: Path, row: dict[str, str]
) -> None:
    path = corpus / row["relative_path"]
    start = time.perf_counter()
    try:
        features = analyze(path)
    except AnalysisError as exc:
        message = exc.message  # a sentence for people, not a traceback
        assert message
        assert "Traceback" not in message
    else:
        assert features.sha256 == row["sha256"]
        assert features.size == int(row["bytes"])
    assert time.perf_counter() - start < 5.0


def test_multidex_counts(corpus: Path) -> None:
    counts = {
        name: len(analyze(corpus / "apks" / name).dex)
        for name in ("app-prod-debug.apk", "issue3533.apk", "issue2701.apk")
    }
    assert counts == {"app-prod-debug.apk": 2, "issue3533.apk": 3, "issue2701.apk": 4}


def test_dex_hidden_outside_classes_slots_is_found_by_magic(corpus: Path) -> None:
    features = analyze(corpus / "apks" / "dynamic_dex.apk")
    hidden = {d.path for d in features.dex if d.hidden}
    assert hidden == {"assets/dynamic.dex", "assets.dex", "dynamic.dex"}
    assert [d.path for d in features.dex if not d.hidden] == ["classes.dex"]


def test_v3_lineage_lists_three_certificates_oldest_first(corpus: Path) -> None:
    features = analyze(corpus / "apks" / "v1v2v3-with-rsa-2048-lineage-3-signers.apk")
    assert len(features.lineage) == 3
    # the v1/v2 signer is the oldest key, the v3 signer the newest
    by_scheme = {s: c.sha256 for c in features.certificates for s in c.schemes}
    assert features.lineage[0] == by_scheme["v1"] == by_scheme["v2"]
    assert features.lineage[-1] == by_scheme["v3"]
    assert features.signing_schemes == ("v1", "v2", "v3")


def test_v31_reports_both_signers(corpus: Path) -> None:
    features = analyze(corpus / "apks" / "v31-ec-p256-2-tgt-33-1-tgt-28-targetSdk-30.apk")
    schemes = {c.sha256: c.schemes for c in features.certificates}
    assert len(schemes) == 2
    v3 = "6a8b96e278e58f62cfe3584022cec1d0527fcb85a9e5d2e1694eb0405be5b599"
    assert schemes[v3] == ("v1", "v2", "v3")
    (rotated,) = set(schemes) - {v3}
    assert schemes[rotated] == ("v3.1",)
    assert features.lineage == (v3, rotated)
    assert "v3.1" in features.signing_schemes


def test_certificate_details_are_readable(corpus: Path) -> None:
    features = analyze(corpus / "apks" / "golden-aligned-v1v2v3-out.apk")
    (cert,) = features.certificates
    assert cert.subject
    assert cert.issuer
    assert cert.serial
    assert cert.not_before.endswith("Z")
    assert cert.not_before < cert.not_after
    assert len(cert.sha1) == 40


@pytest.mark.parametrize(
    ("name", "code"),
    [
        ("issue1498.apk", "zip.path_traversal"),
        ("v1-only-with-nul-in-entry-name.apk", "zip.nul_in_name"),
        ("v2-only-garbage-between-cd-and-eocd.apk", "zip.data_after_central_directory"),
        ("weird-compression-method.apk", "zip.bogus_compression"),
        ("minimal_def_mod.apk", "zip.bogus_compression"),
        ("minimal_def_mod.apk", "manifest.chunk_tricks"),
        ("minimal_zero_sized_end_ns.apk", "manifest.chunk_tricks"),
        ("minimal_SIZE_ExtraField.apk", "zip.corrupt_extra_field"),
        ("v2-stripped.apk", "signature.v2_stripped"),
    ],
)
def test_tamper_flags(corpus: Path, name: str, code: str) -> None:
    features = analyze(corpus / "apks" / name)
    assert code in tamper_codes(features)
    # tampering never costs us the package name
    assert features.manifest.package


def test_clean_apps_have_no_tamper_flags(corpus: Path) -> None:
    for name in ("minimal_orig.apk", "golden-aligned-v1v2v3-out.apk", "a2dp.Vol_137.apk"):
        assert analyze(corpus / "apks" / name).tamper == ()


def test_manifest_details(corpus: Path) -> None:
    features = analyze(corpus / "apks" / "krvarma-android-samples-smsdemo.apk")
    m = features.manifest
    assert m.app_label == "SMS Demo"  # resolved through resources.arsc
    assert "android.permission.SEND_SMS" in m.permissions
    receivers = [c for c in m.components if c.kind == "receiver"]
    assert receivers
    actions = {a for r in receivers for f in r.intent_filters for a in f.actions}
    assert "android.intent.action.DATA_SMS_RECEIVED" in actions


def test_min_sdk_codename_is_mapped(corpus: Path) -> None:
    features = analyze(corpus / "apks" / "library.apk")
    assert features.manifest.package == "com.google.android.test.shared_library"
    assert features.manifest.min_sdk == 35  # "VanillaIceCream"


def test_double_package_trick_reads_what_android_reads(corpus: Path) -> None:
    features = analyze(corpus / "apks" / "HelloMaldr0id-double-package.apk")
    assert features.manifest.package == "com.maldr0id.example.helloworld"


def test_xapk_parts_and_base_manifest(corpus: Path) -> None:
    features, content = analyze_with_content(corpus / "apks" / "android_xapk.xapk")
    assert features.file_type == "xapk"
    assert len(features.parts) == 28
    assert features.manifest.package == "com.tfg.samples.dynamicfeatures.ondemand"
    assert features.certificates
    assert features.dex
    assert content.manifest[:2] == b"\x03\x00"  # binary XML of the base APK
    assert {name for name, _ in content.dex} == {d.path for d in features.dex}


def test_content_holds_the_bytes_yara_scans(corpus: Path) -> None:
    features, content = analyze_with_content(corpus / "apks" / "dynamic_dex.apk")
    assert [name for name, _ in content.dex] == [d.path for d in features.dex]
    assert all(data.startswith(b"dex\n") for _, data in content.dex)
    assert content.manifest


@pytest.mark.parametrize("name", ["golden-aligned-v1v2v3-out.apk", "android_xapk.xapk"])
def test_features_round_trip_through_json(corpus: Path, name: str) -> None:
    features = analyze(corpus / "apks" / name)
    again = AppFeatures.from_dict(json.loads(json.dumps(features.to_dict())))
    assert again == features


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty-unsigned.apk", "empty"),
        ("CertChain.apk", "no AndroidManifest.xml"),
    ],
)
def test_corpus_files_that_are_not_apps_are_refused(corpus: Path, name: str, message: str) -> None:
    with pytest.raises(AnalysisError, match=message):
        analyze(corpus / "apks" / name)


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "empty.apk"
    path.write_bytes(b"")
    with pytest.raises(AnalysisError, match="empty"):
        analyze(path)


def test_text_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "notes.apk"
    path.write_text("these are not the droids you are looking for\n" * 20)
    with pytest.raises(AnalysisError, match="not a ZIP"):
        analyze(path)


def test_missing_file_is_an_analysis_error(tmp_path: Path) -> None:
    with pytest.raises(AnalysisError, match="cannot read"):
        analyze(tmp_path / "nope.apk")


# --- zip bombs -------------------------------------------------------------------------------


def _zeros_deflate(total: int) -> tuple[bytes, int]:
    """Raw deflate of ``total`` zero bytes, built from one repeated fully-flushed block."""
    chunk = 1 << 20
    co = zlib.compressobj(9, zlib.DEFLATED, -15)
    block = co.compress(b"\0" * chunk) + co.flush(zlib.Z_FULL_FLUSH)
    assert co.compress(b"\0" * chunk) + co.flush(zlib.Z_FULL_FLUSH) == block
    count = total // chunk
    return block * count + co.flush(), count * chunk


def _write_zip(path: Path, entries: list[tuple[str, bytes, int, int, int]]) -> None:
    """entries: (name, data as stored, method, declared size, crc); sizes over 4 GiB use ZIP64."""
    out = bytearray()
    central = bytearray()
    for name, data, method, size, crc in entries:
        raw = name.encode()
        offset = len(out)
        zip64 = size >= 0xFFFFFFFF
        extra = struct.pack("<HHQQ", 1, 16, size, len(data)) if zip64 else b""
        usize, csize = (0xFFFFFFFF, 0xFFFFFFFF) if zip64 else (size, len(data))
        out += struct.pack(
            "<4sHHHHHIIIHH", b"PK\x03\x04", 45, 0, method, 0, 0, crc, csize, usize, len(raw),
            len(extra),
        ) + raw + extra + data  # fmt: skip
        central += struct.pack(
            "<4sHHHHHHIIIHHHHHII", b"PK\x01\x02", 45, 45, 0, method, 0, 0, crc, csize, usize,
            len(raw), len(extra), 0, 0, 0, 0, offset,
        ) + raw + extra  # fmt: skip
    cd_offset = len(out)
    out += central
    out += struct.pack(
        "<4sHHHHIIH", b"PK\x05\x06", 0, 0, len(entries), len(entries), len(central), cd_offset, 0
    )
    path.write_bytes(bytes(out))


def _manifest_bytes(corpus: Path) -> bytes:
    _, content = analyze_with_content(corpus / "apks" / "golden-aligned-v1v2v3-out.apk")
    return content.manifest


def test_zip_bomb_declaring_its_size_is_refused_fast(corpus: Path, tmp_path: Path) -> None:
    # given an APK whose asset inflates to 10 GiB of zeros
    stream, size = _zeros_deflate(10 << 30)
    manifest = _manifest_bytes(corpus)
    path = tmp_path / "bomb.apk"
    _write_zip(
        path,
        [
            ("AndroidManifest.xml", manifest, 0, len(manifest), zlib.crc32(manifest)),
            ("assets/zeros.bin", stream, 8, size, 0),
        ],
    )
    # when it is analysed, then it is refused at once, without inflating anything
    tracemalloc.start()
    start = time.perf_counter()
    try:
        with pytest.raises(AnalysisError, match="zip bomb"):
            analyze(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - start < 2.0
    assert peak < 100 << 20


def test_zip_bomb_lying_about_its_size_stays_bounded(corpus: Path, tmp_path: Path) -> None:
    # given a classes.dex that declares 32 MiB but inflates to 10 GiB
    stream, _ = _zeros_deflate(10 << 30)
    manifest = _manifest_bytes(corpus)
    path = tmp_path / "liar.apk"
    _write_zip(
        path,
        [
            ("AndroidManifest.xml", manifest, 0, len(manifest), zlib.crc32(manifest)),
            ("classes.dex", stream, 8, 32 << 20, 0),
        ],
    )
    # when it is analysed
    tracemalloc.start()
    start = time.perf_counter()
    try:
        features = analyze(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # then no more than the declared size is inflated, and the lie is reported
    assert time.perf_counter() - start < 5.0
    assert peak < 100 << 20
    assert {"zip.size_mismatch", "dex.malformed"} <= tamper_codes(features)


def test_nested_xapk_part_names_never_reach_the_disk(corpus: Path, tmp_path: Path) -> None:
    # given an XAPK whose APK entry name tries to escape the extraction folder
    apk = (corpus / "apks" / "golden-aligned-v1v2v3-out.apk").read_bytes()
    meta = b'{"package_name": "android.appsecurity.cts.tinyapp"}'
    path = tmp_path / "evil.xapk"
    _write_zip(
        path,
        [
            ("manifest.json", meta, 0, len(meta), zlib.crc32(meta)),
            ("../../escape.apk", apk, 0, len(apk), zlib.crc32(apk)),
        ],
    )
    features = analyze(path)
    assert features.file_type == "xapk"
    assert features.manifest.package == "android.appsecurity.cts.tinyapp"
    assert "zip.path_traversal" in tamper_codes(features)
    assert not (tmp_path.parent / "escape.apk").exists()


def test_engine_analyze_imports_without_django() -> None:
    code = (
        "import sys, engine.analyze; print(any(m.split('.')[0] == 'django' for m in sys.modules))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"


def test_read_content_gives_the_bytes_analyze_gives_for_every_corpus_file(corpus: Path) -> None:
    # the cheap read retro-hunts use when a sample's features are stored already
    from engine.analyze import read_content

    files = sorted((corpus / "apks").iterdir())
    read = 0
    for path in files:
        try:
            _, expected = analyze_with_content(path)
        except AnalysisError:
            with pytest.raises(AnalysisError):
                read_content(path)
            continue
        content = read_content(path)
        assert content == expected, path.name
        read += 1
    assert read >= len(files) - 3
    xapk = read_content(corpus / "apks" / "android_xapk.xapk")
    assert any("!classes.dex" in name for name, _ in xapk.dex)
