"""Signature database benchmarks: imports, the list API and page at 100,000 rows, validation.

Run: PORTAL_VAR_DIR=var/bench .venv/bin/python bench/bench_signatures.py [--hashes 100000]
         [--repeat 15] [--out F]
Writes bench/results/signatures.json. Never asserted anywhere.

- Import of ``--hashes`` generated SHA-256 hash signatures (one ClamAV .hsb file) through
  ``signatures_import_paths`` (the code behind ``manage.py import_signatures``): seconds.
- Import of the whole corpus (../shared/corpus/yara, clamav, quark): seconds.
- ``GET /api/v1/signatures/`` and ``GET /signatures/`` with everything above in the
  database (~103,000 rows): median and p95 ms and the query count, for the first page, a
  deep page, a status filter, a tag-less full-text search and a family filter.
- ``POST /api/v1/signatures/validate/`` with a 1,000-line YARA rule: median and p95 ms.

Uses a fresh SQLite database under PORTAL_VAR_DIR/bench-signatures-<pid>/ (removed after).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
CORPUS = ROOT.parent / "shared" / "corpus"
RESULTS = ROOT / "bench" / "results" / "signatures.json"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def _timed_requests(client: Any, method: str, url: str, repeat: int, **kw: Any) -> dict[str, Any]:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    getattr(client, method)(url, **kw)  # warm
    times = []
    queries = 0
    status = 0
    for _ in range(repeat):
        with CaptureQueriesContext(connection) as ctx:
            t0 = time.perf_counter()
            response = getattr(client, method)(url, **kw)
            times.append(time.perf_counter() - t0)
        queries = len(ctx.captured_queries)
        status = response.status_code
    return {
        "url": url,
        "status": status,
        "median_ms": round(statistics.median(times) * 1000, 1),
        "p95_ms": round(_pct(times, 0.95) * 1000, 1),
        "queries": queries,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--hashes", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()

    var = Path(os.environ.get("PORTAL_VAR_DIR", ROOT / "var" / "bench")).resolve()
    var.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="bench-signatures-", dir=var))
    os.environ["DATABASE_URL"] = f"sqlite:///{work / 'db.sqlite3'}"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
    import django

    django.setup()
    from django.conf import settings

    settings.STORAGES = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    from django.core.management import call_command
    from django.test import Client

    from portal.models import User
    from portal.services import user_set_roles
    from threats.services import signatures_import_paths

    results: dict[str, Any] = {"hashes": args.hashes}
    try:
        call_command("migrate", verbosity=0)
        user = User.objects.create_user("bench-researcher", password="x-bench-only-x")  # noqa: S106
        user_set_roles(user=user, roles=["researcher"], actor=None)

        feed = work / "feed.hsb"
        with feed.open("w") as f:
            for i in range(args.hashes):
                f.write(f"{i:064x}:4096:Andr.Bench.Feed-{i}\n")
        t0 = time.perf_counter()
        summary = signatures_import_paths(actor=user, paths=[feed])
        results["import_hashes"] = {
            "seconds": round(time.perf_counter() - t0, 2),
            "imported": summary.imported,
        }
        print("hash import", results["import_hashes"], flush=True)

        t0 = time.perf_counter()
        summary = signatures_import_paths(
            actor=user, paths=[CORPUS / "yara", CORPUS / "clamav", CORPUS / "quark"]
        )
        results["import_corpus"] = {
            "seconds": round(time.perf_counter() - t0, 2),
            "files": summary.files,
            "imported": summary.imported,
            "duplicates": summary.duplicates,
            "invalid": summary.invalid,
        }
        print("corpus import", results["import_corpus"], flush=True)

        from threats.models import Family, Signature

        results["rows"] = Signature.objects.count()
        family_id = Family.objects.values_list("pk", flat=True).first()
        client = Client(SERVER_NAME="localhost")
        client.force_login(user)
        deep = results["rows"] // 50 // 2
        queries = {
            "first_page": "",
            "deep_page": f"page={deep}",
            "status_draft": "status=draft",
            "search": "q=sendtextmessage",
            "family": f"family={family_id}",
            "kind_hash_search": "kind=hash&q=" + "0" * 61 + "1a0",
        }
        results["list_api"] = {
            name: _timed_requests(client, "get", f"/api/v1/signatures/?{q}", args.repeat)
            for name, q in queries.items()
        }
        results["list_page"] = {
            name: _timed_requests(client, "get", f"/signatures/?{q}", args.repeat)
            for name, q in queries.items()
        }
        print("list api", json.dumps(results["list_api"], indent=1), flush=True)
        print("list page", json.dumps(results["list_page"], indent=1), flush=True)

        strings = "\n".join(f'    $s{i} = "premium-sms-marker-{i:04d}"' for i in range(995))
        rule = f"rule thousand_lines {{\n  strings:\n{strings}\n  condition:\n    any of them\n}}"
        results["validate_1000_line_yara"] = {
            "lines": rule.count("\n") + 1,
            **_timed_requests(
                client,
                "post",
                "/api/v1/signatures/validate/",
                args.repeat,
                data={"kind": "yara", "body": rule},
                content_type="application/json",
            ),
        }
        print("validate", results["validate_1000_line_yara"], flush=True)
    finally:
        from django.db import connections

        connections.close_all()
        shutil.rmtree(work, ignore_errors=True)

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print("wrote", args.out)


if __name__ == "__main__":
    main()
