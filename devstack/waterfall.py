"""A step's phases drawn from its trace, as text: what the demo prints after the run.

For an ``LLM_REPORT`` step the phases are the ``claim`` span of the trace holding the step's
``step`` span, then under that ``step`` span ``catalog.resolve`` (config), each
``generate_content <model>`` (model) and ``artifact.write`` (artifact), and the ``finalize`` span
naming the step. Each is a bar on the step's own time axis, from the first phase's start to the
last one's end::

    report-payments   total 412.0 ms
      claim     ▕██                                      ▏   12.0 ms
      config    ▕  █                                     ▏    3.1 ms
      model     ▕   ██████████████████████████████       ▏  331.5 ms
      artifact  ▕                                 ███    ▏   30.2 ms
      finalize  ▕                                    ███ ▏   28.4 ms
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from devstack.otlp_receiver import AttributeValue, Span

WIDTH = 40  # bar columns
LABEL = 10
STEP_COLUMN = 18
UNDER_STEP = {"catalog.resolve": "config", "artifact.write": "artifact"}
MODEL_SPAN = "generate_content "


@dataclass(frozen=True)
class Phase:
    label: str  # claim | config | model | artifact | finalize
    start_ns: int
    end_ns: int


def _names(value: AttributeValue, step_id: str) -> bool:
    """An id attribute names ``step_id`` (one id, or a list of the steps a shared write finalized)."""
    return value == step_id or (isinstance(value, list) and step_id in value)


def _step_span(spans: Iterable[Span], run_id: str, step_id: str) -> Span | None:
    """The step's latest ``step`` span (a retried step has one per attempt)."""
    found = [
        s
        for s in spans
        if s.name == "step"
        and s.attributes.get("flow.step_id") == step_id
        and s.attributes.get("flow.run_id") == run_id
    ]
    return max(found, key=lambda s: s.start_ns, default=None)


def _under(span: Span, ancestor: Span, by_id: Mapping[str, Span]) -> bool:
    parent = by_id.get(span.parent_span_id)
    for _ in range(64):  # a malformed trace cannot loop
        if parent is None:
            return False
        if parent.span_id == ancestor.span_id:
            return True
        parent = by_id.get(parent.parent_span_id)
    return False


def phases(spans: Sequence[Span], run_id: str, step_id: str) -> list[Phase]:
    """The step's phases in time order; empty when its ``step`` span has not arrived."""
    step = _step_span(spans, run_id, step_id)
    if step is None:
        return []
    trace = sorted((s for s in spans if s.trace_id == step.trace_id), key=lambda s: s.start_ns)
    by_id = {s.span_id: s for s in trace}
    claims = [s for s in trace if s.name == "claim" and s.start_ns <= step.start_ns]
    found = [Phase("claim", c.start_ns, c.end_ns) for c in claims[-1:]]
    for span in (s for s in trace if _under(s, step, by_id)):
        label = "model" if span.name.startswith(MODEL_SPAN) else UNDER_STEP.get(span.name)
        if label is not None:
            found.append(Phase(label, span.start_ns, span.end_ns))
    finalized = [s for s in trace if s.name == "finalize" and _names(s.attributes.get("flow.step_id"), step_id)]
    found += [Phase("finalize", s.start_ns, s.end_ns) for s in finalized if s.end_ns >= step.start_ns][-1:]
    return sorted(found, key=lambda p: (p.start_ns, p.end_ns))


def complete(spans: Sequence[Span], run_id: str, step_ids: Collection[str]) -> bool:
    """Every step's ``step`` and ``finalize`` spans arrived (the last ones its invocation flushes)."""
    return all({p.label for p in phases(spans, run_id, s)} >= {"claim", "finalize"} for s in step_ids)


def bar(phase: Phase, start_ns: int, end_ns: int, width: int = WIDTH) -> str:
    """``▕  ███   ▏``: the phase's place on the axis from ``start_ns`` to ``end_ns``."""
    scale = width / max(end_ns - start_ns, 1)
    first = min(int((phase.start_ns - start_ns) * scale), width - 1)
    last = min(max(first + 1, round((phase.end_ns - start_ns) * scale)), width)
    return f"▕{' ' * first}{'█' * (last - first)}{' ' * (width - last)}▏"


def render(spans: Sequence[Span], run_id: str, step_ids: Iterable[str], width: int = WIDTH) -> list[str]:
    """The waterfall lines of each step, a blank line between steps."""
    lines: list[str] = []
    for step_id in step_ids:
        found = phases(spans, run_id, step_id)
        lines += [""] if lines else []
        if not found:
            lines.append(f"{step_id:<{STEP_COLUMN}}no spans")
            continue
        start, end = min(p.start_ns for p in found), max(p.end_ns for p in found)
        lines.append(f"{step_id:<{STEP_COLUMN}}total {(end - start) / 1e6:.1f} ms")
        for phase in found:
            took = (phase.end_ns - phase.start_ns) / 1e6
            lines.append(f"  {phase.label:<{LABEL}}{bar(phase, start, end, width)} {took:>8.1f} ms")
    return lines
