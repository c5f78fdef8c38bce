"""Estimates made before an operation runs: what could build a large value in one go is refused
before it is built (``*``, ``**``, ``+``, ``%``, str methods, and the filters in ``FILTER_CHECKS``)."""

from __future__ import annotations

import math
import re
import string
from collections.abc import Callable, Mapping
from typing import Any

from worker_llm_client.core.render_budget import MAX_INT_BITS, Budget, LimitExceeded, refuse_over, shallow_size

_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def _arg(args: list[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


def estimate_binop(budget: Budget, op: str, left: Any, right: Any) -> None:
    if op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * math.log2(abs(left)) > MAX_INT_BITS:
            raise LimitExceeded(f"an integer would have more than {MAX_INT_BITS} bits")
    elif op == "*" and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise LimitExceeded(f"an integer would have more than {MAX_INT_BITS} bits")
    elif op == "*" and (isinstance(left, int) or isinstance(right, int)):
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        refuse_over(budget.fit(sequence) * max(times, 0))
    elif op == "+":
        refuse_over(budget.fit(left) + budget.fit(right))
    elif op == "%" and isinstance(left, str | bytes):
        refuse_over(_percent_estimate(budget, left, right))


def _percent_estimate(budget: Budget, template: str | bytes, args: Any) -> int:
    text = template if isinstance(template, str) else template.decode("latin-1")
    fields, widest, dynamic = 0, 0, False
    for match in _PERCENT_FIELD.finditer(text):
        if match.group(3) != "%":
            fields += 1
            dynamic = dynamic or "*" in match.group(1, 2)
            widest = max([widest, *(int(n) for n in match.group(1, 2) if n and n != "*")])
    values = tuple(args) if isinstance(args, tuple) else (args,)
    return _fields_estimate(budget, len(text), fields, widest, dynamic, values)


def _format_estimate(budget: Budget, template: str, values: tuple[Any, ...]) -> int:
    fields, widest, dynamic = 0, 0, False
    for _, field, given_spec, _ in string.Formatter().parse(template):
        spec = given_spec or ""
        if field is not None:
            fields += 1 + spec.count("{")
            dynamic = dynamic or "{" in spec
            widest = max([widest, *(int(n) for n in re.findall(r"\d+", spec))])
    return _fields_estimate(budget, len(template), fields, widest, dynamic, values)


def _fields_estimate(
    budget: Budget, length: int, fields: int, widest: int, dynamic: bool, values: tuple[Any, ...]
) -> int:
    largest = max((budget.fit(v) for v in values), default=0)
    if dynamic:  # widths taken from the arguments
        widest = max([widest, *(abs(v) for v in values if isinstance(v, int))])
    return length + fields * (largest + widest)


def _replace_estimate(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(text, str | bytes) or not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return shallow_size(text)
    hits = len(text) + 1 if not old else len(text) // len(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def estimate_method(
    budget: Budget, receiver: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Refuses a str or bytes method call that would build too much; ``join``'s items, listed."""
    given, size = list(args), len(receiver)
    if name in ("center", "ljust", "rjust", "zfill"):
        refuse_over(max(size, _int(_arg(given, kwargs, 0, "width"))))
    elif name == "expandtabs":
        refuse_over(size * max(_int(_arg(given, kwargs, 0, "tabsize", 8)), 1))
    elif name == "replace" and len(given) >= 2:
        refuse_over(_replace_estimate(receiver, given[0], given[1], _arg(given, kwargs, 2, "count", -1)))
    elif name == "translate" and given and isinstance(given[0], Mapping):
        refuse_over(size * max([1, *(len(v) for v in given[0].values() if isinstance(v, str))]))
    elif name == "format" and isinstance(receiver, str):
        refuse_over(_format_estimate(budget, receiver, (*given, *kwargs.values())))
    elif name == "format_map" and isinstance(receiver, str) and given and isinstance(given[0], Mapping):
        refuse_over(_format_estimate(budget, receiver, tuple(given[0].values())))
    elif name == "join" and given:
        items = budget.take(given[0])
        refuse_over(size * len(items) + sum(budget.fit(item) for item in items))
        return (items, *given[1:])
    return args


def _lines(text: object) -> int:
    return len(text.splitlines()) + 1 if isinstance(text, str) else shallow_size(text) + 1


def _filter_join(budget: Budget, args: list[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    items = budget.take(args[0])
    separator = _arg(args, kwargs, 1, "d", "")
    refuse_over(budget.fit(separator) * len(items) + sum(budget.fit(item) for item in items))
    return [items, *args[1:]]


def _filter_sum(budget: Budget, args: list[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    if not isinstance(_arg(args, kwargs, 2, "start", 0), int | float):  # adding lists is quadratic
        raise LimitExceeded("the sum filter adds numbers only")
    return args


def _filter_estimate(estimate: Callable[[Budget, list[Any], Mapping[str, Any]], float]) -> Any:
    def check(budget: Budget, args: list[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        refuse_over(estimate(budget, args, kwargs))
        return args

    return check


def _width(value: object) -> int:
    return len(value) if isinstance(value, str) else _int(value)


FILTER_CHECKS: dict[str, Callable[[Budget, list[Any], Mapping[str, Any]], list[Any]]] = {
    "join": _filter_join,
    "sum": _filter_sum,
    "center": _filter_estimate(lambda b, a, k: max(b.fit(a[0]), _int(_arg(a, k, 1, "width", 80)))),
    "indent": _filter_estimate(lambda b, a, k: b.fit(a[0]) + _lines(a[0]) * _width(_arg(a, k, 1, "width", 4))),
    "wordwrap": _filter_estimate(
        lambda b, a, k: (
            b.fit(a[0])
            + (b.fit(a[0]) // max(_int(_arg(a, k, 1, "width", 79), 1), 1) + _lines(a[0]))
            * max(_width(_arg(a, k, 3, "wrapstring")), 1)
        )
    ),
    "replace": _filter_estimate(
        lambda b, a, k: _replace_estimate(
            str(a[0]), str(_arg(a, k, 1, "old", "")), str(_arg(a, k, 2, "new", "")), _arg(a, k, 3, "count", -1)
        )
    ),
    "format": _filter_estimate(lambda b, a, k: _percent_estimate(b, str(a[0]), dict(k) or tuple(a[1:]))),
    "batch": _filter_estimate(
        lambda b, a, k: b.fit(a[0]) + max(_int(_arg(a, k, 1, "linecount")), 0) * b.fit(_arg(a, k, 2, "fill_with"))
    ),
    "tojson": _filter_estimate(  # indentation: each value on its own line, indented by its depth
        lambda b, a, k: b.fit(a[0]) + b.measure(a[0])[2] * b.measure(a[0])[1] * _width(_arg(a, k, 1, "indent"))
    ),
}
