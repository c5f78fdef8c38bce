"""Output schemas held to what is safe to run inside the function: offline, bounded, linear.

A prompt's ``outputSchema`` is compiled in the function for every step, and its validator then
runs on whatever the model replies. ``output_validation.load_schema`` therefore refuses, as
SCHEMA_INVALID and before any model call:

- **Anything that could reach the network.** Every validator is built on a ``referencing.Registry``
  that holds the root schema (and jsonschema's bundled metaschemas) and never retrieves: an unknown
  URI is ``Unresolvable``. On top of that every ``$ref`` and ``$dynamicRef`` must be local
  (``'#...'``), resolve, and point at a subschema (not into ``default`` or other data); only the
  root may carry ``$id`` or ``$schema`` (a nested ``$id`` changes the base URI of the refs below).
- **Size and depth**: more than ``MAX_SCHEMA_CHARS`` characters, or arrays and objects nested
  deeper than ``MAX_SCHEMA_DEPTH`` (checked on the text, iteratively, before anything recurses:
  jsonschema's own check spends ~8 stack frames per level), or a ``$ref`` cycle that never
  descends into the reply (``{"$ref": "#"}`` recurses forever).
- **Patterns RE2 cannot run.** ``pattern``, ``patternProperties`` and the ``regex`` format are
  matched with RE2, in time linear in the text: Python's ``re`` backtracks, and
  ``^([a-z0-9]+-?)+$`` takes a second on 25 characters, doubling with each one, holding the GIL.
  JSON Schema patterns are ECMA-262; RE2 runs the common subset: classes, ``\\d \\w \\s \\b``,
  ``\\p{L}``, anchors, ``(?i)``, named groups, counted repeats up to 1000; ``\\uXXXX`` and
  ``\\u{...}`` are rewritten to RE2's ``\\x{...}``. Backreferences, lookahead, lookbehind and
  ``\\cX`` are not supported. Kept differences: ``\\s`` is ASCII whitespace, ``.`` excludes
  ``\\n`` only. ``unevaluatedProperties`` is refused beside ``patternProperties``: jsonschema
  evaluates it with ``re``.

The walk follows keyword semantics: a property named ``default`` under ``properties`` is a
subschema; the value of the ``default``, ``examples``, ``enum`` and ``const`` keywords is data.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, FormatChecker, ValidationError, validators
from jsonschema.protocols import Validator
from referencing import Registry
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012

from worker_llm_client.core.bounds import clip
from worker_llm_client.core.schema_walk import IN_VALUE, keyed_children
from worker_llm_client.errors import SchemaInvalid

MAX_SCHEMA_CHARS = 128 * 1024  # jsonschema checks ~600 KB of schema per second
MAX_SCHEMA_DEPTH = 32  # nested arrays/objects: ~15 levels of object properties
_MAX_SHOWN = 120  # a path or a reference quoted in a message

# Where draft 2020-12 keeps subschemas (referencing's DRAFT202012 table, ``schema_walk``); anything
# else is data. ``contentSchema`` too: it constrains nothing, but its references must be local.
_IN_VALUE = tuple(sorted((*IN_VALUE, "contentSchema")))
# Applied to the instance at the same location: a cycle through these never ends.
_IN_PLACE = frozenset({"$ref", "$dynamicRef", "allOf", "anyOf", "oneOf", "not", "if", "then", "else",
                       "dependentSchemas"})  # fmt: skip
_REFS = ("$ref", "$dynamicRef")
_ROOT_ONLY = ("$id", "$schema")


def _re2_options(max_mem: int) -> Any:
    options = re2.Options()
    options.log_errors, options.max_mem = False, max_mem
    return options


_RE2_OPTIONS = _re2_options(8 << 20)  # RE2's default memory budget per pattern
_REPLY_RE2_OPTIONS = _re2_options(1 << 20)  # patterns the model writes (format "regex"), cached by re2
_ECMA_ESCAPE = re.compile(r"\\(u\{[0-9A-Fa-f]{1,6}\}|u[0-9A-Fa-f]{4}|.)", re.DOTALL)
_STRUCTURE = re.compile(r'["\[\]{}]')
_STRING_REST = re.compile(r'[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)  # possessive: no backtracking


def nesting_overflow(text: str, limit: int) -> int | None:
    """Offset of the first ``[`` or ``{`` outside strings nested deeper than ``limit``, else None.

    Linear and iterative: run it on untrusted JSON text before ``json.loads`` recurses into it."""
    depth = position = 0
    while (token := _STRUCTURE.search(text, position)) is not None:
        position = token.end()
        if token.group() == '"':
            rest = _STRING_REST.match(text, position)
            position = rest.end() if rest else len(text)
        elif token.group() in "[{":
            depth += 1
            if depth > limit:
                return token.start()
        else:
            depth = max(depth - 1, 0)
    return None


def check_schema_text(text: str) -> None:
    """Size and depth, before the text is parsed."""
    if len(text) > MAX_SCHEMA_CHARS:
        raise SchemaInvalid(f"outputSchema has {len(text)} characters; at most {MAX_SCHEMA_CHARS} are supported")
    where = nesting_overflow(text, MAX_SCHEMA_DEPTH)
    if where is not None:
        raise SchemaInvalid(
            f"outputSchema nests arrays and objects deeper than {MAX_SCHEMA_DEPTH} levels (at character {where})"
        )


def _to_re2(pattern: str) -> str:
    """ECMA-262's ``\\uXXXX`` and ``\\u{...}`` escapes as RE2's ``\\x{...}``; other escapes as they are."""

    def swap(match: re.Match[str]) -> str:
        escape = match.group(1)
        return f"\\x{{{escape[1:].strip('{}')}}}" if len(escape) > 1 else match.group(0)

    return _ECMA_ESCAPE.sub(swap, pattern)


@lru_cache(maxsize=256)
def compile_pattern(pattern: str) -> Any:
    """A schema's pattern compiled by RE2; raises ``re2.error`` (``UnicodeError`` for a lone surrogate)."""
    return re2.compile(_to_re2(pattern), _RE2_OPTIONS)


def _matches(pattern: str, text: str) -> bool:
    return compile_pattern(pattern).search(text) is not None


def additional_properties(instance: Mapping[str, Any], schema: Mapping[str, Any]) -> list[str]:
    """The keys of ``instance`` that neither ``properties`` nor ``patternProperties`` cover, sorted."""
    declared, patterns = schema.get("properties", {}), schema.get("patternProperties", {})
    return sorted(key for key in instance if key not in declared and not any(_matches(p, key) for p in patterns))


def _pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _matches(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Any, patterns: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for key, value in instance.items():
            if _matches(pattern, key):
                yield from validator.descend(value, subschema, path=key, schema_path=pattern)


def _additional_properties(validator: Any, allowed: Any, instance: Any, schema: Any) -> Iterator[ValidationError]:
    """jsonschema's ``additionalProperties``, its messages included, with RE2 for ``patternProperties``."""
    if not validator.is_type(instance, "object"):
        return
    extras = additional_properties(instance, schema)
    if validator.is_type(allowed, "object"):
        for extra in extras:
            yield from validator.descend(instance[extra], allowed, path=extra)
    elif not allowed and extras:
        shown, one = ", ".join(map(repr, extras)), len(extras) == 1
        if "patternProperties" in schema:
            patterns = ", ".join(map(repr, sorted(schema["patternProperties"])))
            yield ValidationError(f"{shown} {'does' if one else 'do'} not match any of the regexes: {patterns}")
        else:
            yield ValidationError(
                f"Additional properties are not allowed ({shown} {'was' if one else 'were'} unexpected)"
            )


def _is_regex(instance: object) -> bool:
    if isinstance(instance, str):
        re2.compile(_to_re2(instance), _REPLY_RE2_OPTIONS)
    return True


FORMAT_CHECKER = FormatChecker(formats=())
FORMAT_CHECKER.checkers = {
    **Draft202012Validator.FORMAT_CHECKER.checkers,
    "regex": (_is_regex, (re2.error, UnicodeError)),
}
OutputValidator: type[Validator] = validators.extend(  # type: ignore[no-untyped-call]
    Draft202012Validator,
    {"pattern": _pattern, "patternProperties": _pattern_properties, "additionalProperties": _additional_properties},
)


def check_metaschema(schema: Mapping[str, Any]) -> None:
    """Valid draft 2020-12 (``check_schema``, but on a registry that never retrieves); patterns are
    left to ``inspect_schema``, which compiles them with RE2."""
    meta = Draft202012Validator.META_SCHEMA
    checker = Draft202012Validator(meta, format_checker=FormatChecker(formats=()), registry=Registry())
    error = next(iter(checker.iter_errors(schema)), None)
    if error is not None:
        raise SchemaInvalid(f"outputSchema is not valid draft 2020-12 at {error.json_path}: {error.message}")


def build_validator(schema: Mapping[str, Any]) -> Validator:
    """Draft 2020-12 with RE2 patterns, on a registry that never retrieves: refs resolve in ``schema`` or fail.

    An empty ``Registry()`` retrieves nothing (an unknown URI is ``Unresolvable``); jsonschema adds
    ``schema`` as its root resource and its own bundled metaschemas."""
    return OutputValidator(schema, format_checker=FORMAT_CHECKER, registry=Registry())


def inspect_schema(schema: Mapping[str, Any]) -> frozenset[str]:
    """Refuse what the module docstring rules out; the property names ``schema`` declares.

    Run after ``check_metaschema``: keyword values have their metaschema types."""
    nodes = _subschemas(schema)
    names: set[str] = set()
    in_place: dict[int, list[int]] = {}
    for node, path in nodes.values():
        _check_node(node, path, is_root=node is schema)
        names.update(node.get("properties", {}))
        in_place[id(node)] = [
            id(child) for keyword, child, _ in keyed_children(node, path, _IN_VALUE) if keyword in _IN_PLACE
        ]
    resolver = Registry().resolver_with_root(DRAFT202012.create_resource(schema))
    for node, path in nodes.values():
        in_place[id(node)] += [_resolve(resolver, key, node[key], path, nodes) for key in _REFS if key in node]
    if {"unevaluatedProperties", "patternProperties"} <= {key for node, _ in nodes.values() for key in node}:
        raise SchemaInvalid(
            "outputSchema uses unevaluatedProperties beside patternProperties: not supported "
            "(jsonschema would match those patterns with Python's re, not RE2)"
        )
    cycle = find_cycle(in_place)
    if cycle is not None:
        raise SchemaInvalid(
            f"outputSchema has a $ref cycle at {_shown(nodes[cycle][1])} that never descends into the reply"
        )
    return frozenset(names)


def _subschemas(schema: Mapping[str, Any]) -> dict[int, tuple[Mapping[str, Any], str]]:
    """Every object subschema by keyword semantics, found iteratively: ``id(node) -> (node, path)``."""
    found: dict[int, tuple[Mapping[str, Any], str]] = {}
    stack: list[tuple[Mapping[str, Any], str]] = [(schema, "$")]
    while stack:
        node, path = stack.pop()
        found[id(node)] = (node, path)
        stack.extend((child, child_path) for _, child, child_path in keyed_children(node, path, _IN_VALUE))
    return found


def _check_node(node: Mapping[str, Any], path: str, is_root: bool) -> None:
    for key in () if is_root else _ROOT_ONLY:
        if key in node:
            raise SchemaInvalid(f"outputSchema has {key} at {_shown(path)}: only the root may carry {key}")
    for key in _REFS:
        if isinstance(node.get(key), str) and not node[key].startswith("#"):
            raise SchemaInvalid(
                f"outputSchema {key} {_shown(node[key])!r} at {_shown(path)} is not local; "
                "only '#...' references are supported"
            )
    patterns = [("pattern", node["pattern"])] if isinstance(node.get("pattern"), str) else []
    patterns += [("patternProperties", key) for key in node.get("patternProperties", {})]
    for keyword, pattern in patterns:
        try:
            compile_pattern(pattern)
        except (re2.error, UnicodeError) as exc:
            reason = exc.args[0].decode(errors="replace") if exc.args and isinstance(exc.args[0], bytes) else "invalid"
            raise SchemaInvalid(
                f"outputSchema {keyword} at {_shown(path)} is not supported by RE2 ({_shown(reason)}): "
                "backreferences and lookaround are not available"
            ) from exc


def _resolve(resolver: Any, keyword: str, ref: str, path: str, nodes: Mapping[int, Any]) -> int:
    """The id of the subschema that the local reference ``ref`` points at."""
    where = f"outputSchema {keyword} {_shown(ref)!r} at {_shown(path)}"
    try:
        target = resolver.lookup(ref).contents
    except (Unresolvable, LookupError, TypeError, ValueError) as exc:
        raise SchemaInvalid(f"{where} does not resolve") from exc
    if not isinstance(target, bool) and id(target) not in nodes:
        raise SchemaInvalid(f"{where} does not point at a subschema (only $defs, properties, items... hold schemas)")
    return id(target)


def find_cycle(edges: Mapping[int, list[int]]) -> int | None:
    """A node on a cycle of ``edges``, found by an iterative depth-first search; None if acyclic."""
    state: dict[int, bool] = {}  # False: on the current path; True: done
    for start in edges:
        stack = [] if start in state else [(start, iter(edges[start]))]
        state.setdefault(start, False)
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = True
                stack.pop()
            elif state.get(child) is False:
                return child
            elif child not in state:
                state[child] = False
                stack.append((child, iter(edges.get(child, ()))))
    return None


def check_encodable(schema: Any) -> None:
    """A lone UTF-16 surrogate (``"\\ud800"``) in the schema could not be sent or stored."""
    try:
        json.dumps(schema, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise SchemaInvalid("outputSchema holds a lone UTF-16 surrogate escape, which UTF-8 cannot encode") from exc


def _shown(text: str) -> str:
    return clip(text, _MAX_SHOWN)
