"""The bounded, inert Jinja2 sandbox prompts render in (``prompt_rendering.py`` is its caller).

Jinja2's immutable sandbox blocks unsafe attributes and the mutation of lists and maps; ``vars``
are plain JSON values (``plain_values.py``), so nothing a template reaches has side effects. On
top of the sandbox every render has a budget, so that no template exhausts the instance:

    MAX_RANGE           numbers one ``range()`` may yield
    MAX_OUTPUT_CHARS    characters of a rendered template; also the size of any value a template
                        builds or uses (a string's characters, one per number, and the items of
                        a list or map, nested)
    MAX_INT_BITS        bits of an integer that ``*`` or ``**`` may build
    MAX_RENDER_STEPS    each run of a loop body, macro, call block or block counts its size in
                        template nodes; each call, filter, test, operator and comparison counts
                        one, and so does each item a loop iterates, a filter handles (most
                        filters run Python code per item) or a call or an operator builds
    MAX_RENDER_WORK     characters (and items, where C code handles them) that calls, filters,
                        tests, operators, comparisons and output read or write

What could build a large value in one go is estimated before it runs (``*``, ``**``, ``+``, ``%``,
str ``format``/``join``/``replace``/``translate``/``center``..., and the ``join``, ``replace``,
``format``, ``indent``, ``center``, ``wordwrap``, ``batch``, ``tojson`` and ``sum`` filters);
every other result is measured once built. The ``pprint``, ``urlize``, ``xmlattr`` and
``striptags`` filters and ``lipsum`` are not available (unbounded or quadratic on hostile input).
Undefined variables fail (StrictUndefined). A failure is a ``TemplateError`` naming the template
and the kind of problem (an exception type, a cap, a missing variable's name), never the
template's text or a variable's value.
"""

from __future__ import annotations

import functools
import math
import operator
import re
import string
from collections.abc import Callable, ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from itertools import chain
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import Namespace

MAX_RANGE = 10_000
MAX_OUTPUT_CHARS = 256 * 1024
MAX_INT_BITS = 4096
MAX_RENDER_STEPS = 1_000_000
MAX_RENDER_WORK = 32 * 1024 * 1024

_TOO_BIG = MAX_OUTPUT_CHARS + 1
_ITERATE, _CHARGE = "(iterate)", "(charge)"  # filters only compiled code can name: see _BoundedCodeGenerator
_Size = tuple[int, int, int]  # a value's size, nesting depth and number of values
_REMOVED_FILTERS = frozenset({"pprint", "urlize", "xmlattr", "striptags"})
_CONSTANT_TIME_FILTERS = frozenset({"length", "count", "first", "last", "default", "d", "attr", "random"})
_UNDEFINED_NAME = re.compile(r"'[A-Za-z_][A-Za-z0-9_]{0,63}' is undefined")
_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset, range, KeysView, ValuesView, ItemsView)
_PERCENT_FIELD = re.compile(r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?(.)", re.DOTALL)
_COMPARE: dict[str, Callable[[Any, Any], Any]] = {
    "eq": operator.eq,
    "ne": operator.ne,
    "gt": operator.gt,
    "gteq": operator.ge,
    "lt": operator.lt,
    "lteq": operator.le,
    "in": lambda a, b: a in b,
    "notin": lambda a, b: a not in b,
}


# --- the budget ------------------------------------------------------------------------------------


class _LimitExceeded(Exception):
    """A cap of this module was reached; the message names the cap, nothing else."""


class _Budget:
    """One render's remaining steps and work, and the sizes of the values measured so far."""

    def __init__(self) -> None:
        self.steps = MAX_RENDER_STEPS
        self.work = MAX_RENDER_WORK
        self._sizes: dict[int, tuple[object, _Size]] = {}  # id -> (the value, kept alive; its size)
        self._open: set[int] = set()

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise _LimitExceeded(f"rendering takes more than {MAX_RENDER_STEPS} steps")

    def charge(self, amount: int) -> None:
        self.work -= amount
        if self.work < 0:
            raise _LimitExceeded(f"rendering reads or writes more than {MAX_RENDER_WORK} characters")

    def fit(self, value: object) -> int:
        """``value``'s size, which must not exceed MAX_OUTPUT_CHARS."""
        size = self.measure(value)[0]
        if size > MAX_OUTPUT_CHARS:
            raise _LimitExceeded(f"a value is larger than {MAX_OUTPUT_CHARS}")
        return size

    def measure(self, value: object) -> _Size:
        """(size, nesting depth, values); shared parts count each time they appear, cycles are too big."""
        if isinstance(value, str | bytes | bytearray | range):
            return len(value), 0, 1
        if isinstance(value, int):
            return value.bit_length() // 3 + 1, 0, 1
        children = _children(value)
        if children is None:
            return 1, 0, 1
        key = id(value)
        if key in self._sizes:
            return self._sizes[key][1]
        if key in self._open:
            return _TOO_BIG, 0, 1
        self._open.add(key)
        try:
            size = self._total(children)
        finally:
            self._open.discard(key)
        if not isinstance(value, Namespace):  # the one container a template can change
            self._sizes[key] = (value, size)
        return size

    def _total(self, children: Iterable[object]) -> _Size:
        size, depth, count = 1, 0, 1
        for child in children:
            self.charge(1)
            child_size, child_depth, child_count = self.measure(child)
            size, depth, count = size + child_size, max(depth, child_depth), count + child_count
            if size > MAX_OUTPUT_CHARS:
                return _TOO_BIG, depth + 1, count
        return size, depth + 1, count

    def pay(self, values: Iterable[object], per_item: bool = False) -> None:
        """Each value must fit. Text is paid as work; the items of a list or map too, or as steps
        when ``per_item`` (Python code, such as most filters, handles each item)."""
        for value in values:
            self.fit(value)
            self._spend(value, per_item)

    def produced(self, result: Any) -> Any:
        """A result checked and paid for (its items as steps); an iterator, item by item."""
        if isinstance(result, Iterator):
            return self.counted(result)
        self.fit(result)
        self._spend(result, per_item=True)
        return result

    def _spend(self, value: object, per_item: bool) -> None:
        if per_item and isinstance(value, list | tuple | dict | set | frozenset):
            self.step(len(value))
        else:
            self.charge(_shallow(value))

    def counted(self, items: Iterator[Any], cost: int = 1) -> Iterator[Any]:
        for item in items:
            self.step(cost)
            yield item

    def take(self, items: Any) -> list[Any] | tuple[Any, ...]:
        return items if isinstance(items, list | tuple) else list(self.counted(iter(items)))


_BUDGET: ContextVar[_Budget | None] = ContextVar("template_budget", default=None)


def _current() -> _Budget:
    budget = _BUDGET.get()
    if budget is None:  # Jinja2 folding constants at compile time: leave it to the render
        raise RuntimeError("template code runs only within a render")
    return budget


def _children(value: object) -> Iterable[object] | None:
    if isinstance(value, Mapping):
        return chain.from_iterable(value.items())
    if isinstance(value, list | tuple | set | frozenset | KeysView | ValuesView | ItemsView):
        return value
    if isinstance(value, Namespace):
        attributes: dict[str, object] = getattr(value, "_Namespace__attrs")  # noqa: B009
        return chain.from_iterable(attributes.items())
    return None


def _shallow(value: object) -> int:
    return len(value) if isinstance(value, _SIZED) else 1


def _limit(estimate: float) -> None:
    if estimate > MAX_OUTPUT_CHARS:
        raise _LimitExceeded(f"an operation would build a value larger than {MAX_OUTPUT_CHARS}")


def _int(value: object, default: int = 0) -> int:
    return value if isinstance(value, int) else default


def _arg(args: list[Any], kwargs: Mapping[str, Any], index: int, name: str, default: Any = None) -> Any:
    return args[index] if len(args) > index else kwargs.get(name, default)


# --- estimates made before an operation runs -------------------------------------------------------


def _estimate_binop(budget: _Budget, op: str, left: Any, right: Any) -> None:
    if op == "**" and isinstance(left, int) and isinstance(right, int) and right > 0 and abs(left) > 1:
        if right * math.log2(abs(left)) > MAX_INT_BITS:
            raise _LimitExceeded(f"an integer would have more than {MAX_INT_BITS} bits")
    elif op == "*" and isinstance(left, int) and isinstance(right, int):
        if left.bit_length() + right.bit_length() > MAX_INT_BITS:
            raise _LimitExceeded(f"an integer would have more than {MAX_INT_BITS} bits")
    elif op == "*" and (isinstance(left, int) or isinstance(right, int)):
        sequence, times = (left, right) if isinstance(right, int) else (right, left)
        _limit(budget.fit(sequence) * max(times, 0))
    elif op == "+":
        _limit(budget.fit(left) + budget.fit(right))
    elif op == "%" and isinstance(left, str | bytes):
        _limit(_percent_estimate(budget, left, right))


def _percent_estimate(budget: _Budget, template: str | bytes, args: Any) -> int:
    text = template if isinstance(template, str) else template.decode("latin-1")
    fields, widest, dynamic = 0, 0, False
    for match in _PERCENT_FIELD.finditer(text):
        if match.group(3) != "%":
            fields += 1
            dynamic = dynamic or "*" in match.group(1, 2)
            widest = max([widest, *(int(n) for n in match.group(1, 2) if n and n != "*")])
    values = tuple(args) if isinstance(args, tuple) else (args,)
    return _fields_estimate(budget, len(text), fields, widest, dynamic, values)


def _format_estimate(budget: _Budget, template: str, values: tuple[Any, ...]) -> int:
    fields, widest, dynamic = 0, 0, False
    for _, field, given_spec, _ in string.Formatter().parse(template):
        spec = given_spec or ""
        if field is not None:
            fields += 1 + spec.count("{")
            dynamic = dynamic or "{" in spec
            widest = max([widest, *(int(n) for n in re.findall(r"\d+", spec))])
    return _fields_estimate(budget, len(template), fields, widest, dynamic, values)


def _fields_estimate(
    budget: _Budget, length: int, fields: int, widest: int, dynamic: bool, values: tuple[Any, ...]
) -> int:
    largest = max((budget.fit(v) for v in values), default=0)
    if dynamic:  # widths taken from the arguments
        widest = max([widest, *(abs(v) for v in values if isinstance(v, int))])
    return length + fields * (largest + widest)


def _replace_estimate(text: Any, old: Any, new: Any, count: Any) -> int:
    if not isinstance(text, str | bytes) or not isinstance(old, str | bytes) or not isinstance(new, str | bytes):
        return _shallow(text)
    hits = len(text) + 1 if not old else len(text) // len(old)
    if isinstance(count, int) and count >= 0:
        hits = min(hits, count)
    return len(text) + hits * len(new)


def _estimate_method(
    budget: _Budget, receiver: str | bytes, name: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> tuple[Any, ...]:
    """Refuses a str or bytes method call that would build too much; ``join``'s items, listed."""
    given, size = list(args), len(receiver)
    if name in ("center", "ljust", "rjust", "zfill"):
        _limit(max(size, _int(_arg(given, kwargs, 0, "width"))))
    elif name == "expandtabs":
        _limit(size * max(_int(_arg(given, kwargs, 0, "tabsize", 8)), 1))
    elif name == "replace" and len(given) >= 2:
        _limit(_replace_estimate(receiver, given[0], given[1], _arg(given, kwargs, 2, "count", -1)))
    elif name == "translate" and given and isinstance(given[0], Mapping):
        _limit(size * max([1, *(len(v) for v in given[0].values() if isinstance(v, str))]))
    elif name == "format" and isinstance(receiver, str):
        _limit(_format_estimate(budget, receiver, (*given, *kwargs.values())))
    elif name == "format_map" and isinstance(receiver, str) and given and isinstance(given[0], Mapping):
        _limit(_format_estimate(budget, receiver, tuple(given[0].values())))
    elif name == "join" and given:
        items = budget.take(given[0])
        _limit(size * len(items) + sum(budget.fit(item) for item in items))
        return (items, *given[1:])
    return args


def _lines(text: object) -> int:
    return len(text.splitlines()) + 1 if isinstance(text, str) else _shallow(text) + 1


def _filter_join(budget: _Budget, args: list[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    items = budget.take(args[0])
    separator = _arg(args, kwargs, 1, "d", "")
    _limit(budget.fit(separator) * len(items) + sum(budget.fit(item) for item in items))
    return [items, *args[1:]]


def _filter_sum(budget: _Budget, args: list[Any], kwargs: Mapping[str, Any]) -> list[Any]:
    if not isinstance(_arg(args, kwargs, 2, "start", 0), int | float):  # adding lists is quadratic
        raise _LimitExceeded("the sum filter adds numbers only")
    return args


def _filter_estimate(estimate: Callable[[_Budget, list[Any], Mapping[str, Any]], float]) -> Any:
    def check(budget: _Budget, args: list[Any], kwargs: Mapping[str, Any]) -> list[Any]:
        _limit(estimate(budget, args, kwargs))
        return args

    return check


def _width(value: object) -> int:
    return len(value) if isinstance(value, str) else _int(value)


_FILTER_CHECKS: dict[str, Callable[[_Budget, list[Any], Mapping[str, Any]], list[Any]]] = {
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


def _guarded(
    func: Callable[..., Any],
    check: Callable[[_Budget, list[Any], Mapping[str, Any]], list[Any]] | None,
    per_item: bool,
) -> Callable[..., Any]:
    """A filter or test that pays for its arguments and its result, checked first if it can grow."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context/environment first

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = _current()
        budget.step()
        budget.pay([*args[skip:], *kwargs.values()], per_item)
        if check is not None and len(args) > skip:
            args = (*args[:skip], *check(budget, list(args[skip:]), kwargs))
        return budget.produced(func(*args, **kwargs))

    return guarded


def _iterate(iterable: Any, cost: int) -> Iterator[Any]:
    """A for loop's iterable, ``cost`` steps an item (the size of the loop's body)."""
    return _current().counted(iter(iterable), cost)


def _charge(cost: int) -> None:
    _current().step(cost)


def _finalize(value: Any) -> str:
    budget = _current()
    budget.fit(value)
    text = str(value)
    budget.charge(len(text))
    return text


def _range(*args: int) -> range:
    numbers = range(*args)
    try:
        too_many = len(numbers) > MAX_RANGE
    except OverflowError:
        too_many = True
    if too_many:
        raise _LimitExceeded(f"range() yields at most {MAX_RANGE} numbers")
    return numbers


# --- compiled templates that pay as they go --------------------------------------------------------


class _BoundedCodeGenerator(CodeGenerator):
    """A for loop iterates through the ``(iterate)`` filter, which pays the size of the loop's body
    per item; the bodies of recursive loops, macros, call blocks and blocks start with ``(charge)``.
    ``~``, comparisons and slices go through the environment, which pays for them. Jinja2 allows no custom
    nodes, and filters are the calls its sandbox leaves direct; no template can name these two."""

    def visit_Template(self, node: nodes.Template, frame: Frame | None = None) -> None:
        bodies: list[nodes.For | nodes.Macro | nodes.CallBlock | nodes.Block] = [
            *node.find_all(nodes.For),
            *node.find_all(nodes.Macro),
            *node.find_all(nodes.CallBlock),
            *node.find_all(nodes.Block),
        ]
        for body in bodies:
            cost = sum(len(list(child.find_all(nodes.Node))) + 1 for child in body.body) + 1
            if isinstance(body, nodes.For):
                per_item = 1 if body.recursive else cost
                body.iter = self._filter(cast(nodes.Expr, body.iter), _ITERATE, per_item, body.lineno)
            if not isinstance(body, nodes.For) or body.recursive:
                charge = self._filter(nodes.Const(cost), _CHARGE, None, body.lineno)
                body.body.insert(0, nodes.ExprStmt(charge, lineno=body.lineno))
        super().visit_Template(node, frame)

    def _filter(self, value: nodes.Expr, name: str, cost: int | None, lineno: int) -> nodes.Filter:
        args: list[nodes.Expr] = [nodes.Const(cost)] if cost is not None else []
        call = nodes.Filter(value, name, args, [], None, None)
        call.set_lineno(lineno).set_environment(self.environment)
        return call

    @optimizeconst
    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.guarded_concat((")
        for item in node.nodes:
            self.visit(item, frame)
            self.write(", ")
        self.write("))")

    @optimizeconst
    def visit_Getitem(self, node: nodes.Getitem, frame: Frame) -> None:
        """Jinja2 compiles ``x[a:b]`` to a bare Python slice; here it goes through the environment
        too, which pays for the copy a slice makes."""
        if not isinstance(node.arg, nodes.Slice):
            super().visit_Getitem(node, frame)
            return
        self.write("environment.getitem(")
        self.visit(node.node, frame)
        self.write(", slice(")
        for index, part in enumerate((node.arg.start, node.arg.stop, node.arg.step)):
            self.write(", " if index else "")
            if part is None:
                self.write("None")
            else:
                self.visit(part, frame)
        self.write("))")

    @optimizeconst
    def visit_Compare(self, node: nodes.Compare, frame: Frame) -> None:
        self.write("environment.guarded_compare(")
        self.visit(node.expr, frame)
        for operand in node.ops:
            self.write(f", {operand.op!r}, ")
            self.visit(operand.expr, frame)
        self.write(")")


class _BoundedEnvironment(ImmutableSandboxedEnvironment):
    code_generator_class = _BoundedCodeGenerator
    intercepted_binops = frozenset({"*", "**", "+", "%"})

    def __init__(self) -> None:
        super().__init__(undefined=jinja2.StrictUndefined, autoescape=False, finalize=_finalize)
        self.globals["range"] = _range
        self.globals.pop("lipsum", None)
        self.filters = {
            name: _guarded(f, _FILTER_CHECKS.get(name), name not in _CONSTANT_TIME_FILTERS)
            for name, f in self.filters.items()
            if name not in _REMOVED_FILTERS
        }
        self.tests = {name: _guarded(cast(Callable[..., Any], f), None, False) for name, f in self.tests.items()}
        self.filters[_ITERATE] = _iterate
        self.filters[_CHARGE] = _charge

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = _current()
        budget.step()
        _estimate_binop(budget, operator, left, right)
        budget.charge(_shallow(left) + _shallow(right))
        return budget.produced(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = _current()
        budget.step()
        target = getattr(obj, "__wrapped__", obj)  # str.format comes wrapped by the sandbox
        receiver = getattr(target, "__self__", None)
        budget.pay([receiver, *args, *kwargs.values()])
        if isinstance(receiver, str | bytes):
            args = _estimate_method(budget, receiver, getattr(target, "__name__", ""), args, kwargs)
        return budget.produced(super().call(context, obj, *args, **kwargs))

    def getitem(self, obj: Any, argument: Any) -> Any:
        result = super().getitem(obj, argument)
        budget = _BUDGET.get()
        if isinstance(argument, slice) and budget is not None:
            budget.charge(_shallow(result))
        return result

    def concat(self, parts: Iterable[str]) -> str:
        """Every rendered text and buffer (macros, blocks, ``set`` blocks), cut at MAX_OUTPUT_CHARS."""
        kept: list[str] = []
        total = 0
        for part in parts:
            total += len(part)
            if total > MAX_OUTPUT_CHARS:
                raise _LimitExceeded(f"the rendered text exceeds {MAX_OUTPUT_CHARS} characters")
            kept.append(part)
        _current().charge(total)
        return "".join(kept)

    def guarded_concat(self, values: tuple[Any, ...]) -> str:
        budget = _current()
        budget.step()
        budget.pay(values)
        parts = [str(v) for v in values]
        size = sum(len(part) for part in parts)
        budget.charge(size)
        _limit(size)
        return "".join(parts)

    def guarded_compare(self, left: Any, *chained: Any) -> Any:
        budget = _current()
        result: Any = True
        for op, right in zip(chained[::2], chained[1::2], strict=True):
            budget.step()
            budget.charge(budget.fit(left) + budget.fit(right))
            result = _COMPARE[op](left, right)
            if not result:
                return result
            left = right
        return result


@lru_cache(maxsize=1)
def _environment() -> _BoundedEnvironment:
    return _BoundedEnvironment()


@contextmanager
def render_budget() -> Iterator[None]:
    """One render's budget, for the renders made inside the block (per thread and task)."""
    token = _BUDGET.set(_Budget())
    try:
        yield
    finally:
        _BUDGET.reset(token)


def limit_message(exc: BaseException) -> str | None:
    """The cap a render ran into, or None when ``exc`` is not this sandbox's refusal."""
    return str(exc) if isinstance(exc, _LimitExceeded) else None


def sandbox_environment() -> _BoundedEnvironment:
    return _environment()
