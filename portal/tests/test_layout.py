"""In Chromium: no page scrolls sideways on a 1366 px laptop or a 390 px phone, with the long
names, hashes, package names, tags and certificate subjects that real data has; at 1366 px the
signature list and the audit log show every column without scrolling, "Hits m/c/u" stays on
one line and signature names never break.

The pages: every entry of the navigation (read from the page, so a new area is checked as soon
as it is added), the page one click below each list (a signature, a sample, a scan, a
retro-hunt, a release, a family), the forms (upload, new signature) and the notifications, as a
reviewer who is also an auditor (the widest tables anyone sees: bulk checkboxes, the Audit
entry). The dashboard has this week's releases, halts and phone detections of long-named
families; the release page's halt dialog fits a phone."""

from __future__ import annotations

import secrets
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from django.utils import timezone

from portal.audit import audit_log
from portal.models import User
from portal.testing import PASSWORD, gate
from releases.models import DetectionReport
from releases.services import device_register, release_build, release_publish
from releases.tests.conftest import (  # noqa: F401 - fixture
    ENROLLMENT_KEY,
    SignatureMaker,
    update_repo,
)
from scans.models import Label, RetroHunt, Sample, ScanJob
from scans.services import sample_ingest, scan_run
from threats.models import Category, Signature, Status, Tag
from threats.tests.factories import make_family, make_signature

pytestmark = [pytest.mark.browser, pytest.mark.integration]

LAPTOP = (1366, 768)
PHONE = (390, 844)

# Real APKs of the shared corpus: many components and permissions, several signers.
APKS = ("InsecureBankv2.apk", "issue1498.apk", "app-prod-debug.apk")
AUTHORS = ("oluwaseun.adeyemi-hartmann", "margarethe.lindqvist", "j.castellanos-ruiz")
FAMILIES = (
    ("SharkBotDropper", Category.PAYMENT_TROJAN),
    ("JokerSubscriber", Category.SMS_FRAUD),
    ("SpyNoteAccessibility", Category.SPYWARE),
)
TAGS = ("banking-overlay", "accessibility-abuse", "play-store", "2026-q4-campaign", "otp-theft")
LONG_URL = "https://secure-login.bankofamerica-verify-account.example/mobile/auth/otp?session="


@dataclass(frozen=True)
class Pages:
    """The URLs to check, once the data behind them exists."""

    urls: dict[str, str]


def _signatures(authors: list[User]) -> list[Signature]:
    """Thirty signatures of three kinds with long family names, several tags and hit counts."""
    families = [make_family(name=name, category=category) for name, category in FAMILIES]
    tags = [Tag.objects.create(name=name) for name in TAGS]
    statuses = (Status.DEPLOYED, Status.IN_REVIEW, Status.DRAFT)
    made = []
    for i in range(30):
        kind = ("hash", "indicator", "hash")[i % 3]
        body: Any = (
            {"type": "url", "value": LONG_URL + secrets.token_hex(12)}
            if kind == "indicator"
            else {"algorithm": "sha256", "value": secrets.token_hex(32), "target": "apk"}
        )
        sig = make_signature(
            id=20_400 + i,  # a database that has been in use: five-digit ids in the names
            kind=kind,
            body=body,
            family=families[i % 3],
            author=authors[i % 3],
            status=statuses[i % 3],
            description="Overlay on 212 banking apps; steals SMS one-time passwords.",
            references=[LONG_URL + "report"],
        )
        sig.tags.set(tags[: 2 + i % 4])
        made.append(sig)
    gate(*(s for s in made if s.status == Status.DEPLOYED))
    Signature.objects.filter(pk__in=[s.pk for s in made]).update(
        hits_malicious=12_408, hits_clean=3, hits_unknown=20_771, last_hit_at=timezone.now()
    )
    return made


def _samples(corpus: Path, tmp_path: Path, user: User) -> list[tuple[Sample, ScanJob]]:
    stored = []
    for i, name in enumerate(APKS):
        # the name an upload arrived with: long, as crawled files are
        path = tmp_path / f"com.example.{name[:-4].lower()}-release-signed-aligned-v2.3.1.apk"
        shutil.copy(corpus / "apks" / name, path)
        label = (Label.MALICIOUS, Label.CLEAN, Label.UNKNOWN)[i]
        sample, scan, _ = sample_ingest(path=path, label=label, user=user)
        stored.append((sample, scan))
    return stored


def _detections(signatures: list[Signature]) -> None:
    """A phone's detections of this week, so the dashboard draws its families chart."""
    device = device_register(enrollment_key=ENROLLMENT_KEY, model="Pixel 8 Pro").device
    now = timezone.now()
    for i, sig in enumerate(signatures[:9]):
        DetectionReport.objects.create(
            device=device,
            day=now.date(),
            signature_id=sig.pk,
            revision=1,
            release=1,
            app_sha256=secrets.token_hex(32),
            package="com.example.banking.overlay.campaign" + str(i),
            detected_at=now,
        )


def _audit_entries(actor: User) -> None:
    for i in range(5):
        audit_log(
            actor=actor,
            action="signature.tags",
            object_type="threats.signature",
            object_id=i,
            object_repr=f"Andr.SmsFraud.JokerSubscriber-{1000 + i}-3",
            before={"tags": list(TAGS[:2]), "references": [LONG_URL + "before"]},
            after={"tags": list(TAGS), "references": [LONG_URL + "after-" + "x" * 40]},
            reason="merged the Q4 campaign tags after the vendor report of 27 November",
        )


@pytest.fixture
def pages(
    make_user: Callable[..., User],
    corpus: Path,
    tmp_path: Path,
    update_repo: Any,  # noqa: F811
) -> Pages:
    """Data as researchers make it: samples scanned under a published release, a retro-hunt
    with matches, signatures by several authors, audited changes."""
    authors = [make_user("researcher", username=name) for name in AUTHORS]
    approver = make_user("reviewer", username="vera.okonkwo-lindqvist")
    sigs = _signatures(authors)
    stored = _samples(corpus, tmp_path, authors[0])
    # a deployed hash signature for the first APK: its gate hunt matches it, the release ships it
    hit = SignatureMaker(authors[1], approver).deploy(stored[0][0].sha256)
    release = release_publish(by=approver, notes="Q4 banking overlays " * 6, enqueue=False)
    release_build(number=release.number)
    for _, scan in stored:
        scan_run(scan_id=scan.pk)
    sigs[0].linked_samples = [sample.sha256 for sample, _ in stored]
    sigs[0].save(update_fields=["linked_samples"])
    _audit_entries(authors[0])
    _detections(sigs)
    hunt = RetroHunt.objects.filter(matches__isnull=False).latest("pk")
    sample, scan = stored[0]
    return Pages(
        {
            "dashboard": "/",
            "signature list": "/signatures/",
            "review queue": "/signatures/review/",
            "signature": f"/signatures/{sigs[0].pk}/",
            "deployed signature": f"/signatures/{hit.pk}/",
            "family list": "/families/",
            "family": f"/families/{sigs[0].family_id}/",
            "sample list": "/samples/",
            "sample": f"/samples/{sample.sha256}/",
            "scan list": "/scans/",
            "scan": f"/scans/{scan.pk}/",
            "retro-hunt list": "/retrohunts/",
            "retro-hunt": f"/retrohunts/{hunt.pk}/",
            "release list": "/releases/",
            "release": f"/releases/{release.number}/",
            "devices": "/devices/",
            "audit log": "/audit/",
            "upload": "/samples/upload/",
            "new signature": "/signatures/new/",
            "notifications": "/notifications/",
        }
    )


@pytest.fixture
def viewer(make_user: Callable[..., User]) -> User:
    return make_user("reviewer", "auditor", username="k.nakamura-obrien")


def _open(browser: Any, live_server: Any, user: User, size: tuple[int, int]) -> Any:
    context = browser.new_context(
        base_url=live_server.url, viewport={"width": size[0], "height": size[1]}
    )
    context.set_default_timeout(15_000)
    page = context.new_page()
    page.goto("/accounts/login/")
    page.fill("#id_username", user.username)
    page.fill("#id_password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: "/accounts/login/" not in url)
    return page


# How wide the page is, and which table cells end beyond what can be seen of them (past the
# viewport, or past the scrolling box they sit in).
MEASURE = """() => {
  const root = document.documentElement, seen = root.clientWidth;
  let clipped = 0;
  for (const cell of document.querySelectorAll("main th, main td")) {
    if (!cell.offsetParent) continue;
    let right = seen;
    for (let el = cell.parentElement; el && el !== document.body; el = el.parentElement) {
      if (getComputedStyle(el).overflowX !== "visible")
        right = Math.min(right, el.getBoundingClientRect().right);
    }
    if (cell.getBoundingClientRect().right > right + 1) clipped += 1;
  }
  return {width: root.scrollWidth, seen: seen, clipped: clipped};
}"""

# How many lines an element's text takes.
LINES = """(el) => {
  const range = document.createRange();
  range.selectNodeContents(el);
  return new Set([...range.getClientRects()].filter(r => r.width > 0)
                 .map(r => Math.round(r.top))).size;
}"""

# Is the element within the viewport and within every scrolling box around it?
VISIBLE = """(el) => {
  const box = el.getBoundingClientRect();
  if (box.width === 0) return false;
  let right = document.documentElement.clientWidth;
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    if (getComputedStyle(p).overflowX !== "visible")
      right = Math.min(right, p.getBoundingClientRect().right);
  }
  return box.right <= right + 1;
}"""


def _nav(page: Any) -> dict[str, str]:
    """The navigation's entries on the page shown: {"nav: label": url}."""
    links = page.locator("nav.areas a")
    return {
        f"nav: {links.nth(i).inner_text()}": links.nth(i).get_attribute("href")
        for i in range(links.count())
    }


def _widths(page: Any, pages: Pages) -> dict[str, dict[str, int]]:
    measured = {}
    page.goto("/")
    seen = set(pages.urls.values())
    urls = {**pages.urls, **{k: v for k, v in _nav(page).items() if v not in seen}}
    for name, url in urls.items():
        answer = page.goto(url)
        assert answer is not None, f"{name} ({url}): no answer"
        assert answer.ok, f"{name} ({url}): {answer.status}"
        measured[name] = page.evaluate(MEASURE)
    return measured


@pytest.mark.parametrize("size", [LAPTOP, PHONE], ids=["1366px", "390px"])
def test_no_page_scrolls_sideways(
    browser: Any, live_server: Any, pages: Pages, viewer: User, size: tuple[int, int]
) -> None:
    # given a reviewer and auditor on a laptop or a phone
    page = _open(browser, live_server, viewer, size)
    # when they open every page of the navigation and one page below each list
    measured = _widths(page, pages)
    print(f"\n{size[0]}x{size[1]}", *(f"{k}: {v}" for k, v in measured.items()), sep="\n  ")
    # then none is wider than the window: wide tables scroll inside their own box
    too_wide = {name: m["width"] for name, m in measured.items() if m["width"] > m["seen"] + 1}
    assert too_wide == {}, f"wider than {size[0]} px: {too_wide}"
    # and every entry of the navigation is in view: it wraps rather than hiding entries
    links = page.locator("nav.areas a")
    entries = [links.nth(i) for i in range(links.count())]
    assert "Audit" in [link.inner_text() for link in entries]
    hidden = [link.inner_text() for link in entries if not link.evaluate(VISIBLE)]
    assert hidden == [], f"navigation entries cut off: {hidden}"
    page.context.close()


def test_the_signature_list_and_audit_log_fit_a_laptop(
    browser: Any, live_server: Any, pages: Pages, viewer: User
) -> None:
    # given a reviewer and auditor on a 1366 px laptop
    page = _open(browser, live_server, viewer, LAPTOP)
    # when they open the signature list
    page.goto(pages.urls["signature list"])
    table = page.locator("table.signatures")
    # then Author, Tags and Updated are in view without scrolling the table
    for column in ("Author", "Tags", "Updated"):
        header = table.locator("thead th", has_text=column)
        assert header.evaluate(VISIBLE), f"the {column} column is cut off"
    # and the hit counts and every signature name stay on one line
    assert table.locator("thead th", has_text="Hits").evaluate(LINES) == 1
    assert table.locator("td.hits").first.evaluate(LINES) == 1
    names = table.locator("tbody td a.mono")
    assert names.count() == 31
    assert max(names.nth(i).evaluate(LINES) for i in range(names.count())) == 1
    # when they open the audit log, its last column is in view too
    page.goto(pages.urls["audit log"])
    assert page.locator("#audit-rows thead th", has_text="Changes").evaluate(VISIBLE)
    assert page.locator("#audit-rows td").last.evaluate(VISIBLE)
    # when they open a signature, its details take most of the row beside the actions
    page.goto(pages.urls["signature"])
    details = page.locator(".card:has(> dl.facts)").first.bounding_box()
    assert details is not None
    assert details["width"] >= 600
    page.context.close()


def test_the_halt_dialog_fits_a_phone(
    browser: Any, live_server: Any, pages: Pages, viewer: User
) -> None:
    # given a reviewer on a published release's page, on a phone
    page = _open(browser, live_server, viewer, PHONE)
    page.goto(pages.urls["release"])
    # when they press Halt, the dialog, its reason box and both buttons are in view
    page.click("#halt-open")
    dialog = page.locator("#halt-dialog")
    for part in (dialog, page.locator("#halt-reason"), dialog.locator("button[name=halt]")):
        box = part.bounding_box()
        assert box is not None
        assert box["x"] >= 0
        assert box["x"] + box["width"] <= PHONE[0]
    assert page.evaluate(MEASURE)["width"] <= PHONE[0]
    page.context.close()
