from __future__ import annotations

import pytest
from django.test import Client

from portal.testing import PASSWORD
from releases.models import Release
from releases.services import release_build, release_publish


def logged_in(user) -> Client:
    client = Client()
    assert client.login(username=user.username, password=PASSWORD)
    return client


@pytest.mark.django_db
def test_reviewer_publishes_from_the_page_and_sees_the_diff(update_repo, signatures, reviewer):
    sig = signatures.deploy()
    client = logged_in(reviewer)
    assert b"Publish a release" in client.get("/releases/").content
    response = client.post("/releases/publish/", {"notes": "first"})
    assert response.status_code == 302
    release_build(number=1)
    page = client.get("/releases/1/").content.decode()
    assert sig.name in page or f"-{sig.pk}-1" in page
    assert "vera" in page  # the approver
    client.post("/releases/1/rollout/", {"percent": "30"})
    assert Release.objects.get(number=1).rollout_percent == 30
    client.post("/releases/1/rollout/", {"halt": "1", "reason": "bad"})
    assert Release.objects.get(number=1).halted


@pytest.mark.django_db
def test_researcher_reads_but_cannot_publish(update_repo, signatures, researcher, reviewer):
    signatures.deploy()
    release_build(number=release_publish(by=reviewer, enqueue=False).number)
    client = logged_in(researcher)
    assert b"Publish a release" not in client.get("/releases/").content
    assert client.post("/releases/publish/").status_code == 403
    assert client.post("/releases/1/rollout/", {"percent": "5"}).status_code == 403
    assert client.get("/releases/1/").status_code == 200
    assert client.get("/devices/").status_code == 200
    assert b"Releases" in client.get("/").content or client.get("/").status_code == 200
