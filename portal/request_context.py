"""Who is acting and from where, for the audit log, without threading request through services."""

from __future__ import annotations

from contextvars import ContextVar

source_ip: ContextVar[str | None] = ContextVar("source_ip", default=None)
