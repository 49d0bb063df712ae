"""The candidate every importer produces."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from engine.kinds import REGISTRY


@dataclass(frozen=True, slots=True)
class ImportCandidate:
    kind: str  # a key of engine.kinds.REGISTRY, or "" when the input was not understood
    body: Any | None  # the normalised body; None when ``error`` is set
    name: str | None  # the name the source gave it (rule name, ClamAV name, Quark crime)
    source: str  # where it came from: "file:line" or "file:rule"
    family_hint: str | None = None
    severity_hint: str | None = None
    error: str | None = None  # keep as invalid, for this reason
    # the rule as written (YARA), kept whether or not it is valid, so that an invalid rule
    # can be opened, fixed and submitted; None when the source has no text of its own
    text: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def finish(candidate: ImportCandidate) -> ImportCandidate:
    """Validate a raw candidate with its kind: normalise the body or record the first error."""
    if candidate.error is not None:
        return replace(candidate, body=None)
    kind = REGISTRY.get(candidate.kind)
    if kind is None:
        return replace(candidate, body=None, error=f"unknown signature kind {candidate.kind!r}")
    result = kind.validate(candidate.body)
    if result.errors:
        return replace(candidate, body=None, error=str(result.errors[0]))
    return replace(candidate, body=result.body)


def decode_text(data: bytes) -> str:
    """Text of a signature file; raises UnicodeDecodeError for binary or non-UTF-8 input."""
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data:
        raise UnicodeDecodeError(
            "utf-8",
            data,
            data.index(b"\x00"),
            data.index(b"\x00") + 1,
            "NUL byte: this is not a text file",
        )
    return data.decode("utf-8")
