"""Codec benchmark: delta and bundle sizes, build and client apply-and-verify times.

    .venv/bin/python bench/bench_codec.py [--max 1000000]

Writes bench/results/codec.json. A vendor-like mix: 97% hash signatures spread over 400
families (SHA-256 of APKs, some DEX and certificate hashes), the rest indicators, behaviours
and yara rules. Figures are for this machine; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine import codec
from engine.features import RuleRecord

FAMILIES = [("Trojan", f"Joker{i}") for i in range(250)] + [
    (c, f"{c}Fam{i}") for c in ("SmsFraud", "Spy", "Adware", "Banker") for i in range(40)
]


def make_record(i: int, rng: random.Random, revision: int = 1) -> RuleRecord:
    category, family = FAMILIES[i % len(FAMILIES)]
    name = f"Andr.{category}.{family}-{i}-{revision}"
    roll = rng.random()
    if roll < 0.97:
        target = "apk" if roll < 0.9 else ("dex" if roll < 0.95 else "cert")
        body: Any = {"algorithm": "sha256", "target": target, "value": rng.randbytes(32).hex()}
        return RuleRecord(i, revision, name, "hash", body, "malicious")
    if roll < 0.985:
        body = {"type": "domain", "value": f"pay-{rng.randrange(10**9)}.example"}
        return RuleRecord(i, revision, name, "indicator", body, "suspicious")
    if roll < 0.995:
        body = {
            "permissions": ["android.permission.RECEIVE_SMS", "android.permission.SEND_SMS"],
            "methods": [f"Landroid/telephony/SmsManager;->sendTextMessage{rng.randrange(99)}"],
            "score": 70,
        }
        return RuleRecord(i, revision, name, "behavior", body, "riskware")
    body = f'rule r{i} {{ strings: $a = "{rng.randbytes(8).hex()}" condition: $a }}'
    return RuleRecord(i, revision, name, "yara", body, "malicious")


def hash_record(i: int, rng: random.Random) -> RuleRecord:
    category, family = FAMILIES[i % len(FAMILIES)]
    body = {"algorithm": "sha256", "target": "apk", "value": rng.randbytes(32).hex()}
    return RuleRecord(i, 1, f"Andr.{category}.{family}-{i}-1", "hash", body, "malicious")


def timed(fn: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = fn()
    return result, round(time.perf_counter() - start, 3)


def bench(sizes: list[int]) -> dict[str, Any]:
    rng = random.Random(2024)
    results: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "zstd_level": codec.ZSTD_LEVEL,
        "full": [],
    }
    base_records: list[RuleRecord] = []
    for n in sizes:
        records = [make_record(i, rng) for i in range(1, n + 1)]
        bundle, build_s = timed(lambda records=records: codec.build_full(1, records))
        state, apply_s = timed(lambda bundle=bundle: codec.apply_full(bundle, 1))
        results["full"].append(
            {
                "records": n,
                "hash_records": sum(r.kind == "hash" for r in records),
                "bytes": len(bundle),
                "bytes_per_record": round(len(bundle) / n, 2),
                "build_seconds": build_s,
                "client_apply_and_verify_seconds": apply_s,
            }
        )
        print(json.dumps(results["full"][-1]), flush=True)
        base_records, base_state, base_n = records, state, n

    # deltas against the largest state: 10,000 added, then 10,000 removed
    added = [hash_record(base_n + 1 + i, rng) for i in range(10_000)]
    target = base_records + added
    target_sha, sha_s = timed(lambda: codec.state_sha256(target))
    delta, delta_s = timed(
        lambda: codec.build_delta(
            base_release=1,
            base_sha256=base_state.sha256,
            release=2,
            state_sha256=target_sha,
            upserts=added,
            removed=[],
        )
    )
    applied, apply_s = timed(lambda: codec.apply_delta(base_state, delta, 1))
    assert applied.sha256 == target_sha
    # scattered ids, as retirements are in practice (contiguous ids would compress to nothing)
    removed_ids = sorted(rng.sample([r.id for r in base_records], 10_000))
    gone = set(removed_ids)
    removal_sha = codec.state_sha256([r for r in base_records if r.id not in gone])
    removal = codec.build_delta(
        base_release=1,
        base_sha256=base_state.sha256,
        release=2,
        state_sha256=removal_sha,
        upserts=[],
        removed=removed_ids,
    )
    results["delta"] = {
        "base_records": base_n,
        "added_hash_signatures": len(added),
        "add_delta_bytes": len(delta),
        "bytes_per_added_signature": round(len(delta) / len(added), 2),
        "build_delta_seconds": delta_s,
        "new_state_sha256_seconds": sha_s,
        "client_apply_and_verify_seconds": apply_s,
        "removed_signatures": len(removed_ids),
        "remove_delta_bytes": len(removal),
        "bytes_per_removed_signature": round(len(removal) / len(removed_ids), 2),
    }
    print(json.dumps(results["delta"]), flush=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max", type=int, default=1_000_000)
    args = parser.parse_args()
    sizes = [n for n in (10_000, 100_000, 1_000_000) if n <= args.max] or [args.max]
    results = bench(sizes)
    out = Path(__file__).resolve().parent / "results" / "codec.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
