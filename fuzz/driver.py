"""Run one harness under atheris: ``python -m fuzz.driver NAME [libFuzzer arguments...]``.

``python -m fuzz run`` starts this in a subprocess with the seeds, limits and time; call it
directly only to pass libFuzzer flags of your own. The engine is imported here, inside
``atheris.instrument_imports``, so that its bytecode reports coverage; nothing of the engine
may be imported before (``fuzz/__init__.py`` imports none).
"""

from __future__ import annotations

import os
import sys

import atheris


def main(argv: list[str]) -> None:
    if len(argv) < 2:
        raise SystemExit("usage: python -m fuzz.driver NAME [libFuzzer arguments...]")
    name = argv[1]
    if any(m == "engine" or m.startswith("engine.") for m in sys.modules):
        raise SystemExit("the engine was imported before instrumentation")
    with atheris.instrument_imports(include=["engine"]):
        from fuzz import load

        harness = load(name)
    # libFuzzer runs argv[0] again for -minimize_crash, -jobs and -fork: ``python -m fuzz``
    # starts this module through an executable script that it names in FUZZ_DRIVER
    argv0 = os.environ.get("FUZZ_DRIVER", argv[0])
    atheris.Setup([argv0, *argv[2:]], harness.one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main(sys.argv)
