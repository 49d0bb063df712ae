"""The kind registry: every kind is reachable by name and keeps the base-class contract."""

import pytest

from engine.kinds import KIND_CLASSES, REGISTRY, Issue, Kind, UnknownKind, get_kind


def test_registry_holds_the_five_kinds_in_order():
    assert list(REGISTRY) == ["hash", "package_cert", "yara", "behavior", "indicator"]
    assert len(KIND_CLASSES) == len(REGISTRY)


def test_every_kind_describes_itself_for_people():
    for name, kind in REGISTRY.items():
        assert isinstance(kind, Kind)
        assert kind.name == name
        assert kind.label
        assert kind.description
        assert kind.min_engine >= 1


def test_unknown_kind_is_a_clear_error():
    with pytest.raises(UnknownKind, match="unknown signature kind 'ssdeep'"):
        get_kind("ssdeep")


def test_every_kind_rejects_garbage_without_raising():
    for kind in REGISTRY.values():
        garbage: object
        for garbage in (None, 42, [], {"nonsense": 1}, ""):
            result = kind.validate(garbage)
            assert result.body is None
            assert result.errors, (kind.name, garbage)


def test_dedup_keys_differ_across_kinds_for_the_same_body():
    body = {"type": "domain", "value": "evil.com"}
    assert get_kind("indicator").dedup_key(body) != get_kind("hash").dedup_key(body)


def test_issue_reads_with_its_position():
    assert str(Issue("bad", 3, 7)) == "line 3, column 7: bad"
    assert str(Issue("bad")) == "bad"
