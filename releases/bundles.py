"""Full bundles in shared storage, so that a worker on any machine scans with what shipped.

The TUF repository (``RELEASE_REPO_DIR``) lives only where the ``publish`` worker runs. Scan
and hunt workers on other machines share the database and object storage, not that folder,
so each build also puts its full bundle in the default storage, named by its SHA-256
(``releases/full/<sha256>.bundle``: immutable, written once). A reader checks the bytes
against the SHA-256 the database recorded for the file and the decoded state against the
release's state SHA-256 before it trusts them, as a phone checks what TUF hands it.
"""

from __future__ import annotations

import hashlib
import logging

from django.core.files.base import ContentFile
from django.core.files.storage import default_storage

log = logging.getLogger(__name__)


def _name(sha256: str) -> str:
    return f"releases/full/{sha256}.bundle"


def bundle_store(data: bytes) -> str:
    """Put a full bundle in shared storage (once); returns its SHA-256."""
    sha256 = hashlib.sha256(data).hexdigest()
    name = _name(sha256)
    if not default_storage.exists(name):
        saved = default_storage.save(name, ContentFile(data))
        if saved != name:  # a concurrent writer won the name: keep one copy
            default_storage.delete(saved)
    return sha256


def bundle_read(sha256: str) -> bytes | None:
    """The bundle with this SHA-256, or None when storage lacks it or holds other bytes."""
    name = _name(sha256)
    try:
        with default_storage.open(name, "rb") as fh:
            data: bytes = fh.read()
    except (OSError, ValueError) as exc:  # S3 raises ValueError-derived errors for odd keys
        log.info("full bundle %s is not in storage: %s", sha256, exc)
        return None
    if hashlib.sha256(data).hexdigest() != sha256:
        log.warning("full bundle %s in storage does not match its SHA-256; ignoring it", sha256)
        return None
    return data
