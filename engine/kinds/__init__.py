"""The registry of signature kinds.

Adding a kind is one new module in this package that defines a ``Kind`` subclass (its
validation, its ``KindIndex`` for matching, its weight and export hooks: ``engine.kinds.base``),
plus its dotted path in ``KIND_CLASSES`` below (the same shape as Django's
``PASSWORD_HASHERS``). Nothing else changes: ``engine.ruleset``, ``engine.exporters`` and
``engine.codec`` ask the kind. The order of ``KIND_CLASSES`` is the order kinds are offered
to people.
"""

from __future__ import annotations

import importlib

from engine.kinds.base import Hits, Issue, Kind, KindIndex, ValidationResult

KIND_CLASSES: list[str] = [
    "engine.kinds.hash.HashKind",
    "engine.kinds.package_cert.PackageCertKind",
    "engine.kinds.yara.YaraKind",
    "engine.kinds.behavior.BehaviorKind",
    "engine.kinds.indicator.IndicatorKind",
]


def _load(paths: list[str]) -> dict[str, Kind]:
    registry: dict[str, Kind] = {}
    for path in paths:
        module_name, _, class_name = path.rpartition(".")
        cls = getattr(importlib.import_module(module_name), class_name)
        kind = cls()
        if not isinstance(kind, Kind):
            raise TypeError(f"{path} is not a Kind")
        if kind.name in registry:
            raise ValueError(f"two kinds are named {kind.name!r}")
        registry[kind.name] = kind
    return registry


REGISTRY: dict[str, Kind] = _load(KIND_CLASSES)


class UnknownKind(KeyError):
    pass


def get_kind(name: str) -> Kind:
    try:
        return REGISTRY[name]
    except KeyError:
        raise UnknownKind(f"unknown signature kind {name!r}") from None


__all__ = [
    "KIND_CLASSES",
    "REGISTRY",
    "Hits",
    "Issue",
    "Kind",
    "KindIndex",
    "UnknownKind",
    "ValidationResult",
    "get_kind",
]
