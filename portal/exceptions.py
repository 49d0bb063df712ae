"""One error type for the application and one handler that turns errors into clear JSON.

Every API error body is ``{"message": "...", "extra": {...}}``; ``extra`` holds field errors
or details a client can act on.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.core.exceptions import (
    PermissionDenied,
    RequestDataTooBig,
    SuspiciousOperation,
)
from django.core.exceptions import ValidationError as DjangoValidationError
from django.http import Http404
from rest_framework import exceptions, status
from rest_framework.response import Response


class ApplicationError(Exception):
    """A refusal a person can act on. ``status`` is the HTTP status the API answers with."""

    status_code: int = status.HTTP_400_BAD_REQUEST

    def __init__(
        self, message: str, extra: dict[str, Any] | None = None, *, status_code: int | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.extra = extra or {}
        if status_code is not None:
            self.status_code = status_code


class NotFoundError(ApplicationError):
    status_code = status.HTTP_404_NOT_FOUND


class ConflictError(ApplicationError):
    status_code = status.HTTP_409_CONFLICT


class ForbiddenError(ApplicationError):
    status_code = status.HTTP_403_FORBIDDEN


class RateLimitedError(ApplicationError):
    """429 with ``Retry-After: <seconds>`` (and the seconds in ``extra``)."""

    status_code = status.HTTP_429_TOO_MANY_REQUESTS

    def __init__(self, message: str, *, retry_after: int) -> None:
        super().__init__(message, {"retry_after_seconds": retry_after})
        self.retry_after = retry_after


def body_too_big_error(limit: int) -> ApplicationError:
    """413 for a request body over ``limit`` bytes (files go to the multipart uploads)."""
    size = f"{limit / (1024 * 1024):.1f} MB" if limit >= 1024 * 1024 else f"{limit} bytes"
    return ApplicationError(
        f"The request body is larger than {size}; send less "
        "(apps and rule files go to the upload endpoints as multipart).",
        {"max_bytes": limit},
        status_code=status.HTTP_413_REQUEST_ENTITY_TOO_LARGE,
    )


def _flatten(detail: Any) -> str:
    if isinstance(detail, dict):
        for key, value in detail.items():
            text = _flatten(value)
            return text if key in ("non_field_errors", "__all__", "detail") else f"{key}: {text}"
        return "Invalid input."
    if isinstance(detail, list) and detail:
        return _flatten(detail[0])
    return str(detail)


def request_error(exc: SuspiciousOperation) -> ApplicationError:
    """What a client is told about a request Django refused to read."""
    if isinstance(exc, RequestDataTooBig):
        return body_too_big_error(int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or 0))
    return ApplicationError(f"The request was refused: {exc}")


def error_body(exc: ApplicationError) -> dict[str, Any]:
    """The JSON every API error answers with: ``{"message", "extra"}``."""
    return {"message": exc.message, "extra": exc.extra}


def api_exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, SuspiciousOperation):
        exc = request_error(exc)
    if isinstance(exc, ApplicationError):
        answer = Response(error_body(exc), status=exc.status_code)
        if isinstance(exc, RateLimitedError):
            answer["Retry-After"] = str(exc.retry_after)
        return answer
    if isinstance(exc, DjangoValidationError):
        fields: Any = exc.message_dict if hasattr(exc, "error_dict") else {"__all__": exc.messages}
        exc = exceptions.ValidationError(fields)
    elif isinstance(exc, Http404):
        exc = exceptions.NotFound(str(exc) or "Not found.")
    elif isinstance(exc, PermissionDenied):
        exc = exceptions.PermissionDenied(str(exc) or None)

    # imported here: rest_framework.views loads DEFAULT_PARSER_CLASSES (portal.parsers), which
    # imports this module
    from rest_framework.views import exception_handler

    handled = exception_handler(exc, context)
    if handled is None:
        return None
    response = handled
    if isinstance(exc, exceptions.ValidationError):
        body: dict[str, Any] = {
            "message": _flatten(response.data),
            "extra": {"fields": response.data},
        }
    else:
        detail = response.data.get("detail", "") if isinstance(response.data, dict) else ""
        body = {"message": str(detail) or "Request failed.", "extra": {}}
    wait = getattr(exc, "wait", None)
    if isinstance(exc, exceptions.Throttled) and wait is not None:
        body["extra"]["retry_after_seconds"] = int(wait)
    response.data = body
    return response
