from __future__ import annotations

import pytest

from tests.builders import make_prompt
from worker_llm_client.core.prompt_rendering import render
from worker_llm_client.errors import TemplateError


def test_renders_template_and_system_instruction() -> None:
    rendered = render(make_prompt(template="Hi {{ name }}!", system="Be {{ tone }}."), {"name": "Ada", "tone": "brief"})
    assert (rendered.user, rendered.system_instruction) == ("Hi Ada!", "Be brief.")


def test_no_system_instruction() -> None:
    assert render(make_prompt(system=""), {"team": "x"}).system_instruction is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ missing }}", "template: 'missing' is undefined"),
        ("{{ ''.__class__.__mro__ }}", "unsafe operation blocked by the sandbox"),
        ("{{ cycler.__init__.__globals__ }}", "template"),
        ("{% for x in %}", "syntax error at line 1"),
        ("{{ items.append(1) }}", "unsafe operation blocked by the sandbox"),
        ("{{ 1 / 0 }}", "ZeroDivisionError while rendering"),
    ],
)
def test_template_errors_are_step_errors(template: str, message: str) -> None:
    with pytest.raises(TemplateError, match=message.replace("(", r"\(")):
        render(make_prompt(template=template), {"items": [1], "secret": "s3cr3t"})


def test_syntax_errors_do_not_quote_the_template() -> None:
    with pytest.raises(TemplateError) as info:
        render(make_prompt(template="Hello {{ secretword secretword }}"), {})
    assert info.value.message == "template: syntax error at line 1"


def test_runaway_recursion_is_a_template_error() -> None:
    template = "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}"
    with pytest.raises(TemplateError, match="RecursionError"):
        render(make_prompt(template=template), {})


def test_error_messages_carry_no_variable_values() -> None:
    with pytest.raises(TemplateError) as info:
        render(make_prompt(template="{{ secret.nope }}"), {"secret": "s3cr3t-value"})
    assert "s3cr3t-value" not in info.value.message


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("{{ secret.literal_name }}", "template: an undefined attribute or item was used (StrictUndefined)"),
        ("{{ {}['quoted text'] }}", "template: an undefined attribute or item was used (StrictUndefined)"),
        ("{{ secret[other] }}", "template: an undefined attribute or item was used (StrictUndefined)"),
        ("{{ missing }}", "template: 'missing' is undefined (StrictUndefined)"),
    ],
)
def test_undefined_errors_name_a_missing_variable_and_nothing_else(template: str, message: str) -> None:
    with pytest.raises(TemplateError) as info:
        render(make_prompt(template=template, system=""), {"secret": {"k": 1}, "other": "s3cr3t-key"})
    assert info.value.message == message
