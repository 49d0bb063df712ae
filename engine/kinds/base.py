"""The contract every signature kind fulfils (modelled on ``django.contrib.auth.hashers``).

A kind carries all of its behaviour, so that adding one is one module:

- **validation**: it turns what a researcher typed (or an importer produced) into a normalised
  body, says what is wrong with it (``Issue`` values; kinds never raise on bad input), and
  gives a stable key so that two signatures with the same meaning are recognised as
  duplicates;
- **matching**: ``new_index`` gives the kind's part of a compiled ruleset (a ``KindIndex``):
  how a record is indexed, and how an app's features (or its bytes) are matched against that
  index, adding evidence to ``Hits``. ``engine.ruleset`` only loops over the indexes;
- **weight**: how a body scales its severity's weight in the verdict (``weight_factor``);
- **export** (``engine.exporters``): its STIX pattern, its CSV body text, its YARA source.

The release codec (``engine.codec``) needs nothing from a kind: any body that is JSON ships in
its generic section (hash records have a compact section of their own, a fixed part of the
wire format).
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, ClassVar

from engine.features import AppContent, AppFeatures, RuleRecord

# how much evidence one match keeps (the first texts found, without repeats)
MAX_EVIDENCE_PER_MATCH = 10


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


# --------------------------------------------------------------------------------------------
# matching: what a kind contributes to a compiled ruleset


class Hits:
    """Evidence per record position (in ``Ruleset.records``), in the order records were first
    hit. Each kind's ``KindIndex.match_*`` adds to it; the ruleset turns it into matches."""

    __slots__ = ("evidence",)

    def __init__(self) -> None:
        self.evidence: dict[int, list[str]] = {}

    def add(self, index: int, text: str) -> None:
        found = self.evidence.setdefault(index, [])
        if len(found) < MAX_EVIDENCE_PER_MATCH and text not in found:
            found.append(text)


# A value maps to one record position (the common case) or to a list of them; this halves
# the memory of a million-record ruleset compared to a list per value.
Slot = int | list[int]


def slot_add(table: dict[Any, Slot], key: Any, index: int) -> None:
    current = table.get(key)
    if current is None:
        table[key] = index
    elif isinstance(current, int):
        table[key] = [current, index]
    else:
        current.append(index)


def slot_get(table: dict[Any, Slot], key: Any) -> list[int]:
    current = table.get(key)
    if current is None:
        return []
    return [current] if isinstance(current, int) else current


class KindIndex(ABC):
    """One kind's records in a compiled ruleset, and how an app is matched against them.

    ``engine.ruleset.compile`` makes one per kind it meets (``Kind.new_index``), calls ``add``
    for each record of the kind, then ``finish`` once. ``match`` then calls
    ``match_features`` for the app and for each part of an XAPK (``where`` says which, for
    evidence) when ``matches_features`` is true, and ``match_content`` once with the app's
    bytes when ``matches_content`` is true. Both must cost time in proportion to what the app
    contains, not to the number of records. Indexes are pickled with the ruleset (workers
    keep it), and ``copy.copy`` of a ruleset copies each index shallowly.
    """

    @abstractmethod
    def add(self, record: RuleRecord, index: int) -> None:
        """Index ``record``, which sits at ``index`` in ``Ruleset.records``. Raise KeyError,
        TypeError or ValueError for a body this kind cannot use: the record then becomes a
        ``CompileProblem`` and takes no position."""

    def finish(self, records: list[RuleRecord]) -> list[tuple[int, str]]:
        """Called once after every record is added (``records`` is ``Ruleset.records``).
        Returns (index, message) for records found unusable only now (YARA rules yara-x
        rejects): they keep their position but never match (``matchable``)."""
        return []

    @property
    def matches_features(self) -> bool:
        """Whether ``match_features`` can find anything (false for an empty index)."""
        return False

    @property
    def matches_content(self) -> bool:
        """Whether ``match_content`` can find anything (it needs the app's bytes)."""
        return False

    def match_features(self, features: AppFeatures, hits: Hits, where: str) -> None:
        """Add to ``hits`` the records ``features`` matches; ``where`` ends each evidence text."""
        return None

    def match_content(
        self,
        features: AppFeatures | None,
        content: AppContent,
        hits: Hits,
        *,
        first_hit: bool,
    ) -> None:
        """Add to ``hits`` the records the app's bytes match (``features`` is None when the
        caller has only ``content.facts``). ``first_hit`` as in ``engine.ruleset.match``."""
        return None

    def matchable(self, index: int) -> bool:
        """Whether the record at ``index`` can match at all (``Ruleset.counts``)."""
        return True


class Kind(ABC):
    """One kind of signature. Subclasses set the class attributes, implement ``validate`` and
    ``new_index``, and override the export hooks that apply to them."""

    name: str
    label: str
    description: str
    # the lowest ENGINE_VERSION that can match this kind at all; a body may need more
    min_engine: int = 1
    # whether ``weight_factor`` can differ from 1 (so callers weighing a million records skip
    # the call for kinds that never scale)
    scales_weight: ClassVar[bool] = False

    @abstractmethod
    def validate(self, body: Any) -> ValidationResult: ...

    @abstractmethod
    def new_index(self) -> KindIndex:
        """An empty index for this kind's records in one ruleset."""

    def weight_factor(self, body: Any) -> float:
        """What a match's severity weight is multiplied by (0-1); see ``engine.ruleset``."""
        return 1.0

    # --- export (engine.exporters) -----------------------------------------------------------

    def stix_pattern(self, body: Any) -> tuple[str, str] | None:
        """(pattern, pattern_type) of a STIX 2.1 indicator, or None when STIX cannot say it."""
        return None

    def csv_body(self, body: Any) -> str:
        """The ``body`` cell of a CSV export (the CSV importer reads it back)."""
        return json.dumps(body, sort_keys=True)

    def yara_source(self, body: Any) -> str | None:
        """The body as YARA source for ``to_yara``, or None (left out of a YARA export)."""
        return None

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


def stix_quote(value: str) -> str:
    """A STIX pattern string literal."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"
