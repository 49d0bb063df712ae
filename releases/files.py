"""Serving the TUF repository under /updates/: cache headers, ETag and byte ranges.

Every name but ``timestamp.json`` (and the convenience copy ``root.json``) is versioned or
content-addressed, so it never changes: ``Cache-Control: public, max-age=31536000,
immutable``. The mutable two get a short max-age. Any static server or CDN can serve the
same folder with the same rules (docs/releases.md).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from pathlib import Path

from django.http import (
    FileResponse,
    HttpRequest,
    HttpResponse,
    HttpResponseBase,
    JsonResponse,
    StreamingHttpResponse,
)
from django.views.decorators.http import require_http_methods

from releases.repository import repo_dir

IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=60"
MUTABLE_NAMES = frozenset({"timestamp.json", "root.json"})
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,250}")
# ASCII digits, at most 18 (larger offsets than any file has do not match: whole file)
_RANGE = re.compile(r"bytes=([0-9]{0,18})-([0-9]{0,18})", re.ASCII)
_CHUNK = 256 * 1024
_AREAS = ("metadata", "targets")


def _not_found() -> JsonResponse:
    return JsonResponse({"message": "Not found.", "extra": {}}, status=404)


def _etag(area: str, name: str, path: Path, size: int) -> str:
    if area == "targets":
        return f'"{name.split(".", 1)[0]}"'  # targets are named by their SHA-256
    if name in MUTABLE_NAMES:
        return '"' + hashlib.sha256(path.read_bytes()).hexdigest()[:32] + '"'
    return f'"{name}-{size}"'


def _stream(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            chunk = fh.read(min(_CHUNK, left))
            if not chunk:
                return
            left -= len(chunk)
            yield chunk


def _byte_range(header: str, size: int) -> tuple[int, int] | str | None:
    """(start, end inclusive), None to serve it all, or "bad" for 416."""
    match = _RANGE.fullmatch(header.strip())
    if match is None:
        return None  # several ranges or another unit: serving the whole file is allowed
    first, last = match.groups()
    if not first and not last:
        return "bad"
    if not first:
        suffix = int(last)
        if suffix == 0:
            return "bad"
        return max(0, size - suffix), size - 1
    start = int(first)
    end = min(int(last), size - 1) if last else size - 1
    if start >= size or (last and int(last) < start):
        return "bad"
    return start, end


@require_http_methods(["GET", "HEAD"])
def update_file(request: HttpRequest, area: str, name: str) -> HttpResponseBase:
    if area not in _AREAS or not _SAFE_NAME.fullmatch(name) or ".." in name:
        return _not_found()
    base = (repo_dir() / area).resolve()
    path = (base / name).resolve()
    if path.parent != base or not path.is_file():
        return _not_found()
    size = path.stat().st_size
    etag = _etag(area, name, path, size)
    cache = SHORT if area == "metadata" and name in MUTABLE_NAMES else IMMUTABLE
    headers = {"Cache-Control": cache, "ETag": etag, "Accept-Ranges": "bytes"}
    content_type = "application/json" if area == "metadata" else "application/octet-stream"

    response: HttpResponseBase
    if etag in {t.strip() for t in request.headers.get("If-None-Match", "").split(",")}:
        response = HttpResponse(status=304)
    elif "Range" in request.headers and request.headers.get("If-Range", etag) == etag:
        wanted = _byte_range(request.headers["Range"], size)
        if wanted == "bad":
            response = HttpResponse(status=416)
            response["Content-Range"] = f"bytes */{size}"
        elif isinstance(wanted, tuple):
            start, end = wanted
            length = end - start + 1
            response = StreamingHttpResponse(
                _stream(path, start, length) if request.method == "GET" else iter(()),
                status=206,
                content_type=content_type,
            )
            response["Content-Range"] = f"bytes {start}-{end}/{size}"
            response["Content-Length"] = str(length)
        else:
            response = FileResponse(path.open("rb"), content_type=content_type)
    else:
        response = FileResponse(path.open("rb"), content_type=content_type)
    for key, value in headers.items():
        response[key] = value
    return response
