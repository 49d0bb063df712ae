"""Signing certificates of every scheme (v1 JAR, v2, v3, v3.1) and the v3 rotation lineage.

androguard 4.1.4 reads v2/v3/v3.1 signer certificates but not the proof-of-rotation lineage, and
its ``APK`` class re-reads the whole ZIP; the APK Signing Block is a simple nest of
length-prefixed records, so it is parsed here with every length checked against its parent.
Formats: https://source.android.com/docs/security/features/apksigning/v2 (and v3, v3-1);
lineage: apksig ``SigningCertificateLineage.readSigningCertificateLineage``.

Nothing is cryptographically verified: the certificates are those the APK claims to be signed
with. Android refuses to install an APK whose signatures do not verify, so for detection the
claim is what matters; ``v2-only-...-sig-does-not-verify.apk`` still reports its certificate.
"""

from __future__ import annotations

import hashlib
import logging
import re
import struct
import warnings
from dataclasses import dataclass, field

from asn1crypto import cms
from cryptography import x509

from engine.apk.archive import Archive
from engine.errors import AnalysisError
from engine.features import Certificate

log = logging.getLogger(__name__)

SIG_BLOCK_MAGIC = b"APK Sig Block 42"
V2_ID = 0x7109871A
V3_ID = 0xF05368C0
V31_ID = 0x1B93AD61
PROOF_OF_ROTATION_ID = 0x3BA06F8C
_MAX_SIG_BLOCK = 16 << 20
_MAX_V1_FILE = 1 << 20
_V1_SIG = re.compile(r"^META-INF/[^/]+\.(RSA|DSA|EC)$", re.IGNORECASE)
_SF_SIGNED = re.compile(rb"^X-Android-APK-Signed:\s*([0-9 ,]+)", re.MULTILINE | re.IGNORECASE)


class _Malformed(Exception):
    pass


class _Reader:
    """Little-endian cursor over one length-prefixed record; every read is bounds-checked."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0

    def remaining(self) -> int:
        return len(self.data) - self.pos

    def u32(self) -> int:
        if self.pos + 4 > len(self.data):
            raise _Malformed("truncated uint32")
        v: int = struct.unpack_from("<I", self.data, self.pos)[0]
        self.pos += 4
        return v

    def lp(self) -> bytes:
        n = self.u32()
        if n > self.remaining():
            raise _Malformed(f"length {n} exceeds its record ({self.remaining()} left)")
        v = self.data[self.pos : self.pos + n]
        self.pos += n
        return v

    def sequence(self) -> list[bytes]:
        seq = _Reader(self.lp())
        out = []
        while seq.remaining():
            out.append(seq.lp())
        return out


@dataclass(slots=True)
class SigningInfo:
    schemes: list[str] = field(default_factory=list)  # in "v1", "v2", "v3", "v3.1" order
    # DER certificate -> schemes that carry it, in discovery order
    certs: dict[bytes, list[str]] = field(default_factory=dict)
    lineage: list[bytes] = field(default_factory=list)  # DER, oldest first
    problems: list[tuple[str, str]] = field(default_factory=list)  # (tamper code, detail)

    def add(self, der: bytes, scheme: str) -> None:
        schemes = self.certs.setdefault(der, [])
        if scheme not in schemes:
            schemes.append(scheme)
        if scheme not in self.schemes:
            self.schemes.append(scheme)


def read_signing(arc: Archive) -> SigningInfo:
    info = SigningInfo()
    declared = _read_v1(arc, info)
    blocks = _signing_block(arc, info)
    for scheme, block_id in (("v2", V2_ID), ("v3", V3_ID), ("v3.1", V31_ID)):
        value = blocks.get(block_id)
        if value is None:
            continue
        try:
            _read_signers(value, scheme, info)
        except _Malformed as exc:
            info.problems.append(("signature.malformed_block", f"{scheme} block: {exc}"))
    if "2" in declared and V2_ID not in blocks:
        info.problems.append(
            ("signature.v2_stripped", ".SF declares X-Android-APK-Signed: 2 but no v2 block")
        )
    if "3" in declared and V3_ID not in blocks:
        info.problems.append(
            ("signature.v3_stripped", ".SF declares X-Android-APK-Signed: 3 but no v3 block")
        )
    order = {"v1": 0, "v2": 1, "v3": 2, "v3.1": 3}
    info.schemes.sort(key=order.__getitem__)
    return info


def _signing_block(arc: Archive, info: SigningInfo) -> dict[int, bytes]:
    """ID → value of the APK Signing Block just before the central directory (first of each ID)."""
    if arc.cd_offset < 32:
        return {}
    arc.fh.seek(arc.cd_offset - 24)
    footer = arc.fh.read(24)
    size, magic = struct.unpack("<Q16s", footer)
    if magic != SIG_BLOCK_MAGIC:
        return {}
    start = arc.cd_offset - size - 8
    if size < 24 or size > _MAX_SIG_BLOCK or start < 0:
        info.problems.append(("signature.malformed_block", f"signing block size {size} is invalid"))
        return {}
    arc.fh.seek(start)
    block = arc.fh.read(size + 8)
    if struct.unpack_from("<Q", block, 0)[0] != size:
        info.problems.append(("signature.malformed_block", "signing block sizes disagree"))
        return {}
    out: dict[int, bytes] = {}
    pos, end = 8, len(block) - 24
    while pos + 12 <= end:
        length, block_id = struct.unpack_from("<QI", block, pos)
        if length < 4 or pos + 8 + length > end:
            info.problems.append(("signature.malformed_block", f"pair at {pos} overruns the block"))
            break
        if block_id in out and block_id in (V2_ID, V3_ID, V31_ID):
            info.problems.append(
                ("signature.duplicate_block", f"signing block ID 0x{block_id:08x} repeated")
            )
        out.setdefault(block_id, block[pos + 12 : pos + 8 + length])
        pos += 8 + length
    return out


def _read_signers(value: bytes, scheme: str, info: SigningInfo) -> None:
    signers = _Reader(value).sequence()
    for raw_signer in signers:
        signer = _Reader(raw_signer)
        signed = _Reader(signer.lp())
        signed.sequence()  # digests
        certs = signed.sequence()
        if scheme != "v2":
            signed.u32()  # minSdk
            signed.u32()  # maxSdk
        attrs = signed.sequence() if signed.remaining() else []
        if certs:
            # the first certificate is the signer's; the rest are its chain
            info.add(bytes(certs[0]), scheme)
        for attr in attrs:
            a = _Reader(attr)
            if a.u32() == PROOF_OF_ROTATION_ID and scheme in ("v3", "v3.1"):
                lineage = _read_lineage(attr[4:])
                # the v3.1 signer's lineage is the newest view of the rotation
                if lineage and (scheme == "v3.1" or not info.lineage):
                    info.lineage = lineage


def _read_lineage(value: bytes) -> list[bytes]:
    r = _Reader(value)
    r.u32()  # lineage format version (1)
    out = []
    while r.remaining():
        node = _Reader(r.lp())
        signed = _Reader(node.lp())
        out.append(bytes(signed.lp()))
    return out


def _read_v1(arc: Archive, info: SigningInfo) -> set[str]:
    """Add the JAR signers' certificates; return the scheme IDs the .SF files declare."""
    declared: set[str] = set()
    for entry in arc.entries:
        if not _V1_SIG.match(entry.name):
            continue
        base = entry.name.rsplit(".", 1)[0]
        sf = arc.get(base + ".SF") or arc.get(base + ".sf")
        if sf is None:
            # Android ignores a signature block without its .SF (see partialsignature.apk)
            continue
        try:
            sf_data = arc.read(sf, _MAX_V1_FILE)
            pkcs7 = arc.read(entry, _MAX_V1_FILE)
        except AnalysisError as exc:
            info.problems.append(("signature.malformed_v1", str(exc)))
            continue
        head = sf_data.split(b"\r\n\r\n", 1)[0].split(b"\n\n", 1)[0]
        for m in _SF_SIGNED.finditer(head):
            declared.update(x.strip() for x in m.group(1).decode("ascii").split(",") if x.strip())
        try:
            for der in _pkcs7_signer_certs(pkcs7):
                info.add(der, "v1")
        except Exception as exc:  # asn1crypto parses lazily and raises many types
            log.debug("unreadable v1 signature %s", entry.name, exc_info=True)
            info.problems.append(("signature.malformed_v1", f"{entry.name!r}: {exc}"))
    return declared


def _pkcs7_signer_certs(data: bytes) -> list[bytes]:
    content = cms.ContentInfo.load(data)["content"]
    certs = [c for c in content["certificates"] if c.name == "certificate"]
    out: list[bytes] = []
    for signer_info in content["signer_infos"]:
        sid = signer_info["sid"]
        for cert in certs:
            chosen = cert.chosen
            if sid.name == "issuer_and_serial_number":
                ref = sid.chosen
                if chosen.serial_number == ref["serial_number"].native and (
                    chosen.issuer == ref["issuer"]
                ):
                    out.append(chosen.dump())
                    break
            elif chosen.key_identifier == sid.chosen.native:
                out.append(chosen.dump())
                break
    return out


def describe(der: bytes, schemes: tuple[str, ...]) -> Certificate:
    """A ``Certificate`` for a DER blob; fingerprints even when the X.509 body is unreadable."""
    sha256 = hashlib.sha256(der).hexdigest()
    sha1 = hashlib.sha1(der, usedforsecurity=False).hexdigest()
    try:
        with warnings.catch_warnings():
            # cryptography warns on malformed name attributes Android accepts
            warnings.simplefilter("ignore")
            return _describe(der, sha256, sha1, schemes)
    except Exception:  # cryptography rejects some certificates Android accepts
        log.debug("unparseable certificate %s", sha256, exc_info=True)
        return Certificate(sha256, sha1, "", "", "", "", "", schemes)


def _describe(der: bytes, sha256: str, sha1: str, schemes: tuple[str, ...]) -> Certificate:
    cert = x509.load_der_x509_certificate(der)
    return Certificate(
        sha256=sha256,
        sha1=sha1,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        serial=format(cert.serial_number, "x"),  # hex, as keytool and apksigner print it
        not_before=cert.not_valid_before_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        not_after=cert.not_valid_after_utc.strftime("%Y-%m-%dT%H:%M:%SZ"),
        schemes=schemes,
        subject_dn=_oneline(cert.subject),
        issuer_dn=_oneline(cert.issuer),
    )


# OpenSSL's short names, for the attributes rfc4514_string() leaves as dotted numbers
_SHORT_NAMES = {
    "1.2.840.113549.1.9.1": "emailAddress",
    "2.5.4.5": "serialNumber",
    "2.5.4.4": "SN",
    "2.5.4.42": "GN",
    "2.5.4.12": "title",
    "2.5.4.9": "street",
    "2.5.4.46": "dnQualifier",
    "2.5.4.65": "pseudonym",
}


def _oneline(name: x509.Name) -> str:
    """``/C=US/O=Example/CN=Example``: OpenSSL's one-line form, attributes in certificate
    order (what Koodous' ``certificate.issuer`` and ``subject`` match on)."""
    parts = []
    for rdn in name.rdns:
        for attr in rdn:
            oid = attr.oid.dotted_string
            key = _SHORT_NAMES.get(oid) or attr.rfc4514_attribute_name
            value = attr.value if isinstance(attr.value, str) else attr.value.hex()
            parts.append(f"/{key}={value}")
    return "".join(parts)
