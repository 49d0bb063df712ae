"""The embedded broker: kombu's filesystem transport, made safe for several processes.

kombu's own transport writes a message file in place and a consumer may read it while it is
still being written; the JSON decode error then escapes the consumer loop and kills the
worker (celery/kombu#1551, open). Under a burst of publishes that took the whole portal down.
This transport fixes the three steps, keeping the file layout, so `filesystem://` URLs, the
folders and `celery purge` work as before:

- put: write a hidden temporary file in the queue folder, then ``os.rename`` it to its
  message name. A rename within one folder is atomic, so a consumer sees a whole message or
  nothing.
- get: claim a message by renaming it into the processing folder. Only one consumer's rename
  can succeed, so a message is never delivered twice.
- a message that still does not decode (a damaged disk, a hand-edited file) is moved to the
  ``damaged`` folder and logged; the worker goes on with the next one.

``portal.celery`` registers it under the ``filesystem`` alias. docs/decisions.md says why we
kept this broker rather than shipping Redis with ``make run``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from pathlib import Path
from queue import Empty
from time import monotonic
from typing import Any

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import bytes_to_str, str_to_bytes
from kombu.utils.json import dumps, loads

log = logging.getLogger(__name__)


class Channel(filesystem.Channel):
    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:  # type: ignore[override]
        folder = self.data_folder_out
        # zero-padded so that names sort in the order they were sent
        name = f"{int(monotonic() * 1000):015d}_{uuid.uuid4()}.{queue}.msg"
        temporary = os.path.join(folder, f".{uuid.uuid4().hex}.tmp")
        try:
            with open(temporary, "wb") as fh:
                fh.write(str_to_bytes(dumps(message)))
            os.rename(temporary, os.path.join(folder, name))
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise ChannelError(f"Cannot add message {name!r} to {folder}") from exc

    def _get(self, queue: str, timeout: float | None = None) -> Any:
        wanted = f"{queue}.msg"
        folder = self.data_folder_in
        claimed_dir = Path(self.processed_folder)
        for name in sorted(os.listdir(folder)):
            if name.partition(".")[2] != wanted:
                continue
            claimed = claimed_dir / f"{uuid.uuid4().hex}-{name}"
            try:
                os.rename(os.path.join(folder, name), claimed)
            except OSError:
                continue  # another consumer took it first
            try:
                data = claimed.read_bytes()
            finally:
                with contextlib.suppress(OSError):
                    claimed.unlink()
            try:
                return loads(bytes_to_str(data))
            except (ValueError, UnicodeDecodeError):
                self._set_aside(name, data)
        raise Empty()

    def _set_aside(self, name: str, data: bytes) -> None:
        damaged = Path(self.processed_folder).parent / "damaged"
        damaged.mkdir(parents=True, exist_ok=True)
        (damaged / name).write_bytes(data)
        log.error(
            "broker: message %s does not decode (%d bytes); moved to %s and skipped",
            name,
            len(data),
            damaged,
        )


class Transport(filesystem.Transport):
    Channel = Channel
