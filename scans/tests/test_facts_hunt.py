"""Hunts whose YARA rules read no bytes (android.* conditions, rewritten Koodous rules) answer
from the stored summary in each sample's row: no file and no unit pack is read."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.storage import default_storage

from portal.models import User
from scans.models import Sample
from scans.retrohunts import retrohunt_run_sync
from scans.storage import units_storage_name
from scans.tests.conftest import SMALL_APK
from scans.tests.factories import stored_sample

pytestmark = pytest.mark.django_db

DIVA = "jakhar.aseem.diva"
KOODOUS = f"""import "androguard"
rule diva_koodous {{
    condition:
        androguard.package_name("{DIVA}") and androguard.permission(/INTERNET/)
}}
"""


def yara(body: str) -> dict[str, str]:
    return {"kind": "yara", "body": body}


def test_rules_that_read_no_bytes_hunt_from_the_stored_summary_alone(
    corpus: Path, researcher: User
) -> None:
    apks = corpus / "apks"
    samples = [
        stored_sample(apks / name, user=researcher)[0]
        for name in ("android.apk", "a2dp.Vol_137.apk", SMALL_APK)
    ]
    package_rule = yara(f'rule diva {{ condition: android.package == "{DIVA}" }}')
    # a first hunt analyses the never-scanned samples and stores their features
    first = retrohunt_run_sync(user=researcher, rule=package_rule)
    assert [m.sample.package for m in first.matches.all()] == [DIVA]
    # when the apps' files and unit packs are gone from storage
    for sample in Sample.objects.filter(pk__in=[s.pk for s in samples]):
        default_storage.delete(units_storage_name(sample.file.name))
        default_storage.delete(sample.file.name)
    # then rules that read no bytes still find the same app, from the rows alone
    for rule in (package_rule, yara(KOODOUS)):
        hunt = retrohunt_run_sync(user=researcher, rule=rule)
        assert (hunt.errors, [m.sample.package for m in hunt.matches.all()]) == (0, [DIVA])
    # while a rule that reads bytes cannot be answered without them
    strings = yara('rule s { strings: $a = "diva" condition: $a }')
    assert retrohunt_run_sync(user=researcher, rule=strings).errors == len(samples)
