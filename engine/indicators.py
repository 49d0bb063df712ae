"""Network and SMS indicators found in an app's strings: URLs, domains, IPs and SMS short codes.

Conservative on purpose: an indicator signature fires on any hit, so a false value here is a
false alarm on a phone. The heuristics:

- URL: ``http``/``https``/``ftp``/``ws``/``wss`` followed by ``://`` and a host that is a valid
  domain (below) or a valid IP; trailing punctuation is dropped.
- domain: the host of every URL, plus a string that is *entirely* a host name when its last label
  is in ``TLDS`` (which leaves out TLDs that collide with file extensions or code, like ``.zip``,
  ``.md``, ``.py``, ``.app``, ``.io``) and its first label is not a reverse-DNS package root
  (``com.``, ``org.``, ``android.``, ...), so Java package and class names are not domains.
- IP: the host of a URL, or a string that is entirely ``a.b.c.d`` or ``a.b.c.d:port``;
  validated with ``ipaddress`` and kept only when globally routable (``is_global``); a bare
  string whose octets are all at most 20 and not all equal is taken for a version number.
- SMS short code: DEX string tables are sorted, so "next to the sendTextMessage call" cannot be
  seen without decoding bytecode. Instead: (1) any ``sms:``/``smsto:``/``mms:``/``mmsto:`` URI
  to a 4-6 digit number; (2) when the app can send SMS (a reference to an
  ``SmsManager.send*Message`` method or the ``SEND_SMS`` permission), strings that are exactly
  4-6 digits, minus the usual constants (years 1900-2099, powers of two, multiples of 1000,
  well-known ports) and minus runs of consecutive numbers (request codes, enumerations).
- Strings naming the app's own package or the Java packages of its types are never domains.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable

from engine.features import Indicators, MethodRef

TLDS = frozenset(
    {
        "com",
        "net",
        "org",
        "info",
        "biz",
        "pro",
        "mobi",
        "tel",
        "asia",
        "xyz",
        "top",
        "online",
        "site",
        "club",
        "live",
        "shop",
        "store",
        "tech",
        "space",
        "website",
        "fun",
        "icu",
        "vip",
        "work",
        "link",
        "click",
        "cloud",
        "host",
        "press",
        "win",
        "bid",
        "loan",
        "download",
        "stream",
        "gdn",
        "men",
        "party",
        "review",
        "racing",
        "trade",
        "date",
        "faith",
        "cricket",
        "science",
        "accountant",
        "kim",
        "ooo",
        "ru",
        "su",
        "ua",
        "by",
        "kz",
        "cn",
        "hk",
        "tw",
        "jp",
        "kr",
        "in",
        "id",
        "vn",
        "th",
        "my",
        "ph",
        "sg",
        "pk",
        "ir",
        "tr",
        "il",
        "ae",
        "sa",
        "eg",
        "ng",
        "ke",
        "za",
        "de",
        "fr",
        "it",
        "es",
        "pt",
        "nl",
        "be",
        "ch",
        "at",
        "se",
        "no",
        "dk",
        "fi",
        "pl",
        "cz",
        "sk",
        "hu",
        "ro",
        "bg",
        "gr",
        "hr",
        "si",
        "rs",
        "lt",
        "lv",
        "ee",
        "ie",
        "uk",
        "us",
        "ca",
        "mx",
        "br",
        "ar",
        "cl",
        "co",
        "pe",
        "ve",
        "uy",
        "au",
        "nz",
        "eu",
        "tk",
        "ml",
        "ga",
        "cf",
        "gq",
        "pw",
        "cc",
        "ws",
        "to",
        "me",
        "tv",
        "nu",
    }
)
_PACKAGE_ROOTS = frozenset(
    {
        "com",
        "org",
        "net",
        "io",
        "android",
        "androidx",
        "java",
        "javax",
        "dalvik",
        "kotlin",
        "kotlinx",
        "sun",
        "edu",
        "gov",
        "mil",
    }
)
_LABEL = r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)"
_HOST = re.compile(rf"(?:{_LABEL}\.)+[a-z]{{2,24}}")
_URL = re.compile(r"\b(?:https?|ftp|wss?)://[^\s\"'<>\\^`{|}]+", re.IGNORECASE)
_IP_LINE = re.compile(r"^((?:\d{1,3}\.){3}\d{1,3})(?::\d{1,5})?$", re.MULTILINE)
_HOST_LINE = re.compile(rf"^(?:www\.)?(?:{_LABEL}\.)+[a-z]{{2,24}}$", re.MULTILINE)
_SMS_URI = re.compile(r"^(?:sms|smsto|mms|mmsto):/{0,2}(\d{4,6})(?:[?;].*)?$", re.MULTILINE)
_DIGITS_LINE = re.compile(r"^[1-9]\d{3,5}$", re.MULTILINE)
_SMS_SEND = frozenset({"sendTextMessage", "sendMultipartTextMessage", "sendDataMessage"})
_SMS_CLASSES = frozenset({"Landroid/telephony/SmsManager;", "Landroid/telephony/gsm/SmsManager;"})
_COMMON_NUMBERS = frozenset({1080, 3128, 5222, 5228, 5353, 8000, 8008, 8080, 8081, 8443, 8888})
_TRAILING = ".,;:!?)]}'\""


def extract(
    strings: Iterable[str],
    *,
    methods: Iterable[MethodRef] = (),
    permissions: Iterable[str] = (),
    not_domains: Iterable[str] = (),
) -> Indicators:
    """Indicators from DEX and resource strings.

    ``methods``/``permissions`` give the SMS context; ``not_domains`` are names known to be Java
    packages (the app's package, the packages of its types) that look like host names.
    """
    skip = set(not_domains)
    # one newline-joined text lets each regex run in C over every string at once
    text = "\n".join(s for s in strings if "\n" not in s and len(s) < 2048)
    urls: set[str] = set()
    domains: set[str] = set()
    ips: set[str] = set()
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(_TRAILING)
        host = _url_host(url)
        if host is None:
            continue
        ip = _global_ip(host)
        if ip is not None:
            ips.add(ip)
        elif _is_domain(host):
            domains.add(host)
        else:
            continue
        urls.add(url)
    for m in _IP_LINE.finditer(text):
        ip = _global_ip(m.group(1))
        if ip is not None and not _looks_like_version(m.group(1)):
            ips.add(ip)
    for m in _HOST_LINE.finditer(text):
        host = m.group(0)
        labels = host.split(".")
        if labels[-1] in TLDS and labels[0] not in _PACKAGE_ROOTS and host not in skip:
            domains.add(host)
    short_codes = {m.group(1) for m in _SMS_URI.finditer(text)}
    if _can_send_sms(methods, permissions):
        numbers = {int(m.group(0)) for m in _DIGITS_LINE.finditer(text)}
        for n in numbers:
            # runs like 1001, 1002, 1003 are request codes or enumerations, not phone numbers
            if _plausible_short_code(n) and n - 1 not in numbers and n + 1 not in numbers:
                short_codes.add(str(n))
    return Indicators(
        urls=tuple(sorted(urls)),
        domains=tuple(sorted(domains)),
        ips=tuple(sorted(ips)),
        short_codes=tuple(sorted(short_codes)),
    )


def url_strings(strings: Iterable[str]) -> tuple[str, ...]:
    """Every URL-shaped piece of ``strings`` (same shape as ``extract``'s URLs, trailing
    punctuation dropped) without judging its host: what Koodous' ``androguard.url`` searches,
    where ``http://localhost/x`` or ``http://10.0.0.2`` count too."""
    text = "\n".join(strings)
    return tuple(sorted({m.group(0).rstrip(_TRAILING) for m in _URL.finditer(text)}))


def _url_host(url: str) -> str | None:
    rest = url.split("://", 1)[1]
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1:].split("]", 1)[0] or None
    host = host.split(":", 1)[0].lower().rstrip(".")
    return host or None


def _is_domain(host: str) -> bool:
    return _HOST.fullmatch(host) is not None and host.rsplit(".", 1)[-1] in TLDS


def _global_ip(value: str) -> str | None:
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None
    return str(ip) if ip.is_global else None


def _looks_like_version(dotted: str) -> bool:
    # "2.12.9.2" is a versionName, "8.8.8.8" and "1.1.1.1" are resolvers
    octets = [int(x) for x in dotted.split(".")]
    return max(octets) <= 20 and len(set(octets)) > 1


def _can_send_sms(methods: Iterable[MethodRef], permissions: Iterable[str]) -> bool:
    if "android.permission.SEND_SMS" in set(permissions):
        return True
    return any(m.name in _SMS_SEND and m.cls in _SMS_CLASSES for m in methods)


def _plausible_short_code(n: int) -> bool:
    if 1900 <= n <= 2099 or n % 1000 == 0 or n in _COMMON_NUMBERS:
        return False
    return n & (n - 1) != 0  # powers of two are buffer sizes, not phone numbers
