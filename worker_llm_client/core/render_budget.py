"""One render's budget: the caps of ``template_sandbox.py`` and what each operation pays.

A render runs inside ``render_budget()``; the sandbox's compiled code, filters, calls and
operators find the budget with ``current_budget()`` and pay steps (``step``), work (``charge``)
and sizes (``fit``, ``pay``, ``produced``) until a cap is reached: then ``LimitExceeded`` names
the cap, nothing else. The caps are listed in ``template_sandbox.py``'s docstring.
"""

from __future__ import annotations

from collections.abc import ItemsView, Iterable, Iterator, KeysView, Mapping, ValuesView
from contextlib import contextmanager
from contextvars import ContextVar
from itertools import chain
from typing import Any

from jinja2.utils import Namespace

MAX_RANGE = 10_000
MAX_OUTPUT_CHARS = 256 * 1024
MAX_INT_BITS = 4096
MAX_RENDER_STEPS = 1_000_000
MAX_RENDER_WORK = 32 * 1024 * 1024

_TOO_BIG = MAX_OUTPUT_CHARS + 1
_Size = tuple[int, int, int]  # a value's size, nesting depth and number of values
_SIZED = (str, bytes, bytearray, list, tuple, dict, set, frozenset, range, KeysView, ValuesView, ItemsView)


class LimitExceeded(Exception):
    """A cap of this module was reached; the message names the cap, nothing else."""


class Budget:
    """One render's remaining steps and work, and the sizes of the values measured so far."""

    def __init__(self) -> None:
        self.steps = MAX_RENDER_STEPS
        self.work = MAX_RENDER_WORK
        self._sizes: dict[int, tuple[object, _Size]] = {}  # id -> (the value, kept alive; its size)
        self._open: set[int] = set()

    def step(self, count: int = 1) -> None:
        self.steps -= count
        if self.steps < 0:
            raise LimitExceeded(f"rendering takes more than {MAX_RENDER_STEPS} steps")

    def charge(self, amount: int) -> None:
        self.work -= amount
        if self.work < 0:
            raise LimitExceeded(f"rendering reads or writes more than {MAX_RENDER_WORK} characters")

    def fit(self, value: object) -> int:
        """``value``'s size, which must not exceed MAX_OUTPUT_CHARS."""
        size = self.measure(value)[0]
        if size > MAX_OUTPUT_CHARS:
            raise LimitExceeded(f"a value is larger than {MAX_OUTPUT_CHARS}")
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
            self.charge(shallow_size(value))

    def counted(self, items: Iterator[Any], cost: int = 1) -> Iterator[Any]:
        for item in items:
            self.step(cost)
            yield item

    def take(self, items: Any) -> list[Any] | tuple[Any, ...]:
        return items if isinstance(items, list | tuple) else list(self.counted(iter(items)))


BUDGET: ContextVar[Budget | None] = ContextVar("template_budget", default=None)


def current_budget() -> Budget:
    budget = BUDGET.get()
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


def shallow_size(value: object) -> int:
    return len(value) if isinstance(value, _SIZED) else 1


def refuse_over(estimate: float) -> None:
    if estimate > MAX_OUTPUT_CHARS:
        raise LimitExceeded(f"an operation would build a value larger than {MAX_OUTPUT_CHARS}")


@contextmanager
def render_budget() -> Iterator[None]:
    """One render's budget, for the renders made inside the block (per thread and task)."""
    token = BUDGET.set(Budget())
    try:
        yield
    finally:
        BUDGET.reset(token)


def limit_message(exc: BaseException) -> str | None:
    """The cap a render ran into, or None when ``exc`` is not the sandbox's refusal."""
    return str(exc) if isinstance(exc, LimitExceeded) else None
