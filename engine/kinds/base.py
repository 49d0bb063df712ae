"""The contract every signature kind fulfils (modelled on ``django.contrib.auth.hashers``).

A kind turns what a researcher typed (or an importer produced) into a normalised body, says
what is wrong with it, and gives a stable key so that two signatures with the same meaning are
recognised as duplicates. Kinds never raise on bad input: problems are ``Issue`` values.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Issue:
    message: str
    line: int | None = None
    column: int | None = None

    def __str__(self) -> str:
        if self.line is None:
            return self.message
        if self.column is None:
            return f"line {self.line}: {self.message}"
        return f"line {self.line}, column {self.column}: {self.message}"


@dataclass(frozen=True, slots=True)
class ValidationResult:
    """``body`` is the normalised body when there are no errors, else None."""

    body: Any | None
    errors: list[Issue] = field(default_factory=list)
    warnings: list[Issue] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.errors

    @classmethod
    def fail(cls, *messages: str) -> ValidationResult:
        return cls(body=None, errors=[Issue(m) for m in messages])


class Kind(ABC):
    """One kind of signature. Subclasses set the class attributes and implement ``validate``."""

    name: str
    label: str
    description: str
    # the lowest ENGINE_VERSION that can match this kind at all; a body may need more
    min_engine: int = 1

    @abstractmethod
    def validate(self, body: Any) -> ValidationResult: ...

    def dedup_key(self, normalised_body: Any) -> str:
        """Equal for equal normalised bodies of this kind, different across kinds."""
        canonical = json.dumps(normalised_body, sort_keys=True, separators=(",", ":"))
        digest = hashlib.sha256(canonical.encode("utf-8")).hexdigest()
        return f"{self.name}:{digest}"

    def summary(self, body: Any) -> str:
        text = body if isinstance(body, str) else json.dumps(body, sort_keys=True)
        return text if len(text) <= 80 else text[:77] + "..."

    def __repr__(self) -> str:
        return f"<Kind {self.name}>"
