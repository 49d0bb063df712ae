from __future__ import annotations

import pytest

from releases.public import RulesetSnapshot, current_ruleset


@pytest.mark.django_db
def test_no_release_yet_gives_the_empty_ruleset() -> None:
    assert current_ruleset() == RulesetSnapshot(release=None, key="empty", records=())
