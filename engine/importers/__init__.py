"""Turn signature files from other tools into candidates the portal can store.

Parsers are pure: they read files (or bytes), never the database, and never raise on bad
input. Every candidate has already been through its kind's ``validate``: ``body`` is the
normalised body, or ``error`` says why the candidate must be kept as invalid.

``parse_path(path, root=None)`` picks a parser by extension; ``parse_bytes(name, data)`` does
the same for an upload, where YARA ``include`` cannot reach any file.
"""

from __future__ import annotations

from pathlib import Path

from engine.importers import clamav, csv_file, quark, yara_files
from engine.importers.base import ImportCandidate, finish

PARSERS_BY_SUFFIX = {
    ".yar": "yara",
    ".yara": "yara",
    ".hdb": "clamav",
    ".hsb": "clamav",
    ".ndb": "clamav",
    ".ldb": "clamav",
    ".cvd": "clamav",
    ".cld": "clamav",
    ".cdiff": "clamav",
    ".json": "quark",
    ".csv": "csv",
}
MAX_FILE_BYTES = 50 * 1024 * 1024


def display_name(path: str | Path, root: str | Path | None = None) -> str:
    """How a file is named in candidates' ``source``: its path relative to ``root`` (what
    was imported: the folder named, or the file's own folder), never the absolute path."""
    path = Path(path)
    base = Path(root) if root is not None else path.parent
    try:
        return path.resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path.name


def parse_path(path: str | Path, *, root: str | Path | None = None) -> list[ImportCandidate]:
    """Candidates from one file, named relative to ``root`` (``display_name``). YARA
    ``include`` may reach files under ``root`` (default: the file's own folder), never
    outside it."""
    path = Path(path)
    name = display_name(path, root)
    suffix = path.suffix.lower()
    if suffix not in PARSERS_BY_SUFFIX:
        return [_unsupported(name)]
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            return [_failure(name, f"file is larger than {MAX_FILE_BYTES} bytes")]
        if PARSERS_BY_SUFFIX[suffix] == "yara":
            return yara_files.parse_file(path, root=Path(root) if root else path.parent, name=name)
        data = path.read_bytes()
    except OSError as exc:
        return [_failure(name, f"cannot read the file: {exc.strerror or exc}")]
    except Exception as exc:
        return [_failure(name, f"could not parse the file ({type(exc).__name__}: {exc})")]
    return parse_bytes(name, data)


def parse_bytes(name: str, data: bytes) -> list[ImportCandidate]:
    """Candidates from an uploaded file called ``name``."""
    suffix = Path(name).suffix.lower()
    parser = PARSERS_BY_SUFFIX.get(suffix)
    if parser is None:
        return [_unsupported(name)]
    if len(data) > MAX_FILE_BYTES:
        return [_failure(name, f"file is larger than {MAX_FILE_BYTES} bytes")]
    try:
        if parser == "yara":
            return yara_files.parse_bytes(name, data)
        if parser == "clamav":
            return clamav.parse_bytes(name, data)
        if parser == "quark":
            return quark.parse_bytes(name, data)
        return csv_file.parse_bytes(name, data)
    # a parser bug must cost one candidate, not the whole upload
    except Exception as exc:
        return [_failure(name, f"could not parse the file ({type(exc).__name__}: {exc})")]


def _unsupported(name: str) -> ImportCandidate:
    return _failure(name, "unsupported file type")


def _failure(name: str, reason: str) -> ImportCandidate:
    return ImportCandidate(kind="", body=None, name=None, source=name, error=reason)


__all__ = ["ImportCandidate", "display_name", "finish", "parse_bytes", "parse_path"]
