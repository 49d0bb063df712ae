"""Webhook deliveries: one POST per (rule, sample) to a real local HTTP server, redirects
not followed, loopback and link-local targets refused unless the setting allows them."""

from __future__ import annotations

import pytest

from livehunt import services
from livehunt.models import DeliveryStatus, WebhookDelivery
from livehunt.services import sample_watch, watch_rule_create, webhook_deliver
from livehunt.tests.conftest import PACKAGE, YARA_MATCH, wait_received
from livehunt.webhooks import WebhookRefused, address_refused, check_url
from portal.exceptions import ApplicationError

pytestmark = pytest.mark.django_db


def test_a_hit_is_posted_once_even_when_delivery_runs_twice(
    researcher, scanned_sample, hook_server, monkeypatch
) -> None:
    monkeypatch.setattr(services, "webhook_enqueue", lambda *, hit_id: None)
    rule = watch_rule_create(
        user=researcher, kind="yara", body=YARA_MATCH, webhook_url=hook_server.url
    )
    (hit,) = sample_watch(sample_id=scanned_sample.pk)

    first = webhook_deliver(hit_id=hit.pk)
    second = webhook_deliver(hit_id=hit.pk)
    wait_received(hook_server, 1)

    assert first is not None
    assert first.status == DeliveryStatus.DELIVERED
    assert first.status_code == 204
    assert second is None
    assert len(hook_server.received) == 1
    got = hook_server.received[0]
    assert got.path == "/hooks/livehunt"
    assert got.headers["Content-Type"] == "application/json"
    assert got.body["event"] == "livehunt.hit"
    assert got.body["rule"]["id"] == rule.pk
    assert got.body["sample"]["sha256"] == scanned_sample.sha256
    assert got.body["sample"]["package"] == PACKAGE
    assert WebhookDelivery.objects.count() == 1


def test_a_redirect_is_not_followed_and_is_recorded_as_failed(
    researcher, scanned_sample, hook_server, monkeypatch
) -> None:
    monkeypatch.setattr(services, "webhook_enqueue", lambda *, hit_id: None)
    hook_server.status = 302
    hook_server.location = hook_server.url + "/elsewhere"
    watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH, webhook_url=hook_server.url)
    (hit,) = sample_watch(sample_id=scanned_sample.pk)

    delivery = webhook_deliver(hit_id=hit.pk)

    assert delivery is not None
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.status_code == 302
    assert [r.path for r in hook_server.received] == ["/hooks/livehunt"]


def test_an_unreachable_webhook_is_recorded_and_not_retried(
    researcher, scanned_sample, settings, monkeypatch
) -> None:
    settings.LIVEHUNT_WEBHOOK_ALLOW_LOCAL = True
    settings.LIVEHUNT_WEBHOOK_TIMEOUT_SECONDS = 2
    monkeypatch.setattr(services, "webhook_enqueue", lambda *, hit_id: None)
    # port 9 (discard) on loopback: nothing listens, the connection is refused
    watch_rule_create(
        user=researcher, kind="yara", body=YARA_MATCH, webhook_url="http://127.0.0.1:9/x"
    )
    (hit,) = sample_watch(sample_id=scanned_sample.pk)
    delivery = webhook_deliver(hit_id=hit.pk)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.FAILED
    assert delivery.error
    assert webhook_deliver(hit_id=hit.pk) is None


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8000/hook",
        "http://localhost/hook",
        "http://[::1]/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://0.0.0.0/",
    ],
)
def test_loopback_and_link_local_targets_are_refused_by_default(researcher, url) -> None:
    with pytest.raises(ApplicationError, match="webhook URL cannot be used"):
        watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH, webhook_url=url)


def test_only_http_and_https_are_allowed(researcher) -> None:
    with pytest.raises(WebhookRefused):
        check_url("ftp://example.com/x")
    with pytest.raises(WebhookRefused):
        check_url("file:///etc/passwd")
    assert check_url("https://hooks.example.com/x").port == 443
    assert address_refused("10.1.2.3") is None  # private networks: allowed (docs/livehunt.md)
    assert address_refused("::ffff:127.0.0.1")


def test_a_name_that_resolves_to_loopback_is_refused_at_delivery(
    researcher, scanned_sample, monkeypatch
) -> None:
    monkeypatch.setattr(services, "webhook_enqueue", lambda *, hit_id: None)
    # a public-looking name is accepted when saved, then resolved (to loopback) when sent
    watch_rule_create(
        user=researcher, kind="yara", body=YARA_MATCH, webhook_url="http://hooks.localtest.me/x"
    )
    import socket

    monkeypatch.setattr(
        socket,
        "getaddrinfo",
        lambda *a, **k: [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 80))],
    )
    (hit,) = sample_watch(sample_id=scanned_sample.pk)
    delivery = webhook_deliver(hit_id=hit.pk)
    assert delivery is not None
    assert delivery.status == DeliveryStatus.REFUSED
    assert "loopback" in delivery.error
