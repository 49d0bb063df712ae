"""Importing signature files (YARA, ClamAV, Quark JSON, CSV): paths, uploads, one transaction
per file; the drafts an import made can then be submitted together (ONE gate hunt)."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import transaction

from engine.importers import ImportCandidate, display_name, parse_bytes, parse_path
from engine.kinds import REGISTRY, get_kind
from portal.audit import audit_log
from portal.exceptions import ApplicationError
from portal.models import User
from threats.models import Category, Family, Severity, Signature, SignatureRevision, Status
from threats.public import signature_url
from threats.services_common import in_batches, search_text
from threats.services_review import BulkResult, signatures_submit

# the family imported signatures go to when their source names none we know
IMPORT_FAMILY = "Unsorted"
# Upload limits for POST /api/v1/signatures/import/ (the service checks them, not the view).
MAX_IMPORT_FILE_BYTES = 20 * 1024 * 1024
MAX_IMPORT_FILES = 100


@dataclass
class ImportSummary:
    files: int = 0
    imported: int = 0
    duplicates: int = 0
    invalid: int = 0  # stored as status invalid, or not storable at all
    # reason -> count
    invalid_reasons: dict[str, int] = field(default_factory=dict)
    # the first few duplicates: {"source", "existing": {"id", "url"}}
    duplicate_links: list[dict[str, Any]] = field(default_factory=list)
    # files that could not be read or saved: {"file", "reason"}
    failed_files: list[dict[str, str]] = field(default_factory=list)
    signature_ids: list[int] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "files": self.files,
            "imported": self.imported,
            "duplicates": self.duplicates,
            "invalid": self.invalid,
            "invalid_reasons": dict(
                sorted(self.invalid_reasons.items(), key=lambda kv: (-kv[1], kv[0]))
            ),
            "duplicate_links": self.duplicate_links,
            "failed_files": self.failed_files,
        }

    def add_reason(self, reason: str) -> None:
        # "line 3, column 5: message" and "message" are the same reason
        reason = re.sub(r"^line \d+(, column \d+)?: ", "", reason)[:300]
        self.invalid_reasons[reason] = self.invalid_reasons.get(reason, 0) + 1
        self.invalid += 1


@dataclass(frozen=True)
class ImportBatch:
    """The candidates parsed from one file (saved in one transaction)."""

    name: str
    candidates: Sequence[ImportCandidate]
    # SHA-256 of the file's bytes: with the rule's place in it, the identity of an invalid
    # candidate (so re-importing a file, by path or upload, finds its invalid rules again)
    digest: str = ""


_MAX_LINKS = 50
_KEY_CHUNK = 500


def _family_resolver(actor: User) -> Any:
    by_name = {name.lower(): pk for pk, name in Family.objects.values_list("pk", "name")}
    for pk, aliases in Family.objects.values_list("pk", "aliases"):
        for alias in aliases or []:
            by_name.setdefault(str(alias).lower(), pk)
    families: dict[int, Family] = {}

    def resolve(hint: str | None) -> Family:
        pk = by_name.get((hint or "").lower()) if hint else None
        if pk is None:
            pk = by_name.get(IMPORT_FAMILY.lower())
        if pk is None:
            family = Family(
                name=IMPORT_FAMILY,
                category=Category.RISKWARE,
                severity=Severity.SUSPICIOUS,
                description="Imported signatures whose source named no known family.",
                created_by=actor,
            )
            family.full_clean()
            family.save()
            by_name[IMPORT_FAMILY.lower()] = family.pk
            families[family.pk] = family
            return family
        if pk not in families:
            families[pk] = Family.objects.get(pk=pk)
        return families[pk]

    return resolve


def _invalid_key(batch: ImportBatch, candidate: ImportCandidate) -> str:
    where = candidate.source
    if batch.digest and where.startswith(batch.name):
        where = where[len(batch.name) :]  # ":rule" or ":line" inside the file
    text = f"{batch.digest}\n{where}\n{candidate.name}\n{candidate.error}"
    return "invalid:" + hashlib.sha256(text.encode()).hexdigest()


def _existing_keys(pairs: set[tuple[str, str]]) -> dict[tuple[str, str], int]:
    out: dict[tuple[str, str], int] = {}
    by_kind: dict[str, list[str]] = {}
    for kind, key in pairs:
        by_kind.setdefault(kind, []).append(key)
    for kind, keys in by_kind.items():
        for start in range(0, len(keys), _KEY_CHUNK):
            chunk = keys[start : start + _KEY_CHUNK]
            for pk, key in Signature.objects.filter(kind=kind, dedup_key__in=chunk).values_list(
                "pk", "dedup_key"
            ):
                out[(kind, key)] = pk
    return out


def _import_batch(*, actor: User, batch: ImportBatch, summary: ImportSummary, resolve: Any) -> None:
    """Save one file's candidates (the caller holds the transaction)."""
    prepared: list[tuple[ImportCandidate, str, Any]] = []  # (candidate, key, body)
    for cand in batch.candidates:
        if cand.kind not in REGISTRY:
            summary.add_reason(cand.error or f"unknown signature kind {cand.kind!r}")
            continue
        if cand.ok:
            prepared.append((cand, get_kind(cand.kind).dedup_key(cand.body), cand.body))
        elif cand.text is not None:
            # the rule as written, so that it can be opened, fixed and submitted
            prepared.append((cand, _invalid_key(batch, cand), cand.text))
        else:
            body = {"source": cand.source, "name": cand.name, "error": cand.error}
            prepared.append((cand, _invalid_key(batch, cand), body))
    existing = _existing_keys({(c.kind, key) for c, key, _ in prepared})
    seen: dict[tuple[str, str], int | None] = {}
    new_sigs: list[Signature] = []
    new_bodies: list[Any] = []
    for cand, key, body in prepared:
        pair = (cand.kind, key)
        dup = existing.get(pair)
        if dup is not None or pair in seen:
            summary.duplicates += 1
            if len(summary.duplicate_links) < _MAX_LINKS and dup is not None:
                summary.duplicate_links.append(
                    {"source": cand.source, "existing": {"id": dup, "url": signature_url(dup)}}
                )
            continue
        seen[pair] = None
        family = resolve(cand.family_hint)
        severity = cand.severity_hint if cand.severity_hint in Severity.values else None
        title = cand.name or ""
        description = f"{title} (imported from {cand.source})" if title else cand.source
        sig = Signature(
            kind=cand.kind,
            family=family,
            severity=severity or family.severity,
            status=Status.DRAFT if cand.ok else Status.INVALID,
            status_reason="" if cand.ok else (cand.error or "")[:2000],
            description=description[:2000],
            author=actor,
            dedup_key=key,
        )
        sig.search_text = search_text(
            signature=sig, body=body if cand.ok else None, family=family, tags=()
        )
        sig.full_clean(
            exclude=["family", "author", "current_revision", "deployed_revision"],
            validate_unique=False,
            validate_constraints=False,
        )
        if cand.ok:
            summary.imported += 1
        else:
            summary.add_reason(cand.error or "invalid")
        new_sigs.append(sig)
        new_bodies.append(body)
    if not new_sigs:
        return
    Signature.objects.bulk_create(new_sigs, batch_size=500)
    revisions = [
        SignatureRevision(
            signature=sig,
            number=1,
            body=body,
            severity=sig.severity,
            family=sig.family,
            min_engine=get_kind(sig.kind).min_engine,
            author=actor,
            last_editor=actor,
        )
        for sig, body in zip(new_sigs, new_bodies, strict=True)
    ]
    SignatureRevision.objects.bulk_create(revisions, batch_size=500)
    for sig, rev in zip(new_sigs, revisions, strict=True):
        sig.current_revision = rev
    Signature.objects.bulk_update(new_sigs, ["current_revision"], batch_size=500)
    summary.signature_ids.extend(s.pk for s in new_sigs)
    audit_log(
        actor=actor,
        action="signature.import",
        object_type="threats.signature",
        object_repr=batch.name[:255],
        after={"created": len(new_sigs), "first_id": new_sigs[0].pk, "last_id": new_sigs[-1].pk},
        reason=f"import of {batch.name}",
    )


def signatures_import(*, actor: User, batches: Iterable[ImportBatch]) -> ImportSummary:
    """Store importer candidates, one transaction per file.

    Valid candidates land as drafts, invalid ones (a known kind that does not compile here) as
    ``invalid`` with the reason; duplicates of an existing signature (or of an earlier one in
    the same import) are counted and linked, never stored. A file whose saving fails is
    reported and nothing of it is kept.
    """
    summary = ImportSummary()
    resolve = _family_resolver(actor)
    for batch in batches:
        summary.files += 1
        # file-level failures (unreadable, unsupported) come as one candidate with no kind
        if (
            len(batch.candidates) == 1
            and not batch.candidates[0].ok
            and not batch.candidates[0].kind
            and batch.candidates[0].source == batch.name
        ):
            summary.failed_files.append(
                {"file": batch.name, "reason": batch.candidates[0].error or "unreadable"}
            )
            summary.add_reason(batch.candidates[0].error or "unreadable")
            continue
        checkpoint = (
            summary.imported,
            summary.duplicates,
            summary.invalid,
            dict(summary.invalid_reasons),
            len(summary.duplicate_links),
            len(summary.signature_ids),
        )
        try:
            with transaction.atomic():
                _import_batch(actor=actor, batch=batch, summary=summary, resolve=resolve)
        except Exception as exc:  # nothing of this file is kept; the others go on
            (
                summary.imported,
                summary.duplicates,
                summary.invalid,
                summary.invalid_reasons,
                n_links,
                n_ids,
            ) = checkpoint
            del summary.duplicate_links[n_links:]
            del summary.signature_ids[n_ids:]
            resolve = _family_resolver(actor)  # a family made in the rolled-back file is gone
            summary.failed_files.append(
                {"file": batch.name, "reason": f"could not be saved ({type(exc).__name__})"}
            )
    return summary


def _walk(paths: Iterable[str | Path]) -> Iterator[tuple[Path, Path]]:
    """(file, root) for each file named or found under a named folder (sorted, no dotfiles)."""
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(
                    p.startswith(".") for p in child.relative_to(path).parts
                ):
                    yield child, path
        else:
            yield path, path.parent


def signatures_import_paths(*, actor: User, paths: Iterable[str | Path]) -> ImportSummary:
    """Import files and folders (``manage.py import_signatures``). YARA ``include`` is
    resolved relative to each file, never outside the folder named."""

    def batches() -> Iterator[ImportBatch]:
        for path, root in _walk(paths):
            name = display_name(path, root)  # relative to what was imported
            if not path.exists():
                yield ImportBatch(
                    name, [ImportCandidate("", None, None, name, error="no such file or folder")]
                )
                continue
            try:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
            except OSError:
                digest = ""
            yield ImportBatch(name, parse_path(path, root=root), digest)

    return signatures_import(actor=actor, batches=batches())


def signatures_import_uploads(*, actor: User, files: Sequence[tuple[str, Any]]) -> ImportSummary:
    """Import uploaded files: (name, file-like with .size and .read()). Checks count and size."""
    if not files:
        raise ApplicationError("Send one or more files in the 'files' field.")
    if len(files) > MAX_IMPORT_FILES:
        raise ApplicationError(f"At most {MAX_IMPORT_FILES} files per import.")
    for name, upload in files:
        size = getattr(upload, "size", None)
        if size is not None and size > MAX_IMPORT_FILE_BYTES:
            raise ApplicationError(
                f"{name} is larger than {MAX_IMPORT_FILE_BYTES // (1024 * 1024)} MB.",
                {"max_bytes": MAX_IMPORT_FILE_BYTES},
                status_code=413,
            )

    def batches() -> Iterator[ImportBatch]:
        for name, upload in files:
            # never trust a client's file name beyond its last part
            safe = Path(str(name).replace("\\", "/")).name or "upload"
            data = upload.read(MAX_IMPORT_FILE_BYTES + 1)
            if len(data) > MAX_IMPORT_FILE_BYTES:
                yield ImportBatch(safe, [ImportCandidate("", None, None, safe, error="too large")])
                continue
            yield ImportBatch(safe, parse_bytes(safe, data), hashlib.sha256(data).hexdigest())

    return signatures_import(actor=actor, batches=batches())


def signatures_submit_imported(
    *, actor: User, summary: ImportSummary, reason: str = ""
) -> BulkResult:
    """Submit the drafts an import just created (``import_signatures --submit``, the import
    API's ``submit``): one ``signatures_submit``, so the whole feed gets ONE gate hunt. Invalid
    imports stay where they are (they cannot be submitted until fixed)."""
    drafts = sorted(
        sig.pk
        for sig in in_batches(
            Signature.objects.filter(status=Status.DRAFT).only("pk"), summary.signature_ids
        )
    )
    return signatures_submit(actor=actor, ids=drafts, reason=reason or "imported feed")
