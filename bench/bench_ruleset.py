"""Compile and match time of engine.ruleset for generated rulesets of growing size.

Run: .venv/bin/python bench/bench_ruleset.py [--sizes 1000,100000,1000000] [--yara 10000]
Writes bench/results/ruleset.json. The mix is vendor-like: 1,000 behaviour rules, up to
``--yara`` YARA rules (never more than 1% of the records), and the rest hashes (60%) and
indicators (40%). Records are built already normalised, as a release would carry them.
"""

from __future__ import annotations

import argparse
import json
import pickle
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.features import (
    AppContent,
    AppFeatures,
    Indicators,
    Manifest,
    MethodRef,
    RuleRecord,
)
from engine.ruleset import compile_ruleset, match

PERMS = [f"android.permission.P{i}" for i in range(200)]
CLASSES = [f"Lcom/vendor/C{i};" for i in range(500)]


def records(n: int, yara_cap: int, rng: random.Random) -> list[RuleRecord]:
    out: list[RuleRecord] = []
    behaviors = min(1000, n // 10)
    yaras = min(yara_cap, n // 100)
    for i in range(n):
        if i < behaviors:
            kind = "behavior"
            body: object = {
                "permissions": sorted(rng.sample(PERMS, 2)),
                "api": [{"class": rng.choice(CLASSES), "method": f"m{rng.randrange(50)}"}],
                "score": rng.randrange(101),
            }
        elif i < behaviors + yaras:
            kind = "yara"
            body = (
                f'rule r{i} {{ strings: $a = "marker-{i}-{rng.getrandbits(32):08x}" '
                "condition: $a }\n"
            )
        elif rng.random() < 0.6:
            kind = "hash"
            body = {"algorithm": "sha256", "value": f"{rng.getrandbits(256):064x}", "target": "apk"}
        else:
            kind = "indicator"
            r = rng.random()
            if r < 0.6:
                body = {"type": "domain", "value": f"d{i}.example{rng.randrange(1000)}.com"}
            elif r < 0.8:
                body = {"type": "url", "value": f"http://u{i}.example.net/p{i}"}
            elif r < 0.95:
                body = {"type": "ip", "value": f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}"}
            else:
                body = {"type": "cidr", "value": f"172.{i & 15}.{i >> 4 & 255}.0/24"}
        out.append(RuleRecord(i, 1, f"Andr.Bench.X-{i}-1", kind, body, "malicious"))
    return out


def features(rng: random.Random) -> AppFeatures:
    return AppFeatures(
        engine_version=1,
        file_type="apk",
        size=1,
        md5="0" * 32,
        sha1="0" * 40,
        sha256=f"{rng.getrandbits(256):064x}",
        manifest=Manifest(package="com.app.x", permissions=tuple(rng.sample(PERMS, 20))),
        methods=tuple(
            MethodRef(rng.choice(CLASSES), f"m{rng.randrange(50)}", "()V") for _ in range(2000)
        ),
        indicators=Indicators(
            domains=tuple(f"a.b{i}.example{i}.com" for i in range(20)),
            urls=tuple(f"http://u{i}.example.net/p{i}" for i in range(10)),
            ips=tuple(f"10.0.{i}.{i}" for i in range(10)),
        ),
    )


def timed(fn: object, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--sizes", default="1000,100000,1000000")
    parser.add_argument("--yara", type=int, default=10000)
    args = parser.parse_args()
    rng = random.Random(1)
    results = []
    with tempfile.NamedTemporaryFile(suffix=".apk") as tmp:
        tmp.write(rng.randbytes(1_000_000))
        tmp.flush()
        content = AppContent(path=tmp.name, dex=(("classes.dex", rng.randbytes(2_000_000)),))
        for n in [int(s) for s in args.sizes.split(",")]:
            recs = records(n, args.yara, rng)
            start = time.perf_counter()
            rs = compile_ruleset(recs)
            compile_s = time.perf_counter() - start
            no_yara = compile_ruleset([r for r in recs if r.kind != "yara"])
            app = features(rng)
            lite = AppFeatures(
                engine_version=1,
                file_type="apk",
                size=1,
                md5="0" * 32,
                sha1="0" * 40,
                sha256="f" * 64,
                indicators=Indicators(domains=("a.b.example1.com",), ips=("10.0.0.1",)),
            )
            start = time.perf_counter()
            blob = pickle.dumps(rs)
            pickle_s = time.perf_counter() - start
            row = {
                "records": n,
                "counts": rs.counts(),
                "errors": len(rs.errors),
                "compile_s": round(compile_s, 3),
                "match_hash_indicator_only_us": round(
                    timed(lambda lite=lite, rs=no_yara: match(lite, rs), 200) * 1e6, 1
                ),
                "match_features_us (2000 methods, 20 perms, 40 indicators)": round(
                    timed(lambda app=app, rs=rs: match(app, rs), 20) * 1e6, 1
                ),
                "match_with_yara_s (1 MB file + 2 MB dex)": round(
                    timed(lambda app=app, rs=rs: match(app, rs, content), 3), 3
                ),
                "pickle_mb": round(len(blob) / 1e6, 1),
                "pickle_s": round(pickle_s, 3),
            }
            print(json.dumps(row), flush=True)
            results.append(row)
    out = Path(__file__).resolve().parent / "results" / "ruleset.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"python": sys.version.split()[0], "results": results}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
