"""Binary AndroidManifest.xml → ``Manifest``, through apkInspector's tamper-tolerant AXML parser.

Attributes are identified the way Android does it, by the resource ID in the XML resource map
(``android:name`` is 0x01010003 whatever its string says), falling back to the attribute's name
string; so renamed or emptied attribute-name strings (a known evasion) do not hide anything.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from apkInspector.axml import ManifestStruct, XmlEndElement, XmlStartElement
from apkInspector.indicators import manifest_tampering_indicators

from engine.errors import AnalysisError
from engine.features import Component, IntentFilter, Manifest

log = logging.getLogger(__name__)

# android.R.attr IDs (frameworks/base/core/res/res/values/public.xml)
_ATTR_IDS = {
    0x01010001: "label",
    0x01010003: "name",
    0x01010006: "permission",
    0x01010010: "exported",
    0x0101001C: "priority",
    0x01010027: "scheme",
    0x0101020C: "minSdkVersion",
    0x0101021B: "versionCode",
    0x0101021C: "versionName",
    0x01010270: "targetSdkVersion",
    0x01010271: "maxSdkVersion",
}
# minSdkVersion/targetSdkVersion may name a preview platform; Android maps it to that API level
SDK_CODENAMES = {
    "Q": 29,
    "R": 30,
    "S": 31,
    "Sv2": 32,
    "Tiramisu": 33,
    "UpsideDownCake": 34,
    "VanillaIceCream": 35,
    "Baklava": 36,
}
_TYPE_REFERENCE, _TYPE_STRING, _TYPE_INT_DEC, _TYPE_INT_HEX, _TYPE_BOOL = 1, 3, 16, 17, 18
_COMPONENTS: dict[str, Literal["activity", "service", "receiver", "provider"]] = {
    "activity": "activity",
    "activity-alias": "activity",
    "service": "service",
    "receiver": "receiver",
    "provider": "provider",
}

Value = str | int | bool


@dataclass(slots=True)
class ParsedManifest:
    manifest: Manifest
    label_ref: int | None = None  # resource ID when android:label is a reference
    tamper: list[tuple[str, str]] = field(default_factory=list)


def parse_manifest(
    data: bytes, resolve: Callable[[int], str | None] | None = None
) -> ParsedManifest:
    """Decode the binary manifest; AnalysisError if it cannot be read at all."""
    if len(data) < 8:
        raise AnalysisError("AndroidManifest.xml is empty or truncated")
    try:
        ms = ManifestStruct.parse(io.BytesIO(data))
        strings: list[str] = list(ms.string_pool.string_list)
        resids: list[int] = list(ms.resource_map.resids) if ms.resource_map else []
    except Exception as exc:  # apkInspector raises struct.error, IndexError, AttributeError...
        log.debug("apkInspector could not parse the manifest", exc_info=True)
        raise AnalysisError(f"AndroidManifest.xml is unreadable: {exc}") from exc
    out = ParsedManifest(Manifest())
    try:
        indicators = manifest_tampering_indicators(io.BytesIO(data))
    except Exception:
        log.debug("apkInspector manifest indicators failed", exc_info=True)
        indicators = {"unparseable_chunks": True}
    if indicators:
        out.tamper.append(("manifest.chunk_tricks", ", ".join(sorted(indicators))))
    _walk(ms.elements, strings, resids, out, resolve)
    return out


def _attrs(
    el: XmlStartElement, strings: list[str], resids: list[int], out: ParsedManifest, tag: str
) -> dict[str, Value]:
    values: dict[str, Value] = {}
    for attr in el.attributes:
        idx = attr.name_index
        key = _ATTR_IDS.get(resids[idx]) if idx < len(resids) else None
        if key is None:
            if idx >= len(strings) or not strings[idx]:
                continue
            key = strings[idx]
        value = _value(attr, strings)
        if value is None:
            continue
        if key in values:
            out.tamper.append(
                ("manifest.duplicate_attribute", f"<{tag}> declares {key!r} more than once")
            )
            continue  # Android's XmlPullParser returns the first
        values[key] = value
    return values


def _value(attr: Any, strings: list[str]) -> Value | None:
    dt, data = attr.typed_value_datatype, attr.typed_value_data
    if dt == _TYPE_STRING:
        return strings[data] if 0 <= data < len(strings) else None
    if dt == _TYPE_BOOL:
        return bool(data)
    if dt in (_TYPE_INT_DEC, _TYPE_INT_HEX) or 0x10 <= dt <= 0x1F:
        return int(data)
    if dt == _TYPE_REFERENCE:
        return f"@0x{int(data):08x}"
    raw = attr.raw_value_index
    return strings[raw] if 0 <= raw < len(strings) else None


# the binary-XML element walk: one branch per manifest tag it keeps
def _walk(  # noqa: C901, PLR0912, PLR0915
    elements: list[Any],
    strings: list[str],
    resids: list[int],
    out: ParsedManifest,
    resolve: Callable[[int], str | None] | None,
) -> None:
    stack: list[str] = []
    fields: dict[str, Any] = {}
    permissions: list[str] = []
    declared: list[str] = []
    components: list[Component] = []
    comp: dict[str, Any] | None = None
    filt: dict[str, Any] | None = None
    for el in elements:
        if isinstance(el, XmlEndElement):
            name = _str(strings, el.attrext[1])
            if name in _COMPONENTS and comp is not None and comp["depth"] == len(stack) - 1:
                components.append(
                    Component(
                        kind=comp["kind"],
                        name=comp["name"],
                        exported=comp["exported"],
                        permission=comp["permission"],
                        intent_filters=tuple(comp["filters"]),
                    )
                )
                comp = None
            elif name == "intent-filter" and filt is not None and comp is not None:
                comp["filters"].append(
                    IntentFilter(
                        actions=tuple(filt["actions"]),
                        categories=tuple(filt["categories"]),
                        data_schemes=tuple(filt["schemes"]),
                        priority=filt["priority"],
                    )
                )
                filt = None
            if stack:
                stack.pop()
            continue
        if not isinstance(el, XmlStartElement):
            continue
        tag = _str(strings, el.attrext[1])
        parent = stack[-1] if stack else None
        stack.append(tag)
        a = _attrs(el, strings, resids, out, tag)
        if tag == "manifest" and len(stack) == 1:
            fields["package"] = _as_str(a.get("package"))
            fields["version_code"] = _as_int(a.get("versionCode"))
            fields["version_name"] = _as_str(a.get("versionName"))
        elif tag == "uses-sdk" and parent == "manifest":
            fields["min_sdk"] = _sdk(a.get("minSdkVersion"))
            fields["target_sdk"] = _sdk(a.get("targetSdkVersion"))
            fields["max_sdk"] = _sdk(a.get("maxSdkVersion"))
        elif tag in ("uses-permission", "uses-permission-sdk-23", "uses-permission-sdk-m"):
            perm = _as_str(a.get("name"))
            if perm and perm not in permissions:
                permissions.append(perm)
        elif tag == "permission" and parent == "manifest":
            perm = _as_str(a.get("name"))
            if perm and perm not in declared:
                declared.append(perm)
        elif tag == "application" and parent == "manifest":
            label = a.get("label")
            if isinstance(label, str) and label.startswith("@0x"):
                ref = int(label[3:], 16)
                out.label_ref = ref
                label = (resolve(ref) if resolve else None) or label
            fields["app_label"] = _as_str(label)
        elif tag in _COMPONENTS and parent == "application":
            exported = a.get("exported")
            comp = {
                "kind": _COMPONENTS[tag],
                "name": _as_str(a.get("name")) or "",
                "exported": exported if isinstance(exported, bool) else None,
                "permission": _as_str(a.get("permission")),
                "filters": [],
                "depth": len(stack) - 1,
            }
        elif tag == "intent-filter" and comp is not None:
            prio = a.get("priority")
            filt = {
                "actions": [],
                "categories": [],
                "schemes": [],
                "priority": prio if isinstance(prio, int) and not isinstance(prio, bool) else None,
            }
        elif filt is not None and parent == "intent-filter":
            if tag == "action" and (v := _as_str(a.get("name"))):
                filt["actions"].append(v)
            elif tag == "category" and (v := _as_str(a.get("name"))):
                filt["categories"].append(v)
            elif tag == "data" and (v := _as_str(a.get("scheme"))):
                filt["schemes"].append(v)
    out.manifest = Manifest(
        package=fields.get("package"),
        version_name=fields.get("version_name"),
        version_code=fields.get("version_code"),
        min_sdk=fields.get("min_sdk"),
        target_sdk=fields.get("target_sdk"),
        app_label=fields.get("app_label"),
        permissions=tuple(permissions),
        components=tuple(components),
        max_sdk=fields.get("max_sdk"),
        declared_permissions=tuple(declared),
    )


def _str(strings: list[str], idx: int) -> str:
    return strings[idx] if 0 <= idx < len(strings) else ""


def _as_str(v: Value | None) -> str | None:
    if v is None or isinstance(v, bool):
        return None
    return str(v)


def _as_int(v: Value | None) -> int | None:
    if isinstance(v, bool) or v is None:
        return None
    if isinstance(v, int):
        return v
    try:
        return int(v.strip(), 0)
    except ValueError:
        return None


def _sdk(v: Value | None) -> int | None:
    if isinstance(v, str) and v.strip() in SDK_CODENAMES:
        return SDK_CODENAMES[v.strip()]
    return _as_int(v)
