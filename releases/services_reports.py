"""Write paths of detection reports from phones: take a batch, delete a device, roll up, expire.

A phone posts batches of what it detected (``report_batch_parse`` checks every field and names
the first bad one, e.g. ``detections[3].app_sha256``; ``detections_report`` stores a batch in
one transaction, or nothing). A batch id already seen from the same device stores nothing and
answers with the first receipt. Raw reports name their device and live
``DEVICE_REPORT_RETENTION_DAYS``; ``detections_rollup`` (beat, hourly) first rolls every
complete day up into anonymous daily counts, then deletes raw reports and batches past the
retention. ``device_delete`` removes a device with its raw reports and batches; the roll-ups
carry no device id and stay. docs/privacy.md says what is kept and why.
"""

from __future__ import annotations

import datetime
import re
import uuid
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from portal.audit import audit_log
from portal.exceptions import ApplicationError, ForbiddenError
from portal.models import User
from portal.params import ID_MAX, ParameterError, parse_int
from portal.request_context import source_ip
from releases.models import (
    DetectionReport,
    DetectionRollup,
    DetectionRollupDay,
    Device,
    ReportBatch,
)
from releases.services import device_token_forget

# A batch holds at most this many detections, in at most this many bytes of JSON (a full
# batch of the longest fields is about 300 KB).
MAX_DETECTIONS = 500
MAX_BODY_BYTES = 512 * 1024
# Release numbers, revisions and engine versions are PositiveIntegerFields (2^31-1 everywhere).
NUMBER_MAX = 2**31 - 1
# A day is rolled up once it is over and a batch that started before midnight has committed.
ROLLUP_GRACE = datetime.timedelta(minutes=10)

_HEX64 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
# Android package names: letters, digits, "_" and "."; nothing free-form (no personal text).
_PACKAGE = re.compile(r"[A-Za-z0-9_.]{0,255}", re.ASCII)
_UUID = re.compile(
    r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", re.ASCII
)
_DATETIME = re.compile(r"[0-9T:.+\-Z ]{10,40}", re.ASCII)


@dataclass(frozen=True, slots=True)
class Detection:
    signature_id: int
    revision: int
    release: int
    app_sha256: str
    package: str
    cert_sha256: str
    detected_at: datetime.datetime


@dataclass(frozen=True, slots=True)
class ReportBatchInput:
    batch_id: uuid.UUID
    installed_release: int
    engine_version: int
    detections: tuple[Detection, ...]


@dataclass(frozen=True, slots=True)
class ReportReceipt:
    batch_id: uuid.UUID
    accepted: int
    received_at: datetime.datetime
    duplicate: bool  # the batch id was seen before: nothing new was stored


# --- reading a batch ----------------------------------------------------------------------


def _field(data: dict[str, Any], name: str, where: str) -> Any:
    if name not in data:
        raise ParameterError(where, "This field is required.")
    return data[name]


def _hex64(value: Any, where: str, *, blank: bool = False) -> str:
    if blank and value == "":
        return ""
    if not isinstance(value, str) or not _HEX64.fullmatch(value):
        more = " or empty" if blank else ""
        raise ParameterError(where, f"must be 64 hexadecimal digits (a SHA-256){more}.")
    return value.lower()


def _when(value: Any, where: str) -> datetime.datetime:
    problem = "must be an ISO 8601 date and time with a time zone, e.g. 2026-11-27T10:00:00Z."
    if not isinstance(value, str) or not _DATETIME.fullmatch(value):
        raise ParameterError(where, problem)
    try:
        parsed = parse_datetime(value)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise ParameterError(where, problem)
    return parsed


def _number(data: dict[str, Any], name: str, where: str, *, lowest: int, highest: int) -> int:
    return parse_int(
        _field(data, name, f"{where}{name}"), field=f"{where}{name}", lowest=lowest, highest=highest
    )


def _detection(item: Any, where: str) -> Detection:
    if not isinstance(item, dict):
        raise ParameterError(where, "must be an object.")
    package = _field(item, "package", f"{where}.package")
    if not isinstance(package, str) or not _PACKAGE.fullmatch(package):
        raise ParameterError(
            f"{where}.package", "must be an Android package name (letters, digits, _ and .)."
        )
    at = f"{where}."
    return Detection(
        signature_id=_number(item, "signature_id", at, lowest=1, highest=ID_MAX),
        revision=_number(item, "revision", at, lowest=1, highest=NUMBER_MAX),
        release=_number(item, "release", at, lowest=1, highest=NUMBER_MAX),
        app_sha256=_hex64(_field(item, "app_sha256", f"{at}app_sha256"), f"{at}app_sha256"),
        package=package,
        cert_sha256=_hex64(item.get("cert_sha256", ""), f"{at}cert_sha256", blank=True),
        detected_at=_when(_field(item, "detected_at", f"{at}detected_at"), f"{at}detected_at"),
    )


def report_batch_parse(data: Any) -> ReportBatchInput:
    """A posted batch, every field checked; the first bad one is a ParameterError (400) naming
    it as a path: ``batch_id``, ``installed.release``, ``detections[3].app_sha256``."""
    if not isinstance(data, dict):
        raise ParameterError("body", "must be a JSON object.")
    batch_id = _field(data, "batch_id", "batch_id")
    if not isinstance(batch_id, str) or not _UUID.fullmatch(batch_id):
        raise ParameterError(
            "batch_id", "must be a UUID, e.g. 0b8f3c1e-6a1d-4c1e-9f0a-2d1b3c4d5e6f."
        )
    installed = _field(data, "installed", "installed")
    if not isinstance(installed, dict):
        raise ParameterError("installed", "must be an object: {release, engine_version}.")
    release = _number(installed, "release", "installed.", lowest=0, highest=NUMBER_MAX)
    engine = _number(installed, "engine_version", "installed.", lowest=1, highest=NUMBER_MAX)
    items = _field(data, "detections", "detections")
    if not isinstance(items, list):
        raise ParameterError("detections", "must be a list.")
    if len(items) > MAX_DETECTIONS:
        raise ParameterError(
            "detections", f"{len(items)} detections; a batch holds at most {MAX_DETECTIONS}."
        )
    return ReportBatchInput(
        batch_id=uuid.UUID(batch_id),
        installed_release=release,
        engine_version=engine,
        detections=tuple(_detection(item, f"detections[{i}]") for i, item in enumerate(items)),
    )


# --- storing a batch ----------------------------------------------------------------------


def _retention() -> datetime.timedelta:
    return datetime.timedelta(days=max(1, int(settings.DEVICE_REPORT_RETENTION_DAYS)))


def _receipt(batch: ReportBatch, *, duplicate: bool) -> ReportReceipt:
    return ReportReceipt(
        batch_id=batch.batch_id,
        accepted=batch.detections,
        received_at=batch.received_at,
        duplicate=duplicate,
    )


def detections_report(
    *, device: Device, batch: ReportBatchInput, now: datetime.datetime | None = None
) -> ReportReceipt:
    """Store a device's batch: its detections (one bulk insert) and what it has installed now
    (one UPDATE of the device: release, engine version, last seen). All or nothing; a batch id
    this device sent before stores nothing and gives the first receipt back.

    The rows are not ``full_clean``-ed one by one: ``report_batch_parse`` checked every field,
    and 500 model validations would cost more than the insert."""
    now = now or timezone.now()
    oldest = now - _retention()
    with transaction.atomic():
        seen = ReportBatch.objects.filter(device_id=device.pk, batch_id=batch.batch_id).first()
        if seen is not None:
            return _receipt(seen, duplicate=True)
        # first, so that a device deleted or revoked since its token was checked stores nothing
        # (and on PostgreSQL its row stays locked until this batch is in)
        updated = Device.objects.filter(pk=device.pk, revoked_at__isnull=True).update(
            installed_release=batch.installed_release,
            engine_version=batch.engine_version,
            last_seen_at=now,
        )
        if not updated:
            raise ApplicationError("This device is deleted or revoked.", status_code=401)
        if (device.installed_release, device.engine_version) != (
            batch.installed_release,
            batch.engine_version,
        ):  # the token cache holds both: the next request reads them again
            transaction.on_commit(lambda: device_token_forget(device))
        record = ReportBatch(
            device_id=device.pk,
            batch_id=batch.batch_id,
            received_at=now,
            installed_release=batch.installed_release,
            engine_version=batch.engine_version,
            detections=len(batch.detections),
        )
        try:
            with transaction.atomic():  # the same batch posted twice at once (PostgreSQL)
                record.save(force_insert=True)
        except IntegrityError:
            seen = ReportBatch.objects.get(device_id=device.pk, batch_id=batch.batch_id)
            return _receipt(seen, duplicate=True)
        day = now.date()
        DetectionReport.objects.bulk_create(
            [
                DetectionReport(
                    device_id=device.pk,
                    day=day,
                    signature_id=d.signature_id,
                    revision=d.revision,
                    release=d.release,
                    app_sha256=d.app_sha256,
                    package=d.package,
                    cert_sha256=d.cert_sha256,
                    # the phone's clock, kept within what the server can vouch for
                    detected_at=min(max(d.detected_at, oldest), now),
                )
                for d in batch.detections
            ],
            batch_size=MAX_DETECTIONS,
        )
        if batch.detections:
            from releases.halts import schedule_check

            transaction.on_commit(schedule_check)  # do these detections call for a halt?
    return _receipt(record, duplicate=False)


# --- deleting a device --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DeviceDeletion:
    reports: int
    batches: int


def device_delete(*, device: Device, by: User | None = None, reason: str = "") -> DeviceDeletion:
    """Delete a device, its raw reports and its batches; anonymous roll-ups stay.

    ``by`` is the admin who deletes it (needs ``releases.delete_device``), or None when the
    device deletes itself with its own token (the app on uninstall)."""
    if by is not None and not (by.is_active and by.has_perm("releases.delete_device")):
        raise ForbiddenError("Your role does not allow you to delete devices.")
    pk = device.pk
    with transaction.atomic():
        reports = DetectionReport.objects.filter(device_id=pk).delete()[0]
        batches = ReportBatch.objects.filter(device_id=pk).delete()[0]
        Device.objects.filter(pk=pk).delete()
        # the device's random id is not kept here: the entry says that a device went, and who
        # deleted it (its registration entry stays, as every audit entry does); nor is the
        # phone's address when the device deletes itself
        hidden = source_ip.set(None) if by is None else None
        try:
            audit_log(
                actor=by,
                action="device.delete",
                object_type="releases.device",
                object_id=pk,
                object_repr=f"device #{pk}",
                after={
                    "by": "admin" if by is not None else "the device itself",
                    "reports_deleted": reports,
                    "batches_deleted": batches,
                },
                reason=reason,
            )
        finally:
            if hidden is not None:
                source_ip.reset(hidden)
        # now, and again once committed: no request between may find it in the token cache
        device_token_forget(device)
        transaction.on_commit(lambda: device_token_forget(device))
    return DeviceDeletion(reports=reports, batches=batches)


# --- roll-up and expiry -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RollupResult:
    days_rolled: tuple[datetime.date, ...]
    rollup_rows: int
    reports_deleted: int
    batches_deleted: int


def _rollup_day(day: datetime.date, now: datetime.datetime) -> int | None:
    """Roll one day's raw reports up (once): one INSERT … SELECT … GROUP BY in the database.
    Returns the rows written, or None when the day was rolled up already."""
    q = connection.ops.quote_name
    dims = ", ".join(
        f"r.{q(c)}"
        for c in ("signature_id", "revision", "release", "app_sha256", "package", "cert_sha256")
    )
    sql = (
        f"INSERT INTO {q(DetectionRollup._meta.db_table)} ({q('day')}, {q('signature_id')}, "  # noqa: S608 (names from our models)
        f"{q('revision')}, {q('release')}, {q('app_sha256')}, {q('package')}, "
        f"{q('cert_sha256')}, {q('cohort')}, {q('devices')}, {q('reports')}, "
        f"{q('first_seen')}, {q('last_seen')}) "
        f"SELECT r.{q('day')}, {dims}, d.{q('channel')}, COUNT(DISTINCT r.{q('device_id')}), "
        f"COUNT(*), MIN(r.{q('detected_at')}), MAX(r.{q('detected_at')}) "
        f"FROM {q(DetectionReport._meta.db_table)} r "
        f"JOIN {q(Device._meta.db_table)} d ON d.{q('id')} = r.{q('device_id')} "
        f"WHERE r.{q('day')} = %s GROUP BY r.{q('day')}, {dims}, d.{q('channel')}"
    )
    try:
        with transaction.atomic():
            marker = DetectionRollupDay.objects.create(day=day, rolled_at=now, reports=0, rows=0)
            with connection.cursor() as cursor:
                cursor.execute(sql, [day])
                rows: int = max(cursor.rowcount, 0)
            marker.rows = rows
            marker.reports = DetectionReport.objects.filter(day=day).count()
            marker.save(update_fields=["rows", "reports"])
    except IntegrityError:  # another worker rolled it up first
        return None
    return rows


def detections_rollup(*, now: datetime.datetime | None = None) -> RollupResult:
    """Roll up every complete day not rolled up yet, then delete raw reports (and batch
    records) older than the retention. Safe to run again at any time: a day is rolled once."""
    now = now or timezone.now()
    complete_before = (now - ROLLUP_GRACE).date()
    rolled = set(DetectionRollupDay.objects.values_list("day", flat=True))
    days = (
        DetectionReport.objects.filter(day__lt=complete_before)
        .values_list("day", flat=True)
        .distinct()
        .order_by("day")
    )
    done: list[datetime.date] = []
    rows = 0
    for day in [d for d in days if d not in rolled]:
        written = _rollup_day(day, now)
        if written is not None:
            done.append(day)
            rows += written
    keep_from = now.date() - _retention()  # raw reports of keep_from and later stay
    expired = DetectionReport.objects.filter(day__lt=keep_from).values_list("day", flat=True)
    rolled = set(DetectionRollupDay.objects.filter(day__lt=keep_from).values_list("day", flat=True))
    deleted = 0
    for day in sorted(set(expired.distinct()) & rolled):  # a day a statement: short transactions
        deleted += DetectionReport.objects.filter(day=day).delete()[0]
    batches = ReportBatch.objects.filter(received_at__lt=now - _retention()).delete()[0]
    return RollupResult(
        days_rolled=tuple(done),
        rollup_rows=rows,
        reports_deleted=deleted,
        batches_deleted=batches,
    )
