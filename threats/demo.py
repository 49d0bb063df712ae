"""Demo families and signatures, written for this project (not copied from any corpus).

``seed(users)`` is called by ``manage.py seed_demo``; it is idempotent. Signatures go through
the real workflow: the demo researcher creates and submits them, a retro-hunt runs them over
the clean corpus (the gate, run here to the end), the demo reviewer approves them, so that
the first release has content. Hashes, certificates, domains and short codes
below are made up (RFC 2606 ``.example`` domains, documentation IP ranges) and match nothing
real.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import transaction

from engine.kinds import get_kind
from portal.models import User
from threats import services
from threats.gates import run_gate_now
from threats.models import Family, RevisionState, Signature, Status

FAMILIES: list[dict[str, Any]] = [
    {
        "name": "PremiumDialer",
        "category": "sms-fraud",
        "severity": "malicious",
        "description": "Sends SMS to premium short codes behind the user's back and hides the "
        "operator's confirmation messages.",
        "aliases": ["SmsPayer"],
    },
    {
        "name": "OtpGrabber",
        "category": "sms-stealer",
        "severity": "malicious",
        "description": "Reads incoming SMS for bank one-time codes and forwards them to a "
        "remote server.",
        "aliases": ["CodeSiphon"],
    },
    {
        "name": "FakeWallet",
        "category": "counterfeit-app",
        "severity": "malicious",
        "description": "Copies of payment and banking apps: the real package name, signed by "
        "the wrong key.",
    },
    {
        "name": "PayPhish",
        "category": "phishing",
        "severity": "malicious",
        "description": "Web views that imitate card-payment and bank log-in pages.",
    },
    {
        "name": "BannerFlood",
        "category": "adware",
        "severity": "suspicious",
        "description": "Full-screen ads over other apps and on the lock screen.",
    },
    {
        "name": "JunkBundle",
        "category": "junkware",
        "severity": "riskware",
        "description": "Installs and promotes unrelated apps; drains data and battery.",
    },
]


def _hex(seed: str, length: int = 64) -> str:
    """A made-up digest, stable across runs."""
    return hashlib.sha256(f"mtp-demo:{seed}".encode()).hexdigest()[:length]


_SEND_SMS = (
    "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;"
    "Landroid/app/PendingIntent;Landroid/app/PendingIntent;)V"
)

SIGNATURES: list[tuple[str, str, Any, list[str]]] = [
    # (family, kind, body, tags)
    # --- premium SMS fraud
    (
        "PremiumDialer",
        "yara",
        """rule demo_premium_sms_silent_sender {
  meta:
    description = "sends SMS and deletes the operator's confirmation"
  strings:
    $send = "sendTextMessage"
    $abort = "abortBroadcast"
    $inbox = "content://sms/inbox"
  condition:
    $send and ($abort or $inbox) and
    for any p in android.permissions : (p == "android.permission.SEND_SMS")
}
""",
        ["premium-sms"],
    ),
    (
        "PremiumDialer",
        "behavior",
        {
            "permissions": ["android.permission.SEND_SMS", "android.permission.RECEIVE_SMS"],
            "api": [
                {
                    "class": "Landroid/telephony/SmsManager;",
                    "method": "sendTextMessage",
                    "descriptor": _SEND_SMS,
                },
                {"class": "Landroid/content/BroadcastReceiver;", "method": "abortBroadcast"},
            ],
            "score": 80,
            "label": "sends SMS and hides replies",
        },
        ["premium-sms"],
    ),
    ("PremiumDialer", "indicator", {"type": "short_code", "value": "75021"}, ["premium-sms"]),
    ("PremiumDialer", "indicator", "subscribe.billing-premium.example", ["premium-sms"]),
    ("PremiumDialer", "hash", {"value": _hex("premium-apk-1"), "target": "apk"}, []),
    ("PremiumDialer", "hash", {"value": _hex("premium-dex-1"), "target": "dex"}, []),
    # --- OTP / SMS stealers
    (
        "OtpGrabber",
        "yara",
        """rule demo_otp_forwarder {
  meta:
    description = "reads incoming SMS for codes and posts them out"
  strings:
    $pdu = "createFromPdu"
    $otp = /(otp|one.?time|verification) ?code/ nocase
    $post = "application/x-www-form-urlencoded"
  condition:
    $pdu and $otp and $post and android.target_sdk > 0
}
""",
        ["otp"],
    ),
    (
        "OtpGrabber",
        "behavior",
        {
            "permissions": ["android.permission.RECEIVE_SMS", "android.permission.INTERNET"],
            "api": [
                {"class": "Landroid/telephony/SmsMessage;", "method": "createFromPdu"},
                {"class": "Landroid/telephony/SmsMessage;", "method": "getMessageBody"},
                {"class": "Ljava/net/HttpURLConnection;", "method": "getOutputStream"},
            ],
            "score": 75,
            "label": "forwards SMS bodies to the network",
        },
        ["otp"],
    ),
    ("OtpGrabber", "indicator", "https://otp-relay.example/api/v2/push", ["otp", "c2"]),
    ("OtpGrabber", "indicator", "198.51.100.23", ["c2"]),
    ("OtpGrabber", "hash", {"value": _hex("otp-apk-1"), "target": "apk"}, []),
    ("OtpGrabber", "hash", {"value": _hex("otp-apk-2", 40), "target": "apk"}, []),
    # --- counterfeit payment and banking apps
    (
        "FakeWallet",
        "package_cert",
        {"package": "com.examplebank.mobile", "allowed_certs": [_hex("examplebank-release")]},
        ["banking"],
    ),
    (
        "FakeWallet",
        "package_cert",
        {
            "package": "com.examplepay.wallet",
            "allowed_certs": [_hex("examplepay-2019"), _hex("examplepay-2024")],
        },
        ["payments"],
    ),
    (
        "FakeWallet",
        "yara",
        """rule demo_wallet_lookalike_label {
  meta:
    description = "an app calling itself ExamplePay that is not ExamplePay's package"
  condition:
    android.app_label == "ExamplePay" and android.package != "com.examplepay.wallet"
}
""",
        ["payments"],
    ),
    ("FakeWallet", "hash", {"value": _hex("fake-wallet-cert"), "target": "cert"}, ["banking"]),
    (
        "FakeWallet",
        "behavior",
        {
            "permissions": [
                "android.permission.BIND_ACCESSIBILITY_SERVICE",
                "android.permission.SYSTEM_ALERT_WINDOW",
            ],
            "api": [
                {
                    "class": "Landroid/accessibilityservice/AccessibilityService;",
                    "method": "performGlobalAction",
                }
            ],
            "score": 60,
            "label": "overlay with accessibility control",
        },
        ["banking"],
    ),
    ("FakeWallet", "indicator", "examplepay-secure-login.example", ["payments"]),
    # --- phishing payment pages
    ("PayPhish", "indicator", "https://card-verify.example/checkout", ["phishing"]),
    ("PayPhish", "indicator", "pay-examplebank.example", ["phishing"]),
    ("PayPhish", "indicator", "203.0.113.0/28", ["phishing"]),
    (
        "PayPhish",
        "yara",
        """rule demo_card_form_in_webview {
  meta:
    description = "bundled HTML asks for card number, expiry and CVV"
  strings:
    $cvv = "cvv" nocase
    $exp = "expiry" nocase
    $card = "card number" nocase
    $wv = "addJavascriptInterface"
  condition:
    all of them
}
""",
        ["phishing"],
    ),
    ("PayPhish", "hash", {"value": _hex("payphish-apk-1"), "target": "apk"}, []),
    (
        "PayPhish",
        "behavior",
        {
            "permissions": ["android.permission.INTERNET"],
            "api": [
                {"class": "Landroid/webkit/WebView;", "method": "addJavascriptInterface"},
                {"class": "Landroid/webkit/WebView;", "method": "loadDataWithBaseURL"},
            ],
            "score": 40,
            "label": "web view with a JavaScript bridge",
        },
        ["phishing"],
    ),
    (
        "PayPhish",
        "package_cert",
        {"package": "com.examplebank.secure", "allowed_certs": [_hex("examplebank-secure")]},
        ["banking"],
    ),
    # --- adware and junkware
    (
        "BannerFlood",
        "yara",
        """rule demo_lockscreen_ads {
  meta:
    description = "shows ads over the lock screen and other apps"
  strings:
    $overlay = "TYPE_APPLICATION_OVERLAY"
    $screen = "android.intent.action.USER_PRESENT"
    $ad = /ad(s|view|unit)?_?(load|show)/ nocase
  condition:
    $overlay and $screen and $ad
}
""",
        ["adware"],
    ),
    (
        "BannerFlood",
        "behavior",
        {
            "permissions": [
                "android.permission.SYSTEM_ALERT_WINDOW",
                "android.permission.RECEIVE_BOOT_COMPLETED",
            ],
            "api": [{"class": "Landroid/view/WindowManager;", "method": "addView"}],
            "score": 30,
            "label": "overlay window started at boot",
        },
        ["adware"],
    ),
    ("BannerFlood", "indicator", "ads.bannerflood.example", ["adware"]),
    ("BannerFlood", "hash", {"value": _hex("bannerflood-apk"), "target": "apk"}, []),
    ("BannerFlood", "hash", {"value": _hex("bannerflood-apk-md5", 32), "target": "apk"}, []),
    ("JunkBundle", "indicator", "cdn.junkbundle-offers.example", ["junkware"]),
    ("JunkBundle", "hash", {"value": _hex("junkbundle-dex"), "target": "dex"}, []),
    (
        "JunkBundle",
        "behavior",
        {
            "permissions": ["android.permission.REQUEST_INSTALL_PACKAGES"],
            "api": [{"class": "Landroid/content/pm/PackageInstaller;", "method": "createSession"}],
            "score": 25,
            "label": "installs other packages",
        },
        ["junkware"],
    ),
    (
        "JunkBundle",
        "yara",
        """rule demo_offerwall_installer {
  meta:
    description = "offer wall that installs promoted apps"
  strings:
    $offer = "offerwall" nocase
    $install = "application/vnd.android.package-archive"
  condition:
    $offer and $install
}
""",
        ["junkware"],
    ),
    (
        "JunkBundle",
        "package_cert",
        {"package": "com.example.cleanerpro", "allowed_certs": [_hex("cleanerpro")]},
        ["junkware"],
    ),
]


@transaction.atomic
def seed(users: dict[str, User]) -> None:
    """Families and deployed signatures (researcher writes and submits, reviewer approves)."""
    researcher, reviewer = users["researcher"], users["reviewer"]
    families: dict[str, Family] = {}
    for spec in FAMILIES:
        family = Family.objects.filter(name=spec["name"]).first()
        if family is None:
            family = services.family_create(actor=researcher, **spec)
        families[spec["name"]] = family
    waiting: list[Signature] = []
    for family_name, kind, body, tags in SIGNATURES:
        result = get_kind(kind).validate(body)
        if not result.ok:
            raise ValueError(f"demo {kind} signature does not validate: {result.errors[0]}")
        key = get_kind(kind).dedup_key(result.body)
        sig = Signature.objects.filter(kind=kind, dedup_key=key).first()
        if sig is None:
            sig = services.signature_create(
                actor=researcher,
                kind=kind,
                body=body,
                family=families[family_name],
                tags=tags,
                description="Demo signature written for this project.",
            )
        rev = sig.current_revision
        if sig.status == Status.DRAFT and rev is not None and rev.state == RevisionState.DRAFT:
            services.signature_submit(signature=sig, actor=researcher)
        if sig.current_revision and sig.current_revision.state == RevisionState.IN_REVIEW:
            waiting.append(sig)
    # the clean-corpus gate: one retro-hunt of every waiting revision, run here to the end
    ungated = [
        s.current_revision_id
        for s in waiting
        if s.current_revision is not None and s.current_revision.gated_at is None
    ]
    if ungated:
        run_gate_now([i for i in ungated if i is not None])
    for sig in waiting:
        services.signature_approve(
            signature=sig, actor=reviewer, comment="Demo: reviewed and approved."
        )
