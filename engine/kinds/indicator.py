"""``indicator``: a network or SMS indicator found in an app's strings and resources.

Values are normalised so that the same indicator written two ways is one signature and so
that lookups are plain set membership: domains are IDNA-encoded, lower-case, without the
trailing dot; URLs have a lower-case scheme and host, an IDNA host, no default port, no
fragment and at least "/" as path; IPs and networks use ``ipaddress``'s canonical text;
SMS short codes are 3-8 digits.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from engine.features import AppFeatures, RuleRecord
from engine.kinds.base import (
    Hits,
    Kind,
    KindIndex,
    Slot,
    ValidationResult,
    slot_add,
    slot_get,
    stix_quote,
)

TYPES = ("domain", "url", "ip", "cidr", "short_code")
DEFAULT_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}
_LABEL = re.compile(r"(?!-)[a-z0-9-]{1,63}(?<!-)")
_SHORT_CODE = re.compile(r"[0-9]{3,8}")


class IndicatorError(ValueError):
    pass


def normalise_domain(value: str) -> str:
    host = value.strip().rstrip(".").lower()
    if not host:
        raise IndicatorError("empty domain")
    try:
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise IndicatorError(f"{value!r} is not a valid internationalised domain") from exc
    labels = host.split(".")
    if len(labels) < 2 or len(host) > 253:
        raise IndicatorError(f"{value!r} is not a domain name (need at least two labels)")
    if not all(_LABEL.fullmatch(label) for label in labels):
        raise IndicatorError(f"{value!r} is not a domain name")
    if re.fullmatch(r"[0-9]+", labels[-1]):
        raise IndicatorError(f"{value!r} looks like an IP address, not a domain")
    return host


def normalise_ip(value: str) -> str:
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError as exc:
        raise IndicatorError(f"{value!r} is not an IP address") from exc


def normalise_cidr(value: str) -> str:
    try:
        return str(ipaddress.ip_network(value.strip(), strict=False))
    except ValueError as exc:
        raise IndicatorError(f"{value!r} is not a network in CIDR notation") from exc


def normalise_url(value: str) -> str:
    try:
        parts = urlsplit(value.strip())
        port = parts.port
        hostname = parts.hostname
    except ValueError as exc:
        raise IndicatorError(f"{value!r} is not a URL: {exc}") from exc
    scheme = parts.scheme.lower()
    if not scheme or not hostname:
        raise IndicatorError(f"{value!r} is not an absolute URL with a host")
    try:
        host = normalise_ip(hostname)
        if ":" in host:
            host = f"[{host}]"
    except IndicatorError:
        host = normalise_domain(hostname) if "." in hostname else hostname.lower()
    netloc = host
    if port is not None and DEFAULT_PORTS.get(scheme) != port:
        netloc = f"{host}:{port}"
    userinfo = parts.netloc.rpartition("@")[0]
    if userinfo:
        netloc = f"{userinfo}@{netloc}"
    return urlunsplit((scheme, netloc, parts.path or "/", parts.query, ""))


def normalise_short_code(value: str) -> str:
    code = value.strip()
    if not _SHORT_CODE.fullmatch(code):
        raise IndicatorError(f"{value!r} is not an SMS short code (3-8 digits)")
    return code


NORMALISERS = {
    "domain": normalise_domain,
    "url": normalise_url,
    "ip": normalise_ip,
    "cidr": normalise_cidr,
    "short_code": normalise_short_code,
}


def infer_type(value: str) -> str:
    text = value.strip()
    if _SHORT_CODE.fullmatch(text):
        return "short_code"
    if "://" in text:
        return "url"
    try:
        ipaddress.ip_address(text)
        return "ip"
    except ValueError:
        pass
    if "/" in text:
        try:
            ipaddress.ip_network(text, strict=False)
            return "cidr"
        except ValueError:
            return "url"
    return "domain"


class IndicatorKind(Kind):
    name = "indicator"
    label = "Indicator"
    description = (
        "A domain (also matches its subdomains), URL, IP address, network (CIDR) or premium "
        "SMS short code found in the app's code strings and resources."
    )

    def validate(self, body: Any) -> ValidationResult:
        if isinstance(body, str):
            body = {"value": body}
        if not isinstance(body, dict):
            return ValidationResult.fail("an indicator body is an object or a bare string")
        unknown = sorted(set(body) - {"type", "value"})
        if unknown:
            return ValidationResult.fail(f"unknown field(s): {', '.join(unknown)}")
        value = body.get("value")
        if not isinstance(value, str) or not value.strip():
            return ValidationResult.fail("'value' must be a non-empty string")
        kind = body.get("type") or infer_type(value)
        if kind not in NORMALISERS:
            return ValidationResult.fail(f"'type' must be one of {', '.join(TYPES)}")
        try:
            normalised = NORMALISERS[kind](value)
        except IndicatorError as exc:
            return ValidationResult.fail(str(exc))
        return ValidationResult(body={"type": kind, "value": normalised})

    def summary(self, body: Any) -> str:
        return f"{body['type'].replace('_', ' ')} {body['value']}"

    def new_index(self) -> IndicatorIndex:
        return IndicatorIndex()

    def stix_pattern(self, body: Any) -> tuple[str, str] | None:
        value = body["value"]
        if body["type"] == "domain":
            return f"[domain-name:value = {stix_quote(value)}]", "stix"
        if body["type"] == "url":
            return f"[url:value = {stix_quote(value)}]", "stix"
        if body["type"] in ("ip", "cidr"):
            obj = "ipv6-addr" if ":" in value else "ipv4-addr"
            return f"[{obj}:value = {stix_quote(value)}]", "stix"
        return None  # SMS short codes have no STIX object


def _parent_domains(domain: str) -> Iterable[str]:
    labels = domain.split(".")
    for i in range(len(labels) - 1):
        yield ".".join(labels[i:])


class IndicatorIndex(KindIndex):
    """A set per indicator type (a value -> record positions), and networks by prefix length:
    an app's strings cost one lookup each (a domain one per parent), whatever the count of
    records. ``scans.featurekeys`` mirrors what ``match_features`` compares."""

    def __init__(self) -> None:
        self.domains: dict[str, Slot] = {}
        self.urls: dict[str, Slot] = {}
        self.ips: dict[str, Slot] = {}
        self.short_codes: dict[str, Slot] = {}
        # (ip version, prefix length) -> network address as int >> host bits -> positions
        self.networks: dict[tuple[int, int], dict[int, Slot]] = {}

    def add(self, record: RuleRecord, index: int) -> None:
        body = record.body
        kind, value = body["type"], body["value"]
        if kind == "cidr":
            net = ipaddress.ip_network(value, strict=False)
            host_bits = net.max_prefixlen - net.prefixlen
            networks = self.networks.setdefault((net.version, net.prefixlen), {})
            slot_add(networks, int(net.network_address) >> host_bits, index)
        else:
            tables = {
                "domain": self.domains,
                "url": self.urls,
                "ip": self.ips,
                "short_code": self.short_codes,
            }
            slot_add(tables[kind], value, index)

    @property
    def matches_features(self) -> bool:
        return bool(self.domains or self.urls or self.ips or self.short_codes or self.networks)

    def match_features(self, features: AppFeatures, hits: Hits, where: str) -> None:
        found = features.indicators
        hosts: list[tuple[str, str]] = [(d, "strings") for d in found.domains]
        ips: list[tuple[str, str]] = [(i, "strings") for i in found.ips]
        if self.urls or self.domains or self.ips or self.networks:
            self._match_urls(found.urls, hits, where, hosts, ips)
        if self.domains:
            self._match_domains(hosts, hits, where)
        if self.ips or self.networks:
            self._match_ips(ips, hits, where)
        if self.short_codes:
            for code in found.short_codes:
                for index in slot_get(self.short_codes, code.strip()):
                    hits.add(index, f"SMS short code {code.strip()} in strings{where}")

    def _match_urls(
        self,
        urls: Iterable[str],
        hits: Hits,
        where: str,
        hosts: list[tuple[str, str]],
        ips: list[tuple[str, str]],
    ) -> None:
        """Match the URLs themselves; their hosts join ``hosts`` or ``ips`` for the next steps."""
        for raw in urls:
            try:
                url = normalise_url(raw)
            except IndicatorError:
                continue
            for index in slot_get(self.urls, url):
                hits.add(index, f"url {url} in strings{where}")
            host = url.split("://", 1)[1].split("/", 1)[0].rpartition("@")[2]
            host = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
            host = host.strip("[]")
            if any(c.isalpha() for c in host) and ":" not in host:
                hosts.append((host, f"url {url}"))
            else:
                ips.append((host, f"url {url}"))

    def _match_domains(self, hosts: list[tuple[str, str]], hits: Hits, where: str) -> None:
        for raw, source in hosts:
            try:
                domain = normalise_domain(raw)
            except IndicatorError:
                continue
            for parent in _parent_domains(domain):
                for index in slot_get(self.domains, parent):
                    under = "" if parent == domain else f" (under {parent})"
                    hits.add(index, f"domain {domain}{under} in {source}{where}")

    def _match_ips(self, ips: list[tuple[str, str]], hits: Hits, where: str) -> None:
        for raw, source in ips:
            try:
                address = ipaddress.ip_address(normalise_ip(raw))
            except (IndicatorError, ValueError):
                continue
            for index in slot_get(self.ips, str(address)):
                hits.add(index, f"ip {address} in {source}{where}")
            number = int(address)
            for (version, prefix), table in self.networks.items():
                if version != address.version:
                    continue
                for index in slot_get(table, number >> (address.max_prefixlen - prefix)):
                    net = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
                    hits.add(index, f"ip {address} in network {net} in {source}{where}")
