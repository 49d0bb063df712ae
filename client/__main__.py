"""``python -m client register|sync|check|scan|lookup`` — every command prints JSON on stdout.

``sync`` is "update now": it installs the release this device is offered at once. ``check`` is
the scheduled run a phone makes every few minutes: one conditional GET of timestamp.json, an
urgent release installed at once, a normal one at this device's slot (``engine.rollout``).

Exit codes: 0 done; 1 failed (the JSON says why; the installed database is unchanged);
2 bad usage; 75 throttled by the server (try again after ``retry_after_seconds``).
``scan`` exits 1 when any file could not be scanned.

``lookup`` asks the portal the verdict of apps (files, hashed here, or SHA-256s), one JSON
line per app, answering from its per-hash cache when it can (``client.lookup``); it exits 1
when an argument is neither a file nor a SHA-256, 75 when throttled (the answers it had
are printed first).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from client.api import register as api_register
from client.lookup import LookupOptions, lookup
from client.scan import dumps, scan
from client.state import ClientError, Config, StateDir
from client.sync import SyncOptions, check, sync
from engine import ENGINE_VERSION

APP_VERSION = "0.1.0"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m client", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    reg = sub.add_parser("register", help="enrol this device with a portal")
    reg.add_argument("--server", required=True, help="portal base URL, e.g. https://portal")
    reg.add_argument("--enrollment-key", required=True)
    reg.add_argument("--root", required=True, type=Path, help="the root.json shipped with the app")
    reg.add_argument("--state", required=True, type=Path, help="state folder to create")
    reg.add_argument("--channel", choices=("stable", "beta"), default="stable")
    reg.add_argument("--model", default=f"reference-client/{platform.machine()}")
    reg.add_argument("--os-version", default=platform.platform())
    reg.add_argument("--app-version", default=APP_VERSION)

    syn = sub.add_parser("sync", help="update now: install the release this device is offered")
    syn.add_argument("--state", required=True, type=Path)
    syn.add_argument("--force", action="store_true", help="ask now even if told to wait")

    chk = sub.add_parser("check", help="the scheduled check: cheap, installs when due")
    chk.add_argument("--state", required=True, type=Path)
    chk.add_argument("--force", action="store_true", help="ask now even if told to wait")

    sc = sub.add_parser("scan", help="scan APK/XAPK files with the installed database")
    sc.add_argument("--state", required=True, type=Path)
    sc.add_argument("files", nargs="+")

    lk = sub.add_parser("lookup", help="ask the portal's verdict of apps, cached per hash")
    lk.add_argument("--state", required=True, type=Path)
    lk.add_argument("--force", action="store_true", help="ask now even if told to wait")
    lk.add_argument("apps", nargs="+", metavar="FILE_OR_SHA256")

    for p in (reg, syn, chk, sc):
        # lets tests and engineers play an older client against a newer database
        p.add_argument("--engine-version", type=int, default=ENGINE_VERSION, help=argparse.SUPPRESS)
    return parser


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data, sort_keys=True), flush=True)


def _register(args: argparse.Namespace) -> dict[str, Any]:
    from tuf.api.metadata import Metadata

    try:
        root_bytes = args.root.read_bytes()
        root = Metadata.from_bytes(root_bytes)
    except (OSError, ValueError) as exc:
        raise ClientError(f"{args.root} is not TUF root metadata: {exc}") from exc
    if root.signed.type != "root":
        raise ClientError(f"{args.root} is {root.signed.type} metadata, not root")
    device_id, token = api_register(
        args.server,
        {
            "enrollment_key": args.enrollment_key,
            "model": args.model,
            "os_version": args.os_version,
            "app_version": args.app_version,
            "engine_version": args.engine_version,
            "channel": args.channel,
        },
    )
    StateDir(args.state).create(
        Config(server=args.server, device_id=device_id, token=token, channel=args.channel),
        root_bytes,
    )
    return {"device_id": device_id, "state": str(args.state), "channel": args.channel}


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        if args.command == "register":
            _print(_register(args))
        elif args.command in ("sync", "check"):
            run = sync if args.command == "sync" else check
            options = SyncOptions(force=args.force, engine_version=args.engine_version)
            _print(run(args.state, options))
        elif args.command == "lookup":
            results, throttled = lookup(args.state, args.apps, LookupOptions(force=args.force))
            for result in results:
                print(dumps(result), flush=True)
            if throttled is not None:
                raise throttled
            return 1 if any("error" in r for r in results) else 0
        else:
            failed = False
            for result in scan(args.state, args.files, engine_version=args.engine_version):
                failed = failed or "error" in result
                print(dumps(result), flush=True)
            return 1 if failed else 0
    except ClientError as exc:
        _print({"error": exc.message, **exc.extra})
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
