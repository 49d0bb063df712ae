"""engine.indicators: conservative extraction, since every value can fire a signature."""

from __future__ import annotations

from engine.features import MethodRef
from engine.indicators import extract

SEND = MethodRef(
    "Landroid/telephony/SmsManager;",
    "sendTextMessage",
    "(Ljava/lang/String;Ljava/lang/String;Ljava/lang/String;"
    "Landroid/app/PendingIntent;Landroid/app/PendingIntent;)V",
)


def test_urls_domains_and_ips() -> None:
    found = extract(
        [
            "see https://pay.example-bank.ru/login?x=1).",
            "http://45.33.32.156:8080/gate.php",
            "http://192.168.1.1/admin",
            "http://203.0.113.5/x",
            "c2.evil.top",
            "93.184.216.34",
        ]
    )
    assert found.urls == (
        "http://45.33.32.156:8080/gate.php",
        "https://pay.example-bank.ru/login?x=1",
    )
    assert found.domains == ("c2.evil.top", "pay.example-bank.ru")
    # 203.0.113.0/24 is documentation space and 192.168/16 private: neither is an indicator
    assert found.ips == ("45.33.32.156", "93.184.216.34")


def test_code_and_file_names_are_not_domains() -> None:
    found = extract(
        ["java.io", "android.net", "com.example.app", "index.html", "os.name", "payload.zip"],
        not_domains={"com.example.app"},
    )
    assert found.domains == ()


def test_version_numbers_are_not_ips() -> None:
    assert extract(["2.12.9.2", "1.0.0.1"]).ips == ()
    assert extract(["8.8.8.8"]).ips == ("8.8.8.8",)


def test_short_codes_need_an_sms_context() -> None:
    strings = ["7132", "1001", "1002", "2048", "2024", "smsto:4545"]
    assert extract(strings).short_codes == ("4545",)
    with_sms = extract(strings, methods=[SEND])
    assert with_sms.short_codes == ("4545", "7132")
    assert extract(strings, permissions=["android.permission.SEND_SMS"]) == with_sms
