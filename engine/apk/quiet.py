"""Keep apkInspector's logging side effects out of the application.

apkInspector 1.3.7 calls ``logging.basicConfig(level=DEBUG)`` when ``apkInspector.axml`` is
imported (so a process without logging set up starts printing everything at DEBUG), and reports
odd chunks with module-level ``logging.warning(...)`` on the root logger (one warning per trick
in every worker's log). ``install`` imports it with the root logger's handlers and level
restored, and adds a root-logger filter that turns apkInspector's records into DEBUG records of
``engine.apk.apkinspector``. Nothing else is touched; installing twice is harmless.
"""

from __future__ import annotations

import logging
import os
import sys

_log = logging.getLogger("engine.apk.apkinspector")


class _ApkInspectorFilter(logging.Filter):
    def __init__(self, pkg_dir: str) -> None:
        super().__init__()
        self.pkg_dir = pkg_dir

    def filter(self, record: logging.LogRecord) -> bool:
        if record.name == "root" and record.pathname.startswith(self.pkg_dir):
            _log.debug("%s", record.getMessage())
            return False
        return True


def install() -> None:
    root = logging.getLogger()
    if "apkInspector.axml" not in sys.modules:
        handlers, level = list(root.handlers), root.level
        import apkInspector.axml

        if not handlers:
            for handler in root.handlers[:]:
                root.removeHandler(handler)
            root.setLevel(level)
    import apkInspector

    pkg_dir = os.path.dirname(os.path.abspath(apkInspector.__file__))
    if not any(isinstance(f, _ApkInspectorFilter) for f in root.filters):
        root.addFilter(_ApkInspectorFilter(pkg_dir))
