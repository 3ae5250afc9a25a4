"""Regex rules: RE2 takes what Python's `re` meant, refuses (in Chinese) what it lacks, and
the literals the prefilter uses."""

from __future__ import annotations

import re
import sys
import unicodedata

import pytest

from bots.qa.matcher import normalize, question_text
from bots.qa.regex import (
    MAX_TEXT,
    OPTIONS,
    UnsafeRegex,
    compile_regex,
    re2,
    required_literals,
    to_re2,
)

# Issue 10: stored under the old checks, then seconds to minutes of backtracking per message.
POLYNOMIAL = [r"x.*y.*z.*w", r"a.*b.*c.*d.*e", r"a.*b.*c.*d.*e.*f.*g.*h"]


def found(pattern: str, text: str) -> bool:
    return compile_regex(pattern).search(question_text(text).encode()) is not None


@pytest.mark.parametrize("pattern", POLYNOMIAL)
def test_polynomial_patterns_are_accepted_and_still_match(pattern: str) -> None:
    letters = re.findall(r"\w", pattern)
    blocks = "".join(c * (MAX_TEXT // len(letters)) for c in letters[:-1])  # all but the last
    assert not found(pattern, blocks)
    assert found(pattern, blocks + letters[-1])
    assert found(pattern, "".join(letters).upper())


@pytest.mark.parametrize(
    ("pattern", "reason"),
    [
        (r"(直播)\1", "反向引用"),
        (r"(?P<x>课)(?P=x)", "反向引用"),
        (r"直播(?=回放)", "前瞻、后顾"),
        (r"(?<=几点)直播", "前瞻、后顾"),
        (r"直播(?!回放)", "否定的前瞻"),
        (r"(?<!不)退款", "否定的前瞻"),
        (r"\d*+天", "占有量词"),
        (r"(?>直播|回放)", "原子分组"),
        (r"(a)?(?(1)b|c)", "条件分组"),
        (r"(a)?(?(+1)b|c)", "条件分组"),  # Python's parser warns before refusing it
        (r"[[:alpha:]]+", "反斜杠转义"),  # RE2 would read a POSIX class
        (r"[a-z--x]", "反斜杠转义"),
        (r"\bvip\b", "单词边界"),
        (r"vip\B", "单词边界"),
        (r"[\s\S]*退款", "字符集"),
        (r"a{1001}", "重复次数太大"),
        (r"(a{1000}){1000}", "重复次数太大"),
        (r"\w{100}", "太复杂"),
        (r"(?x) 直 播", "RE2"),
        (r"(几点", "写法有误"),
        ("直" * 201, "最多 200 个字符"),
    ],
)
def test_what_re2_lacks_or_cannot_afford_is_refused_saying_why(pattern: str, reason: str) -> None:
    with pytest.raises(UnsafeRegex, match=re.escape(reason)):
        compile_regex(pattern)


@pytest.mark.parametrize(
    "pattern",
    [
        r"(几点|什么时候).*直播",
        r"第\s*\d+\s*天",
        r"\w+\s+\w+",
        r"[\u4e00-\u9fa5]{2,}",
        r"^\W*退款",
        r"[^\d\s]+",
        r"\？",
        r"x{,2}y",
        r"天\Z",
        r"[]a]",
        r"[a[:a]+",
        r"[\b]",
        r"Refund\s+Policy",
        r"直播.*?回放$",
    ],
)
def test_accepted_patterns_match_what_python_re_matched(pattern: str) -> None:
    texts = [
        "第 3 天", "第3天作业", "今晚几点直播", "什么时候开课和直播", "Hello World 你好 世界",
        "中文", "...退款", "退款", "x", "xxy", "xxxy", "每天", "天\n", "]", "[:a", "l", "a\b",
        "refund policy", "REFUND  POLICY", "？", "٣٤", "直播 xx 回放", "直播回放。", "a b",
    ]  # fmt: skip
    python = re.compile(pattern, re.IGNORECASE)
    for text in texts:
        expected = python.search(question_text(text)) is not None
        assert found(pattern, text) == expected, (pattern, text)


@pytest.mark.parametrize(
    "pattern", [r"\w+", r"\W+", r"\d+", r"\D+", r"\s+", r"\S+", r"[\w]+", r"[\d\s]+", r"[^\w]+"]
)
def test_unicode_classes_mean_what_they_meant_in_python(pattern: str) -> None:
    # RE2's own \w \d \s are ASCII; to_re2 spells Python's Unicode ones. Left out: what
    # Python's Unicode database does not know yet (RE2's may be newer), and U+0345, a
    # combining mark that case-folds to ι, so RE2 ignoring case counts it as a letter.
    text = "".join(
        chr(c)
        for c in range(sys.maxunicode + 1)
        if not 0xD800 <= c <= 0xDFFF and unicodedata.category(chr(c)) != "Cn" and c != 0x345
    )
    ours = re2.compile(to_re2(pattern), OPTIONS).findall(text)
    assert ours == re.findall(pattern, text, re.IGNORECASE)


@pytest.mark.parametrize(
    ("pattern", "literals"),
    [
        (r"(几点|什么时候).*(直播|开课)", {"几点", "什么时候"}),
        (r"\d+\s*天", {"天"}),
        (r"Refund\s+policy", {"refund"}),
        (r"第 3 天", {"第3天"}),  # normalized: the space is gone, as in the text's key
        (r"(直播)?回放", {"回放"}),
        (r"\u76f4\u64ad", {"直播"}),
    ],
)
def test_required_literals(pattern: str, literals: set[str]) -> None:
    assert required_literals(pattern, normalize) == frozenset(literals)


@pytest.mark.parametrize("pattern", [r"\d+", r"(直播)?(回放)?", r"a|\d", r"[？！]+"])
def test_no_required_literal_means_the_regex_always_runs(pattern: str) -> None:
    assert required_literals(pattern, normalize) is None
