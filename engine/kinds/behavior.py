"""``behavior``: permissions and API calls that must all be present, Quark-style, with a score.

Class names are stored in DEX form (``Landroid/telephony/SmsManager;``); the dotted Java form
and Quark's older form without ``;`` are accepted. Descriptors are stored without spaces
(Quark and androguard print ``(I I)V`` where DEX says ``(II)V``); a rule that gives no
descriptor matches every overload. Bare permission names (``SEND_SMS``) are taken to be
``android.permission.*``.
"""

from __future__ import annotations

import math
import re
from typing import Any

from engine.features import AppFeatures, RuleRecord
from engine.kinds.base import Hits, Issue, Kind, KindIndex, ValidationResult

DEFAULT_SCORE = 50
_JAVA_CLASS = re.compile(r"[A-Za-z_$][\w$]*(\.[A-Za-z_$][\w$]*)*")
_DEX_CLASS = re.compile(r"L[A-Za-z_$][\w$]*(/[A-Za-z_$][\w$]*)*;")
_METHOD = re.compile(r"<init>|<clinit>|[A-Za-z_$][\w$]*")
_PERMISSION = re.compile(r"[A-Za-z_][\w]*(\.[A-Za-z_][\w]*)*")


def normalise_class(name: str) -> str | None:
    text = name.strip()
    if "/" in text and not text.startswith("L"):
        # a slipped "L": Quark rule 00149 writes "android/content/res/Resources;"
        text = "L" + text
    if text.startswith("L") and "/" in text and not text.endswith(";"):
        text += ";"
    if _DEX_CLASS.fullmatch(text):
        return text
    if _JAVA_CLASS.fullmatch(text):
        return "L" + text.replace(".", "/") + ";"
    return None


def normalise_descriptor(descriptor: str) -> str:
    return "".join(descriptor.split())


def normalise_permission(name: str) -> str | None:
    text = name.strip()
    if not _PERMISSION.fullmatch(text):
        return None
    return text if "." in text else f"android.permission.{text}"


def api_key(cls: str, method: str, descriptor: str | None = None) -> str:
    """The text used both in evidence and as the index key: ``Lcls;->name`` + descriptor."""
    return f"{cls}->{method}{descriptor or ''}"


class BehaviorKind(Kind):
    name = "behavior"
    label = "Behaviour"
    description = (
        "Permissions and API calls that must all be present in the app (like a Quark rule), "
        "with a 0-100 score for how telling the combination is."
    )
    scales_weight = True

    def new_index(self) -> BehaviorIndex:
        return BehaviorIndex()

    def weight_factor(self, body: Any) -> float:
        """A behaviour's score (0-100) scales its severity's weight."""
        if not isinstance(body, dict):
            return 1.0
        return int(body.get("score", 100)) / 100

    def validate(self, body: Any) -> ValidationResult:
        if not isinstance(body, dict):
            return ValidationResult.fail("a behavior body is an object")
        unknown = sorted(set(body) - {"permissions", "api", "score", "label"})
        if unknown:
            return ValidationResult.fail(f"unknown field(s): {', '.join(unknown)}")
        errors: list[str] = []
        warnings: list[Issue] = []

        permissions = _valid_permissions(body.get("permissions", []), errors)
        apis = _valid_apis(body.get("api", []), errors)

        if not permissions and not apis and not errors:
            errors.append("a behaviour needs at least one permission or API call")

        score = body.get("score")
        if score is None:
            score = DEFAULT_SCORE
            warnings.append(Issue(f"no score given; using {DEFAULT_SCORE}"))
        if (
            isinstance(score, bool)
            or not isinstance(score, int | float)
            or not math.isfinite(score)
            or not 0 <= score <= 100
        ):
            errors.append("'score' must be a number from 0 to 100")
        label = body.get("label")
        if label is not None and not isinstance(label, str):
            errors.append("'label' must be a string")
        if errors:
            return ValidationResult(body=None, errors=[Issue(e) for e in errors], warnings=warnings)

        normalised: dict[str, Any] = {
            "permissions": sorted(permissions),
            "api": [apis[k] for k in sorted(apis)],
            "score": round(score),
        }
        if label and label.strip():
            normalised["label"] = label.strip()
        return ValidationResult(body=normalised, warnings=warnings)

    def dedup_key(self, normalised_body: Any) -> str:
        # the score and label describe the behaviour; they do not make it a different one
        core = {"permissions": normalised_body["permissions"], "api": normalised_body["api"]}
        return super().dedup_key(core)

    def summary(self, body: Any) -> str:
        parts = [p.rpartition(".")[2] for p in body["permissions"]]
        parts += [f"{a['class'].rpartition('/')[2].rstrip(';')}.{a['method']}" for a in body["api"]]
        head = body.get("label") or "behaviour"
        return f"{head}: {' + '.join(parts)} (score {body['score']})"


class BehaviorIndex(KindIndex):
    """An inverted index: each permission or API key -> the behaviours that require it, and
    how many keys each needs. An app costs one lookup per permission and method it has."""

    def __init__(self) -> None:
        # "perm:<name>" / "api:<Lcls;->name(desc)>" -> positions of the behaviours needing it
        self.behavior_index: dict[str, list[int]] = {}
        self.behavior_needs: dict[int, int] = {}

    def add(self, record: RuleRecord, index: int) -> None:
        body = record.body
        keys = {f"perm:{p}" for p in body["permissions"]}
        keys |= {
            f"api:{api_key(a['class'], a['method'], a.get('descriptor'))}" for a in body["api"]
        }
        if not keys:
            raise ValueError("a behaviour needs at least one permission or API call")
        for key in keys:
            self.behavior_index.setdefault(key, []).append(index)
        self.behavior_needs[index] = len(keys)

    @property
    def matches_features(self) -> bool:
        return bool(self.behavior_index)

    def match_features(self, features: AppFeatures, hits: Hits, where: str) -> None:
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
            for index in self.behavior_index.get(key, ()):
                counts.setdefault(index, []).append(text)
        for index, texts in counts.items():
            if len(texts) == self.behavior_needs[index]:
                texts.sort(key=lambda t: (not t.startswith("permission"), t))
                hits.add(index, " + ".join(texts) + where)


def from_quark(rule_json: dict[str, Any]) -> dict[str, Any]:
    """Turn a Quark rule (current or older format) into a behaviour body (not yet validated).

    Quark's ``score`` is a weight, sometimes negative; it is rounded and clamped to 0-100.
    ``match_keywords`` (string arguments Quark checks at runtime) have no equivalent in the
    extracted features and are dropped. ``label`` lists are joined with commas.
    """
    if not isinstance(rule_json, dict) or "api" not in rule_json:
        raise ValueError("not a Quark rule: no 'api' list")
    api = []
    for item in rule_json.get("api") or []:
        if not isinstance(item, dict):
            raise ValueError("not a Quark rule: 'api' entries must be objects")
        entry = {"class": item.get("class"), "method": item.get("method")}
        if item.get("descriptor"):
            entry["descriptor"] = item["descriptor"]
        api.append(entry)
    score = rule_json.get("score", DEFAULT_SCORE)
    if isinstance(score, int | float) and not isinstance(score, bool) and math.isfinite(score):
        score = max(0, min(100, round(score)))
    labels = rule_json.get("label")
    label = ",".join(str(x) for x in labels) if isinstance(labels, list) else labels
    body: dict[str, Any] = {
        "permissions": list(rule_json.get("permission") or []),
        "api": api,
        "score": score,
    }
    if label:
        body["label"] = label
    return body


def _valid_permissions(raw: Any, errors: list[str]) -> set[str]:
    """The normalised permission names of a body's ``permissions``; problems go to ``errors``."""
    if not isinstance(raw, list):
        errors.append("'permissions' must be a list of permission names")
        return set()
    permissions: set[str] = set()
    for perm in raw:
        value = normalise_permission(perm) if isinstance(perm, str) else None
        if value is None:
            errors.append(f"{perm!r} is not a permission name")
        else:
            permissions.add(value)
    return permissions


def _valid_apis(raw: Any, errors: list[str]) -> dict[tuple[str, str, str], dict[str, str]]:
    """A body's ``api`` entries, normalised and keyed by (class, method, descriptor)."""
    if not isinstance(raw, list):
        errors.append("'api' must be a list of {class, method, descriptor} objects")
        return {}
    apis: dict[tuple[str, str, str], dict[str, str]] = {}
    for n, item in enumerate(raw, 1):
        entry = _valid_api(n, item, errors)
        if entry is not None:
            apis[(entry["class"], entry["method"], entry.get("descriptor", ""))] = entry
    return apis


def _valid_api(n: int, item: Any, errors: list[str]) -> dict[str, str] | None:
    if not isinstance(item, dict) or not {"class", "method"} <= set(item):
        errors.append(f"api #{n} needs 'class' and 'method'")
        return None
    extra = sorted(set(item) - {"class", "method", "descriptor"})
    if extra:
        errors.append(f"api #{n} has unknown field(s): {', '.join(extra)}")
        return None
    cls = normalise_class(item["class"]) if isinstance(item["class"], str) else None
    method = item["method"].strip() if isinstance(item["method"], str) else ""
    descriptor = item.get("descriptor")
    if cls is None:
        errors.append(f"api #{n}: {item['class']!r} is not a class name")
        return None
    if not _METHOD.fullmatch(method):
        errors.append(f"api #{n}: {item['method']!r} is not a method name")
        return None
    entry = {"class": cls, "method": method}
    if descriptor not in (None, ""):
        if not isinstance(descriptor, str) or not descriptor.strip().startswith("("):
            errors.append(f"api #{n}: descriptor must look like (Ljava/lang/String;)V")
            return None
        entry["descriptor"] = normalise_descriptor(descriptor)
    return entry
