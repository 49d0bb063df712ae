from __future__ import annotations

from collections import Counter

import pytest
from rest_framework.test import APIClient

from engine.rollout import rollout_bucket
from portal.services import api_token_create
from releases.models import Device
from releases.services import (
    release_build,
    release_halt,
    release_publish,
    release_rollout,
)
from releases.tests.conftest import ENROLLMENT_KEY

UPDATE = "/api/v1/devices/update/"
REGISTER = "/api/v1/devices/register/"


def publish(by, **kwargs):
    release = release_publish(by=by, enqueue=False, **kwargs)
    return release_build(number=release.number)


def device_client(token: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    return client


@pytest.mark.django_db
def test_register_gives_a_token_once_and_a_wrong_key_is_403(update_repo) -> None:
    client = APIClient()
    body = {
        "enrollment_key": ENROLLMENT_KEY,
        "model": "Pixel 8",
        "app_version": "1.2.0",
        "engine_version": 1,
        "os_version": "14",
        "channel": "beta",
    }
    response = client.post(REGISTER, body, format="json")
    assert response.status_code == 201
    device = Device.objects.get(device_id=response.json()["device_id"])
    assert device.channel == "beta"
    assert response.json()["token"] not in device.token_hash
    wrong = client.post(REGISTER, {**body, "enrollment_key": "guess"}, format="json")
    assert wrong.status_code == 403
    assert wrong.json()["message"] == "The enrollment key is not valid."


@pytest.mark.django_db
def test_register_is_throttled(update_repo, settings) -> None:
    settings.DEVICE_REGISTER_RATE = "2/min"
    client = APIClient()
    codes = [
        client.post(REGISTER, {"enrollment_key": "x"}, format="json").status_code for _ in range(3)
    ]
    assert codes == [403, 403, 429]


@pytest.mark.django_db
def test_device_token_opens_only_device_endpoints(update_repo, make_device, reviewer, api) -> None:
    _, token = make_device()
    device = device_client(token)
    assert device.get(UPDATE, {"installed": 0}).status_code == 200
    for path in ("/api/v1/releases/", "/api/v1/auth/me/"):
        assert device.get(path).status_code == 401


@pytest.mark.django_db
def test_people_cannot_use_device_endpoints(update_repo, reviewer, api) -> None:
    # a session (force_authenticate stands for it) and a person's API token are both refused
    assert api(reviewer).get(UPDATE).status_code in (401, 403)
    session = APIClient()
    session.login(username=reviewer.username, password="correct horse battery staple")
    assert session.get(UPDATE).status_code == 401
    _, key = api_token_create(user=reviewer)
    assert device_client(key).get("/api/v1/auth/me/").status_code == 200  # the token works...
    assert device_client(key).get(UPDATE).status_code == 401  # ...but not here


@pytest.mark.django_db
def test_up_to_date_then_full_then_delta(update_repo, make_device, signatures, reviewer) -> None:
    _, token = make_device()
    client = device_client(token)
    assert client.get(UPDATE, {"installed": 0}).json() == {
        "up_to_date": True,
        "min_wait_seconds": 0,
    }
    signatures.deploy()
    publish(reviewer)
    assert client.get(UPDATE, {"installed": 0}).json()["target"] == "full-1.bin"
    signatures.deploy()
    publish(reviewer)
    answer = client.get(UPDATE, {"installed": 1}).json()
    assert answer == {"version": 2, "target": "delta-1-2.bin", "min_wait_seconds": 0}
    assert client.get(UPDATE, {"installed": "x"}).status_code == 400


def test_rollout_bucket_is_stable_and_spread() -> None:
    assert rollout_bucket("a3b0c2f4-0000-4000-8000-000000000000") == rollout_bucket(
        "a3b0c2f4-0000-4000-8000-000000000000"
    )
    import uuid

    buckets = Counter(rollout_bucket(str(uuid.UUID(int=i))) // 10 for i in range(5000))
    assert all(400 < n < 600 for n in buckets.values())


@pytest.mark.django_db
def test_staged_rollout_beta_first_and_halt(update_repo, make_device, signatures, reviewer) -> None:
    stable = [make_device() for _ in range(40)]
    _, beta_token = make_device("beta")
    signatures.deploy()
    publish(reviewer)
    release_rollout(number=1, percent=1, by=reviewer)

    def offered(token: str) -> bool:
        return "version" in device_client(token).get(UPDATE, {"installed": 0}).json()

    # then only stable devices whose bucket is under 1% get it, always the same ones; beta all
    expected = {d.device_id for d, _ in stable if d.rollout_bucket < 1}
    assert {d.device_id for d, t in stable if offered(t)} == expected
    assert offered(beta_token)
    release_rollout(number=1, percent=100, by=reviewer)
    assert all(offered(t) for _, t in stable)
    # a halted release is never offered; the newest non-halted one is
    signatures.deploy()
    publish(reviewer)
    release_halt(number=2, by=reviewer)
    answer = device_client(beta_token).get(UPDATE, {"installed": 0}).json()
    assert answer["version"] == 1
    assert device_client(beta_token).get(UPDATE, {"installed": 1}).json()["up_to_date"] is True


@pytest.mark.django_db
def test_per_device_throttle_answers_429_with_retry_after(
    update_repo, make_device, settings
) -> None:
    settings.DEVICE_UPDATE_RATE = "2/min"
    _, token = make_device()
    _, other = make_device()
    client = device_client(token)
    codes = [client.get(UPDATE, {"installed": 0}).status_code for _ in range(3)]
    assert codes == [200, 200, 429]
    throttled = client.get(UPDATE, {"installed": 0})
    assert int(throttled["Retry-After"]) > 0
    assert throttled.json()["extra"]["retry_after_seconds"] > 0
    assert device_client(other).get(UPDATE, {"installed": 0}).status_code == 200
