"""hash, indicator and package_cert: normalisation and the errors researchers see."""

import pytest

from engine.kinds import get_kind

SHA256 = "A" * 64


# --- hash ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "algorithm"), [("a" * 32, "md5"), ("b" * 40, "sha1"), ("c" * 64, "sha256")]
)
def test_hash_algorithm_is_inferred_from_length(value, algorithm):
    result = get_kind("hash").validate({"value": value})
    assert result.body == {"algorithm": algorithm, "value": value, "target": "apk"}


def test_hash_value_is_lower_cased_and_fingerprint_colons_dropped():
    result = get_kind("hash").validate({"value": ":".join(["AB"] * 32), "target": "cert"})
    assert result.body == {"algorithm": "sha256", "value": "ab" * 32, "target": "cert"}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"value": "z" * 64}, "not hexadecimal"),
        ({"value": "a" * 63}, "63-digit value"),
        ({"value": "a" * 32, "algorithm": "sha256"}, "a sha256 has 64 hex digits, not 32"),
        ({"value": "a" * 64, "target": "so"}, "'target' must be"),
        ({"value": "a" * 32, "target": "dex"}, "DEX files are identified by SHA-256"),
    ],
)
def test_hash_errors(body, message):
    result = get_kind("hash").validate(body)
    assert result.body is None
    assert message in result.errors[0].message


def test_same_hash_written_two_ways_is_one_signature():
    kind = get_kind("hash")
    a = kind.validate({"value": SHA256}).body
    b = kind.validate({"value": SHA256.lower(), "algorithm": "SHA256", "target": "apk"}).body
    assert kind.dedup_key(a) == kind.dedup_key(b)
    assert kind.summary(a) == f"apk sha256 {'a' * 64}"


# --- indicator ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Evil.COM.", {"type": "domain", "value": "evil.com"}),
        ("bücher.example", {"type": "domain", "value": "xn--bcher-kva.example"}),
        ("HTTPS://Evil.com:443/pay?x=1#frag", {"type": "url", "value": "https://evil.com/pay?x=1"}),
        ("http://evil.com:8080", {"type": "url", "value": "http://evil.com:8080/"}),
        ("010.1.2.3", None),
        ("10.1.2.3", {"type": "ip", "value": "10.1.2.3"}),
        ("2001:DB8::1", {"type": "ip", "value": "2001:db8::1"}),
        ("10.1.2.3/8", {"type": "cidr", "value": "10.0.0.0/8"}),
        ("7132", {"type": "short_code", "value": "7132"}),
        ("12", None),
        ("localhost", None),
    ],
)
def test_indicator_bare_strings_are_typed_and_normalised(raw, expected):
    result = get_kind("indicator").validate(raw)
    assert result.body == expected


def test_indicator_explicit_type_is_checked():
    result = get_kind("indicator").validate({"type": "short_code", "value": "123456789"})
    assert result.errors[0].message == "'123456789' is not an SMS short code (3-8 digits)"


# --- package_cert -------------------------------------------------------------------------


def test_package_cert_normalises_certificates():
    body = {"package": "com.bank.app", "allowed_certs": ["B" * 64, "a" * 64, "b" * 64]}
    result = get_kind("package_cert").validate(body)
    assert result.body == {"package": "com.bank.app", "allowed_certs": ["a" * 64, "b" * 64]}
    assert get_kind("package_cert").summary(result.body) == (
        "com.bank.app signed only by 2 allowed certificates"
    )


@pytest.mark.parametrize(
    "body",
    [
        {"package": "bank", "allowed_certs": ["a" * 64]},
        {"package": "com.1bank.app", "allowed_certs": ["a" * 64]},
        {"package": "com.class.app", "allowed_certs": ["a" * 64]},
        {"package": "com.bank.app", "allowed_certs": []},
        {"package": "com.bank.app", "allowed_certs": ["a" * 40]},
    ],
)
def test_package_cert_rejects_bad_packages_and_certs(body):
    assert get_kind("package_cert").validate(body).errors
