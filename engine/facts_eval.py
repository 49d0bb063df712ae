"""A parsed facts rule (``engine.facts_parse.Expr``) evaluated for a whole batch of apps at once.

Per predicate the apps it holds for are a bitset (a Python int, bit ``k`` for the batch's
``k``-th app); per integer fact, the apps holding each value. A rule is its expression over
those bitsets: ``and`` is ``&``, ``or`` is ``|``, ``not`` the complement within the batch.
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable

from engine.facts_parse import Expr


def int_terms(expr: Expr) -> Iterable[Expr]:
    op = expr[0]
    if op == "cmp":
        yield from (t for t in expr[2:] if t[0] == "int")
    elif op == "not":
        yield from int_terms(expr[1])
    elif op in ("and", "or"):
        for item in expr[1]:
            yield from int_terms(item)


_COMPARE: dict[str, Callable[[int, int], bool]] = {
    "==": operator.eq,
    "!=": operator.ne,
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


def evaluate(expr: Expr, masks: list[int], ints: dict[str, dict[int, int]], everyone: int) -> int:
    """The apps of the batch (a bitset within ``everyone``) for which ``expr`` holds, given the
    predicates' bitsets ``masks`` and the apps holding each value of each integer fact."""
    op = expr[0]
    if op == "pred":
        return masks[expr[1]]
    if op == "and":
        mask = everyone
        for item in expr[1]:
            mask &= evaluate(item, masks, ints, everyone)
            if not mask:
                break
        return mask
    if op == "or":
        mask = 0
        for item in expr[1]:
            mask |= evaluate(item, masks, ints, everyone)
        return mask
    if op == "not":
        return everyone & ~evaluate(expr[1], masks, ints, everyone)
    if op == "const":
        return everyone if expr[1] else 0
    assert op == "cmp"
    return _comparison(expr, ints, everyone)


def _comparison(expr: Expr, ints: dict[str, dict[int, int]], everyone: int) -> int:
    """``("cmp", op, left, right)``: the apps whose integers compare so."""
    compare = _COMPARE[expr[1]]
    left, right = expr[2], expr[3]
    if left[0] == "num" and right[0] == "num":
        return everyone if compare(left[1], right[1]) else 0
    mask = 0
    if left[0] == "int" and right[0] == "int":
        for a, ma in ints[left[1]].items():
            for b, mb in ints[right[1]].items():
                if compare(a, b):
                    mask |= ma & mb
    elif left[0] == "int":
        for value, m in ints[left[1]].items():
            if compare(value, right[1]):
                mask |= m
    else:
        for value, m in ints[right[1]].items():
            if compare(left[1], value):
                mask |= m
    return mask
