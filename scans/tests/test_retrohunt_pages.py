"""Starting retro-hunts from the pages (the signature page and the editor), and the gate hunt
that starts on its own when a revision is submitted (threats.gates.gate_on_submit)."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.test import Client

from portal.exceptions import ApplicationError
from scans.models import HuntStatus, RetroHunt
from scans.retrohunts import retrohunt_chunk_run
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample
from threats import gates, services
from threats.tests.factories import make_family

pytestmark = pytest.mark.django_db


def _client(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def _hash_signature(author, value: str = "ab" * 32):
    return services.signature_create(
        actor=author,
        kind="hash",
        body={"algorithm": "sha256", "target": "apk", "value": value},
        family=make_family(name="Joker"),
    )


@pytest.fixture
def sample(corpus: Path, researcher):
    return stored_sample(corpus / "apks" / SMALL_APK, label="clean", user=researcher)[0]


def test_the_retro_hunt_button_hunts_the_revision_shown_and_opens_the_hunt(
    researcher, sample
) -> None:
    sig = _hash_signature(researcher, sample.sha256)
    client = _client(researcher)
    page = client.get(f"/signatures/{sig.pk}/").content.decode()
    assert 'id="retrohunt"' in page
    assert f'name="revisions" value="{sig.current_revision_id}"' in page

    response = client.post(
        "/retrohunts/",
        {"revisions": [sig.current_revision_id], "next": f"/signatures/{sig.pk}/"},
    )

    hunt = RetroHunt.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/retrohunts/{hunt.pk}/"
    assert (hunt.revision_ids, hunt.created_by, hunt.total) == (
        [sig.current_revision_id],
        researcher,
        1,
    )
    for chunk in hunt.chunks.all():
        retrohunt_chunk_run(chunk_id=chunk.pk)
    shown = client.get(response["Location"]).content.decode()
    assert 'data-status="finished"' in shown
    assert f'href="/samples/{sample.sha256}/"' in shown


def test_an_auditor_sees_no_hunt_button_and_cannot_start_one(researcher, auditor) -> None:
    sig = _hash_signature(researcher)
    client = _client(auditor)
    assert 'id="retrohunt"' not in client.get(f"/signatures/{sig.pk}/").content.decode()
    assert client.post("/retrohunts/", {"revisions": [sig.current_revision_id]}).status_code == 403
    assert not RetroHunt.objects.exists()


def test_hunt_this_draft_runs_the_unsaved_body_from_the_editor(researcher, sample) -> None:
    client = _client(researcher)
    editor = client.get("/signatures/new/").content.decode()
    assert 'id="hunt-draft"' in editor
    assert 'formaction="/retrohunts/"' in editor

    # the editor's whole form goes to the hunt view: it reads kind and body, saves nothing
    response = client.post(
        "/retrohunts/",
        {
            "kind": "hash",
            "body": f'{{"algorithm": "sha256", "target": "apk", "value": "{sample.sha256}"}}',
            "family": "",
            "description": "not saved",
            "next": "/signatures/new/",
        },
    )

    hunt = RetroHunt.objects.get()
    assert response["Location"] == f"/retrohunts/{hunt.pk}/"
    assert (hunt.rule_kind, hunt.revision_ids) == ("hash", [])
    assert hunt.rule_body == {"algorithm": "sha256", "target": "apk", "value": sample.sha256}
    from threats.models import Signature

    assert not Signature.objects.exists()


def test_a_draft_that_does_not_validate_goes_back_to_the_editor_with_the_reason(
    researcher,
) -> None:
    client = _client(researcher)
    response = client.post(
        "/retrohunts/",
        {"kind": "yara", "body": "rule broken {", "next": "/signatures/new/"},
        follow=True,
    )
    assert response.redirect_chain[-1][0] == "/signatures/new/"
    assert "The retro-hunt was not started" in response.content.decode()
    assert not RetroHunt.objects.exists()


def test_submitting_a_revision_starts_its_gate_hunt_after_commit(
    researcher, reviewer, sample, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    sent: list[list[int]] = []
    monkeypatch.setattr(
        "scans.retrohunts.chunks_enqueue", lambda *, chunk_ids: sent.append(list(chunk_ids))
    )
    sig = _hash_signature(researcher, sample.sha256)

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        services.signature_submit(signature=sig, actor=researcher)
        assert not RetroHunt.objects.exists()  # nothing before the submission commits

    hunt = RetroHunt.objects.get()
    assert len(callbacks) >= 1
    assert (hunt.revision_ids, hunt.created_by, hunt.status) == (
        [sig.current_revision_id],
        researcher,
        HuntStatus.QUEUED,
    )
    assert sent == [list(hunt.chunks.values_list("id", flat=True))]  # to queue hunts

    # when a worker runs it, the reviewer finds the revision gated (and blocked: a clean hit)
    for chunk_id in sent[0]:
        retrohunt_chunk_run(chunk_id=chunk_id)
    sig.current_revision.refresh_from_db()
    assert sig.current_revision.gate_hunt_id == hunt.pk
    with pytest.raises(ApplicationError) as refused:
        services.signature_approve(signature=sig, actor=reviewer)
    assert refused.value.extra["gate"] == "clean_hits"


def test_a_failing_submit_hook_never_undoes_the_submission(
    researcher, django_capture_on_commit_callbacks, monkeypatch
) -> None:
    calls: list[int] = []

    def broken(*, revision_ids: list[int], actor) -> None:
        calls.extend(revision_ids)
        raise RuntimeError("broker down")

    monkeypatch.setattr(gates.gate_provider(), "on_submit", broken)
    sig = _hash_signature(researcher)
    with django_capture_on_commit_callbacks(execute=True):
        services.signature_submit(signature=sig, actor=researcher)
    sig.refresh_from_db()
    assert sig.status == "in_review"
    assert calls == [sig.current_revision_id]


def test_threats_does_not_import_scans() -> None:
    import ast

    root = Path(__file__).resolve().parents[2] / "threats"
    for path in root.rglob("*.py"):
        if "tests" in path.parts or "migrations" in path.parts:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            assert not any(n == "scans" or n.startswith("scans.") for n in names), path
