"""A prompt's templates rendered with a step's ``vars`` in Jinja2's immutable sandbox.

Undefined variables fail (StrictUndefined); unsafe attribute access fails (SecurityError). Error
messages name the template and the problem, never the template text or a variable's value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import jinja2
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment

from worker_llm_client.errors import TemplateError
from worker_llm_client.report_models import Prompt

_MAX_MESSAGE = 200


@dataclass(frozen=True)
class RenderedPrompt:
    system_instruction: str | None
    user: str


@lru_cache(maxsize=1)
def _environment() -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)


@lru_cache(maxsize=256)
def compile_template(source: str, name: str) -> jinja2.Template:
    try:
        return _environment().from_string(source)
    except jinja2.TemplateSyntaxError as exc:  # its message quotes template text: line number only
        raise TemplateError(f"{name}: syntax error at line {exc.lineno}") from exc


def render(prompt: Prompt, variables: Mapping[str, Any]) -> RenderedPrompt:
    system = prompt.system_instruction
    return RenderedPrompt(
        system_instruction=_render(system, "systemInstruction", variables) if system else None,
        user=_render(prompt.template, "template", variables),
    )


def _render(source: str, name: str, variables: Mapping[str, Any]) -> str:
    template = compile_template(source, name)
    try:
        return template.render(dict(variables))
    except SecurityError as exc:
        raise TemplateError(f"{name}: unsafe operation blocked by the sandbox: {_short(exc)}") from exc
    except jinja2.UndefinedError as exc:
        raise TemplateError(f"{name}: {_short(exc)} (StrictUndefined)") from exc
    except (jinja2.TemplateError, TypeError, ValueError, ArithmeticError, RecursionError) as exc:
        raise TemplateError(f"{name}: {type(exc).__name__} while rendering") from exc


def _short(exc: Exception) -> str:
    text = str(getattr(exc, "message", None) or exc)
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"
