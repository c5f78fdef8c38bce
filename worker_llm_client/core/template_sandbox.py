"""The bounded, inert Jinja2 sandbox prompts render in (``prompt_rendering.py`` is its caller).

The budget is ``render_budget.py``, the estimates made before an operation runs ``render_estimates.py``.

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
import operator
from collections.abc import Callable, Iterable, Iterator, Mapping
from functools import lru_cache
from typing import Any, cast

import jinja2
from jinja2 import nodes
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.runtime import Context
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker_llm_client.core.render_budget import (
    BUDGET,
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    Budget,
    LimitExceeded,
    current_budget,
    refuse_over,
    shallow_size,
)
from worker_llm_client.core.render_estimates import FILTER_CHECKS, estimate_binop, estimate_method

_ITERATE, _CHARGE = "(iterate)", "(charge)"  # filters only compiled code can name: see _BoundedCodeGenerator
_REMOVED_FILTERS = frozenset({"pprint", "urlize", "xmlattr", "striptags"})
_CONSTANT_TIME_FILTERS = frozenset({"length", "count", "first", "last", "default", "d", "attr", "random"})
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


def _guarded(
    func: Callable[..., Any],
    check: Callable[[Budget, list[Any], Mapping[str, Any]], list[Any]] | None,
    per_item: bool,
) -> Callable[..., Any]:
    """A filter or test that pays for its arguments and its result, checked first if it can grow."""
    skip = 1 if getattr(func, "jinja_pass_arg", None) is not None else 0  # context/environment first

    @functools.wraps(func)
    def guarded(*args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.step()
        budget.pay([*args[skip:], *kwargs.values()], per_item)
        if check is not None and len(args) > skip:
            args = (*args[:skip], *check(budget, list(args[skip:]), kwargs))
        return budget.produced(func(*args, **kwargs))

    return guarded


def _iterate(iterable: Any, cost: int) -> Iterator[Any]:
    """A for loop's iterable, ``cost`` steps an item (the size of the loop's body)."""
    return current_budget().counted(iter(iterable), cost)


def _charge(cost: int) -> None:
    current_budget().step(cost)


def _finalize(value: Any) -> str:
    budget = current_budget()
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
        raise LimitExceeded(f"range() yields at most {MAX_RANGE} numbers")
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
            name: _guarded(f, FILTER_CHECKS.get(name), name not in _CONSTANT_TIME_FILTERS)
            for name, f in self.filters.items()
            if name not in _REMOVED_FILTERS
        }
        self.tests = {name: _guarded(cast(Callable[..., Any], f), None, False) for name, f in self.tests.items()}
        self.filters[_ITERATE] = _iterate
        self.filters[_CHARGE] = _charge

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        budget = current_budget()
        budget.step()
        estimate_binop(budget, operator, left, right)
        budget.charge(shallow_size(left) + shallow_size(right))
        return budget.produced(self.binop_table[operator](left, right))

    def call(self, context: Context, obj: Any, /, *args: Any, **kwargs: Any) -> Any:
        budget = current_budget()
        budget.step()
        target = getattr(obj, "__wrapped__", obj)  # str.format comes wrapped by the sandbox
        receiver = getattr(target, "__self__", None)
        budget.pay([receiver, *args, *kwargs.values()])
        if isinstance(receiver, str | bytes):
            args = estimate_method(budget, receiver, getattr(target, "__name__", ""), args, kwargs)
        return budget.produced(super().call(context, obj, *args, **kwargs))

    def getitem(self, obj: Any, argument: Any) -> Any:
        result = super().getitem(obj, argument)
        budget = BUDGET.get()
        if isinstance(argument, slice) and budget is not None:
            budget.charge(shallow_size(result))
        return result

    def concat(self, parts: Iterable[str]) -> str:
        """Every rendered text and buffer (macros, blocks, ``set`` blocks), cut at MAX_OUTPUT_CHARS."""
        kept: list[str] = []
        total = 0
        for part in parts:
            total += len(part)
            if total > MAX_OUTPUT_CHARS:
                raise LimitExceeded(f"the rendered text exceeds {MAX_OUTPUT_CHARS} characters")
            kept.append(part)
        current_budget().charge(total)
        return "".join(kept)

    def guarded_concat(self, values: tuple[Any, ...]) -> str:
        budget = current_budget()
        budget.step()
        budget.pay(values)
        parts = [str(v) for v in values]
        size = sum(len(part) for part in parts)
        budget.charge(size)
        refuse_over(size)
        return "".join(parts)

    def guarded_compare(self, left: Any, *chained: Any) -> Any:
        budget = current_budget()
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


def sandbox_environment() -> _BoundedEnvironment:
    return _environment()
