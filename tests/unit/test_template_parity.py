"""The bounded sandbox renders what Jinja2's own immutable sandbox renders, for ordinary templates."""

from __future__ import annotations

import jinja2
import pytest
from jinja2.sandbox import ImmutableSandboxedEnvironment

from tests.builders import make_prompt
from worker_llm_client.core.prompt_rendering import render

STOCK = ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False)
VARS = {
    "team": "core",
    "items": [
        {"title": "b", "sev": "high", "n": 2},
        {"title": "a", "sev": "low", "n": 1},
        {"title": "c", "sev": "high", "n": 3},
    ],
    "tree": [
        {
            "name": "r",
            "children": [{"name": "c1", "children": []}, {"name": "c2", "children": [{"name": "g", "children": []}]}],
        }
    ],
    "m": {"z": 1, "a": 2},
    "text": "line one\nline two words here\nthree",
    "n": 7,
    "x": 2.5,
    "flag": True,
    "none": None,
}
TEMPLATES = [
    "{% for i in items %}{{ loop.index }}/{{ loop.length }} {{ i.title }}{% if not loop.last %}, {% endif %}{% else %}none{% endfor %}",
    "{% for i in items if i.sev == 'high' %}{{ i.title }}{{ loop.revindex }}{% endfor %}{% for i in [] %}x{% else %}empty{% endfor %}",
    "{% for node in tree recursive %}{{ node.name }}({{ loop.depth }}){% if node.children %}[{{ loop(node.children) }}]{% endif %}{% endfor %}",
    "{% macro card(t, sev='low') %}<{{ t }}:{{ sev }}:{{ caller() if caller is defined else '' }}>{% endmacro %}"
    "{{ card('a') }}{% call card('b', 'high') %}inner {{ team }}{% endcall %}",
    "{% set block %}{% for k, v in m|dictsort %}{{ k }}={{ v }};{% endfor %}{% endset %}[{{ block }}]{% filter upper %}hi {{ team }}{% endfilter %}",
    "{{ team ~ '-' ~ n ~ '-' ~ x ~ none }}",
    "{{ 1 < n < 10 }} {{ 1 < n > 10 }} {{ n == 7 }} {{ 'co' in team }} {{ 'zz' not in team }} {{ [1, 2] == [1, 2] }} {{ n >= 7 <= 7 }}",
    "{% for k in m %}{{ k }}{% endfor %} {% for k, v in m.items() %}{{ k }}{{ v }}{% endfor %}",
    "{{ '%s has %d items (%.1f)' % (team, items|length, x) }} {{ '%(a)s' % {'a': 1} }} {{ '{}:{:>5}|{:<3}|{!r}'.format(team, n, 'a', 'q') }}",
    "{{ '{0}{1}{0}'.format('a', 'b') }} {{ '{a}'.format_map({'a': 1}) }} {{ '%5.2f|%-4s|%03d' % (x, 'a', 5) }} {{ '%s'|format(team) }}",
    "{{ items|map(attribute='title')|join(', ') }} {{ items|selectattr('sev', 'equalto', 'high')|map(attribute='n')|sum }}",
    "{{ items|sort(attribute='title')|map(attribute='title')|list }} {% for g in items|groupby('sev') %}{{ g.grouper }}:{{ g.list|length }};{% endfor %}",
    "{{ [1, 2, 3, 4, 5]|batch(2, 0)|list }} {{ [1, 2, 3, 4, 5]|slice(2)|list }} {{ items|tojson }} {{ m|tojson(indent=2) }}",
    "{{ text|indent(4) }}|{{ text|indent(2, true) }}|{{ text|wordwrap(8) }}|{{ text|truncate(12) }}|{{ text|wordcount }}|{{ text|center(40) }}",
    "{{ missing|default('d') }} {{ none|default('dd', true) }} {{ items|first }} {{ items|last }} {{ [3, 1, 2]|max }} {{ [3, 1, 2]|unique|list }}",
    "{{ [3, 1, 2]|reverse|list }} {{ 'abc'|reverse }} {{ [1, 2, 3]|select('odd')|list }} {{ [1, 2, 3]|map('string')|join }} {{ text|replace('line', 'L') }}",
    "{% set ns = namespace(total=0) %}{% for i in items %}{% set ns.total = ns.total + i.n %}{% endfor %}{{ ns.total }} {{ ns }}",
    "{% set c = cycler('a', 'b') %}{{ c.next() }}{{ c.next() }}{{ c.next() }} {% set j = joiner('|') %}{% for i in range(3) %}{{ j() }}{{ i }}{% endfor %}",
    "{% for i in range(1, 10, 3) %}{{ loop.cycle('x', 'y') }}{{ i }}{% if loop.changed(i % 2) %}!{% endif %}{% endfor %}",
    "{{ team.upper() }} {{ team.center(10, '*') }} {{ team.replace('o', '0') }} {{ ','.join(['a', 'b']) }} {{ team.split('o') }} {{ team.zfill(8) }}",
    "{{ team * 3 }} {{ [1] * 3 }} {{ 2 ** 10 }} {{ 7 % 3 }} {{ n * x }} {{ [1] + [2] }} {{ 'ab' + 'cd' }} {{ 10 // 3 }} {{ 10 / 4 }} {{ -x }}",
    "{{ items[0:2]|length }} {{ team[::-1] }} {{ items[1]['title'] }} {{ items[1].title }} {{ m['a'] }} {{ dict(a=1, b=2)|dictsort }}",
    "{{ n is odd }} {{ n is divisibleby 7 }} {{ 'a' is in 'abc' }} {{ items is sequence }} {{ missing is defined }} {{ x|round }} {{ '42'|int + 1 }}",
    "{{ 1234567|filesizeformat }} {{ team|capitalize }} {{ 'a b'|title }} {{ '  s '|trim }} {{ 'a&b'|e }} {{ {'a': 'b c'}|urlencode }} {{ m|items|list }}",
    "{% with a = 1 %}{{ a }}{% endwith %}{% raw %}{{ raw }}{% endraw %}{# c #}{% if flag %}T{% elif n %}N{% else %}F{% endif %}",
    "{% macro rec(n) %}{% if n > 0 %}{{ n }}{{ rec(n - 1) }}{% endif %}{% endmacro %}{{ rec(5) }}{% block b %}B{{ team }}{% endblock %}{{ self.b() }}",
    "{{ {'b': 1, 'a': [1, {'c': none}]} }} {{ (1, 2) }} {{ none }} {{ flag }}",
]


@pytest.mark.parametrize("template", TEMPLATES)
def test_renders_like_the_stock_sandbox(template: str) -> None:
    assert render(make_prompt(template=template, system=""), VARS).user == STOCK.from_string(template).render(VARS)
