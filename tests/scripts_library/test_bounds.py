"""The bounded sandbox: a template that would build, loop, nest or compute without end fails
within milliseconds, naming the bound in Chinese; what scripts really use still renders.

These renders run in the server process at send time (pushes, welcome, 喜报, Q&A), so a
runaway here would stall every request: each case is timed in processor time (what the
render itself costs, whatever else the machine is doing)."""

from __future__ import annotations

import time

import pytest

from scripts_library.errors import RenderError
from scripts_library.models import ScriptContent
from scripts_library.render import render, render_text
from scripts_library.validate import find_problems
from scripts_library.variables import SAMPLE, LeaderboardEntry, RenderContext
from tests.hostile_templates import FINDINGS, LOOPS_WITHIN_RANGE

STALL_S = 0.1  # the service's rule: nothing stalls other requests longer

# More ways to grow a string, a number or a list, each past a bound.
OTHER_RUNAWAYS = {
    "loops within range": LOOPS_WITHIN_RANGE,
    "string repeat": ("{{ 'x' * 100000 }}", "超过上限"),
    "list repeat of lists": ("{{ [[1] * 10000] * 10000 }}", "超过上限"),
    "center filter": ("{{ 'a'|center(10**9) }}", "超过上限"),
    "format width": ("{{ '{:>999999999}'.format(1) }}", "超过上限"),
    "format repeats": ("{{ '{0}{0}{0}{0}'.format('x' * 5000) }}", "超过上限"),
    "percent width": ("{{ '%999999999s' % 1 }}", "超过上限"),
    "percent star": ("{{ '%*s' % (10**9, 1) }}", "不能用 * 指定宽度"),
    "format filter": ("{{ '%999999999s'|format(1) }}", "超过上限"),
    "expandtabs": ("{{ 'a\\tb'.expandtabs(10**9) }}", "超过上限"),
    "replace": ("{{ ('a' * 10000).replace('a', 'a' * 10000) }}", "超过上限"),
    "replace filter": ("{{ ('a' * 10000)|replace('a', 'a' * 10000) }}", "超过上限"),
    "join method": ("{{ ('x' * 10000).join(['a'] * 10000) }}", "超过上限"),
    "join filter": ("{{ range(1000)|join('x' * 1000) }}", "超过上限"),
    "wordwrap": ("{{ 'a b'|wordwrap(1, wrapstring='x' * 10000) }}", "超过上限"),
    "indent": ("{{ ('a\\n' * 5000)|indent(10000) }}", "超过上限"),
    "batch": ("{{ [1]|batch(10**9, 'x')|list }}", "超过上限"),
    "slice": ("{{ [1]|slice(10**9)|list }}", "超过上限"),
    "sum of lists": ("{{ ([[1]] * 5000)|sum(start=[]) }}", "sum 只能对数字求和"),
    "tojson indent": ("{{ day|tojson(indent=10**6) }}", "缩进不能超过"),
    "to_bytes": ("{{ (1).to_bytes(10**9, 'big') }}", "超过上限"),
    "translate": ("{{ 'ab'.translate({97: 'x' * 10000}) }}", "超过上限"),
    "product of numbers": (
        "{% set ns = namespace(v=3) %}{% for i in range(100) %}"
        "{% set ns.v = ns.v * ns.v %}{% endfor %}{{ ns.v }}",
        "数字太大",
    ),
    "doubling list": (
        "{% set ns = namespace(v=[1]) %}{% for i in range(100) %}"
        "{% set ns.v = [ns.v, ns.v] %}{% endfor %}{{ ns.v }}",
        "超过上限",
    ),
    "doubling concat": (
        "{% set ns = namespace(v='a') %}{% for i in range(100) %}"
        "{% set ns.v = ns.v ~ ns.v %}{% endfor %}{{ ns.v }}",
        "超过上限",
    ),
    "doubling block set": (
        "{% set ns = namespace(v='a') %}{% for i in range(100) %}"
        "{% set ns.v %}{{ ns.v }}{{ ns.v }}{% endset %}{% endfor %}{{ ns.v|length }}",
        "超过上限",
    ),
    "doubling macro arguments": (
        "{% macro f() %}{{ f(varargs, varargs) }}{% endmacro %}{{ f(1) }}",
        "超过上限",
    ),
    "doubling recursive loop": (
        "{% for x in [[1]] recursive %}{{ loop([[x, x]]) }}{% endfor %}",
        "超过上限",
    ),
    "output": ("{% for i in range(1000) %}{{ 'x' * 100 }}{% endfor %}", "超过上限"),
    "deep nesting": ("{{ " + "(" * 300 + "1" + ")" * 300 + " }}", "嵌套太深"),
}


def _refused_quickly(source: str) -> str:
    """The reason `source` is refused; fails if it is not, or if refusing took too long."""
    started = time.thread_time()
    with pytest.raises(RenderError) as refused:
        render(ScriptContent("测试", "daily", "text", source), SAMPLE)
    assert time.thread_time() - started < STALL_S
    return str(refused.value)


@pytest.mark.parametrize("case", list(FINDINGS))
def test_the_findings_templates_are_refused_at_once_naming_the_bound(case: str) -> None:
    source, reason = FINDINGS[case]
    assert reason in _refused_quickly(source)


@pytest.mark.parametrize("case", list(OTHER_RUNAWAYS))
def test_other_runaways_are_refused_at_once(case: str) -> None:
    source, reason = OTHER_RUNAWAYS[case]
    assert reason in _refused_quickly(source)


def test_a_template_out_of_budget_is_refused_at_once_when_rendered_again() -> None:
    # A push renders its script once per member: a runaway costs the server its budget once.
    source = "{% for i in range(999) %}{% for j in range(999) %}{% endfor %}{% endfor %}"
    first = _refused_quickly(source)
    started = time.thread_time()
    with pytest.raises(RenderError) as again:
        render_text(source, {})
    assert time.thread_time() - started < 0.005
    assert str(again.value) == first
    assert render_text("{% for i in range(3) %}{{ i }}{% endfor %}", {}) == "012"


def test_what_scripts_use_still_renders() -> None:
    board = tuple(LeaderboardEntry(f"学员{i}", 100 - i) for i in range(200))
    context = RenderContext(student_name="小林", rank=5, day=3, leaderboard=board)
    source = (
        "{% set medals = ['🥇', '🥈', '🥉'] %}"
        "{% for e in leaderboard[:3] %}{{ medals[loop.index0] }}{{ e.name }} {% endfor %}|"
        "{{ '%s 第 %d 名'|format(student_name, rank) }}|{{ '{} {}'.format(day, '天') }}|"
        "{{ 'ab'.ljust(4, '.') }}|{{ 'ab'|center(6) }}|{{ student_name ~ day }}|"
        "{{ leaderboard|map(attribute='name')|join('、')|length }}|"
        "{{ leaderboard|sum(attribute='points') }}|{{ (2 ** 10, [1] * 3, 'ab' * 2) }}|"
        "{% set ns = namespace(n=0) %}{% for e in leaderboard %}{% set ns.n = ns.n + 1 %}"
        "{% endfor %}{{ ns.n }}|{% macro line(e) %}{{ e.name }}{% endmacro %}{{ line(board[0]) }}"
    )
    text = render_text(source, {**context.variables(), "board": board})
    assert text == (
        "🥇学员0 🥈学员1 🥉学员2 |小林 第 5 名|3 天|ab..|  ab  |小林3|"
        f"{len('、'.join(e.name for e in board))}|{sum(e.points for e in board)}|"
        "(1024, [1, 1, 1], 'abab')|200|学员0"
    )


def _content(body: str) -> ScriptContent:
    return ScriptContent("测试", "daily", "text", body)


def test_a_template_too_complex_to_compile_quickly_is_refused_at_save() -> None:
    problems = find_problems(_content("{{ day }}" * 600))
    assert [p.field for p in problems] == ["body"]
    assert "模板太复杂：超过上限 500 个语法单元" in problems[0].message


def test_a_template_nested_too_deep_to_parse_is_refused_at_save() -> None:
    problems = find_problems(_content("{{ " + "(" * 300 + "1" + ")" * 300 + " }}"))
    assert [p.field for p in problems] == ["body"]
    assert "嵌套太深" in problems[0].message
