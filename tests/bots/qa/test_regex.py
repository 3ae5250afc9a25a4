"""Regex rules: the static check, the timed trial, and the literals the prefilter uses."""

from __future__ import annotations

import pytest

from bots.qa_matcher import normalize
from bots.qa_regex import UnsafeRegex, check_static, parse, required_literals, timed_trial


@pytest.mark.parametrize(
    "pattern",
    [r"(a+)+$", r"(.*)*x", r"(\d{1,3})+\.", r"(a|a)*$", r"(ab|a.)+$", r"\d+\d+x", r".*.*="],
)
def test_backtracking_shapes_are_refused_statically(pattern: str) -> None:
    with pytest.raises(UnsafeRegex):
        check_static(parse(pattern))


@pytest.mark.parametrize(
    "pattern",
    [r"第\s*\d+\s*天.*作业", r"(几点|什么时候).*(直播|开课)", r"(?:课程|课表)+", r"\w+\s+\w+"],
)
async def test_everyday_regexes_pass_both_checks(pattern: str) -> None:
    nodes = parse(pattern)
    check_static(nodes)
    await timed_trial(pattern, nodes)


async def test_the_timed_trial_alone_catches_exponential_backtracking() -> None:
    with pytest.raises(UnsafeRegex, match="回溯爆炸"):
        await timed_trial(r"(a|a)*$", parse(r"(a|a)*$"))


def test_a_regex_that_does_not_compile_says_why() -> None:
    with pytest.raises(UnsafeRegex, match="写法有误"):
        parse("(几点")


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"(几点|什么时候).*(直播|开课)", {"几点", "什么时候"}),
        (r"\d+\s*天", {"天"}),
        (r"Refund\s+policy", {"refund"}),
        (r"第 3 天", {"第3天"}),  # normalized: the space is gone, as in the text's key
        (r"(直播)?回放", {"回放"}),
    ],
)
def test_required_literals(pattern: str, literals: set[str]) -> None:
    assert required_literals(pattern, normalize) == frozenset(literals)


@pytest.mark.parametrize("pattern", [r"\d+", r"(直播)?(回放)?", r"a|\d", r"[？！]+"])
def test_no_required_literal_means_the_regex_always_runs(pattern: str) -> None:
    assert required_literals(pattern, normalize) is None
