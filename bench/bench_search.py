"""Sample search benchmark: what one search costs over many stored samples.

    .venv/bin/python bench/bench_search.py [--samples 20000] [--keys 25] [--repeat 15]
        [--var-dir DIR]

Writes bench/results/search.json. Measures, never asserts. Runs under its own
PORTAL_VAR_DIR (``--var-dir``, else /tmp/bench-search-<uid>) with a fresh SQLite database,
so nobody else's data is touched.

Stores ``--samples`` sample rows (random hashes; packages from 2,000, app names from 1,500,
signers from 1,000 certificates, domains from 5,000, URLs, 10% with a short code) and their
``SampleKey`` rows exactly as ``scans.featurekeys`` writes them (about ``--keys`` per sample),
then times each kind of search as the samples page runs it: the filter set, the count and
the first page of 50 (median of ``--repeat``), and prints SQLite's plan for the keyed ones.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ["DJANGO_SETTINGS_MODULE"] = "portal.settings"
RESULTS = ROOT / "bench" / "results" / "search.json"


def _hex(rng: random.Random, n: int) -> str:
    return "".join(rng.choice("0123456789abcdef") for _ in range(n))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=20_000)
    parser.add_argument("--keys", type=int, default=25)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--var-dir", default=f"/tmp/bench-search-{os.getuid()}")
    args = parser.parse_args()
    var = Path(args.var_dir)
    shutil.rmtree(var, ignore_errors=True)
    var.mkdir(parents=True)
    os.environ["PORTAL_VAR_DIR"] = str(var)

    import django

    django.setup()
    from django.core.management import call_command
    from django.db import connection
    from django.utils import timezone

    call_command("migrate", verbosity=0)
    from scans.featurekeys import key_of
    from scans.models import Sample, SampleKey
    from scans.selectors import sample_list

    rng = random.Random(14)
    certs = [(_hex(rng, 64), _hex(rng, 40)) for _ in range(1_000)]
    domains = [f"h{i}.example{i % 700}.com" for i in range(5_000)]
    packages = [f"com.vendor{i % 300}.app{i}" for i in range(2_000)]
    labels = [f"App {i}" for i in range(1_500)]
    now = timezone.now()
    started = time.perf_counter()
    samples, facts_of = [], []
    for i in range(args.samples):
        sha256, sha1, md5 = _hex(rng, 64), _hex(rng, 40), _hex(rng, 32)
        cert = rng.choice(certs)
        package = rng.choice(packages)
        facts = {
            f"md5:apk:{md5}",
            f"sha1:apk:{sha1}",
            f"sha256:apk:{sha256}",
            f"sha256:cert:{cert[0]}",
            f"sha1:cert:{cert[1]}",
            f"package:{package}",
            f"sha256:dex:{_hex(rng, 64)}",
        }
        while len(facts) < args.keys:
            domain = rng.choice(domains)
            facts.update({f"domain:{domain}", f"domain:{domain.split('.', 1)[1]}", "domain:com"})
            facts.add(f"url:http://{domain}/p{rng.randrange(50)}")
        if i % 10 == 0:
            facts.add(f"short_code:{rng.randrange(1000, 99999)}")
        samples.append(
            Sample(
                sha256=sha256,
                md5=md5,
                sha1=sha1,
                size=1000,
                file=f"samples/{sha256[:2]}/{sha256}",
                original_name=f"{package}-{i}.apk",
                package=package,
                app_label=rng.choice(labels),
                features={"manifest": {"version_code": rng.randrange(1, 500)}},
                last_seen=now,
            )
        )
        facts_of.append(facts)
    Sample.objects.bulk_create(samples, batch_size=2000)
    ids = dict(Sample.objects.values_list("sha256", "pk"))
    keys = [
        SampleKey(sample_id=ids[s.sha256], key=key_of(f))
        for s, facts in zip(samples, facts_of, strict=True)
        for f in facts
    ]
    SampleKey.objects.bulk_create(keys, batch_size=5000)
    load_s = time.perf_counter() - started

    probe = samples[len(samples) // 2]
    probe_facts = facts_of[len(samples) // 2]
    cert_hex = next(f.split(":", 2)[2] for f in probe_facts if f.startswith("sha256:cert:"))
    domain = next(f.split(":", 1)[1] for f in probe_facts if f.startswith("domain:h"))
    url = next(f.split(":", 1)[1] for f in probe_facts if f.startswith("url:"))
    code = next(f.split(":", 1)[1] for fs in facts_of for f in fs if f.startswith("short_code:"))
    searches: dict[str, dict[str, str]] = {
        "md5 (q)": {"q": probe.md5},
        "sha256 (q)": {"q": probe.sha256},
        "certificate sha256 (cert=)": {"cert": cert_hex},
        "certificate sha256 (q, also tries sample and DEX hashes)": {"q": cert_hex},
        "domain and subdomains (domain=)": {"domain": domain.split(".", 1)[1]},
        "url (url=)": {"url": url},
        "short code (short_code=)": {"short_code": code},
        "package, exact, by version (q=package:…&order=version)": {
            "q": f"package:{probe.package}",
            "order": "version",
        },
        "words (q, package/app/file name contain it)": {"q": "vendor7.app"},
    }
    out: dict[str, Any] = {}
    for title, params in searches.items():
        times, count = [], 0
        for _ in range(args.repeat):
            t = time.perf_counter()
            filterset = sample_list(filters=params)
            assert filterset.is_valid(), filterset.errors
            qs = filterset.qs
            count = qs.count()
            list(qs[:50])
            times.append((time.perf_counter() - t) * 1000)
        out[title] = {
            "params": params,
            "found": count,
            "median_ms": round(statistics.median(times), 2),
            "max_ms": round(max(times), 2),
        }
        print(f"{title:60s} found {count:6d}  median {out[title]['median_ms']:8.2f} ms")
    plans = {}
    for title in ("certificate sha256 (cert=)", "domain and subdomains (domain=)"):
        sql, sql_params = sample_list(filters=searches[title]).qs.query.sql_with_params()
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN QUERY PLAN {sql}", sql_params)
            plans[title] = [row[-1] for row in cursor.fetchall()]
        print(title, plans[title])
    result = {
        "samples": args.samples,
        "sample_keys": len(keys),
        "load_seconds": round(load_s, 1),
        "searches": out,
        "plans": plans,
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count()},
        "database": connection.vendor,
    }
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
