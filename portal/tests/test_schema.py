"""What the OpenAPI schema promises, checked on the generated document (fast; the contract
run in test_schema_contract.py checks the app against all of it)."""

from __future__ import annotations

from typing import Any

import pytest
from drf_spectacular.generators import SchemaGenerator

METHODS = {"get", "post", "put", "patch", "delete"}


@pytest.fixture(scope="module")
def schema() -> dict[str, Any]:
    return SchemaGenerator().get_schema(request=None, public=True)


def _ok_schema(schema: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    content = schema["paths"][path][method]["responses"][status]["content"]
    ref = content["application/json"]["schema"]["$ref"]
    return schema["components"]["schemas"][ref.rsplit("/", 1)[1]]


@pytest.mark.parametrize(
    ("path", "item"),
    [
        ("/api/v1/releases/", "ReleaseOutput"),
        ("/api/v1/retrohunts/", "Hunt"),
        ("/api/v1/samples/", "Sample"),
        ("/api/v1/scans/", "ScanList"),
        ("/api/v1/families/", "FamilyOutput"),
        ("/api/v1/signatures/", "SignatureRow"),
    ],
)
def test_lists_are_documented_as_the_pages_they_answer(
    schema: dict[str, Any], path: str, item: str
) -> None:
    page = _ok_schema(schema, path, "get", "200")

    assert set(page["properties"]) == {"count", "next", "previous", "results"}
    assert page["properties"]["results"]["items"]["$ref"].endswith(f"/{item}")
    assert "404" in schema["paths"][path]["get"]["responses"]  # a page past the last


def test_every_family_answer_documents_its_signature_count(schema: dict[str, Any]) -> None:
    answers = [
        ("/api/v1/families/", "post", "201"),
        ("/api/v1/families/{id}/", "get", "200"),
        ("/api/v1/families/{id}/", "patch", "200"),
    ]
    for path, method, status in answers:
        family = _ok_schema(schema, path, method, status)
        assert "signature_count" in family["required"], (path, method)


def test_validate_documents_its_400_as_an_error_not_a_success(schema: dict[str, Any]) -> None:
    failed = _ok_schema(schema, "/api/v1/signatures/validate/", "post", "400")
    ok = _ok_schema(schema, "/api/v1/signatures/validate/", "post", "200")

    assert failed["required"] == ["extra", "message"]
    assert {"valid", "errors", "warnings"} <= set(failed["properties"])
    assert set(ok["required"]) == {"valid", "body", "warnings"}


def test_errors_every_operation_can_give_are_documented(schema: dict[str, Any]) -> None:
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method not in METHODS:
                continue
            codes = set(operation["responses"])
            schemes = {name for need in operation.get("security") or [] for name in need}
            label = f"{method.upper()} {path}"
            if schemes:
                assert "401" in codes, label
            if "tokenAuth" in schemes:
                assert "403" in codes, label
            if "{" in path:
                assert "404" in codes, label
            if "requestBody" in operation:
                assert "415" in codes, label
