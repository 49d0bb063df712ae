"""Downloading a sample: the app inside a ZIP encrypted with the password ``infected``.

That password is the malware-sharing convention: a mail filter or an antivirus on the
researcher's machine leaves the file alone until someone opens it on purpose. The archive
uses WinZip AES-256 (pyzipper), which 7-Zip, WinZip, Keka and ``python -m pyzipper`` open;
Info-ZIP's old ``unzip`` and Windows Explorer do not read AES and need 7-Zip.

Who may: researchers, reviewers and admins (``may_download_sample``, the one rule both the
API and the page use); auditors read reports but do not take the live sample home, and
devices never. Every download writes an audit row (``sample.download``) before a byte leaves.

The sample comes from Django's default storage, read in chunks (S3 in production: no local
path is assumed), and the archive is written to a spooled temporary file that stays in
memory up to 8 MB and goes to FILE_UPLOAD_TEMP_DIR beyond; uploads are size-limited already.
"""

from __future__ import annotations

import tempfile
from typing import IO, Any

import pyzipper
from django.conf import settings
from django.core.files.storage import default_storage
from rest_framework import exceptions
from rest_framework.request import Request

from portal.audit import audit_log
from portal.authentication import ApiTokenAuthentication
from portal.models import User
from portal.roles import ADMIN, RESEARCHER, REVIEWER, has_role
from scans.models import Sample

PASSWORD = b"infected"
DOWNLOAD_ROLES = (RESEARCHER, REVIEWER, ADMIN)
_CHUNK = 1 << 20
_SPOOL = 8 << 20


class SampleMissing(Exception):
    """The sample's file is not in storage (deleted by hand, or storage damaged)."""


def may_download_sample(user: Any) -> bool:
    """Whether ``user`` may take a sample's file home (researcher, reviewer or admin)."""
    return isinstance(user, User) and user.is_active and has_role(user, *DOWNLOAD_ROLES)


def zip_name(sample: Sample) -> str:
    return f"{sample.sha256}.zip"


def sample_zip(*, sample: Sample, user: User) -> IO[bytes]:
    """The sample as ``<sha256>.apk`` in an AES-encrypted ZIP (password ``infected``), read
    from the start; the download is audited first. The caller closes the file."""
    name = sample.file.name
    if not name or not default_storage.exists(name):
        raise SampleMissing(f"the file of sample {sample.sha256} is missing from storage")
    audit_log(
        actor=user,
        action="sample.download",
        obj=sample,
        after={"sha256": sample.sha256, "format": "zip-aes256", "size": sample.size},
    )
    out = tempfile.SpooledTemporaryFile(  # noqa: SIM115 - the response closes it
        max_size=_SPOOL, dir=settings.FILE_UPLOAD_TEMP_DIR, prefix="download-"
    )
    try:
        with (
            pyzipper.AESZipFile(
                out, "w", compression=pyzipper.ZIP_DEFLATED, encryption=pyzipper.WZ_AES
            ) as archive,
            default_storage.open(name, "rb") as src,
        ):
            archive.setpassword(PASSWORD)
            archive.setencryption(pyzipper.WZ_AES, nbits=256)
            with archive.open(f"{sample.sha256}.apk", "w", force_zip64=True) as dst:
                for chunk in src.chunks(_CHUNK):
                    dst.write(chunk)
    except BaseException:
        out.close()
        raise
    out.seek(0)
    return out


class PeopleOrDeviceTokenAuthentication(ApiTokenAuthentication):
    """A person's API token as usual; a phone's device token is recognised too, so that a
    device asking for a sample is told 403 (it is known and not allowed), not 401."""

    def authenticate_credentials(self, key: str) -> tuple[Any, Any]:
        try:
            return super().authenticate_credentials(key)
        except exceptions.AuthenticationFailed:
            from releases.public import DeviceTokenAuthentication

            return DeviceTokenAuthentication().authenticate_credentials(key)

    def authenticate(self, request: Request) -> Any:
        return super().authenticate(request)
