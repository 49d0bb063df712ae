"""Keeping watch rules and matching new samples (livehunt.services), on a real APK."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from livehunt import services
from livehunt.models import WatchHit, WatchRule
from livehunt.selectors import active_set
from livehunt.services import (
    sample_watch,
    watch_rule_create,
    watch_rule_delete,
    watch_rule_update,
)
from livehunt.tests.conftest import KOODOUS_MATCH, PACKAGE, YARA_MATCH, YARA_MISS
from portal.exceptions import ApplicationError, ForbiddenError
from portal.models import Notification
from threats.tests.factories import make_signature

pytestmark = pytest.mark.django_db


def test_a_rule_written_directly_expires_in_30_days_by_default(researcher) -> None:
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    left = rule.expires_at - timezone.now()
    assert timedelta(days=29, hours=23) < left <= timedelta(days=30)
    assert rule.name == "yara rule tiny_app"
    assert rule.enabled
    assert rule.version == 1


@pytest.mark.parametrize(
    ("expires", "message"),
    [
        (timedelta(days=-1), "in the future"),
        (timedelta(days=366), "within 365 days"),
    ],
)
def test_an_expiry_in_the_past_or_too_far_is_refused(researcher, expires, message) -> None:
    with pytest.raises(ApplicationError, match=message):
        watch_rule_create(
            user=researcher, kind="yara", body=YARA_MATCH, expires_at=timezone.now() + expires
        )


def test_an_invalid_body_is_refused_with_the_kinds_reason(researcher) -> None:
    with pytest.raises(ApplicationError, match="The yara rule is not valid"):
        watch_rule_create(user=researcher, kind="yara", body="rule broken { condition: }")
    with pytest.raises(ApplicationError, match="Unknown signature kind"):
        watch_rule_create(user=researcher, kind="nope", body="x")


def test_a_rule_from_a_draft_revision_copies_its_body(researcher) -> None:
    signature = make_signature(kind="yara", body=YARA_MATCH, author=researcher)
    assert signature.status == "draft"
    rule = watch_rule_create(user=researcher, revision_id=signature.current_revision_id)
    assert rule.kind == "yara"
    assert "tiny_app" in rule.body
    assert rule.source_signature_id == signature.pk
    assert rule.source_revision_id == signature.current_revision_id
    by_signature = watch_rule_create(user=researcher, signature_id=signature.pk)
    assert by_signature.source_revision_id == signature.current_revision_id


def test_auditors_cannot_keep_watch_rules(auditor, researcher, researcher2) -> None:
    with pytest.raises(ForbiddenError):
        watch_rule_create(user=auditor, kind="yara", body=YARA_MATCH)
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    with pytest.raises(ForbiddenError):
        watch_rule_update(rule=rule, user=researcher2, enabled=False)
    with pytest.raises(ForbiddenError):
        watch_rule_delete(rule=rule, user=auditor)


def test_a_hit_is_recorded_and_notified_once_even_when_the_task_runs_twice(
    researcher, scanned_sample
) -> None:
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH, name="tiny")
    watch_rule_create(user=researcher, kind="yara", body=YARA_MISS)

    first = sample_watch(sample_id=scanned_sample.pk, scan_id=1)
    second = sample_watch(sample_id=scanned_sample.pk, scan_id=1)

    assert [h.rule_id for h in first] == [rule.pk]
    assert [h.pk for h in second] == [h.pk for h in first]
    assert WatchHit.objects.count() == 1
    hit = WatchHit.objects.get()
    assert hit.package == PACKAGE
    assert hit.sample_sha256 == scanned_sample.sha256
    notes = Notification.objects.filter(recipient=researcher)
    assert notes.count() == 1
    assert "tiny" in notes.get().title
    assert notes.get().url == f"/samples/{scanned_sample.sha256}/"


def test_every_kind_and_koodous_rules_match(researcher, scanned_sample) -> None:
    rules = [
        watch_rule_create(user=researcher, kind="yara", body=KOODOUS_MATCH),
        watch_rule_create(user=researcher, kind="hash", body=scanned_sample.sha256),
        watch_rule_create(
            user=researcher,
            kind="package_cert",
            body={"package": PACKAGE, "allowed_certs": ["00" * 32]},
        ),
    ]
    hits = sample_watch(sample_id=scanned_sample.pk)
    assert {h.rule_id for h in hits} == {r.pk for r in rules}
    assert Notification.objects.filter(recipient=researcher).count() == 3


def test_expired_disabled_and_deleted_rules_do_not_match(researcher, scanned_sample) -> None:
    expired = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    WatchRule.objects.filter(pk=expired.pk).update(expires_at=timezone.now())
    disabled = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    watch_rule_update(rule=disabled, user=researcher, enabled=False)
    deleted = watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    watch_rule_delete(rule=deleted, user=researcher)

    assert sample_watch(sample_id=scanned_sample.pk) == []
    assert not Notification.objects.exists()


def test_the_stamp_changes_on_add_edit_and_expiry_and_the_ruleset_is_recompiled(
    researcher, scanned_sample
) -> None:
    assert services.active_ruleset() is None
    rule = watch_rule_create(user=researcher, kind="yara", body=YARA_MISS)
    stamp1 = active_set().stamp
    compiled1 = services.active_ruleset()
    assert services.active_ruleset() is compiled1  # compiled once per stamp
    assert sample_watch(sample_id=scanned_sample.pk) == []

    # an edit (made anywhere: the stamp comes from the database) is seen by the next match
    watch_rule_update(rule=rule, user=researcher, body=YARA_MATCH)
    stamp2 = active_set().stamp
    assert stamp2 != stamp1
    assert services.active_ruleset() is not compiled1
    assert [h.rule_id for h in sample_watch(sample_id=scanned_sample.pk)] == [rule.pk]

    other = watch_rule_create(user=researcher, kind="yara", body=YARA_MISS)
    stamp3 = active_set().stamp
    assert stamp3 != stamp2
    WatchRule.objects.filter(pk=other.pk).update(expires_at=timezone.now())
    assert active_set().stamp == stamp2  # expiry needs no write to leave the set


def test_a_successful_scan_queues_the_watch_after_commit(
    researcher, small_apk, monkeypatch, django_capture_on_commit_callbacks
) -> None:
    from livehunt import tasks
    from scans.rulesets import ExplicitRuleset
    from scans.services import scan_run
    from scans.tests.factories import stored_sample

    sent: list[tuple[object, ...]] = []
    monkeypatch.setattr(tasks.watch_sample, "apply_async", lambda args, **kw: sent.append(args))
    sample, scan = stored_sample(small_apk, user=researcher)
    empty = ExplicitRuleset.of(())

    # no active rule: nothing is sent
    with django_capture_on_commit_callbacks(execute=True):
        scan_run(scan_id=scan.pk, ruleset_provider=lambda: empty)
    assert sent == []

    watch_rule_create(user=researcher, kind="yara", body=YARA_MATCH)
    _, scan2 = stored_sample(small_apk, user=researcher)
    with django_capture_on_commit_callbacks(execute=True):
        scan_run(scan_id=scan2.pk, ruleset_provider=lambda: empty)
    assert sent == [(sample.pk, scan2.pk)]
