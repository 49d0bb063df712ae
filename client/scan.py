"""Scan files offline with the installed database, one JSON line per file.

The ruleset is compiled once from the records this engine can run (``State.records``;
records that need a newer engine stay in ``State.skipped`` and are not compiled).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from client import outbox
from client.state import ClientError, StateDir
from engine import ENGINE_VERSION
from engine.codec import CodecError

# what the report API takes as a package name (releases.services_reports)
_PACKAGE = re.compile(r"[A-Za-z0-9_.]{0,255}", re.ASCII)


def scan(
    path: Path, files: Iterable[str], *, engine_version: int = ENGINE_VERSION
) -> Iterator[dict[str, Any]]:
    """Yield one result per file: sha256, package, verdict, score, matches — or an error."""
    # imported here so that register and sync work even where the analysis stack is absent
    from engine.analyze import analyze_with_content
    from engine.errors import EngineError
    from engine.ruleset import compile_ruleset, match, verdict

    state_dir = StateDir(path)
    try:
        state = state_dir.installed(engine_version)
    except CodecError as exc:
        raise ClientError(f"the installed database is damaged: {exc}; run sync") from exc
    if state is None:
        raise ClientError("no database is installed: run sync first")
    ruleset = compile_ruleset(state.records, engine_version=engine_version)
    found: list[dict[str, Any]] = []

    for name in files:
        try:
            features, content = analyze_with_content(name)
            matches = match(features, ruleset, content)
            label, score = verdict(matches, ruleset)
        except EngineError as exc:
            yield {"file": name, "error": exc.message}
            continue
        except OSError as exc:
            yield {"file": name, "error": f"cannot read the file: {exc}"}
            continue
        package = features.manifest.package or ""
        cert = features.certificates[0].sha256 if features.certificates else ""
        if _PACKAGE.fullmatch(package):
            found += [
                outbox.detection(
                    signature_id=m.signature_id,
                    revision=m.revision,
                    release=state.release,
                    sha256=features.sha256,
                    package=package,
                    cert=cert,
                )
                for m in matches
            ]
        yield {
            "file": name,
            "sha256": features.sha256,
            "package": features.manifest.package,
            "verdict": label,
            "score": score,
            "release": state.release,
            "matches": [
                {
                    "id": m.signature_id,
                    "name": m.name,
                    "kind": m.kind,
                    "severity": m.severity,
                    "scoring": m.scoring,
                }
                for m in matches
            ],
        }
    if found:
        # sent by the next sync or check (the phone may be offline now)
        with state_dir.locked():
            outbox.queue(
                state_dir, release=state.release, engine_version=engine_version, detections=found
            )


def dumps(result: dict[str, Any]) -> str:
    return json.dumps(result, sort_keys=True, ensure_ascii=False)
