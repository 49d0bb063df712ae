"""The hunts list names a hunt's first rules and counts the rest from its records."""

from __future__ import annotations

import pytest
from django.test import Client

from scans.models import RetroHunt
from scans.retrohunts import retrohunt_create
from threats import services
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db


def _hash_signatures(author, n: int) -> list[int]:
    family = make_family(name="Joker")
    return [
        services.signature_create(
            actor=author,
            kind="hash",
            body={"algorithm": "sha256", "target": "apk", "value": f"{i:02x}" * 32},
            family=family,
        ).pk
        for i in range(n)
    ]


def _row(html: str, hunt: RetroHunt) -> str:
    start = html.index(f'href="/retrohunts/{hunt.pk}/"')
    return html[start : html.index("</tr>", start)]


def test_the_list_shows_the_first_rules_and_how_many_more_the_hunt_ran(researcher) -> None:
    # given a hunt of five signatures and a hunt of one unsaved rule
    ids = _hash_signatures(researcher, 5)
    five = retrohunt_create(user=researcher, signature_ids=ids, enqueue=False)
    unsaved = retrohunt_create(
        user=researcher,
        rule={"kind": "hash", "body": {"algorithm": "sha256", "target": "apk", "value": "ef" * 32}},
        enqueue=False,
    )
    assert len(five.revision_ids) == 5
    assert unsaved.revision_ids == []
    # when the researcher opens the hunts list
    client = Client()
    client.force_login(researcher)
    html = client.get("/retrohunts/").content.decode()
    # then the five-signature hunt names three and counts two more; the unsaved rule, none more
    assert "and 2 more" in _row(html, five)
    assert "unsaved hash rule" in _row(html, unsaved)
    assert "more" not in _row(html, unsaved)
