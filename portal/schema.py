"""What the OpenAPI schema says about errors every endpoint can give.

Every JSON request body goes through ``portal.parsers.BoundedJSONParser``, so every operation
that takes JSON can answer 400 (also for JSON nested too deep) and 413 (body too large): the
postprocessing hook ``document_request_limits`` adds both where a view did not say.
"""

from __future__ import annotations

from typing import Any

from rest_framework import serializers

from portal.parsers import MAX_JSON_DEPTH

ERROR_COMPONENT = "ApiError"


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


def document_request_limits(
    result: dict[str, Any], generator: Any, request: Any, public: bool
) -> dict[str, Any]:
    schemas = result.setdefault("components", {}).setdefault("schemas", {})
    schemas.setdefault(ERROR_COMPONENT, _ERROR_SCHEMA)
    for operations in result.get("paths", {}).values():
        for operation in operations.values():
            if not isinstance(operation, dict):
                continue
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
