"""The cloud verdict look-up for phones (docs/lookup.md).

A phone asks about up to ``MAX_LOOKUP`` apps by SHA-256 and gets, per app, the verdict under
the current release (``scans.verdicts``), ``unknown`` for an app never scanned here, and the
family when there is one. Each answer depends on the hash and the release only, so a phone
caches it per hash for ``cache_seconds`` or until its release changes.

Every hash asked about is counted (``LookupCount``), with no trace of which phone asked:
the unknown apps phones ask about most are what researchers should collect next
(``lookups_unknown_top``, the samples page's "Wanted" list).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import connection
from django.utils import timezone

from portal.exceptions import ApplicationError
from scans.models import LookupCount, Sample
from scans.verdicts import verdicts_as_of
from threats.public import signature_refs

MAX_LOOKUP = 100


@dataclass(frozen=True)
class LookupAnswer:
    sha256: str
    verdict: str  # malicious | suspicious | clean | unknown
    label: str  # what researchers know: clean | malicious | unknown
    family: str | None
    signature: str | None  # the strongest signature behind the verdict
    release: int | None  # the release the verdict is under (None: unknown app)


@dataclass(frozen=True)
class LookupResult:
    release: int | None  # the release current verdicts are brought to
    cache_seconds: int
    answers: tuple[LookupAnswer, ...]


def lookup_hashes(values: object) -> list[str]:
    """The distinct SHA-256s asked about, lower-case, in order; ApplicationError naming the
    first bad one."""
    if not isinstance(values, list | tuple) or not values:
        raise ApplicationError('Give "sha256s": a list of 1 to 100 app SHA-256s.')
    if len(values) > MAX_LOOKUP:
        raise ApplicationError(
            f"At most {MAX_LOOKUP} apps per look-up; {len(values)} were given.",
            {"fields": {"sha256s": "too many"}},
        )
    out: list[str] = []
    for index, value in enumerate(values):
        text = value.lower() if isinstance(value, str) else ""
        if len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
            raise ApplicationError(
                f"sha256s[{index}] is not a SHA-256 (64 hexadecimal digits).",
                {"fields": {f"sha256s[{index}]": "not a SHA-256"}},
            )
        if text not in out:
            out.append(text)
    return out


def apps_lookup(*, sha256s: Sequence[str]) -> LookupResult:
    """Answer each hash from stored samples (three queries), then count the look-up."""
    rows = {
        sha: (verdict, label, family, release)
        for sha, verdict, label, family, release in Sample.objects.filter(
            sha256__in=sha256s
        ).values_list("sha256", "verdict", "label", "family__name", "verdict_release")
    }
    strongest = _strongest_signatures([sha for sha, row in rows.items() if row[0]])
    refs = signature_refs({sig_id for _, sig_id in strongest.values()})
    answers = []
    for sha in sha256s:
        row = rows.get(sha)
        if row is None or not row[0]:
            label = row[1] if row is not None else "unknown"
            answers.append(LookupAnswer(sha, "unknown", label, row[2] if row else None, None, None))
            continue
        verdict, label, family, release = row
        name, sig_id = strongest.get(sha, (None, 0))
        # the family researchers gave the app, else that of the signature behind the verdict
        ref = refs.get(sig_id)
        known = family or (ref.family if ref is not None and ref.family else None)
        answers.append(LookupAnswer(sha, verdict, label, known, name, release))
    lookups_count(sha256s)
    return LookupResult(
        release=verdicts_as_of(),
        cache_seconds=settings.DEVICE_LOOKUP_CACHE_SECONDS,
        answers=tuple(answers),
    )


def _strongest_signatures(sha256s: list[str]) -> dict[str, tuple[str, int]]:
    """{sha256: (name, signature id)} of the heaviest scoring match of each app."""
    if not sha256s:
        return {}
    from scans.models import CurrentMatch

    out: dict[str, tuple[str, int]] = {}
    rows = (
        CurrentMatch.objects.filter(sample__sha256__in=sha256s, scoring=True)
        .order_by("sample_id", "-weight", "name")
        .values_list("sample__sha256", "name", "signature_id")
    )
    for sha, name, sig_id in rows:
        out.setdefault(sha, (name, sig_id))
    return out


def lookups_count(sha256s: Sequence[str]) -> None:
    """One more look-up of each hash: one INSERT ... ON CONFLICT statement (PostgreSQL and
    SQLite alike), in hash order so concurrent look-ups never deadlock on each other.

    The statement runs on its own, in autocommit: one statement is atomic by itself. An
    explicit transaction around it added BEGIN and COMMIT round trips (PostgreSQL) and, on
    SQLite, held the one write lock across three calls, each waiting for the GIL behind other
    threads' CPU work while other writers slept in SQLite's busy back-off: p99 about halved
    under contention in process, throughput over HTTP unchanged (docs/lookup.md, "Measured").
    Inside a caller's transaction it joins that one."""
    if not sha256s:
        return
    now = timezone.now()
    table = LookupCount._meta.db_table
    ordered = sorted(set(sha256s))
    values = ", ".join(["(%s, 1, %s, %s)"] * len(ordered))
    params: list[Any] = []
    for sha in ordered:
        params += [sha, now, now]
    # the table name is the model's; every value is a parameter
    sql = (
        f"INSERT INTO {table} (sha256, count, first_at, last_at) VALUES {values} "  # noqa: S608
        f"ON CONFLICT (sha256) DO UPDATE SET count = {table}.count + 1, "
        "last_at = excluded.last_at"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)


@dataclass(frozen=True)
class Wanted:
    sha256: str
    count: int
    first_at: object
    last_at: object


def lookups_unknown_top(*, limit: int = 100) -> list[Wanted]:
    """The hashes phones asked about most that no stored sample has, most asked first."""
    stored = Sample.objects.values("sha256")
    rows = (
        LookupCount.objects.exclude(sha256__in=stored)
        .order_by("-count", "sha256")
        .values_list("sha256", "count", "first_at", "last_at")[:limit]
    )
    return [Wanted(*row) for row in rows]
