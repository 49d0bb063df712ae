"""Sample search: one box (``q``) and typed filters, read through indexes (docs/search.md).

What a researcher pastes is read as the one thing it can be:

- 32 hex digits: an MD5; 40: a SHA-1 (of the app, or of a signing certificate); 64: a
  SHA-256 (of the app, a signing certificate or a DEX file). Certificate fingerprints may be
  written with colons (``AB:CD:…``, as ``keytool`` and ``apksigner`` print them).
- ``http://…``: a URL; an IP address; 3-8 digits: an SMS short code (or part of a name);
  a dotted word: a domain (with its subdomains), a package, an app or file name.
- anything else: part of a package, app name (``app_label``) or file name (``original_name``).

A prefix says what a value is and skips the guessing: ``md5:``, ``sha1:``, ``sha256:``,
``cert:``, ``domain:``, ``url:``, ``ip:``, ``sms:`` (short code), ``package:`` (the exact
package), ``app:`` (part of the app name), ``name:`` (part of the file name).

Hashes go to the indexed hash columns. Certificates, DEX files, domains, URLs, IPs and short
codes go to ``SampleKey`` (``scans.featurekeys``: one 64-bit key per fact of each analysed
sample, indexed), so a search reads index entries, never the features JSON. A sample found
through a key holds that fact (a 64-bit collision could add a wrong sample: about one in
2^64 per key). Samples not analysed yet have no keys and are found by hash and names only.
"""

from __future__ import annotations

import contextlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from django import forms
from django.db.models import F, Q, QuerySet

from engine.kinds.indicator import (
    IndicatorError,
    normalise_domain,
    normalise_ip,
    normalise_short_code,
    normalise_url,
)
from portal.params import ParameterError, parse_id
from scans.featurekeys import key_of
from scans.models import HuntMatch, Sample, SampleKey, SignatureHit

_HEX = re.compile(r"[0-9a-f]+", re.ASCII)
_COLON_HEX = re.compile(r"[0-9a-f]{2}(?::[0-9a-f]{2})+", re.ASCII)
_SHORT_CODE = re.compile(r"[0-9]{3,8}", re.ASCII)
_DOTTED = re.compile(r"[^\s/:@]+\.[^\s/:@]+")
# the list's filters a pivot link sets (kept while the other filters change)
PIVOT_PARAMS = ("cert", "domain", "url", "ip", "short_code", "signature", "order")
MAX_QUERY = 2048  # a long URL fits; anything longer is not a search

# prefix (as typed) -> field
PREFIXES = {
    "md5": "md5",
    "sha1": "sha1",
    "sha256": "sha256",
    "cert": "cert",
    "signer": "cert",
    "domain": "domain",
    "url": "url",
    "ip": "ip",
    "sms": "short_code",
    "short_code": "short_code",
    "package": "package",
    "app": "app",
    "name": "name",
}
# what each field is, for messages and the docs
FIELD_HELP = {
    "md5": "an MD5 (32 hex digits)",
    "sha1": "a SHA-1 (40 hex digits)",
    "sha256": "a SHA-256 (64 hex digits)",
    "cert": "a signing certificate's SHA-256 or SHA-1 fingerprint",
    "domain": "a domain name",
    "url": "a URL",
    "ip": "an IP address",
    "short_code": "an SMS short code (3-8 digits)",
    "package": "a package name",
    "app": "part of an app name",
    "name": "part of a file name",
}


class QueryError(ValueError):
    """A typed value that is not what its type says (the message says why, for people)."""


@dataclass(frozen=True)
class SampleQuery:
    """A parsed search: ``field`` is a key of ``FIELD_HELP`` or "any" (guessed, see module
    docstring); ``value`` is normalised."""

    field: str
    value: str

    def as_q(self) -> str:
        """The text for ``?q=`` that finds the same samples."""
        return self.value if self.field == "any" else f"{self.field}:{self.value}"


def _hex(value: str) -> str:
    """A hash or fingerprint as lower-case hex (colons between byte pairs dropped)."""
    text = value.strip().lower()
    if _COLON_HEX.fullmatch(text):
        text = text.replace(":", "")
    return text


def normalise(field: str, value: str) -> str:
    """``value`` as the ``field`` search compares it, or QueryError."""
    text = value.strip()
    if not text:
        raise QueryError(f"{field}: empty value")
    if "\x00" in text or len(text) > MAX_QUERY:
        raise QueryError(f"{field}: not {FIELD_HELP.get(field, 'a search')}")
    lengths = {"md5": (32,), "sha1": (40,), "sha256": (64,), "cert": (40, 64)}
    if field in lengths:
        digits = _hex(text)
        if not _HEX.fullmatch(digits) or len(digits) not in lengths[field]:
            raise QueryError(f"{field}: {text[:80]!r} is not {FIELD_HELP[field]}")
        return digits
    try:
        if field == "domain":
            return normalise_domain(text)
        if field == "url":
            return normalise_url(text)
        if field == "ip":
            return str(ipaddress.ip_address(normalise_ip(text)))
        if field == "short_code":
            return normalise_short_code(text)
    except IndicatorError as exc:
        raise QueryError(f"{field}: {exc}") from None
    if field in ("package", "app", "name"):
        return text
    raise QueryError(f"unknown search field {field!r}")


def parse(text: str) -> SampleQuery | None:
    """What the search box means; None for an empty box; QueryError for a bad typed value."""
    text = (text or "").strip()
    if not text:
        return None
    if "\x00" in text or len(text) > MAX_QUERY:
        raise QueryError("the search is not text a sample could hold")
    prefix, sep, rest = text.partition(":")
    field = PREFIXES.get(prefix.strip().lower()) if sep else None
    # "http://…" is a URL, not the prefix "http"; "ab:cd:…" is a fingerprint, not a prefix
    if field is not None:
        return SampleQuery(field, normalise(field, rest))
    return SampleQuery("any", text)


# --- conditions --------------------------------------------------------------------------------
def _keyed(*facts: str) -> Q:
    """Samples holding any of these facts (``scans.featurekeys`` strings), via the index."""
    keys = sorted({key_of(f) for f in facts})
    return Q(pk__in=SampleKey.objects.filter(key__in=keys).values("sample_id"))


def _text(value: str) -> Q:
    return (
        Q(package__icontains=value)
        | Q(app_label__icontains=value)
        | Q(original_name__icontains=value)
    )


def _typed(field: str, value: str) -> Q:
    if field in ("md5", "sha1", "sha256"):
        return Q(**{field: value})
    if field == "cert":
        algorithm = "sha256" if len(value) == 64 else "sha1"
        return _keyed(f"{algorithm}:cert:{value}")
    if field in ("domain", "url", "ip", "short_code"):
        return _keyed(f"{field}:{value}")
    if field == "package":
        return Q(package=value)
    if field == "app":
        return Q(app_label__icontains=value)
    if field == "name":
        return Q(original_name__icontains=value)
    raise QueryError(f"unknown search field {field!r}")


def _guessed(text: str) -> Q:
    """An untyped search: every reading the text allows (see the module docstring)."""
    digits = _hex(text)
    if _HEX.fullmatch(digits) and len(digits) in (32, 40, 64):
        if len(digits) == 32:
            return Q(md5=digits)
        if len(digits) == 40:
            return Q(sha1=digits) | _keyed(f"sha1:cert:{digits}")
        return Q(sha256=digits) | _keyed(f"sha256:cert:{digits}", f"sha256:dex:{digits}")
    if "://" in text:
        try:
            return _keyed(f"url:{normalise_url(text)}")
        except IndicatorError:
            return _text(text)
    try:
        return _keyed(f"ip:{ipaddress.ip_address(normalise_ip(text))}")
    except IndicatorError:
        pass
    found = _text(text)
    if _HEX.fullmatch(digits) and len(digits) >= 8:
        found |= Q(sha256__startswith=digits)
    if _SHORT_CODE.fullmatch(text):
        found |= _keyed(f"short_code:{text}")
    elif _DOTTED.fullmatch(text):
        with contextlib.suppress(IndicatorError):
            found |= _keyed(f"domain:{normalise_domain(text)}")
    return found


def condition(query: SampleQuery) -> Q:
    """The WHERE of a parsed search."""
    if query.field == "any":
        return _guessed(query.value)
    return _typed(query.field, query.value)


def samples_search(qs: QuerySet[Sample], query: SampleQuery | None) -> QuerySet[Sample]:
    return qs if query is None else qs.filter(condition(query))


def samples_hit_by(qs: QuerySet[Sample], signature_id: int) -> QuerySet[Sample]:
    """Samples a signature hit, in scans or retro-hunts (what its hit counts count)."""
    return qs.filter(
        pk__in=SignatureHit.objects.filter(signature_id=signature_id).values("sample_id")
    )


def order_by_version(qs: QuerySet[Sample]) -> QuerySet[Sample]:
    """Newest version first (the manifest's versionCode), then newest seen."""
    code = F("features__manifest__version_code")
    return qs.order_by(code.desc(nulls_last=True), "-last_seen", "-id")


def samples_by_hash(value: str) -> list[Sample]:
    """The samples with this MD5 or SHA-1 (more than one only for an MD5 collision)."""
    digits = value.strip().lower()
    if not _HEX.fullmatch(digits) or len(digits) not in (32, 40):
        return []
    column = "md5" if len(digits) == 32 else "sha1"
    return list(Sample.objects.filter(**{column: digits}).only("sha256")[:2])


def hunt_hit_sample_ids(*, signature_id: int, sample_ids: list[int]) -> dict[int, int]:
    """{sample id: newest hunt id} for the samples a signature hit in retro-hunts."""
    rows = (
        HuntMatch.objects.filter(signature_id=signature_id, sample_id__in=sample_ids)
        .values_list("sample_id", "hunt_id")
        .order_by("hunt_id")
    )
    return dict(rows)


# --- form fields (django-filter): the value normalised, or a message naming the field ---------
class SearchFormField(forms.CharField):
    """``q``: a SampleQuery (None when empty)."""

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        try:
            return parse(text or "")
        except QueryError as exc:
            raise forms.ValidationError(str(exc)) from None


class TypedFormField(forms.CharField):
    """One typed field (``cert``, ``domain``…): its normalised value ("" when empty)."""

    def __init__(self, *args: Any, search_field: str = "", **kwargs: Any) -> None:
        self.search_field = search_field
        super().__init__(*args, **kwargs)

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text:
            return ""
        try:
            return normalise(self.search_field, text)
        except QueryError as exc:
            raise forms.ValidationError(str(exc)) from None


def typed_condition(field: str, value: str) -> Q:
    return _typed(field, value)


class SignatureIdFormField(forms.CharField):
    """``signature``: a signature id (int), None when empty."""

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if not text:
            return None
        try:
            return parse_id(text, field="signature")
        except ParameterError as exc:
            raise forms.ValidationError(exc.message) from None


# --- the signature page's "Samples it hit" section (threats.public.register_signature_panel) ------
_LABEL_TITLES = {"clean": "Known clean", "malicious": "Known malicious", "unknown": "Unknown"}


def signature_samples_panel(*, signature_id: int, user: Any) -> Any:
    """The samples a signature hit, grouped by label, each linked, with the counts linked to
    the sample list (``?signature=<id>&label=…``). Cells are built with ``format_html``: the
    values are escaped here, the links are ours."""
    from django.urls import reverse
    from django.utils.html import format_html

    from scans.public import signature_samples
    from threats.public import SignaturePanel

    if not user.has_perm("scans.view_sample"):
        return None
    found = signature_samples(signature_id=signature_id)
    listing = reverse("scans:sample-list")
    facts = tuple(
        (
            _LABEL_TITLES[label],
            format_html(
                '<a href="{}?signature={}&amp;label={}">{} sample(s)</a>',
                listing,
                signature_id,
                label,
                n,
            )
            if n
            else "0",
        )
        for label, n in found.counts
    )
    rows = tuple(
        (
            _LABEL_TITLES.get(s.label, s.label),
            format_html(
                '<a class="mono" href="{}" title="{}">{}…</a>',
                reverse("scans:sample-detail", args=[s.sha256]),
                s.sha256,
                s.sha256[:16],
            ),
            s.package or "—",
            s.app_label or "—",
            format_html(
                '<a href="{}">retro-hunt #{}</a>',
                reverse("scans:retrohunt-detail", args=[s.hunt_id]),
                s.hunt_id,
            )
            if s.hunt_id
            else "scan",
        )
        for s in found.samples
    )
    return SignaturePanel(
        key="signature-samples",
        title="Samples it hit",
        facts=facts,
        columns=("Label", "Sample", "Package", "App", "Found by"),
        rows=rows,
        empty="No stored sample has been hit by this signature.",
    )
