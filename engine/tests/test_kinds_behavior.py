"""behavior: normalisation of permissions and API references, and Quark conversion."""

import json

from engine.kinds import get_kind
from engine.kinds.behavior import from_quark


def test_behavior_normalises_class_names_and_dedupes():
    body = {
        "permissions": ["SEND_SMS", "android.permission.SEND_SMS"],
        "api": [
            {"class": "android.telephony.SmsManager", "method": "sendTextMessage"},
            {"class": "Landroid/telephony/SmsManager;", "method": "sendTextMessage"},
            {
                "class": "Ljava/lang/Runtime",
                "method": "exec",
                "descriptor": "(Ljava/lang/String; )V",
            },
        ],
        "score": 70.4,
        "label": " sms ",
    }
    result = get_kind("behavior").validate(body)
    assert result.body == {
        "permissions": ["android.permission.SEND_SMS"],
        "api": [
            {"class": "Landroid/telephony/SmsManager;", "method": "sendTextMessage"},
            {
                "class": "Ljava/lang/Runtime;",
                "method": "exec",
                "descriptor": "(Ljava/lang/String;)V",
            },
        ],
        "score": 70,
        "label": "sms",
    }


def test_behavior_needs_something_to_match():
    result = get_kind("behavior").validate({"permissions": [], "api": [], "score": 10})
    assert result.errors[0].message == "a behaviour needs at least one permission or API call"


def test_behavior_score_is_bounded():
    result = get_kind("behavior").validate({"permissions": ["READ_SMS"], "score": 101})
    assert "'score' must be a number from 0 to 100" in [e.message for e in result.errors]


def test_behavior_score_does_not_change_identity():
    kind = get_kind("behavior")
    a = kind.validate({"permissions": ["READ_SMS"], "score": 10}).body
    b = kind.validate({"permissions": ["android.permission.READ_SMS"], "score": 90}).body
    assert kind.dedup_key(a) == kind.dedup_key(b)


def test_from_quark_current_format(corpus):
    rule = json.loads((corpus / "quark/quark-rules/rules/00001.json").read_text())
    body = get_kind("behavior").validate(from_quark(rule)).body
    assert body is not None
    assert body["api"][1] == {
        "class": "Landroid/graphics/BitmapFactory;",
        "method": "decodeByteArray",
        "descriptor": "([BII)Landroid/graphics/Bitmap;",
    }
    assert body["score"] == 0  # Quark's weight is negative (-7.22): clamped
    assert body["label"] == "camera"


def test_from_quark_older_format_without_semicolons(corpus):
    rule = json.loads((corpus / "quark/quark-engine/sendLocation_SMS.json").read_text())
    body = get_kind("behavior").validate(from_quark(rule)).body
    assert body is not None
    assert body["permissions"][-1] == "android.permission.SEND_SMS"
    assert {a["class"] for a in body["api"]} == {
        "Landroid/telephony/SmsManager;",
        "Landroid/telephony/TelephonyManager;",
    }
    assert body["score"] == 4
