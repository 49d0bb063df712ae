"""Integers and ids from clients, parsed one way everywhere.

``str.isdigit`` is true for "³", which ``int()`` refuses, and for fullwidth digits, which
``int()`` reads as ASCII ones; a 20-digit id passes ``int()`` but overflows the database
(OverflowError on SQLite, an error on PostgreSQL). Every id or integer a client sends (query,
form, JSON, path) goes through ``parse_int``: ASCII digits 0-9 only, a bounded length before
``int()``, and a range; anything else is a ``ParameterError`` (400 naming the field). Path
ids go through ``IdConverter`` (``<id:pk>``), which answers 404 for ids out of range.

Free JSON values (signature bodies, unsaved rules) go through ``JSONBodyField``: no NUL
character in any string or key, as DRF's ``CharField`` already refuses for text; PostgreSQL
stores neither in ``text`` nor in ``jsonb`` (a 500 before; SQLite took it).
"""

from __future__ import annotations

import re
from typing import Any

import django_filters
from django import forms
from rest_framework import serializers

from portal.exceptions import ApplicationError

# The largest id any of our tables (BigAutoField) can hold.
ID_MAX = 2**63 - 1
_DIGITS = re.compile(r"[0-9]{1,19}", re.ASCII)
# A name in a reference "id or name" (e.g. a family: one word in CamelCase, matched
# case-insensitively).
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}", re.ASCII)


class ParameterError(ApplicationError):
    """A parameter that is not what it should be: 400, ``{"fields": {field: [problem]}}``."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}", {"fields": {field: [problem]}})
        self.field = field
        self.problem = problem


def _shown(value: Any) -> str:
    text = str(value)
    return repr(text if len(text) <= 40 else text[:40] + "…")


def parse_int(value: Any, *, field: str, lowest: int = 0, highest: int = ID_MAX) -> int:
    """``value`` (an int, or a string of ASCII digits) as an int in [lowest, highest]."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ParameterError(field, f"must be a whole number from {lowest} to {highest}.")
    if isinstance(value, str):
        text = value.strip()
        if not _DIGITS.fullmatch(text):
            if re.fullmatch(r"[0-9]+", text):  # more digits than any id has
                raise ParameterError(field, f"{_shown(text)} is over {highest}.")
            raise ParameterError(
                field,
                f"{_shown(text)} is not a whole number from {lowest} to {highest} "
                "(digits 0-9 only).",
            )
        number = int(text)
    else:
        number = value
    if number < lowest or number > highest:
        raise ParameterError(field, f"{number} is not from {lowest} to {highest}.")
    return number


def parse_id(value: Any, *, field: str) -> int:
    """An id: a whole number from 1 to 2^63-1 (what a BigAutoField holds)."""
    return parse_int(value, field=field, lowest=1, highest=ID_MAX)


def parse_ids(values: Any, *, field: str) -> list[int]:
    return [parse_id(v, field=field) for v in values]


def parse_id_or_name(value: Any, *, field: str) -> int | str:
    """A reference by id (digits) or by name (one word of ASCII letters and digits, starting
    with a letter, as family names are): the id as an int, or the name as given."""
    text = str(value).strip()
    if re.match(r"[0-9]", text):
        return parse_id(text, field=field)
    if not _NAME.fullmatch(text):
        raise ParameterError(
            field,
            f"{_shown(text)} is neither an id (digits 0-9) nor a name (one word of letters "
            "and digits, e.g. Joker).",
        )
    return text


# --- the same rules for forms, filters, serializers and URLs -----------------------------------
class IdOrNameFormField(forms.CharField):
    """A form (and django-filter) field: "" for none, else an id (int) or a name (str)."""

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if text in (None, ""):
            return text
        try:
            return parse_id_or_name(text, field="value")
        except ParameterError as exc:
            raise forms.ValidationError(exc.problem) from None


class IdOrNameFilter(django_filters.CharFilter):
    """A django-filter filter whose value is an id (int) or a name (str), never a number
    the database cannot hold; the filter's ``method`` receives either."""

    field_class = IdOrNameFormField


class IdSerializerField(serializers.IntegerField):
    """An id in JSON or a form: a JSON integer or a string of ASCII digits, 1 to 2^63-1.
    (DRF's IntegerField takes 1000.0, fullwidth digits and ids the database cannot hold.)"""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> int:
        try:
            return parse_id(data, field=self.field_name or "id")
        except ParameterError as exc:
            raise serializers.ValidationError(exc.problem) from None


class IdOrNameSerializerField(serializers.CharField):
    """A reference in JSON or a form: an id (returned as int) or a name (str)."""

    def to_internal_value(self, data: Any) -> Any:
        text = super().to_internal_value(data)
        try:
            return parse_id_or_name(text, field=self.field_name or "value")
        except ParameterError as exc:
            raise serializers.ValidationError(exc.problem) from None


NUL_MESSAGE = "Null characters are not allowed."


def has_nul(value: Any) -> bool:
    """Whether a JSON value holds U+0000 in any string or key (iterative: any depth)."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return True
        elif isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list | tuple):
            pending.extend(item)
    return False


class JSONBodyField(serializers.JSONField):
    """Any JSON value, but no NUL character in it (400 naming the field, as for text)."""

    def to_internal_value(self, data: Any) -> Any:
        value = super().to_internal_value(data)
        if has_nul(value):
            raise serializers.ValidationError(NUL_MESSAGE)
        return value


class IdConverter:
    """``<id:name>`` in URLs: ASCII digits from 1 to 2^63-1; anything else does not match,
    so the answer is 404 (JSON under /api/), never an overflow in the database."""

    regex = "[0-9]{1,19}"

    def to_python(self, value: str) -> int:
        number = int(value)
        if not 1 <= number <= ID_MAX:
            raise ValueError(value)
        return number

    def to_url(self, value: int) -> str:
        return str(int(value))
