"""JSON from clients, bounded in size and depth before it is parsed.

Python's ``json`` recurses once per nested array or object, so ``[[[[…]]]]`` 100,000 levels
deep raises RecursionError (a 500) in the middle of parsing. ``json_depth`` measures the
nesting without parsing and without recursion: it cuts the strings out with one regular
expression, keeps only the brackets, and takes the running maximum of +1/-1. A body deeper
than ``MAX_JSON_DEPTH`` is refused with 400 before ``json.loads`` sees it; a body larger than
DATA_UPLOAD_MAX_MEMORY_SIZE with 413. ``BoundedJSONParser`` is the API's default JSON parser;
pages that read JSON from a form field call ``json_loads_bounded``.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Mapping
from itertools import accumulate
from typing import IO, Any

from django.conf import settings
from rest_framework.parsers import JSONParser

from portal.exceptions import ApplicationError, body_too_big_error

# Deeper than any signature body or API input needs (a behaviour rule is 4 or 5 levels).
MAX_JSON_DEPTH = 64
# Django's own default for DATA_UPLOAD_MAX_MEMORY_SIZE (2.5 MB), if a deployment sets None.
_DEFAULT_MAX_BYTES = 2_621_440

_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_NOT_BRACKETS = bytes(b for b in range(256) if b not in b"[]{}")
_STEP = {ord("["): 1, ord("{"): 1, ord("]"): -1, ord("}"): -1}


def max_json_bytes() -> int:
    return int(settings.DATA_UPLOAD_MAX_MEMORY_SIZE or _DEFAULT_MAX_BYTES)


def json_depth(data: bytes | str) -> int:
    """How deeply arrays and objects nest in the JSON text ``data`` (0 for a scalar)."""
    raw = data.encode("utf-8", "surrogatepass") if isinstance(data, str) else data
    brackets = _STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(_STEP[b] for b in brackets), default=0)


def too_deep_error(depth: int) -> ApplicationError:
    return ApplicationError(
        f"The JSON nests {depth} levels deep; at most {MAX_JSON_DEPTH} are accepted.",
        {"max_depth": MAX_JSON_DEPTH},
    )


def json_loads_bounded(data: bytes | str) -> Any:
    """``json.loads`` for text from a client: too deep is an ApplicationError (400);
    invalid JSON raises ``json.JSONDecodeError`` as usual."""
    depth = json_depth(data)
    if depth > MAX_JSON_DEPTH:
        raise too_deep_error(depth)
    return json.loads(data)


class BoundedJSONParser(JSONParser):
    """DRF's JSON parser after a size check (413) and a depth check (400)."""

    def parse(
        self,
        stream: IO[Any],
        media_type: str | None = None,
        parser_context: Mapping[str, Any] | None = None,
    ) -> Any:
        limit = max_json_bytes()
        data = stream.read(limit + 1)
        if len(data) > limit:
            raise body_too_big_error(limit)
        depth = json_depth(data)
        if depth > MAX_JSON_DEPTH:
            raise too_deep_error(depth)
        return super().parse(io.BytesIO(data), media_type, parser_context)
