from __future__ import annotations

import pytest

from releases import pins


def test_pins_round_trip_sorted_and_small() -> None:
    given = [(i * 3 + 1, i * 5 + 7, i % 17 == 0) for i in range(20_000)]
    blob = pins.pack(reversed(given))
    assert pins.unpack(blob) == given
    assert len(blob) < 20_000 * 4


def test_a_signature_pinned_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="twice"):
        pins.pack([(1, 1, False), (1, 2, False)])


def test_diff_tells_added_removed_and_changed() -> None:
    before = [(1, 10, False), (2, 20, False), (3, 30, False)]
    after = [(1, 10, False), (2, 21, False), (3, 30, True), (4, 40, False)]
    d = pins.diff(before, pins.unpack(pins.pack(after)))
    assert d.added == [(4, 40, False)]
    assert d.removed == []
    assert d.changed == [((2, 20, False), (2, 21, False)), ((3, 30, False), (3, 30, True))]
    assert d.upsert_ids == {2, 3, 4}
    assert pins.diff(after, before).removed_ids == [4]


def test_empty_pins() -> None:
    assert pins.unpack(pins.pack([])) == []
