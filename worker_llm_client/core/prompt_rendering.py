"""A prompt's templates rendered with a step's ``vars`` in a bounded, inert Jinja2 sandbox.

The sandbox and its caps are ``template_sandbox.py``. A failure is a ``TemplateError`` naming the
template and the kind of problem (an exception type, a cap, a missing variable's name), never the
template's text or a variable's value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError

from worker_llm_client.core.render_budget import (
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    MAX_RENDER_STEPS,
    MAX_RENDER_WORK,
    limit_message,
    render_budget,
)
from worker_llm_client.core.template_sandbox import sandbox_environment
from worker_llm_client.errors import TemplateError
from worker_llm_client.execution_models import Prompt

__all__ = [
    "MAX_INT_BITS",
    "MAX_OUTPUT_CHARS",
    "MAX_RANGE",
    "MAX_RENDER_STEPS",
    "MAX_RENDER_WORK",
    "RenderedPrompt",
    "compile_template",
    "render",
]
_UNDEFINED_NAME = re.compile(r"'[A-Za-z_][A-Za-z0-9_]{0,63}' is undefined")


@dataclass(frozen=True)
class RenderedPrompt:
    system_instruction: str | None
    user: str


@lru_cache(maxsize=256)
def compile_template(source: str, name: str) -> jinja2.Template:
    try:
        return sandbox_environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:  # its message quotes template text: line number only
        raise TemplateError(f"{name}: syntax error at line {exc.lineno}") from exc
    except Exception as exc:  # RecursionError, MemoryError, Python's limit on nested blocks
        raise TemplateError(f"{name}: {type(exc).__name__} while compiling") from exc


def render(prompt: Prompt, variables: Mapping[str, Any]) -> RenderedPrompt:
    system = prompt.system_instruction
    return RenderedPrompt(
        system_instruction=_render(system, "systemInstruction", variables) if system else None,
        user=_render(prompt.template, "template", variables),
    )


def _render(source: str, name: str, variables: Mapping[str, Any]) -> str:
    template = compile_template(source, name)
    try:
        with render_budget():
            return template.render(dict(variables))
    except Exception as exc:  # everything a render raises comes from the template or its vars
        raise TemplateError(f"{name}: {_describe(exc)}") from exc


def _describe(exc: Exception) -> str:
    limit = limit_message(exc)
    if limit is not None:
        return limit
    if isinstance(exc, SecurityError):  # its message may quote an attribute name taken from a var
        return "unsafe operation blocked by the sandbox"
    if isinstance(exc, jinja2.UndefinedError):  # only the plain "'name' is undefined" names anything
        named = _UNDEFINED_NAME.fullmatch(exc.message or "")
        return f"{named.group(0) if named else 'an undefined attribute or item was used'} (StrictUndefined)"
    return f"{type(exc).__name__} while rendering"
