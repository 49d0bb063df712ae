"""The OpenAPI schema tells the truth: schemathesis drives every operation of /api/schema/
through the real Django app and checks that no answer is a 500, that every answer's status
code is one the schema documents, and that every body has the documented shape.

Runs as a researcher and as a reviewer, over the operations in three parts, each run in one
database transaction over a little seeded data (a family, signatures in three states, a
stored sample and its scan, a retro-hunt, a built release, an enrolled device whose token
opens the device endpoints). Requests go
in-process through ``portal.wsgi`` (no server, no threads), so the app sees the test's
transaction; Celery tasks enqueued on commit never run. Generation is bounded and seeded: the
same cases every time (docs/decisions.md, "Schema contract"). Only DELETE /auth/token/ is left
out: it revokes the token the run uses.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from portal.models import User
from portal.services import api_token_create
from portal.testing import CORPUS, PASSWORD, gate
from releases.repository import init_dev_repository
from releases.services import device_register, release_build, release_publish
from scans.tests.factories import stored_sample
from threats.models import Status
from threats.tests.factories import make_family, make_signature

pytestmark = [pytest.mark.contract, pytest.mark.django_db]

SEED = 20_260_101
MAX_EXAMPLES = 15  # fuzzed cases per operation, on top of the schema's examples and coverage
CHECKS = [not_a_server_error, status_code_conformance, response_schema_conformance]
SMALL_APK = CORPUS / "apks" / "v1-only-with-rsa-pkcs1-sha256-1.2.840.113549.1.1.11-2048.apk"
ENROLLMENT_KEY = "contract-enrollment-key"
YARA_RULE = 'rule contract_probe { strings: $a = "sendTextMessage" condition: $a }'


@pytest.fixture
def _in_process_requests() -> Iterator[None]:
    """Django closes "old" connections when a request starts and ends; in-process requests
    share the test's connection and transaction, so keep it open (as django.test.Client
    does)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture
def _seeded(
    settings: Any, tmp_path: Path, researcher: User, reviewer: User, corpus: Path
) -> dict[str, list[Any]]:
    """A little of everything, so that the GET-by-id paths find something. Returns, per path
    parameter, the values that exist."""
    settings.RELEASE_REPO_DIR = tmp_path / "updates"
    settings.TUF_KEYS_DIR = tmp_path / "tuf-keys"
    settings.DEVICE_ENROLLMENT_KEY = ENROLLMENT_KEY
    # hundreds of registrations a minute from one address; releases/tests test the throttle
    settings.DEVICE_REGISTER_RATE = "10000/min"
    init_dev_repository()

    family = make_family(name="Joker")
    draft = make_signature(author=researcher, family=family)
    in_review = make_signature(author=researcher, family=family, status=Status.IN_REVIEW)
    deployed = make_signature(author=researcher, family=family, status=Status.DEPLOYED)
    sample, scan = stored_sample(SMALL_APK, label="clean", user=researcher)
    hunt = gate(in_review, deployed)
    release = release_build(number=release_publish(by=reviewer, enqueue=False).number)
    return {
        "family": [family.pk],
        "signature": [draft.pk, in_review.pk, deployed.pk],
        "sample": [sample.sha256],
        "scan": [scan.pk],
        "hunt": [hunt.pk],
        "release": [release.number],
    }


def _config(
    *, user: User, person_token: str, device_token: str, ids: dict[str, list[Any]], part: str
) -> Any:
    """Seeded, bounded generation; our tokens; and, for half of the cases, ids (and names,
    keys) that exist, so that the success answers are checked too, not only the 404s. Only
    the operations of ``part`` run."""

    def bind(**parameters: str) -> dict[str, Any]:
        return {
            key.replace("__", "."): {"dictionary": name, "probability": 0.5}
            for key, name in parameters.items()
        }

    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "suppress-health-check": ["all"],
            "generation": {
                "max-examples": MAX_EXAMPLES,
                "deterministic": True,
                "database": "none",
            },
            # each operation on its own; the schema declares no links between operations
            "phases": {"stateful": {"enabled": False}},
            "auth": {
                "openapi": {
                    "tokenAuth": {"api_key": f"Token {person_token}"},
                    "deviceTokenAuth": {"api_key": f"Token {device_token}"},
                }
            },
            "dictionaries": {
                **{name: {"values": values} for name, values in ids.items()},
                "family_ref": {"values": [str(pk) for pk in ids["family"]]},
                "username": {"values": [user.username]},
                "password": {"values": [PASSWORD]},
                "enrollment_key": {"values": [ENROLLMENT_KEY]},
                "kind": {"values": ["yara"]},
                "rule": {"values": [YARA_RULE]},
            },
            "operations": [
                {"include-path-regex": _turned_off(part), "enabled": False},
                {
                    "include-path-regex": "^/api/v1/families/",
                    "parameters": bind(path__id="family"),
                },
                {
                    "include-path-regex": r"^/api/v1/signatures/\{id\}/",
                    "parameters": bind(path__id="signature", body__family="family_ref"),
                },
                {
                    "include-path": "/api/v1/signatures/",
                    "parameters": bind(
                        body__family="family_ref", body__kind="kind", body__body="rule"
                    ),
                },
                {
                    "include-path": "/api/v1/signatures/validate/",
                    "parameters": bind(body__kind="kind", body__body="rule"),
                },
                {
                    "include-path": "/api/v1/signatures/bulk/",
                    "parameters": bind(**{"body__ids[*]": "signature"}),
                },
                {
                    "include-path-regex": "^/api/v1/samples/",
                    "parameters": bind(path__sha256="sample"),
                },
                {
                    "include-path-regex": "^/api/v1/scans/",
                    "parameters": bind(path__scan_id="scan", body__sample="sample"),
                },
                {
                    "include-path-regex": "^/api/v1/retrohunts/",
                    "parameters": bind(
                        path__hunt_id="hunt",
                        body__rule__kind="kind",
                        body__rule__body="rule",
                        **{"body__signatures[*]": "signature"},
                    ),
                },
                {
                    "include-path-regex": "^/api/v1/releases/",
                    "parameters": bind(path__number="release"),
                },
                {
                    "include-path": "/api/v1/auth/token/",
                    "parameters": bind(body__username="username", body__password="password"),
                },
                {
                    "include-path": "/api/v1/devices/register/",
                    "parameters": bind(body__enrollment_key="enrollment_key"),
                },
            ],
        }
    )


# The operations in three parts, run as separate tests (for each role), so that pytest-xdist
# can run them side by side: one run over every operation took most of the fast suite's wall
# time on one core. "rest" is every operation the other parts leave, so none is forgotten.
PARTS = {
    "signatures": r"/api/v1/signatures/",
    "samples": r"/api/v1/(samples|scans|retrohunts|families)/",
}


def _turned_off(part: str) -> str:
    """A path regex for the operations ``part`` does not run."""
    if part in PARTS:
        return f"^(?!{PARTS[part]})"
    return "^(" + "|".join(PARTS.values()) + ")"


@pytest.fixture(
    params=[(role, part) for role in ("researcher", "reviewer") for part in [*PARTS, "rest"]],
    ids=lambda param: "-".join(param),
)
def contract_schema(
    request: pytest.FixtureRequest,
    _in_process_requests: None,
    _seeded: dict[str, list[Any]],
    researcher: User,
    reviewer: User,
) -> Any:
    from portal.wsgi import application

    # schemathesis 4.32 reads and rewrites ``node._nodeid`` to name each operation's subtest;
    # pytest 9 keeps the id elsewhere. Give it the attribute (only labels depend on it).
    request.node._nodeid = request.node.nodeid
    role, part = request.param
    user = {"researcher": researcher, "reviewer": reviewer}[role]
    _, person_token = api_token_create(user=user)
    device_token = device_register(enrollment_key=ENROLLMENT_KEY).token
    config = _config(
        user=user, person_token=person_token, device_token=device_token, ids=_seeded, part=part
    )
    return schemathesis.openapi.from_wsgi(
        "/api/schema/?format=json",
        application,
        config=config,
        headers={"Authorization": f"Token {person_token}"},
    )


@pytest.fixture
def contract_tally(request: pytest.FixtureRequest) -> Iterator[dict[str, Counter[int]]]:
    """Status codes per operation. A run whose requests all bounce (a 401 is documented too)
    must not pass: every read answers 200 at least once."""
    tally: dict[str, Counter[int]] = defaultdict(Counter)
    yield tally
    cases = sum(sum(codes.values()) for codes in tally.values())
    print(f"\nschema contract: {len(tally)} operations, {cases} cases")
    never = sorted(op for op, codes in tally.items() if op.startswith("GET ") and 200 not in codes)
    assert tally, "no operation ran"
    assert not never, f"reads that never answered 200: {never}"


# DELETE /auth/token/ revokes the very token the run authenticates with: every later case
# would be a 401. portal/tests/test_auth.py covers it. DELETE /devices/me/ deletes the device
# whose token opens the device endpoints, likewise (releases/tests/test_reports.py covers it).
schema = (
    schemathesis.pytest.from_fixture("contract_schema")
    .exclude(method="DELETE", path="/api/v1/auth/token/")
    .exclude(method="DELETE", path="/api/v1/devices/me/")
)


@schema.parametrize()
def test_every_operation_answers_as_the_schema_says(
    case: Any, contract_tally: dict[str, Counter[int]]
) -> None:
    response = case.call_and_validate(checks=CHECKS)
    contract_tally[case.operation.label][response.status_code] += 1
