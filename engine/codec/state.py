"""``State``: an installed release's records with their canonical encoding and hash."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

from engine.codec.records import CodecError, Forms, check_record, encode_sorted
from engine.features import RuleRecord


class State:
    """An installed release: every record, split by what this engine can run.

    ``records`` are compiled and matched; ``skipped`` need a newer engine and are only kept so
    that the state (and its hash) stays whole. Treat a State as immutable.
    """

    __slots__ = ("_by_id", "_canonical", "_forms", "engine_version", "release", "sha256")

    def __init__(
        self,
        *,
        release: int,
        records: Iterable[RuleRecord],
        engine_version: int,
    ) -> None:
        self.release = release
        self.engine_version = engine_version
        self._by_id: dict[int, RuleRecord] = {}
        for record in records:
            check_record(record)
            if record.id in self._by_id:
                raise CodecError(f"two records with id {record.id}")
            self._by_id[record.id] = record
        self._canonical, self._forms = encode_sorted([self._by_id[i] for i in sorted(self._by_id)])
        self.sha256 = hashlib.sha256(self._canonical).hexdigest()

    @classmethod
    def _trusted(
        cls,
        *,
        release: int,
        by_id: dict[int, RuleRecord],
        engine_version: int,
        canonical: bytes | None,
        forms: Forms,
    ) -> State:
        """Build from parts this module has already checked (decoded or re-encoded)."""
        self = cls.__new__(cls)
        self.release = release
        self.engine_version = engine_version
        self._by_id = by_id
        if canonical is None:
            canonical, forms = encode_sorted([by_id[i] for i in sorted(by_id)], forms)
        self._canonical = canonical
        self._forms = forms
        self.sha256 = hashlib.sha256(canonical).hexdigest()
        return self

    @classmethod
    def from_canonical(
        cls,
        *,
        release: int,
        records: list[RuleRecord],
        canonical: bytes,
        forms: Forms,
        engine_version: int,
    ) -> State:
        """The state of a canonical encoding already decoded (and so checked) into
        ``records`` and ``forms`` (``decode_state_forms``)."""
        return cls._trusted(
            release=release,
            by_id={r.id: r for r in records},
            engine_version=engine_version,
            canonical=canonical,
            forms=forms,
        )

    def with_changes(
        self,
        *,
        release: int,
        removed: list[int],
        upserts: list[RuleRecord],
        upsert_forms: Forms,
        engine_version: int,
    ) -> State:
        """A new state: this one without ``removed`` and with ``upserts`` (decoded, so
        checked, from a delta). This state is left untouched."""
        by_id = dict(self._by_id)
        forms = dict(self._forms)
        for rid in removed:
            if by_id.pop(rid, None) is None:
                raise CodecError(f"delta removes id {rid}, which is not installed")
            forms.pop(rid, None)
        for record in upserts:
            by_id[record.id] = record
            forms.pop(record.id, None)
        forms.update(upsert_forms)
        return State._trusted(
            release=release,
            by_id=by_id,
            engine_version=engine_version,
            canonical=None,
            forms=forms,
        )

    @property
    def canonical(self) -> bytes:
        return self._canonical

    @property
    def all_records(self) -> tuple[RuleRecord, ...]:
        return tuple(self._by_id[i] for i in sorted(self._by_id))

    @property
    def records(self) -> tuple[RuleRecord, ...]:
        v = self.engine_version
        return tuple(r for r in self.all_records if r.min_engine <= v)

    @property
    def skipped(self) -> tuple[RuleRecord, ...]:
        v = self.engine_version
        return tuple(r for r in self.all_records if r.min_engine > v)

    def __len__(self) -> int:
        return len(self._by_id)

    def get(self, rule_id: int) -> RuleRecord | None:
        return self._by_id.get(rule_id)

    def __repr__(self) -> str:
        return f"<State release={self.release} records={len(self)} sha256={self.sha256[:12]}>"
