"""The engine's exceptions: one base class so callers can catch everything the engine raises."""

from __future__ import annotations


class EngineError(Exception):
    """Base class for errors the engine raises on purpose; ``message`` is meant for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class AnalysisError(EngineError):
    """The file cannot be analysed: not an APK, damaged beyond use, or over a safety limit."""
