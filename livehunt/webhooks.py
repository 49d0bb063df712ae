"""Webhook POSTs of watch-rule hits, guarded against server-side request forgery.

The host is resolved once and the connection goes to the address that was checked (a DNS
answer that changes between the check and the connect cannot point it elsewhere). Loopback,
link-local (cloud metadata at 169.254.169.254), multicast, unspecified and reserved
addresses are refused unless LIVEHUNT_WEBHOOK_ALLOW_LOCAL is true; private (RFC 1918)
networks are allowed, where a team's own SOAR or chat bridge usually lives. Redirects are
never followed (http.client does not), a timeout bounds every request, and the answer's
body is not read beyond its status.
"""

from __future__ import annotations

import http.client
import ipaddress
import json
import socket
import ssl
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings

USER_AGENT = "mobile-threat-portal-livehunt/1"


class WebhookRefused(Exception):
    """The URL may not be called (scheme, host or address)."""


@dataclass(frozen=True)
class Target:
    scheme: str
    host: str
    port: int
    path: str


def parse_url(url: str) -> Target:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise WebhookRefused("a webhook URL starts with https:// or http://")
    if not parts.hostname:
        raise WebhookRefused("a webhook URL names a host")
    if parts.username or parts.password:
        raise WebhookRefused("put a webhook's secret in its path or query, not user:password@")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError:
        raise WebhookRefused("the webhook URL's port is not a number from 1 to 65535") from None
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(scheme=scheme, host=parts.hostname, port=port, path=path)


def _allow_local() -> bool:
    return bool(settings.LIVEHUNT_WEBHOOK_ALLOW_LOCAL)


def address_refused(address: str) -> str | None:
    """Why an address may not be called, or None."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    if _allow_local():
        return None
    if ip.is_loopback:
        return "loopback addresses are not allowed as webhook targets"
    if ip.is_link_local:
        return "link-local addresses (cloud metadata) are not allowed as webhook targets"
    if ip.is_multicast or ip.is_unspecified or ip.is_reserved:
        return f"{ip} is not an address a webhook may call"
    return None


def check_url(url: str) -> Target:
    """What the form and API check when a rule is saved: the scheme, and an IP literal or
    ``localhost`` against the guard (names are checked again, resolved, at delivery)."""
    target = parse_url(url)
    host = target.host.strip("[]")
    if host.lower() == "localhost" or host.lower().endswith(".localhost"):
        if not _allow_local():
            raise WebhookRefused("loopback addresses are not allowed as webhook targets")
        return target
    try:
        ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        return target
    reason = address_refused(host)
    if reason:
        raise WebhookRefused(reason)
    return target


def resolve(target: Target) -> str:
    """The first address of the host that the guard allows; WebhookRefused otherwise."""
    try:
        infos = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise WebhookRefused(f"cannot resolve {target.host}: {exc.strerror or exc}") from None
    reasons = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0])
        reason = address_refused(address)
        if reason is None:
            return address
        reasons.append(reason)
    raise WebhookRefused(reasons[0] if reasons else f"{target.host} has no address")


class _PinnedHTTP(http.client.HTTPConnection):
    def __init__(self, address: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self) -> None:
        self.sock = socket.create_connection((self._address, self.port), self.timeout)


class _PinnedHTTPS(http.client.HTTPSConnection):
    def __init__(self, address: str, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._address = address

    def connect(self) -> None:
        sock = socket.create_connection((self._address, self.port), self.timeout)
        context = ssl.create_default_context()
        self.sock = context.wrap_socket(sock, server_hostname=self.host)


@dataclass(frozen=True)
class Answer:
    status: int


def post_json(url: str, payload: dict[str, Any]) -> Answer:
    """POST ``payload`` as JSON; WebhookRefused for a forbidden target, OSError/HTTPException
    for network trouble. A 3xx is an answer like any other: never followed."""
    target = parse_url(url)
    address = resolve(target)
    timeout = float(settings.LIVEHUNT_WEBHOOK_TIMEOUT_SECONDS)
    cls = _PinnedHTTPS if target.scheme == "https" else _PinnedHTTP
    conn = cls(address, target.host, target.port, timeout=timeout)
    body = json.dumps(payload, sort_keys=True).encode()
    try:
        conn.request(
            "POST",
            target.path,
            body=body,
            headers={
                "Content-Type": "application/json",
                "User-Agent": USER_AGENT,
                "X-Portal-Event": "livehunt.hit",
            },
        )
        response = conn.getresponse()
        return Answer(status=response.status)
    finally:
        conn.close()
