"""Templates are bounded and inert: hostile ones end as TEMPLATE_ERROR, quickly, saying nothing of
their text or of the vars."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.builders import make_prompt
from worker_llm_client.core.prompt_rendering import (
    MAX_INT_BITS,
    MAX_OUTPUT_CHARS,
    MAX_RANGE,
    MAX_RENDER_STEPS,
    MAX_RENDER_WORK,
    render,
)
from worker_llm_client.errors import TemplateError

SECRET = "s3cr3t-" + "v" * 9993  # a var value no message may quote
VARS = {"secret": SECRET, "items": list(range(100))}
TOO_BIG = f"larger than {MAX_OUTPUT_CHARS}"
STEPS = f"more than {MAX_RENDER_STEPS} steps"

HOSTILE = {
    # the issue's cases
    "huge-power": ("{{ 10 ** 5000 > 0 }}", f"more than {MAX_INT_BITS} bits"),
    "unknown-codec": ("{{ 'x'.encode('rot13') }}", "LookupError while rendering"),
    "twenty-million-characters": ("{{ 'x' * 20000000 }}", TOO_BIG),
    "nested-loops-with-output": (
        "{% for i in range(5000) %}{% for j in range(5000) %}xx{% endfor %}{% endfor %}",
        f"the rendered text exceeds {MAX_OUTPUT_CHARS} characters",
    ),
    "range-over-the-cap": ("{% for i in range(99999) %}{% endfor %}", f"range() yields at most {MAX_RANGE} numbers"),
    "range-too-long-to-measure": (
        "{% for i in range(2 ** 64) %}{% endfor %}",
        f"range() yields at most {MAX_RANGE} numbers",
    ),
    "nested-loops-without-output": (
        "{% for i in range(10000) %}{% for j in range(200) %}{% endfor %}{% endfor %}",
        STEPS,
    ),
    # loops over vars, macros, recursion
    "nested-loops-over-a-var": ("{% for a in secret %}{% for b in secret %}{% endfor %}{% endfor %}", STEPS),
    "a-macro-called-in-a-loop": (
        "{% macro m() %}{% for i in range(100) %}{% endfor %}{% endmacro %}"
        "{% for i in range(10000) %}{% for j in range(10) %}{% set x = m() %}{% endfor %}{% endfor %}",
        STEPS,
    ),
    "a-recursive-loop": ("{% for a in items recursive %}{{ loop(items) }}{% endfor %}", "while rendering"),
    "a-slice-materialized": ("{{ [1]|slice(100000000)|list|length }}", STEPS),
    # values doubled in a loop, or repeated by reference
    "concat-doubling": (
        "{% set ns = namespace(s='x') %}{% for i in range(60) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}",
        TOO_BIG,
    ),
    "plus-doubling": (
        "{% set ns = namespace(s=[1]) %}{% for i in range(60) %}{% set ns.s = ns.s + ns.s %}{% endfor %}",
        TOO_BIG,
    ),
    "integer-squaring": (
        "{% set ns = namespace(n=3) %}{% for i in range(60) %}{% set ns.n = ns.n * ns.n %}{% endfor %}",
        f"more than {MAX_INT_BITS} bits",
    ),
    "a-list-of-references": ("{{ [secret] * 100000 }}", TOO_BIG),
    "nested-literals": (
        "{% set a = [secret] * 20 %}{% set b = [a, a, a, a] %}{% set c = [b, b, b, b] %}{{ c }}",
        TOO_BIG,
    ),
    "a-namespace-holding-itself": ("{% set ns = namespace() %}{% set ns.me = ns %}{{ ns }}", TOO_BIG),
    "comparing-shared-structures": (
        "{% set a = ['x'] %}{% set b = ['x'] %}" + "{% set a = [a, a] %}{% set b = [b, b] %}" * 40 + "{{ a == b }}",
        TOO_BIG,
    ),
    # one call that would build too much
    "format-width": ("{{ '{:>999999999}'.format(1) }}", TOO_BIG),
    "format-repeated-field": ("{{ ('{0}' * 50000).format(secret) }}", TOO_BIG),
    "percent-width": ("{{ '%0999999999d' % 1 }}", TOO_BIG),
    "percent-width-from-an-argument": ("{{ '%*d' % (999999999, 1) }}", f"would build a value {TOO_BIG}"),
    "format-width-from-an-argument": ("{{ '{:>{}}'.format(1, 999999999) }}", f"would build a value {TOO_BIG}"),
    "format-filter-width": ("{{ '%0999999999d'|format(1) }}", TOO_BIG),
    "center-filter": ("{{ 'x'|center(999999999) }}", TOO_BIG),
    "ljust": ("{{ 'x'.ljust(999999999) }}", TOO_BIG),
    "indent-filter": ("{{ ('a\\n' * 100000)|indent(200000) }}", TOO_BIG),
    "join-with-a-long-separator": ("{{ range(10000)|map('string')|join(secret) }}", TOO_BIG),
    "str-join": ("{{ secret.join(range(10000)|map('string')) }}", TOO_BIG),
    "replace-the-empty-string": ("{{ secret.replace('', secret) }}", TOO_BIG),
    "replace-a-number": ("{{ secret.replace(7, secret) }}", "TypeError while rendering"),
    "translate": ("{{ secret.translate({118: secret}) }}", TOO_BIG),
    "expandtabs": ("{{ ('\\t' * 100000).expandtabs(100000) }}", TOO_BIG),
    "batch-fill": ("{{ [1]|batch(100000000, 'x')|list }}", TOO_BIG),
    "sum-of-lists": ("{{ [[1], [2]]|sum(start=[]) }}", "the sum filter adds numbers only"),
    "tojson-indented": (
        "{% set ns = namespace(x=range(5000)|list) %}{% for i in range(100) %}{% set ns.x = [ns.x] %}{% endfor %}"
        "{{ ns.x|tojson(indent=8) }}",
        TOO_BIG,
    ),
    # work that outputs nothing
    "searching-a-var-in-a-loop": (
        "{% for i in range(10000) %}{% for j in range(100) %}{% if 'zz' in secret %}{% endif %}{% endfor %}{% endfor %}",
        f"more than {MAX_RENDER_WORK} characters",
    ),
    "slicing-a-list-in-a-loop": (  # a slice copies: Jinja2 compiles it outside the environment's getitem
        "{% set l = [0] * 130000 %}{% for i in range(10000) %}{% for j in range(10) %}{% set y = l[1:] %}"
        "{% endfor %}{% endfor %}done",
        f"more than {MAX_RENDER_WORK} characters",
    ),
    # what Python refuses to compile, and what is not available
    "loops-nested-too-deep": ("{% for i in [1] %}" * 25 + "{% endfor %}" * 25, "SyntaxError while compiling"),
    "lipsum": ("{{ lipsum(100000) }}", "'lipsum' is undefined"),
    "striptags": ("{{ ('<' * 100000)|striptags }}", "syntax error at line 1"),
    # a message that quoted what a var held
    "a-missing-key-named-by-a-var": ("{{ {}[secret] }}", "an undefined attribute or item was used (StrictUndefined)"),
}


@pytest.mark.parametrize("case", HOSTILE, ids=list(HOSTILE))
def test_a_hostile_template_is_a_template_error_that_quotes_nothing(case: str) -> None:
    template, message = HOSTILE[case]
    with pytest.raises(TemplateError) as info:
        render(make_prompt(template=template, system=""), VARS)
    assert info.value.code == "TEMPLATE_ERROR"
    assert info.value.message.startswith("template: ") and message in info.value.message
    assert template not in info.value.message and "s3cr3t" not in info.value.message


# Each renders only because its estimate counts what the operation can build, no more: a literal
# '%%' or escaped brace counted as a field, or a replace's every hit despite its count, would put
# the secret's size past MAX_OUTPUT_CHARS.
ESTIMATED = {
    "a-literal-percent-is-no-field": ("{{ ('%%' * 100 + '%s') % secret }}", "%" * 100 + SECRET),
    "escaped-braces-are-no-field": ("{{ ('{{}}' * 100 + '{}').format(secret) }}", "{}" * 100 + SECRET),
    "replace-bounded-by-its-count": ("{{ secret.replace('v', secret, 1) }}", "s3cr3t-" + SECRET + "v" * 9992),
    "percent-width-from-an-argument": ("{{ '%*d' % (5, 42) }}", "   42"),
    "format-width-from-an-argument": ("{{ '{:>{}}'.format(42, 5) }}", "   42"),
    "slices-still-slice": ("{{ [1, 2, 3, 4][1:3] }}{{ 'abcdef'[::2] }}{{ 'abc'[:] }}{{ 'abc'[-1:] }}", "[2, 3]aceabcc"),
}


@pytest.mark.parametrize("case", ESTIMATED, ids=list(ESTIMATED))
def test_an_estimate_counts_only_what_the_operation_can_build(case: str) -> None:
    template, expected = ESTIMATED[case]
    assert render(make_prompt(template=template, system=""), VARS).user == expected


def test_the_system_instruction_is_bounded_and_named_too() -> None:
    with pytest.raises(TemplateError, match=f"^systemInstruction: an operation would build a value {TOO_BIG}$"):
        render(make_prompt(system="{{ 'x' * 20000000 }}"), VARS)


@pytest.mark.parametrize(
    ("template", "fits"),
    [
        (f"{{{{ 'x' * {MAX_OUTPUT_CHARS} }}}}", True),
        (f"{{{{ 'x' * {MAX_OUTPUT_CHARS + 1} }}}}", False),
        (f"{{{{ range({MAX_RANGE})|list|length }}}}", True),
        (f"{{{{ range({MAX_RANGE + 1})|list|length }}}}", False),
        (f"{{{{ (2 ** {MAX_INT_BITS - 1}) > 0 }}}}", True),
        (f"{{{{ (2 ** {MAX_INT_BITS + 1}) > 0 }}}}", False),
        (f"{{% for i in range({MAX_OUTPUT_CHARS // 32}) %}}{'x' * 32}{{% endfor %}}", True),
        (f"{{% for i in range({MAX_OUTPUT_CHARS // 32}) %}}{'x' * 32}{{% endfor %}}!", False),
    ],
)
def test_the_caps_are_where_they_say(template: str, fits: bool) -> None:
    if fits:
        assert render(make_prompt(template=template, system=""), {}).user
    else:
        with pytest.raises(TemplateError):
            render(make_prompt(template=template, system=""), {})


def test_each_render_has_its_own_budget_also_across_threads() -> None:
    # about 600,000 steps: within one budget, not within two shared
    template = "{% for i in range(10000) %}{% for j in range(59) %}{% endfor %}{% endfor %}done"
    prompt = make_prompt(template=template, system=template)
    assert render(prompt, {}).user == "done"
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert [r.user for r in pool.map(lambda _: render(prompt, {}), range(4))] == ["done"] * 4


def test_an_unsafe_attribute_named_by_a_var_is_not_quoted() -> None:
    with pytest.raises(TemplateError, match=r"^template: unsafe operation blocked by the sandbox$"):
        render(make_prompt(template="{{ ''[key] }}", system=""), {"key": "__class__"})
