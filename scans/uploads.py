"""Refuse an oversized upload while it arrives, not after it has been written to disk.

Django streams files over FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file but has no limit
on a file's size (DATA_UPLOAD_MAX_MEMORY_SIZE covers the other fields only). This handler
runs first: it refuses a request whose Content-Length is already over MAX_UPLOAD_MB, and
stops reading as soon as a file passes the limit. Both answer 413 with a clear message.
A reverse proxy in front should set the same limit (nginx ``client_max_body_size``).
"""

from __future__ import annotations

from typing import Any

from django.core.files.uploadhandler import FileUploadHandler

from scans.services import max_upload_bytes, too_big_error

# Multipart framing and the small form fields around the file.
MULTIPART_SLACK = 64 * 1024


class SizeLimitUploadHandler(FileUploadHandler):
    def handle_raw_input(
        self,
        input_data: Any,
        META: dict[str, Any],
        content_length: int,
        boundary: Any,
        encoding: str | None = None,
    ) -> None:
        if content_length and content_length > max_upload_bytes() + MULTIPART_SLACK:
            raise too_big_error(content_length)

    def receive_data_chunk(self, raw_data: bytes, start: int) -> bytes:
        if start + len(raw_data) > max_upload_bytes():
            raise too_big_error()
        return raw_data

    def file_complete(self, file_size: int) -> None:
        return None
