"""The embedded default cache: diskcache's Django backend, kept open between requests.

Django closes every cache at the end of each request (``request_finished``). For Redis or
memcached that returns a connection to a pool; diskcache would close and reopen its SQLite
files on every request instead, which costs more than the request itself. Its connections are
per thread and safe to keep, so closing is left to process exit.
"""

from __future__ import annotations

from typing import Any

from diskcache import DjangoCache


class PersistentDiskCache(DjangoCache):
    def close(self, **kwargs: Any) -> None:
        pass
