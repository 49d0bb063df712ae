"""The regex-heavy hunt (``android_meterpreter``): yara-x's floor, the hunt path, and ways past.

Run: .venv/bin/python bench/bench_regex_hunt.py [--repeat 7] [--out F]
     (or ``python bench/run.py regex_hunt``). Writes bench/results/regex_hunt.json; never
     asserted. One process, about a minute; unit packs in a temporary folder, deleted after.

Every corpus app that is an app (37 of 39 files; the other two are errors in a hunt) is
analysed once and its unit pack written as a scan writes it. Then, for Yara-Rules'
``android_meterpreter`` (and ``android_metasploit``, four literals, for contrast), each
method below runs over the 37 apps ``--repeat`` times and its median is kept. MB/s is the
stored bytes of the 37 apps (19.08 MB) over that median: the unit of docs/retrohunts.md.

- ``floor``: yara-x alone (one reused Scanner, the whole rule) over exactly the buffers the
  hunt scanned before (the DEX, then manifest, then whole file, up to the first hit), in
  memory: the ceiling of any hunt that hands the rule to yara-x as it is.
- ``hunt_memory_before`` / ``hunt_packs_before``: the hunt path as it was (facts handed to
  yara-x for every part, the whole rule scanned): ``engine.ruleset.match_yara(content,
  ruleset, first_hit=True)`` with the content in memory, or after ``read_units`` from the
  pack file, as a chunk does per sample once its row is loaded (scans/retrohunts.py).
- ``hunt_packs_facts_once``: the facts once per app when no rule reads which part it sees
  (``engine.ruleset.reads_globals``), whole rule still scanned.
- ``hunt_memory`` / ``hunt_packs``: the hunt path now: also, for a lone rule of the shape
  ``engine.literal_split`` takes (android_meterpreter is one; android_metasploit, literals
  only, is not), its literals in one yara-x scan and each regex verified by yara-x on the
  few bytes around its literal's occurrences. Evidence compared with the path before.
- ``dex_strings_only``: as ``floor`` but each DEX replaced by its string-data range (from
  the lowest string_data offset to the end of the last string). Not exact by construction
  (bytecode and tables can hold any bytes); the matching samples are compared.
- ``prefilter_yarax`` / ``prefilter_find``: before the full scan of a buffer, look for the
  literals any match must contain ("META-INF/PK", "[Hp^", "Sk" for /;.Sk/, "eval",
  "base64_decode") with a yara-x rule of those five literals (Teddy-sized) or
  ``bytes.find``; no literal, no full scan. Exact for a rule that needs one of its strings.
- ``atoms``: single-pattern scans over every DEX, showing where the time goes: yara-x
  expands /;.Sk/ into 255 atoms (";" + any byte but \\n + "Sk"), and past 64 atoms it leaves
  its SIMD Teddy searcher for the Aho-Corasick automaton.
- A newer yara-x: none; 1.23.0 (the pin) is the newest on PyPI (``pip index versions``).
"""

from __future__ import annotations

import argparse
import copy
import functools
import hashlib
import json
import platform
import statistics
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from pathlib import Path
from typing import Any

import yara_x

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.analyze import DEFAULT_LIMITS, analyze_with_content  # noqa: E402
from engine.errors import AnalysisError  # noqa: E402
from engine.features import AppContent, RuleRecord  # noqa: E402
from engine.ruleset import Ruleset, android_globals, compile_ruleset, match_yara  # noqa: E402
from engine.units import read_units, write_units  # noqa: E402

CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "bench" / "results" / "regex_hunt.json"
RULE_FILE = CORPUS / "yara" / "Yara-Rules" / "Android" / "Android_Metasploit.yar"
# what any match of android_meterpreter's strings contains ("Sk": of /;.Sk/)
REQUIRED = (b"META-INF/PK", b"[Hp^", b"Sk", b"eval", b"base64_decode")

Buffer = tuple[str, bytes]  # (place shown in evidence, bytes)


@dataclass
class App:
    name: str
    size: int
    path: Path
    pack: Path
    owner: bytes
    content: AppContent
    raw: bytes


def rule_text(name: str) -> str:
    text = RULE_FILE.read_text()
    split = text.index("rule android_metasploit")
    return text[:split] if name == "android_meterpreter" else text[split:]


def load(tmp: Path) -> list[App]:
    apps = []
    for path in sorted((CORPUS / "apks").iterdir()):
        if not path.stat().st_size:
            continue
        try:
            features, content = analyze_with_content(path)
        except AnalysisError:
            continue  # a hunt counts these as errors and scans nothing
        content = replace(content, facts=android_globals(features))
        owner = hashlib.sha256(path.name.encode()).digest()
        pack = tmp / f"{path.name}.units"
        with pack.open("wb") as fh:
            write_units(fh, owner, content)
        apps.append(App(path.name, path.stat().st_size, path, pack, owner, content, b""))
        apps[-1].raw = path.read_bytes()
    return apps


def targets(app: App) -> list[Buffer]:
    """What ``first_hit`` scans, in its order: each DEX, the manifest, the whole file."""
    out = [(name, data) for name, data in app.content.dex]
    if app.content.manifest:
        out.append(("AndroidManifest.xml", app.content.manifest))
    return [*out, ("the file", app.raw)]


def medians(fns: dict[str, Callable[[], Any]], repeat: int) -> dict[str, tuple[float, Any]]:
    """Median seconds and last result of each function, the functions taking turns in each
    repetition (the machine is shared: a busy spell then hits all of them alike)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    results: dict[str, Any] = {}
    for _ in range(repeat):
        for name, fn in fns.items():
            started = time.perf_counter()
            results[name] = fn()
            times[name].append(time.perf_counter() - started)
    return {name: (statistics.median(times[name]), results[name]) for name in fns}


def dex_string_range(data: bytes) -> bytes:
    """From the lowest string_data offset to the end of the last string (MUTF-8, NUL-ended)."""
    count, table = struct.unpack_from("<II", data, 56)
    if not count:
        return b""
    offsets = struct.unpack_from(f"<{count}I", data, table)
    end = data.index(b"\0", max(offsets)) + 1
    return data[min(offsets) : end]


def scan_until_hit(scanner: yara_x.Scanner, buffers: list[Buffer]) -> bool:
    return any(scanner.scan(data).matching_rules for _, data in buffers)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-regex-") as tmp:
        apps = load(Path(tmp))
        result = run(apps, args.repeat)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print("wrote", args.out)


def hunt(apps: list[App], ruleset: Ruleset, *, packs: bool) -> dict[str, tuple[str, ...]]:
    """What a chunk does per sample once its row is loaded (scans/retrohunts.py): the unit
    pack read (``packs``) or its content already in memory, then ``match_yara``."""
    found = {}
    for app in apps:
        content = app.content
        if packs:
            with app.pack.open("rb") as fh:
                content = read_units(fh, app.owner, str(app.path), DEFAULT_LIMITS)
        matches = match_yara(content, ruleset, first_hit=True)
        if matches:
            found[app.name] = matches[0].evidence
    return found


def as_before(ruleset: Ruleset, *, split: bool = False) -> Ruleset:
    """The ruleset matched as before this bench's changes: the facts handed to yara-x for
    every part scanned (not once per app, ``reads_globals``), and (unless ``split``) no
    ``literal_split`` plan."""
    before = copy.copy(ruleset)
    before.yara_part_readers = set(ruleset.yara_namespaces.values())
    if not split:
        before.yara_split = None
    return before


def no_split(ruleset: Ruleset) -> Ruleset:
    """The ruleset with the facts once per app but without its ``literal_split`` plan."""
    alone = copy.copy(ruleset)
    alone.yara_split = None
    return alone


def run(apps: list[App], repeat: int) -> dict[str, Any]:
    stored = sum(a.size for a in apps)
    dex_bytes = [data for a in apps for _, data in a.content.dex]
    out: dict[str, Any] = {
        "python": platform.python_version(),
        "yara_x": metadata.version("yara-x"),
        "repeat": repeat,
        "apps": len(apps),
        "stored_mb": round(stored / 1e6, 2),
        "dex_mb": round(sum(map(len, dex_bytes)) / 1e6, 2),
        "rules": {},
    }
    for name in ("android_meterpreter", "android_metasploit"):
        out["rules"][name] = entry = run_rule(apps, name, repeat, stored)
        print(name, json.dumps(entry), flush=True)
    return out


def run_rule(apps: list[App], name: str, repeat: int, stored: int) -> dict[str, Any]:
    ruleset = compile_ruleset([RuleRecord(1, 1, name, "yara", rule_text(name), "suspicious")])
    before = as_before(ruleset)
    scanner = yara_x.Scanner(yara_x.compile(rule_text(name)))
    expected = hunt(apps, before, packs=False)
    # the buffers the hunt scans: in first_hit order, up to and including the first one hit
    scanned: list[Buffer] = []
    for app in apps:
        for place, data in targets(app):
            scanned.append((place, data))
            if scanner.scan(data).matching_rules:
                break
    fns: dict[str, Callable[[], Any]] = {
        "floor": lambda: [scanner.scan(d) for _, d in scanned],
        "hunt_memory_before": lambda: hunt(apps, before, packs=False),
        "hunt_memory": lambda: hunt(apps, ruleset, packs=False),
        "hunt_packs_before": lambda: hunt(apps, before, packs=True),
        "hunt_packs_facts_once": lambda: hunt(apps, no_split(ruleset), packs=True),
        "hunt_packs": lambda: hunt(apps, ruleset, packs=True),
    }
    if name == "android_meterpreter":
        fns.update(ways(apps, scanner))
    timed = medians(fns, repeat)
    base = timed["hunt_packs_before"][0]
    floor = timed["floor"][0]
    entry: dict[str, Any] = {
        "split_plan": ruleset.yara_split is not None,
        "matching_apps": sorted(expected),
        "scanned_mb": round(sum(len(d) for _, d in scanned) / 1e6, 2),
    }
    for key, (seconds, result) in timed.items():
        row: dict[str, Any] = {
            "ms": round(seconds * 1000, 1),
            "mb_per_s": round(stored / 1e6 / seconds),
            "speedup_vs_hunt_packs_before": round(base / seconds, 2),
            "speedup_vs_floor": round(floor / seconds, 2),
        }
        if key != "floor":
            hits = set(result)
            row["identical_samples"] = hits == set(expected)
        if isinstance(result, dict):
            row["identical_evidence"] = result == expected
        entry[key] = row
    if name == "android_meterpreter":
        entry["dex_strings_only"]["dex_string_mb"] = round(
            sum(len(dex_string_range(d)) for a in apps for _, d in a.content.dex) / 1e6, 2
        )
        entry["atoms"] = atoms(apps, name, repeat)
    return entry


def ways(apps: list[App], scanner: yara_x.Scanner) -> dict[str, Callable[[], Any]]:
    """The other ways past yara-x's ceiling tried on android_meterpreter; each returns the
    apps hit."""

    def strings_only() -> set[str]:
        hit = set()
        for app in apps:
            bufs = [(p, dex_string_range(d)) for p, d in app.content.dex]
            if scan_until_hit(scanner, [*bufs, *targets(app)[len(bufs) :]]):
                hit.add(app.name)
        return hit

    required = " ".join(f"$r{i} = {json.dumps(w.decode())}" for i, w in enumerate(REQUIRED))
    pre = yara_x.Scanner(
        yara_x.compile(f"rule required {{ strings: {required} condition: any of them }}")
    )

    def prefilter_yarax() -> set[str]:
        hit = set()
        for app in apps:
            for _, data in targets(app):
                if pre.scan(data).matching_rules and scanner.scan(data).matching_rules:
                    hit.add(app.name)
                    break
        return hit

    def prefilter_find() -> set[str]:
        hit = set()
        for app in apps:
            for _, data in targets(app):
                if any(w in data for w in REQUIRED) and scanner.scan(data).matching_rules:
                    hit.add(app.name)
                    break
        return hit

    return {
        "dex_strings_only": strings_only,
        "prefilter_yarax": prefilter_yarax,
        "prefilter_find": prefilter_find,
    }


def scan_all(scanner: yara_x.Scanner, buffers: list[bytes]) -> None:
    for data in buffers:
        scanner.scan(data)


def atoms(apps: list[App], name: str, repeat: int) -> dict[str, Any]:
    """One pattern at a time over every DEX: where yara-x spends the rule's time."""
    dex = [d for a in apps for _, d in a.content.dex]
    mb = sum(map(len, dex)) / 1e6
    shapes = {
        "4 literals": '$a = "META-INF/PK" $b = "[Hp^" $c = "eval" $d = "base64_decode"',
        "/;.Sk/ (255 atoms)": "$r = /;.Sk/",
        '"Sk"': '$r = "Sk"',
        '";"': '$r = ";"',
        "/[ab]Sk/ (2 atoms)": "$r = /[ab]Sk/",
        "the whole rule": "",
    }
    fns: dict[str, Callable[[], Any]] = {}
    for label, strings in shapes.items():
        source = (
            f"rule a {{ strings: {strings} condition: any of them }}"
            if strings
            else rule_text(name)
        )
        fns[label] = functools.partial(scan_all, yara_x.Scanner(yara_x.compile(source)), dex)
    return {
        label: {"dex_ms": round(t * 1000, 1), "dex_mb_per_s": round(mb / t)}
        for label, (t, _) in medians(fns, repeat).items()
    }


if __name__ == "__main__":
    main()
