"""Split a YARA file into one candidate per rule, each able to compile on its own.

Each public rule of the file becomes a candidate whose body holds, in order: the ``import``
statements of the modules it (or a helper) uses, the file's ``global`` rules (they gate every
rule of their namespace in YARA), the helper rules it refers to, transitively, and the rule.
Helpers are marked ``private`` so a signature reports only its own rule. Private rules are
helpers, not candidates. Rules of included files are helpers too: they become candidates when
their own file is imported.

``include "x"`` is resolved relative to the including file, must stay under the import root,
and is read once (cycles are harmless). In an upload (``parse_bytes``) nothing can be included:
every rule of a file with an ``include`` is kept as invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from engine.importers.base import ImportCandidate, decode_text, finish
from engine.kinds import _yara_source
from engine.kinds._yara_source import RuleSource


@dataclass
class _Unit:
    """What one file contributes once its includes are resolved."""

    imports: list[str] = field(default_factory=list)
    helpers: dict[str, RuleSource] = field(default_factory=dict)  # from included files
    globals: list[RuleSource] = field(default_factory=list)
    include_error: str | None = None


def parse_file(path: Path, *, root: Path, name: str | None = None) -> list[ImportCandidate]:
    """Candidates of the file at ``path``, their ``source`` starting with ``name`` (default:
    the path)."""
    origin = str(path) if name is None else name
    try:
        text = decode_text(path.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        return [_failure(origin, f"cannot read the file as UTF-8 text: {exc}")]
    root = root.resolve()
    unit = _Unit()
    visited = {path.resolve()}
    parsed = _yara_source.parse(text)
    for include, line in parsed.includes:
        _include(path.parent, include, line, root, unit, visited)
    return _candidates(origin, parsed, unit)


def parse_bytes(name: str, data: bytes) -> list[ImportCandidate]:
    try:
        text = decode_text(data)
    except UnicodeDecodeError as exc:
        return [_failure(name, f"cannot read the file as UTF-8 text: {exc}")]
    parsed = _yara_source.parse(text)
    unit = _Unit()
    if parsed.includes:
        include, line = parsed.includes[0]
        unit.include_error = (
            f'include "{include}" (line {line}) cannot be resolved in an upload; '
            "import the folder with its included files"
        )
    return _candidates(name, parsed, unit)


def _include(
    base: Path, include: str, line: int, root: Path, unit: _Unit, visited: set[Path]
) -> None:
    if unit.include_error:
        return
    target = (base / include).resolve()
    if not target.is_relative_to(root):
        unit.include_error = f'include "{include}" (line {line}) leaves the import folder'
        return
    if target in visited:
        return
    visited.add(target)
    try:
        text = decode_text(target.read_bytes())
    except (OSError, UnicodeDecodeError) as exc:
        unit.include_error = f'include "{include}" (line {line}) cannot be read: {exc}'
        return
    parsed = _yara_source.parse(text)
    # nested includes first: the included file's own rules may use them
    for nested, nested_line in parsed.includes:
        _include(target.parent, nested, nested_line, root, unit, visited)
    unit.imports += [m for m, _ in parsed.imports if m not in unit.imports]
    for rule in parsed.rules:
        unit.helpers.setdefault(rule.name, rule)
        if rule.is_global:
            unit.globals.append(rule)


def _candidates(origin: str, parsed: _yara_source.SourceFile, unit: _Unit) -> list[ImportCandidate]:
    if not parsed.rules:
        reason = "no YARA rule found"
        if parsed.problems:
            message, line = parsed.problems[0]
            reason = f"no YARA rule found (line {line}: {message})"
        return [_failure(origin, reason)]
    imports = unit.imports + [m for m, _ in parsed.imports if m not in unit.imports]
    available = {**unit.helpers, **{r.name: r for r in parsed.rules}}
    globals_ = unit.globals + [r for r in parsed.rules if r.is_global]
    candidates = []
    for rule in parsed.rules:
        if rule.private:
            continue
        source = f"{origin}:{rule.name}"
        body = _yara_source.assemble(rule, available, globals_, imports)
        if unit.include_error:
            candidates.append(
                replace(
                    _failure(source, unit.include_error, name=rule.name, kind="yara"), text=body
                )
            )
            continue
        candidates.append(
            finish(
                ImportCandidate(kind="yara", body=body, name=rule.name, source=source, text=body)
            )
        )
    if not candidates:
        return [_failure(origin, "the file has only private rules")]
    return candidates


def _failure(
    source: str, reason: str, *, name: str | None = None, kind: str = ""
) -> ImportCandidate:
    return ImportCandidate(kind=kind, body=None, name=name, source=source, error=reason)
