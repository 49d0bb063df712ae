"""How YARA records are compiled into a ruleset and matched: the ``yara`` kind's index.

Every YARA record of a ruleset goes into one ``yara_x.Rules``, one namespace per record
(``r<position>``), so an app's file, binary manifest and each DEX are scanned once for all of
them. The index also notes which records may read the scanned bytes (``reads_bytes``: the
others are answered from an app's stored facts alone, ``engine.ruleset.match_facts``) and
which may read the ``android`` global (``reads_globals``: the others need no
``set_global``), and plans a lone regex-heavy record's literal split
(``engine.literal_split``) for retro-hunts.
"""

from __future__ import annotations

import io
import re
from typing import Any

import yara_x

from engine import androguard, literal_split
from engine.features import AppContent, AppFeatures, RuleRecord
from engine.kinds import _yara_source
from engine.kinds import yara as yara_kind
from engine.kinds.base import Hits, KindIndex

YARA_SCAN_TIMEOUT_SECONDS = 60
_MAX_PATTERNS_IN_EVIDENCE = 3

# what one scan target is: (file kind, file name, bytes, or None for the whole file on disk)
_Target = tuple[str, str, bytes | None]


class YaraIndex(KindIndex):
    """The compiled rules of a ruleset's YARA records and what each may read."""

    def __init__(self) -> None:
        self.pending: list[int] = []  # positions added, compiled by ``finish``
        self.yara_rules: yara_x.Rules | None = None
        self.yara_namespaces: dict[str, int] = {}
        # records whose compiled condition may read the scanned bytes (``reads_bytes``)
        self.yara_byte_readers: set[int] = set()
        # records that may read the ``android`` global, and those that may read its fields
        # that change with the part scanned (``reads_globals``): the others need no set_global
        self.yara_global_readers: set[int] = set()
        self.yara_part_readers: set[int] = set()
        # a lone regex-heavy record that hunts can match through its literals; else None
        self.yara_split: literal_split.SplitPlan | None = None
        self.lone_name = ""  # the name of the only compiled record, for split evidence

    def __getstate__(self) -> dict[str, Any]:
        # yara_x.Rules does not pickle, but it serialises to bytes
        state = dict(self.__dict__)
        if self.yara_rules is not None:
            buffer = io.BytesIO()
            self.yara_rules.serialize_into(buffer)
            state["yara_rules"] = buffer.getvalue()
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        raw = state.get("yara_rules")
        if isinstance(raw, bytes):
            state = {**state, "yara_rules": yara_x.Rules.deserialize_from(io.BytesIO(raw))}
        self.__dict__.update(state)

    def __copy__(self) -> YaraIndex:
        # not through __getstate__: a shallow copy shares the compiled rules as they are
        clone = YaraIndex.__new__(YaraIndex)
        clone.__dict__.update(self.__dict__)
        return clone

    def add(self, record: RuleRecord, index: int) -> None:
        if not isinstance(record.body, str):
            raise TypeError("a YARA body is text")
        self.pending.append(index)

    def finish(self, records: list[RuleRecord]) -> list[tuple[int, str]]:
        """All YARA records into one ``yara_x.Rules``, one namespace per record.

        The first pass adds each record to one compiler and notes those yara-x rejects
        (adding continues after an error); if any failed, a second compiler builds the good
        ones alone, so that a half-added bad source cannot leave stray rules behind.
        """
        problems: list[tuple[int, str]] = []
        good: list[int] = []
        sources: dict[int, str] = {}  # what yara-x compiles (a Koodous rule: its rewrite)
        compiler = yara_kind.new_compiler()
        androguard.prepare(records[index].body for index in self.pending)
        for index in self.pending:
            record = records[index]
            structure_errors, _, _ = yara_kind.structure_issues(record.body)
            source, rewrite_errors = yara_kind.compiled_source(record.body)
            if structure_errors or rewrite_errors:
                problems.append((index, str((structure_errors + rewrite_errors)[0])))
                continue
            sources[index] = source
            compiler.new_namespace(f"r{index}")
            try:
                compiler.add_source(source, origin=record.name)
            except yara_x.CompileError as exc:
                problems.append((index, str(exc).splitlines()[0]))
                continue
            good.append(index)
            if reads_bytes(source):
                self.yara_byte_readers.add(index)
            global_, part = reads_globals(source)
            if global_:
                self.yara_global_readers.add(index)
            if part:
                self.yara_part_readers.add(index)
        if problems:
            compiler = yara_kind.new_compiler()
            for index in good:
                compiler.new_namespace(f"r{index}")
                compiler.add_source(sources[index], origin=records[index].name)
        self.pending = []
        self.yara_rules = compiler.build()
        # a rejected record keeps its position (so others' stay valid) but gets no namespace
        self.yara_namespaces = {f"r{i}": i for i in good}
        if len(good) == 1:
            self.lone_name = records[good[0]].name
            self.yara_split = literal_split.plan(sources[good[0]])
        return problems

    @property
    def matches_content(self) -> bool:
        return self.yara_rules is not None and bool(self.yara_namespaces)

    @property
    def facts_only(self) -> bool:
        """No record reads bytes: the app's stored facts alone answer (``FactsScanner``)."""
        return self.matches_content and not self.yara_byte_readers

    def matchable(self, index: int) -> bool:
        return f"r{index}" in self.yara_namespaces

    def match_content(
        self,
        features: AppFeatures | None,
        content: AppContent,
        hits: Hits,
        *,
        first_hit: bool,
    ) -> None:
        if content.facts is not None:
            facts = content.facts
        elif features is not None:
            facts = android_globals(features)
        else:
            raise ValueError("YARA matching needs the app's features or content.facts")
        assert self.yara_rules is not None
        scanner = yara_x.Scanner(self.yara_rules)
        scanner.set_timeout(YARA_SCAN_TIMEOUT_SECONDS)
        whole: list[_Target] = [("apk", "", None)] if content.path else []
        manifest: list[_Target] = (
            [("manifest", "AndroidManifest.xml", content.manifest)] if content.manifest else []
        )
        dex: list[_Target] = [("dex", name, data) for name, data in content.dex]
        targets = [*dex, *manifest, *whole] if first_hit else [*whole, *manifest, *dex]
        split = first_hit and self.yara_split is not None
        if split and self._match_split(content.path, targets, hits):
            return
        hit: set[int] = set()
        if androguard.FACTS_FIELD not in facts:
            # facts kept before Koodous rules ran (a unit pack): their androguard part is unknown
            facts = {**facts, androguard.FACTS_FIELD: androguard.default_facts()}
        # the facts once per app, or per part when a rule may read which part it sees, or
        # never when no rule names the global (``reads_globals``): the answers are the same
        per_part = bool(self.yara_part_readers)
        if self.yara_global_readers and not per_part:
            scanner.set_global(
                yara_kind.GLOBAL_NAME, {**facts, "file_kind": "apk", "file_name": ""}
            )
        for file_kind, file_name, data in targets:
            if first_hit and len(hit) == len(self.yara_namespaces):
                break  # every YARA record has hit: the rest cannot change which ones match
            if per_part:
                scanner.set_global(
                    yara_kind.GLOBAL_NAME,
                    {**facts, "file_kind": file_kind, "file_name": file_name},
                )
            if data is None:
                results = scanner.scan_file(content.path)
                place = "the file"
            else:
                results = scanner.scan(data)
                place = file_name
            for rule in results.matching_rules:
                index = self.yara_namespaces.get(rule.namespace)
                if index is None:
                    continue
                first = [(p.identifier, p.matches[0].offset) for p in rule.patterns if p.matches]
                hits.add(index, yara_evidence(first, rule.identifier, place))
                hit.add(index)

    def _match_split(self, path: str, targets: list[_Target], hits: Hits) -> bool:
        """``first_hit`` matching of the lone regex-heavy record through its literals
        (``engine.literal_split``): the same answer and evidence as yara-x over the whole
        rule. False, with nothing added, when a regex's literal is too common in some part
        to pay (``literal_split.max_windows``): the caller then scans the usual way."""
        assert self.yara_split is not None
        (index,) = self.yara_namespaces.values()
        for _, file_name, data in targets:
            first = self.yara_split.first_matches(data, path, YARA_SCAN_TIMEOUT_SECONDS)
            if first is None:
                return False
            if first:
                place = "the file" if data is None else file_name
                hits.add(index, yara_evidence(first, self.lone_name, place))
                return True
        return True

    def match_facts(self, scanner: yara_x.Scanner, facts: dict[str, Any], hits: Hits) -> None:
        """The records ``facts`` matches, in one evaluation over no bytes (``facts_only``)."""
        if androguard.FACTS_FIELD not in facts:
            facts = {**facts, androguard.FACTS_FIELD: androguard.default_facts()}
        scanner.set_global(yara_kind.GLOBAL_NAME, {**facts, "file_kind": "apk"})
        for rule in scanner.scan(b"").matching_rules:
            index = self.yara_namespaces.get(rule.namespace)
            if index is not None:
                hits.add(index, f"yara: rule {rule.identifier} condition on the app's facts")


def yara_evidence(first: list[tuple[str, int]], rule: str, place: str) -> str:
    """What a YARA match shows: its first strings matched, each at its first offset."""
    shown = [f"{name} at {offset:#x}" for name, offset in first[:_MAX_PATTERNS_IN_EVIDENCE]]
    detail = ", ".join(shown) if shown else f"rule {rule} condition"
    return f"yara: {detail} in {place}"


# identifiers whose value depends on the bytes scanned or on which part of the app is scanned
_BYTE_WORDS = frozenset({"filesize", "entrypoint", "file_kind", "file_name"})
_BYTE_FUNCTION = re.compile(r"u?int(8|16|32)(be)?$")


def reads_bytes(source: str) -> bool:
    """Whether a compiled YARA source may depend on the bytes scanned: patterns (``$a``,
    ``#a``, ``@a``, ``!a``, an anonymous ``$``, ``them``), ``filesize``, ``entrypoint``,
    ``uint8(…)`` and kin, any module (they parse the bytes), and
    ``android.file_kind``/``file_name`` (which part is scanned).
    Conservative: a rule this says no to answers the same on any bytes, so from facts alone
    (a rewritten Koodous rule without strings, ``android.package == "…"``)."""
    if _yara_source.parse(source).imports:
        return True
    for token in _yara_source.tokenize(source):
        # ``$a`` and kin; an anonymous string's bare ``$``; ``them`` (all of a rule's strings)
        if token.kind == "var" or (token.kind == "punct" and token.text == "$"):
            return True
        if token.kind == "ident" and token.text == "them":
            return True
        if token.kind == "ident" and (
            token.text in _BYTE_WORDS or _BYTE_FUNCTION.match(token.text) is not None
        ):
            return True
    return False


_GLOBAL_WORD = re.compile(rf"\b{yara_kind.GLOBAL_NAME}\b")
_PART_WORD = re.compile(r"\bfile_(kind|name)\b")


def reads_globals(source: str) -> tuple[bool, bool]:
    """Whether a compiled YARA source may read the ``android`` global at all, and whether it
    may read ``file_kind``/``file_name``, the fields that change with the part scanned.

    Textual, so conservative: a word anywhere (a tag, a comment, a string) counts. A rule
    can only read the global by naming it (``android.package``, ``0..android.cert_count``),
    and a struct field only by its name, so a source without the word cannot tell what
    ``set_global`` gave: ``match_content`` then skips handing yara-x the facts (about 50 µs
    per part scanned, as long as scanning a small DEX)."""
    return _GLOBAL_WORD.search(source) is not None, _PART_WORD.search(source) is not None


def android_globals(
    features: AppFeatures, *, file_kind: str = "apk", file_name: str = ""
) -> dict[str, Any]:
    """The ``android`` yara-x global for one scan (see ``engine.kinds.yara``)."""
    manifest = features.manifest
    if manifest.package is None:
        # an XAPK has no top-level manifest; its base part speaks for it
        manifest = next((p.manifest for p in features.parts if p.manifest.package), manifest)
    certificates = features.certificates or tuple(c for p in features.parts for c in p.certificates)
    permissions = [p for p in manifest.permissions if p]
    certs = sorted({c.sha256.lower() for c in certificates if c.sha256})
    values = yara_kind.default_globals()
    values[androguard.FACTS_FIELD] = androguard.facts(features)
    values.update(
        package=manifest.package or "",
        app_label=manifest.app_label or "",
        version_name=manifest.version_name or "",
        version_code=manifest.version_code or 0,
        min_sdk=manifest.min_sdk or 0,
        target_sdk=manifest.target_sdk or 0,
        permissions=permissions or [""],
        permission_count=len(permissions),
        cert_sha256=certs or [""],
        cert_count=len(certs),
        sha256=features.sha256 or "",
        file_kind=file_kind,
        file_name=file_name,
    )
    return values
