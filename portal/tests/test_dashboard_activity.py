"""The dashboard says what happened this week, and every figure on it is a link to the list it
counts: signatures by status, approvals, releases published and halted (by a person or
automatically), and the families phones detected most, as a bar chart."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone
from lxml import html

from portal.models import User
from releases.models import AutoHalt, DetectionReport, HaltRule, Release
from releases.services import (
    device_register,
    release_build,
    release_halt,
    release_halt_locked,
    release_publish,
)
from releases.tests.conftest import (  # noqa: F401 - fixture
    ENROLLMENT_KEY,
    SignatureMaker,
    update_repo,
)
from threats.models import Category, Family, Severity, Status

pytestmark = pytest.mark.django_db

HALT_REASON = "false positives on com.example.bank"


def _panel(doc: Any, title: str) -> Any:
    [panel] = doc.xpath(f'//section[@aria-label="{title}"]')
    return panel


def _figures(panel: Any) -> dict[str, tuple[str, str | None]]:
    """{label: (figure, link)} of a panel's facts."""
    out = {}
    for dt in panel.xpath(".//dl/dt"):
        dd = dt.getnext()
        links = dd.xpath("./a/@href")
        out[dt.text_content().strip()] = (dd.text_content().strip(), links[0] if links else None)
    return out


@pytest.fixture
def week(make_user: Callable[..., User], update_repo: Any) -> dict[str, Any]:  # noqa: F811
    """This week: three deployed signatures and a draft, releases 1 and 2 published, release 1
    halted by a person, release 2 halted automatically, and phones reporting detections of two
    families."""
    author = make_user("researcher", username="r.author")
    approver = make_user("reviewer", username="v.approver")
    maker = SignatureMaker(author, approver)
    joker = [maker.deploy() for _ in range(2)]
    release_build(number=release_publish(by=approver, enqueue=False).number)
    shark = maker.deploy()
    shark.family = Family.objects.create(
        name="SharkBotDropper", category=Category.PAYMENT_TROJAN, severity=Severity.MALICIOUS
    )
    shark.save(update_fields=["family"])
    release_build(number=release_publish(by=approver, enqueue=False).number)
    maker.deploy(status=Status.DRAFT)
    release_halt(number=1, by=approver, reason=HALT_REASON)
    second = Release.objects.get(number=2)
    AutoHalt.objects.create(
        release=second,
        rule=HaltRule.CLEAN_APP,
        signature_id=shark.pk,
        revision=1,
        app_sha256=hashlib.sha256(b"bank").hexdigest(),
        package="com.example.bank",
        reason="reported on an app labelled clean",
    )
    with transaction.atomic():
        release_halt_locked(second, by=None, reason="auto", action="release.auto_halt")
    device = device_register(enrollment_key=ENROLLMENT_KEY).device
    now = timezone.now()
    for sig, times in ((joker[0], 5), (joker[1], 2), (shark, 3)):
        for i in range(times):
            DetectionReport.objects.create(
                device=device,
                day=now.date(),
                signature_id=sig.pk,
                revision=1,
                release=2,
                app_sha256=hashlib.sha256(f"{sig.pk}-{i}".encode()).hexdigest(),
                detected_at=now,
            )
    return {"joker": joker, "shark": shark}


@pytest.fixture
def client_as(make_user: Callable[..., User]) -> Client:
    client = Client()
    client.force_login(make_user("reviewer", "auditor", username="k.nakamura"))
    return client


def test_every_figure_links_to_the_list_it_counts(week: dict[str, Any], client_as: Client) -> None:
    # when a reviewer opens the dashboard
    doc = html.fromstring(client_as.get("/").content)
    # then each signature figure links to the signature list filtered to that status
    signatures = _figures(_panel(doc, "Signatures"))
    assert signatures["Deployed"] == ("3", "/signatures/?status=deployed")
    assert signatures["Draft"] == ("1", "/signatures/?status=draft")
    assert signatures["Review queue"][1] == "/signatures/review/"
    # and following one lists exactly what it counted
    page = html.fromstring(client_as.get(signatures["Deployed"][1]).content)
    assert len(page.xpath('//table[contains(@class, "signatures")]/tbody/tr')) == 3
    # the release figures link to the release, the devices and this week's audit entries
    releases = _figures(_panel(doc, "Releases"))
    assert releases["Latest release"][1] == "/releases/2/"
    assert releases["Devices"] == ("1", "/devices/")
    this_week = _figures(_panel(doc, "Releases this week"))
    assert this_week["Published"] == ("2", "/releases/")
    halted, audit_url = this_week["Halted by a person"]
    assert halted == "1"  # release 1; release 2 was halted by the portal
    assert audit_url is not None
    query = parse_qs(urlsplit(audit_url).query)
    assert query["action"] == ["release.halt"]
    assert query["date_from"] == [(timezone.localdate() - timedelta(days=6)).isoformat()]
    # and the halt's reason is what the auditor finds there
    assert HALT_REASON in client_as.get(audit_url).content.decode()
    assert this_week["Halted automatically"][0] == "1"
    # no figure of these panels is left without a link (the system's health has no list; the
    # scans app's Verdicts panel is scans.selectors.dashboard_panels, not linked yet)
    unlinked = [
        (title, label)
        for section in doc.xpath("//section[@aria-label]")
        if (title := section.get("aria-label")) not in ("System", "Verdicts")
        for label, (_, url) in _figures(section).items()
        if url is None
    ]
    assert unlinked == []


def test_the_week_lists_releases_halts_and_approvals(
    week: dict[str, Any], client_as: Client
) -> None:
    doc = html.fromstring(client_as.get("/").content)
    events = [
        (li.text_content(), li.xpath("./a/@href"))
        for li in _panel(doc, "Releases this week").xpath(".//ul[@class='events']/li")
    ]
    texts = [" ".join(text.split()) for text, _ in events]
    assert any("Release 2 published by v.approver" in t for t in texts)
    assert any("Release 1 halted" in t and "automatically" not in t for t in texts)
    shark = week["shark"].pk
    auto = [e for e in events if "halted automatically" in e[0]]
    assert auto[0][1] == [f"/releases/2/#auto-halt-{shark}"]
    assert "com.example.bank" in auto[0][0]
    approvals = _panel(doc, "Approvals this week")
    assert _figures(approvals)["Revisions approved"][0] == "4"
    links = approvals.xpath(".//ul[@class='events']/li/a/@href")
    assert f"/signatures/{shark}/" in links


def test_top_families_this_week_is_a_chart_of_phone_detections(
    week: dict[str, Any], client_as: Client
) -> None:
    doc = html.fromstring(client_as.get("/").content)
    panel = _panel(doc, "Top families this week (phone detections)")
    rows = panel.xpath(".//ol[contains(@class, 'chart')]/li")
    names = [row.xpath(".//span[@class='name']")[0].text_content() for row in rows]
    figures = [row.xpath(".//span[@class='figure']")[0].text_content() for row in rows]
    # the most detected family first, with its bar the longest, each linking to its signatures
    assert names == ["Joker", "SharkBotDropper"]
    assert figures == ["7", "3"]
    widths = [float(row.xpath(".//rect/@width")[0]) for row in rows]
    assert widths[0] == 100
    assert 40 <= widths[1] <= 45
    assert rows[1].xpath(".//a/@href")[0] == "/signatures/?family=SharkBotDropper"
    assert "10 detection(s) in 2 family(ies)" in panel.text_content()


def test_a_quiet_week_says_so(make_user: Callable[..., User], client_as: Client) -> None:
    doc = html.fromstring(client_as.get("/").content)
    panel = _panel(doc, "Top families this week (phone detections)")
    assert "No phone has reported a detection this week." in panel.text_content()
    assert "Nothing this week." in _panel(doc, "Releases this week").text_content()


def test_the_favicon_is_linked_and_answers(client_as: Client) -> None:
    doc = html.fromstring(client_as.get("/").content)
    [icon] = doc.xpath('//link[@rel="icon"]/@href')
    assert icon.endswith(".svg")
    answer = client_as.get("/favicon.ico")
    assert answer.status_code == 302
    assert answer["Location"] == icon
