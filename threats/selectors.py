"""Read paths of the signature database (the API and the pages share them).

Lists stay fast with 100,000 signatures: one query for the page (family, author and revisions
joined, tags prefetched), one for the count; ``q`` searches the denormalised ``search_text``
(kept by the services) and understands a signature name or id.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass
from typing import Any

import django_filters
from django.db.models import Count, Prefetch, Q, QuerySet

from engine.kinds import REGISTRY
from portal.exceptions import NotFoundError
from portal.models import User
from portal.params import IdOrNameFilter, ParameterError, parse_id
from threats.models import (
    CATEGORY_NAME_PART,
    Family,
    RevisionState,
    Severity,
    Signature,
    SignatureRevision,
    Status,
    Tag,
)

_NAME_ID = re.compile(
    r"^(?:andr\.[a-z]+\.[a-z0-9]+-)?#?([0-9]+)(?:-[0-9]+)?$", re.IGNORECASE | re.ASCII
)


# "Andr.SmsFraud.Joker" (a generated name without its id): the family, in that category
_NAME_FAMILY = re.compile(r"^andr\.([a-z]+)(?:\.([a-z0-9]+))?-?$", re.IGNORECASE | re.ASCII)
_IMPORTED = " (imported from "
_YARA_RULE = re.compile(r"^[ \t]*((?:(?:private|global)[ \t]+)*)rule[ \t]+([A-Za-z_]\w*)", re.M)


def rule_own_name(signature: Signature) -> str:
    """The rule's name where it came from, beside the generated ``Andr.*`` one: what an import
    recorded ("<YARA rule / ClamAV name / Quark crime / feed row name> (imported from
    <file:rule>)", in the description), else a YARA body's public rule identifier; "" if none."""
    title, sep, _ = (signature.description or "").rpartition(_IMPORTED)
    if sep and title.strip():
        return title.strip()
    rev = signature.current_revision
    if signature.kind == "yara" and rev is not None and isinstance(rev.body, str):
        for modifiers, name in _YARA_RULE.findall(rev.body):
            if "private" not in modifiers:
                return str(name)
    return ""


def with_rule_names(signatures: Any) -> list[Signature]:
    """The signatures as a list, each with ``rule_name`` set (no query: rows are loaded)."""
    rows: list[Signature] = list(signatures)
    for sig in rows:
        sig.rule_name = rule_own_name(sig)  # type: ignore[attr-defined]
    return rows


def _name_family(qs: QuerySet[Signature], value: str) -> QuerySet[Signature] | None:
    match = _NAME_FAMILY.match(value)
    if not match:
        return None
    part, family = match.group(1).lower(), match.group(2)
    categories = [c for c, p in CATEGORY_NAME_PART.items() if p.lower() == part]
    if not categories:
        return None
    qs = qs.filter(family__category__in=categories)
    return qs.filter(family__name__iexact=family) if family else qs


def _search(qs: QuerySet[Signature], name: str, value: str) -> QuerySet[Signature]:
    value = (value or "").strip()
    if not value:
        return qs
    match = _NAME_ID.match(value)
    if match:
        try:
            return qs.filter(pk=parse_id(match.group(1), field=name))
        except ParameterError:  # no signature has that id
            return qs.none()
    by_name = _name_family(qs, value)
    if by_name is not None:
        return by_name
    for word in value.lower().split()[:8]:
        qs = qs.filter(search_text__contains=word)
    return qs


class SignatureFilter(django_filters.FilterSet):
    kind = django_filters.ChoiceFilter(choices=[(k, k) for k in REGISTRY])
    status = django_filters.ChoiceFilter(choices=Status.choices)
    severity = django_filters.ChoiceFilter(choices=Severity.choices)
    family = IdOrNameFilter(method="_family", help_text="family id or name")
    author = django_filters.CharFilter(field_name="author__username", help_text="username")
    tag = django_filters.CharFilter(method="_tag", help_text="tag name")
    q = django_filters.CharFilter(
        method="_q", help_text="words in the name, family, body summary, description or tags"
    )
    review = django_filters.BooleanFilter(
        method="_review", help_text="true: only signatures whose newest revision is in review"
    )
    clean_hits = django_filters.BooleanFilter(
        method="_clean_hits",
        help_text="true: only signatures that hit samples labelled clean (candidates for noisy)",
    )

    class Meta:
        model = Signature
        fields = [
            "kind",
            "status",
            "severity",
            "family",
            "author",
            "tag",
            "q",
            "review",
            "clean_hits",
        ]

    def _family(self, qs: QuerySet[Signature], name: str, value: int | str) -> QuerySet[Signature]:
        if isinstance(value, int):
            return qs.filter(family_id=value)
        return qs.filter(family__name__iexact=value)

    def _tag(self, qs: QuerySet[Signature], name: str, value: str) -> QuerySet[Signature]:
        tag_id = Tag.objects.filter(name=value.strip().lower()).values_list("pk", flat=True).first()
        if tag_id is None:
            return qs.none()
        return qs.filter(tags=tag_id)

    def _q(self, qs: QuerySet[Signature], name: str, value: str) -> QuerySet[Signature]:
        return _search(qs, name, value)

    def _review(
        self, qs: QuerySet[Signature], name: str, value: bool | None
    ) -> QuerySet[Signature]:
        if value is None:
            return qs
        in_review = Q(current_revision__state=RevisionState.IN_REVIEW)
        return qs.filter(in_review) if value else qs.exclude(in_review)

    def _clean_hits(
        self, qs: QuerySet[Signature], name: str, value: bool | None
    ) -> QuerySet[Signature]:
        if value is None:
            return qs
        return qs.filter(hits_clean__gt=0) if value else qs.filter(hits_clean=0)


def with_clean_hits(qs: QuerySet[Signature]) -> QuerySet[Signature]:
    """Signatures that hit clean samples (stored counters), or whose newest revision's gate
    hunt did: what a reviewer looks at first and may mark noisy."""
    return qs.filter(Q(hits_clean__gt=0) | Q(current_revision__clean_hits__gt=0))


def signature_queryset() -> QuerySet[Signature]:
    """Signatures with everything a list row shows, without N+1."""
    return (
        Signature.objects.select_related("family", "author", "current_revision")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.only("id", "name")))
        .order_by("-id")
    )


def signature_list(*, filters: dict[str, Any] | None = None) -> SignatureFilter:
    """The filter set over signatures (``.qs`` is the queryset; ``.errors`` its bad inputs)."""
    return SignatureFilter(filters or {}, queryset=signature_queryset())


def signature_export_records(*, filters: dict[str, Any] | None = None) -> list[Any]:
    """RuleRecords of the current revisions of the filtered signatures (invalid ones left out)."""
    from threats.public import records_for_revisions

    qs = signature_list(filters=filters).qs.exclude(status=Status.INVALID)
    ids = list(qs.values_list("current_revision_id", flat=True))
    return records_for_revisions(i for i in ids if i is not None)


def signature_get(*, pk: int) -> Signature:
    try:
        return Signature.objects.select_related(
            "family", "author", "current_revision", "deployed_revision__family"
        ).get(pk=pk)
    except Signature.DoesNotExist:
        raise NotFoundError("No such signature.") from None


def family_get(*, pk: int) -> Family:
    try:
        return Family.objects.get(pk=pk)
    except Family.DoesNotExist:
        raise NotFoundError("No such family.") from None


def family_list() -> QuerySet[Family]:
    return Family.objects.annotate(
        signature_count=Count("signatures"),
        deployed_count=Count("signatures", filter=Q(signatures__status=Status.DEPLOYED)),
    ).order_by("name")


def body_text(body: Any) -> str:
    """A body as people read it: YARA source as is, other kinds as indented JSON."""
    if isinstance(body, str):
        return body
    return json.dumps(body, indent=2, sort_keys=True)


@dataclass(frozen=True)
class HistoryEntry:
    number: int
    state: str
    author: str
    last_editor: str
    reviewed_by: str | None
    reviewed_at: Any
    review_comment: str
    created_at: Any
    submitted_at: Any
    severity: str
    family: str
    body: str
    # unified diff from the previous revision ("" for the first) of what is reviewed: the
    # severity and family lines, then the body
    diff: str
    deployed: bool


def review_text(revision: SignatureRevision) -> str:
    """What a reviewer approves, as text: severity, family (the shipped name), then the body."""
    family = revision.family
    return (
        f"severity: {revision.severity}\n"
        f"family: {family.name} ({family.category})\n"
        "\n" + body_text(revision.body)
    )


def signature_history(*, signature: Signature) -> list[HistoryEntry]:
    """Every revision, newest first, with its diff from the one before (severity and family
    included) and who approved it."""
    revisions = list(
        SignatureRevision.objects.filter(signature=signature)
        .select_related("author", "last_editor", "reviewed_by", "family")
        .order_by("number")
    )
    out: list[HistoryEntry] = []
    previous = ""
    for rev in revisions:
        text = review_text(rev)
        diff = ""
        if rev.number > 1:
            diff = "".join(
                difflib.unified_diff(
                    previous.splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    fromfile=f"r{rev.number - 1}",
                    tofile=f"r{rev.number}",
                )
            )
        out.append(
            HistoryEntry(
                number=rev.number,
                state=rev.state,
                author=rev.author.get_username(),
                last_editor=rev.last_editor.get_username(),
                reviewed_by=rev.reviewed_by.get_username() if rev.reviewed_by else None,
                reviewed_at=rev.reviewed_at,
                review_comment=rev.review_comment,
                created_at=rev.created_at,
                submitted_at=rev.submitted_at,
                severity=rev.severity,
                family=rev.family.name,
                body=body_text(rev.body),
                diff=diff,
                deployed=rev.pk == signature.deployed_revision_id,
            )
        )
        previous = text
    out.reverse()
    return out


def review_queue(*, user: User | None = None) -> QuerySet[Signature]:
    """Signatures whose newest revision waits for review, oldest submission first. With a
    user, leaves out the revisions that user wrote or last edited (they may not approve)."""
    qs = signature_queryset().filter(current_revision__state=RevisionState.IN_REVIEW)
    if user is not None:
        qs = qs.exclude(current_revision__author=user).exclude(current_revision__last_editor=user)
    return qs.order_by("current_revision__submitted_at", "id")


def signature_counts() -> dict[str, int]:
    """{status: count} for every status, and "review_queue"."""
    counts = dict.fromkeys(Status.values, 0)
    for row in Signature.objects.values("status").annotate(n=Count("id")).order_by():
        counts[row["status"]] = row["n"]
    counts["review_queue"] = Signature.objects.filter(
        current_revision__state=RevisionState.IN_REVIEW
    ).count()
    return counts
