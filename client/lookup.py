"""Cloud look-up: ask the portal what it knows of apps this phone cannot judge alone.

``POST {server}/api/v1/devices/lookup/`` with ``Authorization: Token <token>`` and
``{"sha256s": [...]}`` (at most ``BATCH`` a request) answers::

    {"release": N, "cache_seconds": S,
     "results": [{"sha256", "verdict", "label", "family", "signature", "release"}, ...]}

``verdict`` is malicious, suspicious, clean or unknown (never seen by the portal). Each answer
depends on the hash and the portal's release only, so it is kept per hash in ``lookup.json``
in the state folder and used again, with no request, while both hold:

- it is younger than the ``cache_seconds`` the portal gave with it;
- the release installed on this phone is the one it was kept under (a new release may change
  any verdict, so the whole cache is dropped when the installed release changes).

Only the hashes not answered from the cache are asked for, ``BATCH`` at a time. A 429 with a
long Retry-After ends the run (``Throttled``, exit 75): the answers received so far are kept,
and the time is stored so that the next run does not ask before it (``--force`` does).
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from client.api import Backoff, Throttled, _json, _request
from client.state import ClientError, StateDir
from engine.binary import write_atomic
from engine.codec import CodecError, read_full_header

LOOKUP_PATH = "/api/v1/devices/lookup/"
BATCH = 100  # the portal's limit per request
MAX_ENTRIES = 20_000  # a phone with more apps than this keeps the newest answers only
VERDICTS = frozenset({"malicious", "suspicious", "clean", "unknown"})
ANSWER_FIELDS = ("verdict", "label", "family", "signature", "release")
_SHA256 = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)


@dataclass
class LookupOptions:
    force: bool = False  # ask even before a stored Retry-After has passed
    backoff: Backoff = field(default_factory=Backoff)
    clock: Callable[[], float] = time.time


@dataclass
class Cache:
    """lookup.json: answers per hash under one installed release, and a server's wait."""

    release: int = 0
    entries: dict[str, dict[str, Any]] = field(default_factory=dict)  # sha -> answer + expires
    retry_after: float = 0.0

    def fresh(self, sha: str, now: float) -> dict[str, Any] | None:
        entry = self.entries.get(sha)
        if entry is None or float(entry.get("expires", 0)) <= now:
            return None
        return entry

    def to_json(self, now: float) -> dict[str, Any]:
        live = [(sha, e) for sha, e in self.entries.items() if float(e.get("expires", 0)) > now]
        live.sort(key=lambda item: float(item[1]["expires"]))
        return {
            "release": self.release,
            "retry_after": self.retry_after,
            "entries": dict(live[-MAX_ENTRIES:]),
        }


def cache_path(state_dir: StateDir) -> Path:
    return state_dir.path / "lookup.json"


def installed_release(state_dir: StateDir) -> int:
    """The installed release from the database header alone (0: none or unreadable)."""
    try:
        with state_dir.db_path.open("rb") as fh:
            return read_full_header(fh.read(4096)).release
    except (OSError, CodecError):
        return 0


def load_cache(state_dir: StateDir, release: int) -> Cache:
    """The stored cache; its answers dropped when kept under another installed release."""
    try:
        data = json.loads(cache_path(state_dir).read_text())
        kept_under = int(data["release"])
        entries = data["entries"] if isinstance(data.get("entries"), dict) else {}
        retry_after = float(data.get("retry_after", 0.0))
    except (FileNotFoundError, ValueError, KeyError, TypeError):
        return Cache(release=release)
    if kept_under != release:
        entries = {}
    good = {k: v for k, v in entries.items() if isinstance(v, dict) and _SHA256.fullmatch(k)}
    return Cache(release=release, entries=good, retry_after=retry_after)


def save_cache(state_dir: StateDir, cache: Cache, now: float) -> None:
    write_atomic(cache_path(state_dir), json.dumps(cache.to_json(now)).encode())


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def resolve(item: str) -> dict[str, Any]:
    """An argument as {"input", "sha256"} (a file is hashed), or {"input", "error"}."""
    path = Path(item)
    if path.is_file():
        try:
            return {"input": item, "file": item, "sha256": file_sha256(path)}
        except OSError as exc:
            return {"input": item, "error": f"cannot read the file: {exc}"}
    if _SHA256.fullmatch(item):
        return {"input": item, "sha256": item.lower()}
    return {"input": item, "error": "neither a readable file nor a SHA-256 (64 hex digits)"}


def post_lookup(
    server: str, token: str, sha256s: list[str], backoff: Backoff | None = None
) -> dict[str, Any]:
    """One request for at most BATCH hashes; the checked answer."""
    if not 0 < len(sha256s) <= BATCH:
        raise ClientError(f"a look-up asks about 1 to {BATCH} apps, not {len(sha256s)}")
    response = _request(
        "POST",
        server.rstrip("/") + LOOKUP_PATH,
        backoff or Backoff(),
        json={"sha256s": sha256s},
        headers={"Authorization": f"Token {token}"},
    )
    data = _json(response)
    if response.status_code != 200:
        raise ClientError(f"the look-up was refused ({response.status_code})", detail=data)
    results, seconds = data.get("results"), data.get("cache_seconds")
    if not isinstance(results, list) or type(seconds) is not int or seconds < 0:
        raise ClientError("the look-up answer lacks results or cache_seconds", detail=data)
    answered: dict[str, dict[str, Any]] = {}
    for row in results:
        sha = row.get("sha256") if isinstance(row, dict) else None
        if not isinstance(sha, str) or row.get("verdict") not in VERDICTS:
            raise ClientError("the look-up answer has a malformed result", result=row)
        answered[sha.lower()] = {k: row.get(k) for k in ANSWER_FIELDS}
    missing = [sha for sha in sha256s if sha not in answered]
    if missing:
        raise ClientError(f"the look-up answer lacks {len(missing)} app(s)", missing=missing[:5])
    return {"release": data.get("release"), "cache_seconds": seconds, "answers": answered}


def lookup(
    path: Path, items: Iterable[str], options: LookupOptions | None = None
) -> tuple[list[dict[str, Any]], Throttled | None]:
    """One result per argument, in order (the answer and whether it came from the cache), and
    the ``Throttled`` that stopped the run early, if any (exit 75).

    When the portal asks to wait, every answer received so far is kept and printed; the apps
    not asked about get a line saying so. Other failures raise ``ClientError``."""
    options = options or LookupOptions()
    state_dir = StateDir(path)
    with state_dir.locked():
        config = state_dir.config()
        now = options.clock()
        cache = load_cache(state_dir, installed_release(state_dir))
        resolved = [resolve(item) for item in items]
        wanted: list[str] = []
        for r in resolved:
            sha = r.get("sha256")
            if sha and cache.fresh(sha, now) is None and sha not in wanted:
                wanted.append(sha)
        fetched: set[str] = set()
        throttled: Throttled | None = None
        try:
            if wanted and not options.force and now < cache.retry_after:
                raise Throttled(cache.retry_after - now)
            for start in range(0, len(wanted), BATCH):
                batch = wanted[start : start + BATCH]
                answer = post_lookup(config.server, config.token, batch, options.backoff)
                expires = options.clock() + answer["cache_seconds"]
                for sha, fields in answer["answers"].items():
                    cache.entries[sha] = {**fields, "expires": expires}
                fetched.update(batch)
        except Throttled as exc:
            cache.retry_after = max(cache.retry_after, now + exc.retry_after)
            exc.extra["answered"] = len(fetched)
            exc.extra["unanswered"] = len(wanted) - len(fetched)
            throttled = exc
        finally:
            save_cache(state_dir, cache, now)
        out: list[dict[str, Any]] = []
        for r in resolved:
            sha = r.get("sha256")
            entry = cache.entries.get(sha) if sha else None
            if sha and (sha in fetched or cache.fresh(sha, now) is not None) and entry:
                out.append(
                    {
                        **r,
                        **{k: entry.get(k) for k in ANSWER_FIELDS},
                        "cached": sha not in fetched,
                        "installed_release": cache.release,
                    }
                )
            elif sha:
                out.append({**r, "error": "not asked: the portal asked this phone to wait"})
            else:
                out.append(r)
        return out, throttled
