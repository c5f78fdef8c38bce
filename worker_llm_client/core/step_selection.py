"""Which steps of a run snapshot may run now: the one decision the no-op event path makes.

Claiming them (one precondition write) is ``claim_planning.py``, imported only when there is work.

A ``dependsOn`` cycle among steps not yet SUCCEEDED can never resolve: its members count as
runnable, so that they are claimed and fail with INVALID_STEP (``step_inputs.py`` names the cycle).
A step that only depends on a cycle waits, as it waits on any dependency that failed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from datetime import datetime

from worker_llm_client.core.transitions import is_claimable
from worker_llm_client.models import LLM_REPORT, RUN_CANCELLED, RunSnapshot, Step, StepStatus

Graph = dict[str, list[str]]

# The last snapshot's cycle members: runnable_steps and wake.py ask once per step, the answer is
# computed once per snapshot. Snapshots are never changed once built.
_last_cycles: tuple[Mapping[str, Step], frozenset[str]] | None = None


def dependencies_met(step: Step, steps: Mapping[str, Step]) -> bool:
    """True when every ``dependsOn`` step has SUCCEEDED, or when the step is on a cycle.

    A malformed ``dependsOn`` also counts as met: the step is then claimed and fails with
    INVALID_STEP, instead of waiting forever for something that can never happen.
    """
    depends_on = step.data.get("dependsOn")
    if depends_on is None:
        return True
    if not isinstance(depends_on, list) or not all(isinstance(d, str) for d in depends_on):
        return True
    if all(dep not in steps or dep == step.step_id or steps[dep].status == StepStatus.SUCCEEDED for dep in depends_on):
        return True
    return step.step_id in cycle_members(steps)


def runnable_steps(run: RunSnapshot, now: datetime) -> list[Step]:
    """LLM_REPORT steps in a claimable status with their dependencies met, ordered by id."""
    if run.status == RUN_CANCELLED:
        return []
    return [
        step
        for _, step in sorted(run.steps.items())
        if step.type == LLM_REPORT and is_claimable(step, now) and dependencies_met(step, run.steps)
    ]


def cycle_members(steps: Mapping[str, Step]) -> frozenset[str]:
    """Ids of the steps on a ``dependsOn`` cycle of two or more steps not yet SUCCEEDED.

    Linear in steps and edges (Tarjan's strongly connected components, iteratively), and computed
    once for the last ``steps`` mapping seen.
    """
    global _last_cycles
    last = _last_cycles
    if last is not None and last[0] is steps:
        return last[1]
    members = _on_cycles(_waiting_graph(steps))
    _last_cycles = (steps, members)
    return members


def cycle_through(step_id: str, steps: Mapping[str, Step]) -> tuple[str, ...]:
    """A shortest cycle from ``step_id`` back to itself (``(a, b, a)``), or ``()`` if there is none."""
    graph = _waiting_graph(steps)
    came_from: dict[str, str] = {}
    queue = deque([step_id])
    while queue:
        node = queue.popleft()
        for dep in graph.get(node, ()):
            if dep == step_id:
                path = [node]
                while path[-1] != step_id:
                    path.append(came_from[path[-1]])
                return (*reversed(path), step_id)
            if dep not in came_from:
                came_from[dep] = node
                queue.append(dep)
    return ()


def _waiting_graph(steps: Mapping[str, Step]) -> Graph:
    """step -> the steps it still waits for, among steps not SUCCEEDED (self-dependencies left out)."""
    waiting = {sid for sid, s in steps.items() if s.status != StepStatus.SUCCEEDED}
    graph: Graph = {}
    for step_id in waiting:
        depends_on = steps[step_id].data.get("dependsOn")
        if isinstance(depends_on, list):
            graph[step_id] = [d for d in depends_on if isinstance(d, str) and d in waiting and d != step_id]
    return graph


def _on_cycles(graph: Graph) -> frozenset[str]:
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    members: set[str] = set()
    for root in graph:
        if root in index:
            continue
        work = [(root, 0)]
        while work:
            node, edge = work[-1]
            if edge == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            deps = graph.get(node, [])
            if edge < len(deps):
                work[-1] = (node, edge + 1)
                dep = deps[edge]
                if dep not in index:
                    work.append((dep, 0))
                elif dep in on_stack:
                    low[node] = min(low[node], index[dep])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component = _pop_component(stack, on_stack, node)
                if len(component) > 1:
                    members.update(component)
    return frozenset(members)


def _pop_component(stack: list[str], on_stack: set[str], root: str) -> list[str]:
    component: list[str] = []
    while True:
        node = stack.pop()
        on_stack.discard(node)
        component.append(node)
        if node == root:
            return component
