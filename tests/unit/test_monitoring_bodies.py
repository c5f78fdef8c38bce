"""``deploy/monitoring/`` is deployable and true to the code.

Every body parses into the API type it is sent as, unknown fields rejected. Every log-based metric
reads what the package logs: the events its filter names are events the code emits (the scan of
``test_contract_doc``), and every field it extracts or tests is a keyword the code passes on a log
call of that event (or a key bound to every line). Alerts and the dashboard name only metrics and
labels that exist, and every runbook link lands on a heading of ``docs/runbook.md``.

The checks return lists of problems; the last tests plant one mistake of each kind and require it to
be reported, so none of them can pass by looking at nothing. ``tests/e2e/test_monitoring_fields.py``
checks the same fields on the function's real log lines, with the helpers defined here.
"""

from __future__ import annotations

import ast
import copy
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.stacks import ROOT
from tests.unit.test_contract_doc import LOG_METHODS, emitted_log_events

MONITORING = ROOT / "deploy" / "monitoring"
RUNBOOK = ROOT / "docs" / "runbook.md"
PACKAGE = ROOT / "worker_llm_client"
METRIC_FILES = sorted((MONITORING / "metrics").glob("*.yaml"))
ALERT_FILES = sorted((MONITORING / "alerts").glob("*.yaml"))
DASHBOARD_FILES = sorted((MONITORING / "dashboards").glob("*.json"))

CONTEXT_KEYS = frozenset({"runId", "stepId", "attempt", "eventId"})  # bound to lines by observability.py
RENDERED_KEYS = frozenset({"message", "severity", "time"})  # every rendered line has them
EXC_INFO_KEYS = frozenset({"exception", "errorType"})  # what exc_info= becomes on the line
UNBOUNDED = frozenset({"runId", "stepId", "eventId", "gcsUri", "retryAt", "detail", "subject", "responseId"})
SYSTEM_METRICS = frozenset({"run.googleapis.com/request_count", "run.googleapis.com/request_latencies"})
SUBSTITUTIONS = frozenset({"_FUNCTION"})  # replaced at deploy time (deploy/monitoring/README.md)
RESOURCE = 'resource.type="cloud_run_revision"'
USER_PREFIX = "logging.googleapis.com/user/"
HISTOGRAM_SUFFIXES = ("_sum", "_count", "_bucket")

EXTRACT = re.compile(r"^EXTRACT\(jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)\)$")
MESSAGE_CLAUSE = re.compile(r'^jsonPayload\.message="([^"\\]+)"$')
EQUALS_CLAUSE = re.compile(r'^jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)=(true|false|"[^"\\]*")$')
AT_LEAST_CLAUSE = re.compile(r"^jsonPayload\.([A-Za-z_][A-Za-z0-9_]*)>=(-?\d+(?:\.\d+)?)$")
METRIC_TYPE = re.compile(r'metric\.type\s*=\s*"([^"]+)"')
METRIC_LABEL = re.compile(r"metric\.labels?\.([A-Za-z_][A-Za-z0-9_]*)")
PROMQL_METRIC = re.compile(r"logging_googleapis_com:user_([A-Za-z0-9_]+)(\{[^}]*\})?")
PROMQL_MATCHER = re.compile(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)")
PROMQL_BY = re.compile(r"\b(?:by|without)\s*\(([^)]*)\)")
RUNBOOK_LINK = re.compile(r"docs/runbook\.md#([A-Za-z0-9_-]+)")
PLACEHOLDER = re.compile(r"\$\{(_[A-Za-z0-9_]*)\}")


# --- the bodies -----------------------------------------------------------------------------------


def load(path: Path) -> dict[str, Any]:
    text = path.read_text(encoding="utf-8")
    body = json.loads(text) if path.suffix == ".json" else yaml.safe_load(text)
    assert isinstance(body, dict), f"{path.relative_to(ROOT)} is not one object"
    return body


def metric_bodies() -> dict[str, dict[str, Any]]:
    """Log-based metrics by file name (which must be their ``name``)."""
    return {path.stem: load(path) for path in METRIC_FILES}


def _dicts(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from _dicts(value)
    elif isinstance(node, list):
        for value in node:
            yield from _dicts(value)


# --- the filters of metrics/: one small grammar, anything else refused ------------------------------


@dataclass(frozen=True)
class Condition:
    """``jsonPayload.<name>=<true|false|"text">`` or ``jsonPayload.<name>>=<number>``."""

    name: str
    op: str
    value: bool | str | float

    def holds(self, line: Mapping[str, Any]) -> bool:
        found = line.get(self.name)
        if self.op == ">=":
            return is_number(found) and isinstance(self.value, float) and found >= self.value
        if isinstance(self.value, bool):
            return found is self.value
        return bool(found == self.value)


@dataclass(frozen=True)
class LogFilter:
    events: frozenset[str]
    conditions: tuple[Condition, ...]

    def matches(self, line: Mapping[str, Any]) -> bool:
        """Whether a rendered log line (what the function prints) is an entry this filter selects."""
        return line.get("message") in self.events and all(c.holds(line) for c in self.conditions)


def is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _split(text: str, separator: str) -> list[str]:
    """``text`` split on ``separator`` outside parentheses and quotes, parts stripped."""
    parts, depth, quoted, start, i = [], 0, False, 0, 0
    while i < len(text):
        char = text[i]
        if char == '"' and (i == 0 or text[i - 1] != "\\"):
            quoted = not quoted
        elif not quoted and char in "()":
            depth += 1 if char == "(" else -1
        elif not quoted and depth == 0 and text.startswith(separator, i):
            parts.append(text[start:i].strip())
            start = i = i + len(separator)
            continue
        i += 1
    parts.append(text[start:].strip())
    return parts


def parse_filter(text: str) -> LogFilter:
    """A metric's filter: ``resource.type="cloud_run_revision" AND <the event(s)> [AND <condition>]*``,
    the events as ``jsonPayload.message="e"`` or ``(… OR …)`` of them. Anything else is a
    ``ValueError``: a filter this test cannot read is a filter it cannot vouch for."""
    clauses = _split(" ".join(text.split()), " AND ")
    if clauses.count(RESOURCE) != 1:
        raise ValueError(f"the filter must say {RESOURCE} once: {text!r}")
    events: frozenset[str] | None = None
    conditions: list[Condition] = []
    for clause in (c for c in clauses if c != RESOURCE):
        inner = clause[1:-1] if clause.startswith("(") and clause.endswith(")") else clause
        names = [MESSAGE_CLAUSE.match(part) for part in _split(inner, " OR ")]
        if all(names):
            if events is not None:
                raise ValueError(f"more than one event clause: {text!r}")
            events = frozenset(match.group(1) for match in names if match)
        elif inner == clause and (equals := EQUALS_CLAUSE.match(clause)):
            raw = equals.group(2)
            conditions.append(Condition(equals.group(1), "=", raw == "true" if raw in ("true", "false") else raw[1:-1]))
        elif inner == clause and (at_least := AT_LEAST_CLAUSE.match(clause)):
            conditions.append(Condition(at_least.group(1), ">=", float(at_least.group(2))))
        else:
            raise ValueError(f"a clause this test does not understand: {clause!r}")
    if events is None:
        raise ValueError(f"no jsonPayload.message clause: {text!r}")
    return LogFilter(events, tuple(conditions))


def extracted(body: Mapping[str, Any]) -> tuple[dict[str, str], str | None]:
    """(label -> log field, the value's log field or None) of a metric; ``ValueError`` for anything
    but ``EXTRACT(jsonPayload.<field>)``."""

    def field_of(expression: Any) -> str:
        match = EXTRACT.match(str(expression).strip())
        if match is None:
            raise ValueError(f"not EXTRACT(jsonPayload.<field>): {expression!r}")
        return match.group(1)

    labels = {label: field_of(expression) for label, expression in body.get("labelExtractors", {}).items()}
    value = field_of(body["valueExtractor"]) if "valueExtractor" in body else None
    return labels, value


def label_keys(body: Mapping[str, Any]) -> set[str]:
    return {label["key"] for label in body.get("metricDescriptor", {}).get("labels", [])}


def is_distribution(body: Mapping[str, Any]) -> bool:
    return bool(body.get("metricDescriptor", {}).get("valueType") == "DISTRIBUTION")


# --- what the code logs: keyword names per event ----------------------------------------------------


@dataclass
class LoggedFields:
    """Per event name, the keywords its log calls pass (over all its calls), and the ``**mapping``
    arguments this scan could not resolve to keys (none today; a new one fails a test)."""

    passed: dict[str, set[str]] = field(default_factory=dict)
    opaque: dict[str, list[str]] = field(default_factory=dict)

    def of(self, event: str) -> set[str]:
        """What a line of ``event`` may carry: its calls' keywords, the bound ids, message and time."""
        return self.passed.get(event, set()) | CONTEXT_KEYS | RENDERED_KEYS


def _call_name(call: ast.Call) -> str | None:
    func = call.func
    return func.attr if isinstance(func, ast.Attribute) else func.id if isinstance(func, ast.Name) else None


def _assigned(function: ast.AST, name: str) -> list[ast.expr]:
    """The values assigned (``=``, ``|=``, annotated) to ``name`` anywhere in ``function``."""
    values: list[ast.expr] = []
    for node in ast.walk(function):
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AugAssign | ast.AnnAssign) and node.value is not None:
            targets = [node.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == name for target in targets) and node.value is not None:
            values.append(node.value)
    return values


def _event_names(node: ast.expr, function: ast.AST) -> set[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return {node.value}
    if isinstance(node, ast.Name):
        return {
            n.value
            for value in _assigned(function, node.id)
            for n in ast.walk(value)
            if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
    return set()


class _KeyResolver:
    """The keys of a ``**mapping`` argument: a dict display, a name assigned dict displays in the
    calling function, or a call of a package function whose returns are dict displays."""

    def __init__(self, functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]]) -> None:
        self.functions = functions

    def keys(self, node: ast.expr, scope: ast.AST, depth: int = 0) -> set[str] | None:
        if depth > 8:
            return None
        if isinstance(node, ast.Dict):
            return self._display(node, scope, depth)
        if isinstance(node, ast.Name):
            return self._all([self.keys(value, scope, depth + 1) for value in _assigned(scope, node.id)])
        if isinstance(node, ast.Call) and _call_name(node) == "dict" and not node.args:
            return {kw.arg for kw in node.keywords if kw.arg}
        if isinstance(node, ast.Call) and (name := _call_name(node)) in self.functions:
            returns = [
                (ret.value, function)
                for function in self.functions[name]
                for ret in ast.walk(function)
                if isinstance(ret, ast.Return) and ret.value is not None
            ]
            return self._all([self.keys(value, function, depth + 1) for value, function in returns])
        return None

    def _display(self, node: ast.Dict, scope: ast.AST, depth: int) -> set[str] | None:
        keys: set[str] = set()
        for key, value in zip(node.keys, node.values, strict=True):
            if key is None:  # {**other}
                inner = self.keys(value, scope, depth + 1)
                if inner is None:
                    return None
                keys |= inner
            elif isinstance(key, ast.Constant) and isinstance(key.value, str):
                keys.add(key.value)
            else:
                return None
        return keys

    @staticmethod
    def _all(parts: list[set[str] | None]) -> set[str] | None:
        if not parts or any(part is None for part in parts):
            return None
        return set().union(*(part for part in parts if part is not None))


def logged_fields() -> LoggedFields:
    """Every log call of the package and main.py whose event name resolves (as in
    ``test_contract_doc``): the keyword names it passes, ``**mapping`` arguments resolved to keys."""
    paths = [*sorted(PACKAGE.rglob("*.py")), ROOT / "main.py"]
    trees = [ast.parse(path.read_text(encoding="utf-8"), filename=str(path)) for path in paths]
    functions: dict[str, list[ast.FunctionDef | ast.AsyncFunctionDef]] = {}
    for tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                functions.setdefault(node.name, []).append(node)
    resolver = _KeyResolver(functions)
    logged = LoggedFields()
    for function in (f for defs in functions.values() for f in defs):
        for call in (n for n in ast.walk(function) if isinstance(n, ast.Call)):
            if not isinstance(call.func, ast.Attribute) or call.func.attr not in LOG_METHODS or not call.args:
                continue
            for event in _event_names(call.args[0], function):
                passed = logged.passed.setdefault(event, set())
                for keyword in call.keywords:
                    if keyword.arg == "exc_info":
                        passed |= EXC_INFO_KEYS
                    elif keyword.arg is not None:
                        passed.add(keyword.arg)
                    elif (keys := resolver.keys(keyword.value, function)) is not None:
                        passed |= keys
                    else:
                        logged.opaque.setdefault(event, []).append(f"{function.name}: **{ast.unparse(keyword.value)}")
    return logged


# --- the checks -----------------------------------------------------------------------------------


def metric_problems(name: str, body: Mapping[str, Any], logged: LoggedFields, emitted: set[str]) -> list[str]:
    """What is wrong with one log-based metric, against the code's events and fields."""
    problems: list[str] = []
    if body.get("name") != name:
        problems.append(f"name {body.get('name')!r} is not the file's name {name!r}")
    text = json.dumps(body)
    if PLACEHOLDER.search(text) or "service_name" in text:
        problems.append("a log-based metric names no service and has no deploy-time placeholder")
    try:
        log_filter = parse_filter(str(body.get("filter", "")))
        labels, value = extracted(body)
    except ValueError as error:
        return [*problems, str(error)]
    events = sorted(log_filter.events)
    problems += [f"the filter names {e!r}, an event the package never logs" for e in events if e not in emitted]
    descriptor = body.get("metricDescriptor", {})
    if descriptor.get("metricKind") != "DELTA":
        problems.append("metricKind must be DELTA (log-based metrics are)")
    if descriptor.get("valueType") == "INT64" and ({"valueExtractor", "bucketOptions"} & set(body)):
        problems.append("an INT64 counter counts entries: no valueExtractor, no bucketOptions")
    elif descriptor.get("valueType") == "DISTRIBUTION" and not {"valueExtractor", "bucketOptions"} <= set(body):
        problems.append("a DISTRIBUTION needs valueExtractor and bucketOptions")
    elif descriptor.get("valueType") not in ("INT64", "DISTRIBUTION"):
        problems.append(f"valueType {descriptor.get('valueType')!r}: INT64 counters or DISTRIBUTION only")
    if label_keys(body) != set(labels):
        problems.append(f"labels {sorted(label_keys(body))} and labelExtractors {sorted(labels)} differ")
    for label in descriptor.get("labels", []):
        if label.get("valueType") != "STRING" or not label.get("description"):
            problems.append(f"label {label.get('key')!r}: valueType STRING and a description")

    def missing(log_field: str, on: list[str]) -> str:
        opaque = [call for e in on for call in logged.opaque.get(e, [])]
        return f"no log call of {on} passes {log_field!r}" + (f" (unresolved: {opaque})" if opaque else "")

    for label, log_field in sorted(labels.items()):
        if log_field in UNBOUNDED or "trace" in log_field.lower() or "span" in log_field.lower():
            problems.append(f"label {label!r} extracts {log_field!r}: unbounded values make a series per value")
        elif not any(log_field in logged.of(e) for e in events):
            problems.append(f"label {label!r}: {missing(log_field, events)}")
    needed = [c.name for c in log_filter.conditions] + ([value] if value else [])
    for log_field in needed:  # a value or a condition must be on every event the filter selects
        lacking = [e for e in events if log_field not in logged.of(e)]
        if lacking:
            problems.append(missing(log_field, lacking))
    return problems


def promql_name(metric: str) -> str:
    """A log-based metric's PromQL name: ``logging_googleapis_com:user_`` + the name, ``/.-`` as ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", metric)


def promql_problems(query: str, metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    problems: list[str] = []
    by_promql = {promql_name(name): name for name in metrics}
    referenced: list[str] = []
    for match in PROMQL_METRIC.finditer(query):
        token, matchers = match.group(1), match.group(2) or ""
        name = by_promql.get(token)
        if name is None:
            bases = [token.removesuffix(s) for s in HISTOGRAM_SUFFIXES if token.endswith(s)]
            name = next(
                (by_promql[b] for b in bases if b in by_promql and is_distribution(metrics[by_promql[b]])), None
            )
        if name is None:
            problems.append(f"PromQL names {token!r}: no such log-based metric (or a suffix on a counter)")
            continue
        referenced.append(name)
        unknown = set(PROMQL_MATCHER.findall(matchers)) - label_keys(metrics[name]) - {"monitored_resource"}
        problems += [f"PromQL matches label {label!r}, not a label of {name}" for label in sorted(unknown)]
    if not referenced and "logging_googleapis_com" in query:
        problems.append(f"PromQL names no log-based metric this repository defines: {query!r}")
    known = set().union(*(label_keys(metrics[name]) for name in referenced)) if referenced else set()
    for group in PROMQL_BY.findall(query):
        labels = {label.strip() for label in group.split(",") if label.strip()}
        problems += [f"PromQL groups by {label!r}, a label of none of its metrics" for label in sorted(labels - known)]
    return problems


def reference_problems(body: Any, metrics: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """Every metric an alert or a dashboard reads exists, with the labels it filters and groups on."""
    problems: list[str] = []
    for node in _dicts(body):
        for key, aggregation_keys in (
            ("filter", ("aggregations", "aggregation", "secondaryAggregation")),
            ("denominatorFilter", ("denominatorAggregations",)),
        ):
            text = node.get(key)
            if not isinstance(text, str):
                continue
            types = METRIC_TYPE.findall(text)
            if len(types) != 1:
                problems.append(f"{key} must name exactly one metric.type: {text!r}")
                continue
            aggregations = [node.get(k) for k in aggregation_keys]
            flat = [a for item in aggregations for a in (item if isinstance(item, list) else [item])]
            grouped = {f for a in flat if isinstance(a, dict) for f in a.get("groupByFields", [])}
            if not types[0].startswith(USER_PREFIX):
                if types[0] not in SYSTEM_METRICS:
                    problems.append(f"reads {types[0]!r}: not a metric of this function")
                continue
            name = types[0].removeprefix(USER_PREFIX)
            if name not in metrics:
                problems.append(f"reads logging.googleapis.com/user/{name}, which no metrics/*.yaml defines")
                continue
            used = set(METRIC_LABEL.findall(text)) | set(METRIC_LABEL.findall(" ".join(grouped)))
            problems += [
                f"uses label {label!r}, not a label of {name}" for label in sorted(used - label_keys(metrics[name]))
            ]
        for key in ("query", "prometheusQuery"):
            if isinstance(node.get(key), str):
                problems += promql_problems(node[key], metrics)
    placeholders = set(PLACEHOLDER.findall(json.dumps(body)))
    problems += [
        f"placeholder ${{{p}}} is not substituted at deploy time" for p in sorted(placeholders - SUBSTITUTIONS)
    ]
    return problems


def github_anchors(markdown: str) -> set[str]:
    """The anchors GitHub gives the headings: lower case, punctuation but ``-``/``_`` dropped, spaces
    as ``-``, ``-1``, ``-2``… on repeats. Headings inside fenced code are not headings."""
    anchors: set[str] = set()
    seen: Counter[str] = Counter()
    fenced = False
    for line in markdown.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        heading = None if fenced else re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading is None:
            continue
        text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.group(1)).replace("`", "").replace("*", "")
        slug = re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")
        anchors.add(f"{slug}-{seen[slug]}" if seen[slug] else slug)
        seen[slug] += 1
    return anchors


def alert_problems(body: Mapping[str, Any], metrics: Mapping[str, Mapping[str, Any]], anchors: set[str]) -> list[str]:
    problems = reference_problems(body, metrics)
    documentation = body.get("documentation", {})
    if documentation.get("mimeType") != "text/markdown":
        problems.append('documentation.mimeType must be "text/markdown"')
    links = RUNBOOK_LINK.findall(documentation.get("content", ""))
    if not links:
        problems.append("the documentation links no section of docs/runbook.md")
    problems += [f"docs/runbook.md has no heading for #{anchor}" for anchor in links if anchor not in anchors]
    if body.get("notificationChannels"):
        problems.append("notification channels are added at deploy time, not here")
    if not body.get("displayName") or body.get("combiner") not in ("OR", "AND", "AND_WITH_MATCHING_RESOURCE"):
        problems.append("displayName and combiner are required")
    conditions = body.get("conditions") or []
    if not conditions or not all(c.get("displayName") for c in conditions):
        problems.append("at least one condition, each with a displayName")
    return problems


# --- the tests: each body is its API type --------------------------------------------------------


def test_there_is_something_to_check() -> None:
    assert METRIC_FILES and ALERT_FILES and DASHBOARD_FILES


@pytest.mark.parametrize("path", METRIC_FILES, ids=lambda p: p.stem)
def test_each_metric_is_a_logging_v2_log_metric(path: Path) -> None:
    from google.cloud.logging_v2.types import LogMetric

    LogMetric.from_json(json.dumps(load(path)), ignore_unknown_fields=False)


@pytest.mark.parametrize("path", ALERT_FILES, ids=lambda p: p.stem)
def test_each_alert_is_a_monitoring_v3_alert_policy(path: Path) -> None:
    from google.cloud.monitoring_v3.types import AlertPolicy

    AlertPolicy.from_json(json.dumps(load(path)), ignore_unknown_fields=False)


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_each_dashboard_is_a_monitoring_dashboard(path: Path) -> None:
    from google.cloud.monitoring_dashboard_v1.types import Dashboard

    Dashboard.from_json(json.dumps(load(path)), ignore_unknown_fields=False)


def test_an_unknown_field_is_refused_by_each_type() -> None:
    """What the three tests above rely on: a misspelt field fails the parse instead of vanishing."""
    from google.cloud.logging_v2.types import LogMetric
    from google.cloud.monitoring_dashboard_v1.types import Dashboard
    from google.cloud.monitoring_v3.types import AlertPolicy
    from google.protobuf.json_format import ParseError

    for api_type, path in (
        (LogMetric, METRIC_FILES[0]),
        (AlertPolicy, ALERT_FILES[0]),
        (Dashboard, DASHBOARD_FILES[0]),
    ):
        with pytest.raises(ParseError, match="unknownField"):
            api_type.from_json(json.dumps({**load(path), "unknownField": 1}), ignore_unknown_fields=False)


# --- the tests: true to the code -------------------------------------------------------------------


@pytest.fixture(scope="module")
def logged() -> LoggedFields:
    return logged_fields()


@pytest.fixture(scope="module")
def emitted() -> set[str]:
    return emitted_log_events()


@pytest.fixture(scope="module")
def metrics() -> dict[str, dict[str, Any]]:
    return metric_bodies()


@pytest.fixture(scope="module")
def anchors() -> set[str]:
    return github_anchors(RUNBOOK.read_text(encoding="utf-8"))


def test_the_scan_resolves_every_log_call(logged: LoggedFields, emitted: set[str]) -> None:
    """A ``**mapping`` the scan cannot follow would hide fields; an event it finds must be one the
    contract test finds too."""
    assert logged.opaque == {}
    assert set(logged.passed) <= emitted
    assert {"outcome", "latencyMs", "totalTokens"} <= logged.of("llm.call")  # the scan sees through **mappings


@pytest.mark.parametrize("path", METRIC_FILES, ids=lambda p: p.stem)
def test_each_metric_reads_events_and_fields_the_code_logs(path: Path, logged: LoggedFields, emitted: set[str]) -> None:
    assert metric_problems(path.stem, load(path), logged, emitted) == []


@pytest.mark.parametrize("path", ALERT_FILES, ids=lambda p: p.stem)
def test_each_alert_reads_existing_metrics_and_links_the_runbook(
    path: Path, metrics: dict[str, dict[str, Any]], anchors: set[str]
) -> None:
    assert alert_problems(load(path), metrics, anchors) == []


@pytest.mark.parametrize("path", DASHBOARD_FILES, ids=lambda p: p.stem)
def test_each_dashboard_reads_existing_metrics(
    path: Path, metrics: dict[str, dict[str, Any]], anchors: set[str]
) -> None:
    body = load(path)
    assert reference_problems(body, metrics) == []
    assert [a for a in RUNBOOK_LINK.findall(json.dumps(body)) if a not in anchors] == []


def test_the_runbooks_own_links_land_on_its_headings(anchors: set[str]) -> None:
    links = re.findall(r"\]\(#([^)]+)\)", RUNBOOK.read_text(encoding="utf-8"))
    assert links and [link for link in links if link not in anchors] == []


def test_the_sweeper_alert_waits_at_least_15_minutes_for_a_missing_sweep() -> None:
    absent = [
        condition["conditionAbsent"]
        for path in ALERT_FILES
        for condition in load(path)["conditions"]
        if "conditionAbsent" in condition
    ]
    sweeps = [c for c in absent if f'"{USER_PREFIX}worker_llm_client_sweeps"' in c["filter"]]
    assert sweeps and all(float(c["duration"].removesuffix("s")) >= 900 for c in sweeps)


def test_the_overdue_threshold_is_a_bucket_bound_of_its_metric(metrics: dict[str, dict[str, Any]]) -> None:
    """The alert reads the 99th percentile, interpolated within a bucket: exact only on a bound."""
    name = "worker_llm_client_sweep_oldest_overdue"
    thresholds = [
        condition["conditionThreshold"]["thresholdValue"]
        for path in ALERT_FILES
        for condition in load(path)["conditions"]
        if f"{USER_PREFIX}{name}" in condition.get("conditionThreshold", {}).get("filter", "")
    ]
    assert thresholds and all(t in metrics[name]["bucketOptions"]["explicitBuckets"]["bounds"] for t in thresholds)


# --- the checks catch what they are for ------------------------------------------------------------


def _rename_event(body: dict[str, Any]) -> None:
    body["filter"] = body["filter"].replace('"llm.call"', '"llm.calls"')


def _label_on_a_missing_field(body: dict[str, Any]) -> None:
    body["labelExtractors"]["model"] = "EXTRACT(jsonPayload.modelName)"


def _label_on_the_run_id(body: dict[str, Any]) -> None:
    body["metricDescriptor"]["labels"].append({"key": "run", "valueType": "STRING", "description": "d"})
    body["labelExtractors"]["run"] = "EXTRACT(jsonPayload.runId)"


def _value_not_logged(body: dict[str, Any]) -> None:
    body["valueExtractor"] = "EXTRACT(jsonPayload.latencySeconds)"


def _unknown_clause(body: dict[str, Any]) -> None:
    body["filter"] += " AND severity>=ERROR"


def _label_without_extractor(body: dict[str, Any]) -> None:
    del body["labelExtractors"]["provider"]


PLANTED_METRICS: dict[str, tuple[str, Callable[[dict[str, Any]], None], str]] = {
    "an event nobody logs": ("worker_llm_client_model_requests", _rename_event, "never logs"),
    "a field the event lacks": ("worker_llm_client_model_requests", _label_on_a_missing_field, "passes 'modelName'"),
    "a run id label": ("worker_llm_client_model_requests", _label_on_the_run_id, "unbounded"),
    "a value not logged": ("worker_llm_client_model_latency", _value_not_logged, "latencySeconds"),
    "a clause not understood": ("worker_llm_client_steps", _unknown_clause, "does not understand"),
    "a label without extractor": ("worker_llm_client_model_latency", _label_without_extractor, "differ"),
}


@pytest.mark.parametrize("case", list(PLANTED_METRICS))
def test_a_planted_metric_mistake_is_reported(
    case: str, metrics: dict[str, dict[str, Any]], logged: LoggedFields, emitted: set[str]
) -> None:
    name, change, expected = PLANTED_METRICS[case]
    body = copy.deepcopy(metrics[name])
    assert metric_problems(name, body, logged, emitted) == []  # sound before the change
    change(body)
    problems = metric_problems(name, body, logged, emitted)
    assert any(expected in problem for problem in problems), problems


def _alert(name: str) -> dict[str, Any]:
    return copy.deepcopy(load(MONITORING / "alerts" / f"{name}.yaml"))


@pytest.mark.parametrize(
    ("case", "expected"),
    [
        ("unknown metric", "no metrics/*.yaml defines"),
        ("unknown label", "not a label of"),
        ("missing anchor", "no heading for #"),
        ("unknown PromQL metric", "no such log-based metric"),
        ("stray placeholder", "not substituted"),
    ],
)
def test_a_planted_alert_mistake_is_reported(
    case: str, expected: str, metrics: dict[str, dict[str, Any]], anchors: set[str]
) -> None:
    body = _alert("model_429_storm")
    threshold = body["conditions"][0]["conditionThreshold"]
    if case == "unknown metric":
        threshold["filter"] = threshold["filter"].replace("model_requests", "model_request")
    elif case == "unknown label":
        threshold["filter"] = threshold["filter"].replace("metric.label.outcome", "metric.label.result")
    elif case == "missing anchor":
        body["documentation"]["content"] += " [x](docs/runbook.md#no-such-section)"
    elif case == "unknown PromQL metric":
        body = _alert("cost_burn")
        condition = body["conditions"][0]["conditionPrometheusQueryLanguage"]
        condition["query"] = condition["query"].replace("cost_usd_sum", "cost_usd_total")
    else:
        body["displayName"] += " ${_REGION}"
    problems = alert_problems(body, metrics, anchors)
    assert any(expected in problem for problem in problems), problems


def test_github_anchors_follow_githubs_rules() -> None:
    markdown = (
        "# Runbook\n## Model 429 storm\n### `redrive` (re-driving) a step!\n## Model 429 storm\n```\n# not\n```\n"
    )
    assert github_anchors(markdown) == {"runbook", "model-429-storm", "redrive-re-driving-a-step", "model-429-storm-1"}


def test_the_filter_grammar_reads_conditions_and_refuses_the_rest() -> None:
    parsed = parse_filter(
        f'{RESOURCE} AND (jsonPayload.message="a.b" OR jsonPayload.message="c.d") '
        "AND jsonPayload.retryable=false AND jsonPayload.costUsd>=0"
    )
    assert parsed.events == {"a.b", "c.d"}
    assert parsed.matches({"message": "a.b", "retryable": False, "costUsd": 0.5})
    assert not parsed.matches({"message": "a.b", "retryable": False, "costUsd": None})
    assert not parsed.matches({"message": "a.b", "retryable": True, "costUsd": 1})
    for bad in ('jsonPayload.message="a.b"', f'{RESOURCE} AND jsonPayload.message:"a"', f"{RESOURCE}"):
        with pytest.raises(ValueError, match=r"\S"):
            parse_filter(bad)
