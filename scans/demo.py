"""Demo clean corpus: a few small apps the seed builds itself, stored as ``clean`` samples.

The clean-corpus gate never passes on nothing (``GATE_MIN_CLEAN_APPS``), so ``make run``
needs clean apps before the demo signatures are gated: ``seed_demo`` runs this seed first.
The apps are made here, byte for byte the same on every run (fixed ZIP timestamps, so the
same SHA-256 and the seed stays idempotent): a binary AndroidManifest.xml (package, label,
version, SDK levels, permissions, one activity) written by ``manifest_xml`` and a text
resource. They are unsigned, carry no DEX and match none of the demo signatures; nothing is
copied from any corpus.
"""

from __future__ import annotations

import io
import struct
import tempfile
import zipfile
from pathlib import Path

from portal.models import User
from scans.models import Label, Sample
from scans.services import sample_ingest

ANDROID_NS = "http://schemas.android.com/apk/res/android"
# android.R.attr ids of the attributes written (frameworks/base/core/res/res/values/public.xml)
_ATTR_IDS = {
    "label": 0x01010001,
    "name": 0x01010003,
    "minSdkVersion": 0x0101020C,
    "versionCode": 0x0101021B,
    "versionName": 0x0101021C,
    "targetSdkVersion": 0x01010270,
}
_STRING, _INT = 0x03, 0x10

# (package, label, permissions): ordinary apps a phone might hold
CLEAN_APPS: list[tuple[str, str, tuple[str, ...]]] = [
    ("org.example.demo.notes", "Pocket Notes", ()),
    ("org.example.demo.torch", "Torch", ("android.permission.CAMERA",)),
    ("org.example.demo.weather", "Weather Now", ("android.permission.INTERNET",)),
    (
        "org.example.demo.steps",
        "Step Counter",
        ("android.permission.ACTIVITY_RECOGNITION", "android.permission.INTERNET"),
    ),
]


def manifest_xml(package: str, label: str, permissions: tuple[str, ...]) -> bytes:
    """A binary AndroidManifest.xml (Android's AXML: string pool, resource map, nodes)."""
    strings = list(_ATTR_IDS)  # attribute names first: the resource map covers them

    def index(text: str) -> int:
        if text not in strings:
            strings.append(text)
        return strings.index(text)

    def chunk(kind: int, header: int, payload: bytes) -> bytes:
        return struct.pack("<HHI", kind, header, 8 + len(payload)) + payload

    nodes: list[bytes] = []

    def node(kind: int, extra: bytes) -> None:
        nodes.append(chunk(kind, 16, struct.pack("<Ii", len(nodes) + 1, -1) + extra))

    ns, prefix = index(ANDROID_NS), index("android")
    Attr = tuple[int, str, int, str | int]

    def start(tag: str, attrs: list[Attr]) -> None:
        raw = b""
        for attr_ns, name, kind, value in attrs:
            if kind == _STRING:
                at = index(str(value))
                raw += struct.pack("<iiiHBBI", attr_ns, index(name), at, 8, 0, _STRING, at)
            else:
                raw += struct.pack("<iiiHBBI", attr_ns, index(name), -1, 8, 0, _INT, int(value))
        head = struct.pack("<iiHHHHHH", -1, index(tag), 20, 20, len(attrs), 0, 0, 0)
        node(0x0102, head + raw)

    def end(tag: str) -> None:
        node(0x0103, struct.pack("<ii", -1, index(tag)))

    node(0x0100, struct.pack("<ii", prefix, ns))
    start(
        "manifest",
        [
            (-1, "package", _STRING, package),
            (ns, "versionCode", _INT, 1),
            (ns, "versionName", _STRING, "1.0"),
        ],
    )
    start("uses-sdk", [(ns, "minSdkVersion", _INT, 24), (ns, "targetSdkVersion", _INT, 34)])
    end("uses-sdk")
    for permission in permissions:
        start("uses-permission", [(ns, "name", _STRING, permission)])
        end("uses-permission")
    start("application", [(ns, "label", _STRING, label)])
    start("activity", [(ns, "name", _STRING, f"{package}.MainActivity")])
    end("activity")
    end("application")
    end("manifest")
    node(0x0101, struct.pack("<ii", prefix, ns))

    offsets, data = [], b""
    for text in strings:  # UTF-16 strings: length, characters, NUL
        offsets.append(len(data))
        data += struct.pack("<H", len(text)) + text.encode("utf-16-le") + b"\0\0"
    data += b"\0" * (-len(data) % 4)
    pool_head = struct.pack("<IIIII", len(strings), 0, 0, 28 + 4 * len(strings), 0)
    pool = chunk(0x0001, 28, pool_head + struct.pack(f"<{len(offsets)}I", *offsets) + data)
    ids = chunk(0x0180, 8, struct.pack(f"<{len(_ATTR_IDS)}I", *_ATTR_IDS.values()))
    body = pool + ids + b"".join(nodes)
    return struct.pack("<HHI", 0x0003, 8, 8 + len(body)) + body


def build_apk(package: str, label: str, permissions: tuple[str, ...]) -> bytes:
    """A small APK, the same bytes every time."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in (
            ("AndroidManifest.xml", manifest_xml(package, label, permissions)),
            ("res/raw/about.txt", f"{label}: a demo app built by the portal's seed.\n".encode()),
        ):
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return out.getvalue()


def seed(users: dict[str, User]) -> None:
    """Store the demo clean corpus (idempotent: a stored app is found by its SHA-256)."""
    researcher = users["researcher"]
    with tempfile.TemporaryDirectory() as tmp:
        for package, label, permissions in CLEAN_APPS:
            path = Path(tmp) / f"{package}.apk"
            path.write_bytes(build_apk(package, label, permissions))
            sample, _, _ = sample_ingest(path=path, label=Label.CLEAN, user=researcher)
            if sample.label != Label.CLEAN:
                Sample.objects.filter(pk=sample.pk).update(label=Label.CLEAN)
