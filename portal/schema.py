"""What the OpenAPI schema says about errors every endpoint can give.

Every JSON request body goes through ``portal.parsers.BoundedJSONParser``, so every operation
that takes JSON can answer 400 (also for JSON nested too deep) and 413 (body too large): the
postprocessing hook ``document_request_limits`` adds both where a view did not say.
``document_common_errors`` adds what the kind of an operation implies: 401 and 403 where it
needs credentials, 404 where it takes an id in its path or a page number, 415 where it takes
a body (sent as a media type its parsers do not read). All are ``ApiError`` bodies;
``portal/tests/test_schema_contract.py`` holds the app to its schema.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from rest_framework import serializers

from portal.parsers import MAX_JSON_DEPTH

ERROR_COMPONENT = "ApiError"
# security schemes of people (API token, session); devices have ``deviceTokenAuth``
PEOPLE_SCHEMES = frozenset({"tokenAuth", "cookieAuth"})


class ApiErrorSerializer(serializers.Serializer):
    """The body of every error: a message for people, details for programs."""

    message = serializers.CharField()
    extra = serializers.DictField(required=False)

    class Meta:
        ref_name = ERROR_COMPONENT


_ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "message": {"type": "string"},
        "extra": {"type": "object", "additionalProperties": {}},
    },
    "required": ["message"],
}


def _error(description: str) -> dict[str, Any]:
    ref = {"$ref": f"#/components/schemas/{ERROR_COMPONENT}"}
    return {"description": description, "content": {"application/json": {"schema": ref}}}


def _operations(result: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every operation of the schema, after making sure the error component is there."""
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_COMPONENT, _ERROR_SCHEMA)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if isinstance(operation, dict):
                yield operation


def document_request_limits(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    for operation in _operations(result):
        content = (operation.get("requestBody") or {}).get("content") or {}
        if "application/json" not in content:
            continue
        responses = operation.setdefault("responses", {})
        responses.setdefault(
            "400", _error(f"Invalid input, or JSON nested over {MAX_JSON_DEPTH} levels")
        )
        responses.setdefault(
            "413", _error("Request body over DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB by default)")
        )
    return result


def document_common_errors(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    for operation in _operations(result):
        responses = operation.setdefault("responses", {})
        schemes = {name for need in operation.get("security") or [] for name in need}
        if schemes:
            responses.setdefault(
                "401", _error("No credentials, or a token that is invalid or revoked")
            )
        if schemes & PEOPLE_SCHEMES:
            responses.setdefault("403", _error("Your role does not allow this"))
        if operation.get("requestBody"):
            responses.setdefault("415", _error("A body in a media type this does not read"))
        parameters = operation.get("parameters") or []
        if any(p.get("in") == "path" for p in parameters):
            responses.setdefault("404", _error("No such object"))
        if any(p.get("in") == "query" and p.get("name") == "page" for p in parameters):
            responses.setdefault("404", _error("A page past the last one"))
        operation["responses"] = dict(sorted(responses.items()))
    return result
