from __future__ import annotations

from django.test import Client
from django.test.utils import override_settings
from rest_framework.test import APIClient

from portal.models import AuditEntry, User
from portal.testing import PASSWORD


def _token(client: APIClient, user: User) -> str:
    response = client.post(
        "/api/v1/auth/token/", {"username": user.username, "password": PASSWORD}, format="json"
    )
    assert response.status_code == 200, response.content
    return str(response.json()["token"])


def test_token_works_and_a_revoked_one_gets_401(researcher: User) -> None:
    client = APIClient()
    # given a token obtained with username and password
    token = _token(client, researcher)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    # when it is used, it opens the API as that user
    me = client.get("/api/v1/auth/me/")
    assert me.status_code == 200
    assert me.json() == {"username": researcher.username, "roles": ["researcher"]}
    # when it is revoked
    assert client.delete("/api/v1/auth/token/").status_code == 204
    # then it gets 401 with a JSON message
    response = client.get("/api/v1/auth/me/")
    assert response.status_code == 401
    assert response.json()["message"] == "Invalid or revoked token."


def test_a_second_token_survives_revoking_the_first(researcher: User) -> None:
    first, second = APIClient(), APIClient()
    first.credentials(HTTP_AUTHORIZATION=f"Token {_token(first, researcher)}")
    second.credentials(HTTP_AUTHORIZATION=f"Token {_token(second, researcher)}")
    first.delete("/api/v1/auth/token/")
    assert second.get("/api/v1/auth/me/").status_code == 200


def test_token_with_wrong_password_is_refused_in_json(researcher: User) -> None:
    response = APIClient().post(
        "/api/v1/auth/token/", {"username": researcher.username, "password": "nope"}, format="json"
    )
    assert response.status_code == 401
    assert response.json() == {"message": "Wrong username or password.", "extra": {}}


def test_token_request_without_fields_says_what_is_missing(db: None) -> None:
    response = APIClient().post("/api/v1/auth/token/", {}, format="json")
    assert response.status_code == 400
    body = response.json()
    assert body["message"].startswith("username:")
    assert "password" in body["extra"]["fields"]


def test_stored_token_is_only_a_hash(researcher: User) -> None:
    token = _token(APIClient(), researcher)
    stored = researcher.api_tokens.get()
    assert token not in stored.key_hash
    assert len(stored.key_hash) == 64


@override_settings(LOGIN_FAILURE_LIMIT=3)
def test_failed_logins_are_rate_limited(client: Client, researcher: User) -> None:
    # given three wrong passwords
    for _ in range(3):
        response = client.post(
            "/accounts/login/", {"username": researcher.username, "password": "wrong"}
        )
        assert response.status_code == 200
        assert b"Wrong username or password." in response.content
    # when even the right password is tried next
    response = client.post(
        "/accounts/login/", {"username": researcher.username, "password": PASSWORD}
    )
    # then it is refused for a while, saying so
    assert response.status_code == 429
    assert b"Too many failed log-ins" in response.content
    assert "_auth_user_id" not in client.session
    # and the API token endpoint refuses too
    api = APIClient().post(
        "/api/v1/auth/token/",
        {"username": researcher.username, "password": PASSWORD},
        format="json",
    )
    assert api.status_code == 429
    # and the audit log holds the first failure and the lockout, not one row per try
    assert AuditEntry.objects.filter(action="login.failed").count() == 1
    assert AuditEntry.objects.filter(action="login.locked").count() == 1


def test_login_lands_on_the_dashboard(client: Client, researcher: User) -> None:
    response = client.post(
        "/accounts/login/", {"username": researcher.username, "password": PASSWORD}, follow=True
    )
    assert response.redirect_chain[-1][0] == "/"
    assert b"<h1>Dashboard</h1>" in response.content
