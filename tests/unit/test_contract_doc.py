"""``docs/contract.md`` stays true: its error codes, environment variables and log events are the code's.

Operators read the document, not the code; these tests fail when the two drift apart. The code side
is found by reflection (error classes) and by parsing the source with ``ast`` (environment reads,
log calls), never by importing modules for their side effects.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path

from tests.stacks import ROOT
from worker_llm_client import errors

DOC = ROOT / "docs" / "contract.md"
PACKAGE = ROOT / "worker_llm_client"
LOG_METHODS = frozenset({"debug", "info", "warning", "error", "exception", "critical"})
EVENT_NAME = re.compile(r"^[a-z_]+\.[a-z_]+$")
BACKTICKED = re.compile(r"`([^`]+)`")


# --- the document ---------------------------------------------------------------------------------


def table_rows(heading: str) -> list[list[str]]:
    """The body rows of the first table under ``heading`` (exact heading text), cells stripped.

    Stops at the next heading, so a table in another section is never read by mistake."""
    lines = DOC.read_text(encoding="utf-8").splitlines()
    titles = [i for i, line in enumerate(lines) if line.startswith("#") and line.lstrip("#").strip() == heading]
    assert len(titles) == 1, f"docs/contract.md must have exactly one heading {heading!r}"
    rows: list[list[str]] = []
    for line in lines[titles[0] + 1 :]:
        if line.startswith("#"):
            break
        if line.startswith("|"):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
        elif rows:
            break  # the table ended
    assert len(rows) > 2, f"no table under {heading!r}"
    return rows[2:]  # header and separator rows


def first_cell_names(heading: str) -> list[str]:
    """The backticked name in the first cell of each row under ``heading``."""
    names = []
    for row in table_rows(heading):
        found = BACKTICKED.findall(row[0])
        assert len(found) == 1, f"{heading!r}: one `name` per first cell, got {row[0]!r}"
        names.append(found[0])
    return names


# --- the code -------------------------------------------------------------------------------------


def step_error_codes() -> dict[str, bool]:
    """code -> retryable, for every StepError subclass that defines its own ``code``."""
    codes: dict[str, bool] = {}
    stack: list[type[errors.StepError]] = list(errors.StepError.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if "code" in vars(cls):
            assert codes.get(cls.code, cls.retryable) == cls.retryable, f"{cls.code} is both retryable and not"
            codes[cls.code] = cls.retryable
    return codes


def _parse(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _is_os_environ(node: ast.expr) -> bool:
    return ast.unparse(node) == "os.environ"


def env_vars_read_by_config() -> set[str]:
    """String constants config.py reads from the environment: ``os.getenv(K)``, ``os.environ[K]``,
    ``m.get(K)`` and ``m[K]`` on ``os.environ`` or on a ``Mapping[str, str]`` parameter, and
    ``helper(m, K, ...)`` calls that pass such a mapping together with the name."""
    tree = _parse(PACKAGE / "config.py")
    mappings = {
        arg.arg
        for node in ast.walk(tree)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        for arg in [*node.args.posonlyargs, *node.args.args, *node.args.kwonlyargs]
        if arg.annotation is not None and "Mapping[str, str]" in ast.unparse(arg.annotation)
    }

    def is_env(node: ast.expr) -> bool:
        return (isinstance(node, ast.Name) and node.id in mappings) or _is_os_environ(node)

    def constant(node: ast.expr) -> str | None:
        return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None

    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Subscript) and is_env(node.value):
            names.add(constant(node.slice) or "")
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        env_get = isinstance(func, ast.Attribute) and func.attr == "get" and is_env(func.value)
        if (env_get or ast.unparse(func) == "os.getenv") and node.args:
            names.add(constant(node.args[0]) or "")
        elif any(is_env(arg) for arg in node.args):
            names.update(value for arg in node.args if (value := constant(arg)) is not None)
    names.discard("")
    return names


def _functions(tree: ast.Module) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    yield from (node for node in ast.walk(tree) if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef))


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _strings(node: ast.AST) -> set[str]:
    return {n.value for n in ast.walk(node) if isinstance(n, ast.Constant) and isinstance(n.value, str)}


def emitted_log_events() -> set[str]:
    """Every event name passed to a log method, in the package and main.py.

    A literal counts as itself. A variable is resolved from its assignments in the enclosing
    function (``event = "a" if created else "b"``); a variable that is a parameter makes that
    function a forwarder (``failures_logged_safely(event)``), whose literal first arguments count.
    Anything else fails, so a new way of naming events cannot hide from this test."""
    trees = [_parse(path) for path in sorted(PACKAGE.rglob("*.py"))] + [_parse(ROOT / "main.py")]
    events: set[str] = set()
    forwarders: set[str] = set()
    unresolved: list[str] = []
    for tree in trees:
        for function in _functions(tree):
            params = {a.arg for a in [*function.args.posonlyargs, *function.args.args, *function.args.kwonlyargs]}
            for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
                if _call_name(call) not in LOG_METHODS or not isinstance(call.func, ast.Attribute) or not call.args:
                    continue
                first = call.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    events.add(first.value)
                elif isinstance(first, ast.Name):
                    assigned = [
                        _strings(node.value)
                        for node in ast.walk(function)
                        if isinstance(node, ast.Assign)
                        and any(isinstance(t, ast.Name) and t.id == first.id for t in node.targets)
                    ]
                    if assigned:
                        events.update(*assigned)
                    elif first.id in params:
                        forwarders.add(function.name)
                    else:
                        unresolved.append(f"{function.name}: {ast.unparse(call)}")
                else:
                    unresolved.append(f"{function.name}: {ast.unparse(call)}")
    for tree in trees:
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            if _call_name(call) in forwarders and call.args:
                first = call.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    events.add(first.value)
    assert unresolved == [], f"log calls whose event name this test cannot resolve: {unresolved}"
    return events


# --- the tests ------------------------------------------------------------------------------------


def test_the_error_code_table_lists_every_step_error_code_with_its_retryability() -> None:
    """An operator decides from this table whether to wait or to act."""
    documented: dict[str, bool] = {}
    for row in table_rows("Step error codes"):
        [code] = BACKTICKED.findall(row[0])
        assert row[1] in ("yes", "no"), f"{code}: retryable must be yes or no, got {row[1]!r}"
        assert code not in documented, f"{code} is listed twice"
        documented[code] = row[1] == "yes"
    assert documented == step_error_codes()


def test_the_environment_table_lists_exactly_what_config_reads() -> None:
    """A variable config.py reads but the document omits is a setting nobody knows about."""
    read = env_vars_read_by_config()
    assert "GOOGLE_CLOUD_PROJECT" in read  # the parser found the reads at all
    documented = first_cell_names("Variables config.py reads")
    assert len(documented) == len(set(documented)), "a variable is listed twice"
    families = {name for name in documented if name.startswith("*")}
    assert families == env_families_read_by_config()
    assert set(documented) - families == read


def env_families_read_by_config() -> set[str]:
    """``*SUFFIX`` for each family config.py reads by suffix: ``k.endswith(SUFFIX)`` over the
    environment's items, the suffix a string constant or a module-level name bound to one."""
    tree = _parse(PACKAGE / "config.py")
    constants = {
        target.id: node.value.value
        for node in tree.body
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name) and isinstance(node.value.value, str)
    }
    families = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "endswith":
            (arg,) = node.args
            suffix = arg.value if isinstance(arg, ast.Constant) else constants.get(getattr(arg, "id", ""))
            families.add(f"*{suffix}")
    return families


def test_the_client_library_variables_are_not_read_by_config() -> None:
    """The SDKs' switches are documented apart; one config.py starts reading belongs in the main table."""
    assert set(first_cell_names("Variables the client libraries read")) & env_vars_read_by_config() == set()


def test_the_log_events_table_lists_exactly_the_events_the_code_emits() -> None:
    """Alerts and queries are written against these names."""
    emitted = emitted_log_events()
    assert {"event.failed", "sweep.failed", "artifact.written"} <= emitted  # forwarded and assigned names
    assert all(EVENT_NAME.match(name) for name in emitted), sorted(emitted)
    documented = first_cell_names("Log events")
    assert len(documented) == len(set(documented)), "an event is listed twice"
    assert set(documented) == emitted
