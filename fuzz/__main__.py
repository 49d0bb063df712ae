"""Command line: build seeds, fuzz, replay regressions (docs/fuzzing.md).

    python -m fuzz run NAME|all --seconds N [-- FLAGS]   seeds, then each harness for N s,
                                              one at a time; FLAGS go to libFuzzer
    python -m fuzz seeds NAME|all             only (re)build the seed folders
    python -m fuzz regress [NAME...]          replay fuzz/regressions/<harness>/*
    python -m fuzz replay NAME FILE...        run files through a harness, show tracebacks
    python -m fuzz minimize NAME FILE         libFuzzer -minimize_crash on one crashing input

``run`` exits 1 when a harness found a crash, a timeout or an out-of-memory input and prints
the path of each such input (under ``<var>/fuzz/<harness>/crashes/``).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

from fuzz import DEFAULT_CORPUS, NAMES, REPO, load, var_dir

RSS_LIMIT_MB = 2048
_STAT = re.compile(r"^(stat::.*|#\d+\s+(DONE|INITED)\b.*|Done \d+ runs.*)$")


def _names(choice: str) -> tuple[str, ...]:
    return NAMES if choice == "all" else (choice,)


def _write_dict(path: Path, tokens: tuple[bytes, ...]) -> None:
    lines = ["".join(f"\\x{b:02x}" for b in token) for token in tokens]
    path.write_text("".join(f'"{line}"\n' for line in lines))


def _driver(name: str, args: list[str]) -> list[str]:
    """The command that fuzzes ``name``: a small executable script, because libFuzzer starts
    its own argv[0] again for -minimize_crash, -jobs and -fork."""
    script = var_dir() / name / "driver.sh"
    script.parent.mkdir(parents=True, exist_ok=True)
    python = shlex.quote(sys.executable)
    script.write_text(f'#!/bin/sh\nexec {python} -m fuzz.driver {shlex.quote(name)} "$@"\n')
    script.chmod(0o755)
    return [str(script), *args]


def _env(command: list[str]) -> dict[str, str]:
    env = dict(os.environ)
    env["FUZZ_DRIVER"] = command[0]
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_one(name: str, seconds: int, corpus: Path, extra: list[str]) -> list[Path]:
    """Fuzz ``name`` for ``seconds``; the crashing inputs it wrote (none when all went well)."""
    from fuzz import seeds

    harness = load(name)
    root = var_dir() / name
    seed_dir, work_dir, crash_dir = root / "seeds", root / "corpus", root / "crashes"
    count = seeds.build(name, seed_dir, corpus)
    work_dir.mkdir(parents=True, exist_ok=True)
    crash_dir.mkdir(parents=True, exist_ok=True)
    dict_path = root / "dict.txt"
    _write_dict(dict_path, harness.dictionary)
    before = set(crash_dir.iterdir())
    args = [
        str(work_dir),  # libFuzzer writes new interesting inputs into the first folder
        str(seed_dir),
        f"-max_total_time={seconds}",
        f"-timeout={harness.timeout}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-max_len={harness.max_len}",
        f"-dict={dict_path}",
        f"-artifact_prefix={crash_dir}/",
        "-use_value_profile=1",
        "-print_final_stats=1",
        *extra,
    ]
    log = root / "last-run.log"
    print(f"--- fuzz {name}: {count} seeds, {seconds} s (log: {log})", flush=True)
    start = time.monotonic()
    with log.open("wb") as out:
        command = _driver(name, args)
        proc = subprocess.run(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=_env(command),
            timeout=seconds + 600,  # loading the seeds and the final stats take a moment
            check=False,
        )
    elapsed = time.monotonic() - start
    shutil.rmtree(root / "scratch", ignore_errors=True)  # the analyze harness' input file
    text = log.read_text(errors="replace").splitlines()
    found = sorted(set(crash_dir.iterdir()) - before)
    for line in text:
        if _STAT.match(line.strip()):
            print("   ", line.strip())
    print(f"    exit {proc.returncode} after {elapsed:.0f} s", flush=True)
    if proc.returncode != 0 or found:
        print("\n".join(text[-60:]))
        for path in found:
            print(f"CRASH {name}: {path}", flush=True)
        if not found:
            print(f"CRASH {name}: exit {proc.returncode} without an input; see {log}")
            found = [log]
    return found


def cmd_run(ns: argparse.Namespace) -> int:
    if importlib.util.find_spec("atheris") is None:
        print("atheris is not installed: pip install -r requirements-dev.txt")
        return 2
    if not ns.corpus.is_dir():
        print(f"the APK corpus is missing: {ns.corpus} (give --corpus DIR)")
        return 2
    crashes: list[Path] = []
    for name in _names(ns.name):
        crashes += run_one(name, ns.seconds, ns.corpus, ns.libfuzzer)
    if crashes:
        print(f"{len(crashes)} crashing input(s):")
        for path in crashes:
            print(f"  {path}")
        return 1
    return 0


def cmd_seeds(ns: argparse.Namespace) -> int:
    from fuzz import seeds

    for name in _names(ns.name):
        out = var_dir() / name / "seeds"
        print(f"{name}: {seeds.build(name, out, ns.corpus)} seeds in {out}")
    return 0


def cmd_regress(ns: argparse.Namespace) -> int:
    from fuzz.regress import replay_all

    unknown = set(ns.names) - set(NAMES)
    if unknown:
        print(f"no harness {sorted(unknown)}; choose from {', '.join(NAMES)}")
        return 2
    outcomes = replay_all(tuple(ns.names) or NAMES)
    failed = [o for o in outcomes if o.error]
    for o in outcomes:
        print(f"{'FAIL' if o.error else 'ok  '} {o.harness:14} {o.seconds:6.2f}s {o.path.name}")
        if o.error:
            print(o.error)
    print(f"{len(outcomes)} regression input(s), {len(failed)} failed")
    return 1 if failed else 0


def cmd_replay(ns: argparse.Namespace) -> int:
    from fuzz.regress import replay

    failed = 0
    for path in ns.files:
        o = replay(ns.name, path)
        print(f"{'FAIL' if o.error else 'ok'} {o.seconds:.2f}s {path}")
        if o.error:
            failed += 1
            print(o.error)
    return 1 if failed else 0


def cmd_minimize(ns: argparse.Namespace) -> int:
    harness = load(ns.name)
    out = ns.out or ns.file.with_name(ns.file.name + ".min")
    args = [
        "-minimize_crash=1",
        f"-max_total_time={ns.seconds}",
        f"-timeout={harness.timeout}",
        f"-rss_limit_mb={RSS_LIMIT_MB}",
        f"-exact_artifact_path={out}",
        str(ns.file),
    ]
    command = _driver(ns.name, args)
    proc = subprocess.run(command, env=_env(command), check=False)
    print(f"minimized input: {out}" if out.exists() else "no smaller input written")
    return proc.returncode if not out.exists() else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m fuzz", description="Fuzz the engine's parsers."
    )
    sub = parser.add_subparsers(dest="command", required=True)
    choices = [*NAMES, "all"]

    p = sub.add_parser("run", help="build seeds and fuzz for a fixed time")
    p.add_argument("name", choices=choices)
    p.add_argument("--seconds", type=int, default=60, help="per harness (default 60)")
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("seeds", help="only build the seed folders")
    p.add_argument("name", choices=choices)
    p.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS)
    p.set_defaults(func=cmd_seeds)

    p = sub.add_parser("regress", help="replay fuzz/regressions/")
    p.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {NAMES}")
    p.set_defaults(func=cmd_regress)

    p = sub.add_parser("replay", help="run files through a harness")
    p.add_argument("name", choices=NAMES)
    p.add_argument("files", nargs="+", type=Path)
    p.set_defaults(func=cmd_replay)

    p = sub.add_parser("minimize", help="shrink one crashing input with libFuzzer")
    p.add_argument("name", choices=NAMES)
    p.add_argument("file", type=Path)
    p.add_argument("--out", type=Path)
    p.add_argument("--seconds", type=int, default=60)
    p.set_defaults(func=cmd_minimize)

    args = sys.argv[1:] if argv is None else argv
    # everything after "--" goes to libFuzzer as it is (argparse would read "-flags" itself)
    extra = args[args.index("--") + 1 :] if "--" in args else []
    ns = parser.parse_args(args[: args.index("--")] if "--" in args else args)
    ns.libfuzzer = extra
    code: int = ns.func(ns)
    return code


if __name__ == "__main__":
    sys.exit(main())
